"""The maximum of recent values in fixed time slots: Knative's `max.TimeWindow`, used for scale-down delay."""

from __future__ import annotations

import math
from collections import deque


class MaxWindow:
    """Max of the values recorded in the last `ceil(duration / granularity)` slots, this one included.

    A monotonic deque: a value that is not larger than a newer one can never be the maximum again, so it
    is dropped on arrival; what is left is in descending order and the front is the answer.
    """

    def __init__(self, duration: float, granularity: float = 2.0):
        if not duration > 0 or not granularity > 0:
            raise ValueError(f"duration and granularity must be positive (got {duration!r}, {granularity!r})")
        self.duration = float(duration)
        self.granularity = float(granularity)
        self.slots = math.ceil(self.duration / self.granularity)
        self._entries: deque[tuple[int, int]] = deque()  # (slot, value), values strictly descending

    def record(self, now: float, value: int) -> None:
        slot = math.floor(now / self.granularity)
        while self._entries and self._entries[-1][1] <= value:
            self._entries.pop()
        while self._entries and self._entries[0][0] <= slot - self.slots:
            self._entries.popleft()
        self._entries.append((slot, value))

    def current(self) -> int:
        """The maximum as of the latest record (Knative's `Current`); 0 before any record."""
        return self._entries[0][1] if self._entries else 0

    def resized(self, duration: float) -> MaxWindow:
        """A window of a new length that keeps the history, so a spec update does not forget a recent peak."""
        other = MaxWindow(duration, self.granularity)
        other._entries = deque(self._entries)
        return other
