"""A few minutes of each function's load and scale, one point a second, for the console's live chart.

`/metrics` holds counters since start; a chart wants rates over time. `ScaleHistory` reads the same
registry /metrics serves (the activator's and the platform's collectors, zeroserve/dataplane.py) once a
second and keeps per function: requests/s and 5xx/s (from `zeroserve_activator_requests`), p95 latency
over that second (from `zeroserve_activator_proxy_latency_seconds` buckets, interpolated the way
Prometheus' `histogram_quantile` does), ready and requested replicas, and whether any revision panics.
Reading through the registry keeps the data plane free of a second set of counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("zeroserve.scale_history")

SAMPLE_SECONDS = 1.0
KEEP_POINTS = 600  # ten minutes at one point a second


@dataclass(frozen=True)
class ScalePoint:
    time: float                   # seconds since the epoch
    requests_per_second: float    # answered by a replica or the activator, any status
    errors_per_second: float      # 5xx among them
    p95_ms: float | None          # None when no request finished in the interval
    ready: int                    # ready replicas, all revisions
    desired: int                  # replicas asked of the supervisor (after bounds and the zero gate)
    panicking: bool               # any revision in panic mode

    def to_json(self) -> dict[str, float | int | bool | None]:
        return {"time": self.time, "requests_per_second": round(self.requests_per_second, 3),
                "errors_per_second": round(self.errors_per_second, 3),
                "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 3),
                "ready": self.ready, "desired": self.desired, "panicking": self.panicking}


@dataclass
class _Totals:
    """One function's counters and gauges as read from the registry at one instant."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count
    ready: int = 0
    desired: int = 0
    panicking: bool = False


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """The q-quantile (seconds) of what was observed between two readings of cumulative histogram buckets,
    interpolated linearly within its bucket; None when nothing was observed."""
    bounds = sorted(after)
    counts = [max(after[b] - before.get(b, 0.0), 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):  # beyond the last finite bucket: its bound is all we know
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower


def read_totals(registry: CollectorRegistry) -> dict[str, _Totals]:
    """Per function: the activator's request counters and latency buckets, and the autoscaler's gauges."""
    totals: dict[str, _Totals] = {}
    for family in registry.collect():
        for sample in family.samples:
            function = sample.labels.get("function")
            if not function:
                continue
            row = totals.setdefault(function, _Totals())
            name, value = sample.name, sample.value
            if name == "zeroserve_activator_requests_total":
                row.requests += value
                if sample.labels.get("code", "").startswith("5"):
                    row.errors += value
            elif name == "zeroserve_activator_proxy_latency_seconds_bucket":
                bound = float(sample.labels["le"])
                row.buckets[bound] = row.buckets.get(bound, 0.0) + value
            elif name == "zeroserve_autoscaler_actual_pods":
                row.ready += int(value)
            elif name == "zeroserve_autoscaler_requested_pods":
                row.desired += int(value)
            elif name == "zeroserve_autoscaler_panic_mode":
                row.panicking = row.panicking or value >= 1
    return totals


class ScaleHistory:
    """Samples `registry` every `interval` seconds while started; keeps the newest `keep` points per function."""

    def __init__(self, registry: CollectorRegistry, *, interval: float = SAMPLE_SECONDS, keep: int = KEEP_POINTS,
                 clock: Callable[[], float] = time.time):
        self.registry = registry
        self.interval = interval
        self._keep = keep
        self._clock = clock
        self._points: dict[str, deque[ScalePoint]] = {}
        self._previous: tuple[float, dict[str, _Totals]] | None = None
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Read the registry now and add one point per function (from the second reading on)."""
        now, totals = self._clock(), read_totals(self.registry)
        if self._previous is not None:
            then, before = self._previous
            elapsed = max(now - then, 1e-6)
            for function, row in totals.items():
                old = before.get(function, _Totals())
                p95 = quantile(0.95, old.buckets, row.buckets)
                # Time rounded as the API shows it, so `?since=<a point's time>` never answers that point again.
                point = ScalePoint(time=round(now, 3),
                                   requests_per_second=max(row.requests - old.requests, 0.0) / elapsed,
                                   errors_per_second=max(row.errors - old.errors, 0.0) / elapsed,
                                   p95_ms=None if p95 is None else p95 * 1000, ready=row.ready,
                                   desired=row.desired, panicking=row.panicking)
                self._points.setdefault(function, deque(maxlen=self._keep)).append(point)
        self._previous = (now, totals)

    def points(self, function: str, since: float | None = None) -> list[ScalePoint]:
        """The function's points, oldest first; only those after `since` (seconds since the epoch) if given."""
        points = list(self._points.get(function, ()))
        return points if since is None else [p for p in points if p.time > since]

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="zeroserve-scale-history")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a collector that fails once must not end the history for good
                log.exception("sampling the scale history failed")
            await asyncio.sleep(self.interval)
