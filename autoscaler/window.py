"""Time-bucketed metric windows: the averages the decider scales on.

A port of Knative's `aggregation.TimedFloat64Buckets` (linear average) and `WeightedFloat64Buckets`
(weighted-exponential average). Time is a float number of seconds passed in by the caller; a sample
lands in bucket `floor(t / granularity)` and samples in the same bucket add up, because the platform
records one revision-wide sample per second (Knative sums the per-pod samples of one scrape likewise).
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

Aggregation = Literal["linear", "weighted-exponential"]

# Knative rounds window averages to 6 digits so float noise cannot tip a ceil() into one more pod.
_PRECISION = 6
# Weighted-exponential: the weights of the window's buckets sum to 1 - this, so older data is noise.
_WEIGHT_PRECISION = 1e-3


class Window(Protocol):
    """What a metric window offers the per-revision autoscaler."""

    def record(self, t: float, value: float) -> None: ...

    def average(self, now: float) -> float: ...

    def is_empty(self, now: float) -> bool: ...


class MetricWindow:
    """Sums per time bucket over a sliding window; `average(now)` is Knative's `WindowAverage`.

    While the first sample is less than one window old, the average is over the buckets since that
    sample (so one sample of 1.0 just after a scale-from-zero averages 1.0, not 1/60). When `now` is
    past the last write, the buckets that fell out of the window leave both the sum and the divisor.
    A gap of more than a window between writes starts afresh.
    """

    def __init__(self, window: float, granularity: float = 1.0):
        if not granularity > 0:
            raise ValueError(f"granularity must be positive (got {granularity!r})")
        if not window >= granularity:
            raise ValueError(f"window must be at least one granularity of {granularity}s (got {window!r})")
        self.window = float(window)
        self.granularity = float(granularity)
        self._buckets = [0.0] * math.ceil(self.window / self.granularity)
        self._total = 0.0
        self._first: int | None = None  # bucket index of the first write since the last reset
        self._last: int | None = None  # bucket index of the newest write

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    def _index(self, t: float) -> int:
        return math.floor(t / self.granularity)

    def record(self, t: float, value: float) -> None:
        index = self._index(t)
        size = len(self._buckets)
        if self._last is None or (index - self._last) * self.granularity > self.window:
            # Nothing for longer than a window: old buckets are all stale, and the partial-window
            # average must restart from this sample (Knative resets firstWrite here).
            self._buckets = [0.0] * size
            self._total = 0.0
            self._first = self._last = index
        elif index > self._last:
            # Buckets between the last write and this one hold data a window old: zero them.
            for stale in range(self._last + 1, min(index, self._last + size) + 1):
                self._total -= self._buckets[stale % size]
                self._buckets[stale % size] = 0.0
            self._last = index
        elif self._last - index >= size:
            return  # older than the window that ends at the newest write: it can never count
        assert self._first is not None
        self._first = min(self._first, index)
        self._buckets[index % size] += value
        self._total += value

    def is_empty(self, now: float) -> bool:
        """No data within the last window (Knative's `IsEmpty`): the metric is unknown, not zero."""
        return self._last is None or (self._index(now) - self._last) * self.granularity > self.window

    def average(self, now: float) -> float:
        if self._last is None or self._first is None:
            return 0.0
        size = len(self._buckets)
        behind = self._index(now) - self._last
        spanned = self._last - self._first + 1  # +1: first and last buckets both count
        if behind <= 0:
            return _rounded(self._total / min(spanned, size))
        if behind < size:
            # The `behind` oldest buckets slid out of the window without being overwritten yet.
            total = self._total - sum(self._buckets[i % size] for i in range(self._last + 1, self._last + behind + 1))
            return _rounded(total / min(spanned, size - behind))
        return 0.0


class WeightedMetricWindow(MetricWindow):
    """Knative's `weighted-exponential` aggregation: recent buckets weigh more than old ones.

    The newest bucket has weight `alpha`, each older one `(1 - alpha)` times the next; alpha is chosen so
    the weights of a whole window sum to 99.9 %. Like Knative, buckets missing since the last write count
    as zeros (their weights are skipped) and a partial window is not re-normalised.
    """

    def __init__(self, window: float, granularity: float = 1.0):
        super().__init__(window, granularity)
        self.smoothing = 1.0 - _WEIGHT_PRECISION ** (1.0 / self.bucket_count)

    def average(self, now: float) -> float:
        if self._last is None:
            return 0.0
        size = len(self._buckets)
        behind = max(0, self._index(now) - self._last)
        if behind >= size:
            return 0.0
        weight = self.smoothing * (1.0 - self.smoothing) ** behind
        total = 0.0
        for age in range(size - behind):
            total += self._buckets[(self._last - age) % size] * weight
            weight *= 1.0 - self.smoothing
        return _rounded(total)


def _rounded(value: float) -> float:
    # + 0.0 turns the -0.0 that float subtraction leaves behind into 0.0.
    return round(value, _PRECISION) + 0.0


def make_window(window: float, granularity: float = 1.0, aggregation: Aggregation = "linear") -> MetricWindow:
    """The window for Knative's `metric-aggregation-algorithm` setting."""
    if aggregation == "linear":
        return MetricWindow(window, granularity)
    if aggregation == "weighted-exponential":
        return WeightedMetricWindow(window, granularity)
    raise ValueError(f"aggregation must be 'linear' or 'weighted-exponential' (got {aggregation!r})")
