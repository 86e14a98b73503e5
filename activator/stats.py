"""Per-revision load as the autoscaler wants it: time-weighted concurrency and a request count.

Concurrency here counts every request the activator holds for a revision, waiting or proxied: at
zero replicas the waiting ones are exactly the demand the autoscaler must scale up for (Knative's
activator reports the same way). The clock is passed in, so the arithmetic is testable exactly.
"""

from __future__ import annotations

from activator.contracts import RevisionStats


class ConcurrencyMeter:
    """Integral of concurrent requests over time, reset by each `collect`."""

    __slots__ = ("_current", "_last", "_area", "_start", "_count")

    def __init__(self, now: float):
        self._current = 0
        self._last = now
        self._area = 0.0
        self._start = now
        self._count = 0

    @property
    def current(self) -> int:
        return self._current

    def arrive(self, now: float) -> None:
        self._advance(now)
        self._current += 1
        self._count += 1

    def depart(self, now: float) -> None:
        self._advance(now)
        self._current -= 1

    def collect(self, now: float) -> RevisionStats:
        """Average concurrency and arrivals since the previous collect (or creation)."""
        self._advance(now)
        interval = now - self._start
        average = self._area / interval if interval > 0 else float(self._current)
        stats = RevisionStats(average_concurrency=average, request_count=self._count)
        self._area = 0.0
        self._start = max(now, self._last)
        self._count = 0
        return stats

    def _advance(self, now: float) -> None:
        # A timestamp older than the last one (callers on different clocks) adds nothing, never negative area.
        if now > self._last:
            self._area += self._current * (now - self._last)
            self._last = now
