"""The timeline of a load test: what locust sent (per second) next to what the platform did (every 500 ms).

Two series on one clock (unix seconds, shown relative to the moment the load started):
  - `LoadPoint`: one second of load from the locustfile's progress file (users, requests, failures, p50/p95);
  - `ScaleSample`: one poll of `GET /api/v1/functions/<fn>/status`, summed over the function's revisions.
`Timeline.facts()` condenses them into the numbers expectations are checked against.
"""

from __future__ import annotations

import bisect
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A progress tick shorter than this (the remainder flushed when the load stops) is folded into the one
# before it: a handful of requests over a few milliseconds would otherwise chart as a huge rate.
MIN_TICK_INTERVAL = 0.5

TIMELINE_COLUMNS = (
    "t_s", "time", "users", "rps", "failures_per_s", "p50_ms", "p95_ms", "ready", "desired", "starting",
    "panicking", "metric", "stable_value", "panic_value", "queue_depth", "in_flight",
)


@dataclass(frozen=True)
class ScaleSample:
    time: float
    ready: int
    desired: int
    starting: int
    panicking: bool
    # What the autoscaler averages over its stable and panic windows: `metric` (the function.yaml's
    # scaling.metric) in flight for "concurrency", per second for "rps".
    stable_value: float
    panic_value: float
    queue_depth: int
    in_flight: int
    metric: str = "concurrency"

    @classmethod
    def from_status(cls, status: dict[str, Any], time: float) -> ScaleSample:
        """Sum over revisions: load splits across them, so the function's capacity is the total."""
        revisions = status.get("revisions") or []

        def total(key: str) -> float:
            return sum(float(r.get(key) or 0) for r in revisions)

        return cls(time=time, ready=int(total("ready")), desired=int(total("desired")),
                   starting=int(total("starting")), panicking=any(r.get("panicking") for r in revisions),
                   stable_value=total("stable_value"), panic_value=total("panic_value"),
                   queue_depth=int(total("queue_depth")), in_flight=int(total("in_flight")),
                   metric=str(revisions[0].get("metric") or "concurrency") if revisions else "concurrency")

    @property
    def at_zero(self) -> bool:
        return self.ready == 0 and self.desired == 0 and self.starting == 0


@dataclass
class LoadPoint:
    time: float  # end of the second it covers
    interval: float
    users: int
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.interval if self.interval > 0 else 0.0

    @property
    def failures_per_s(self) -> float:
        return self.failures / self.interval if self.interval > 0 else 0.0


@dataclass
class ProgressLog:
    """What the locustfile's progress file says so far; `poll()` reads lines appended since the last call."""

    path: Path
    start: float | None = None
    stop: float | None = None
    points: list[LoadPoint] = field(default_factory=list)
    _offset: int = 0

    def poll(self) -> ProgressLog:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return self
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        for line in complete.splitlines():
            if line.strip():
                self._add(json.loads(line))
        return self

    def _add(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == "start":
            self.start = float(record["time"])
        elif event == "stop":
            self.stop = float(record["time"])
        elif event == "tick":
            point = LoadPoint(time=float(record["time"]), interval=float(record["interval"]),
                              users=int(record["users"]), requests=int(record["requests"]),
                              failures=int(record["failures"]), p50_ms=record.get("p50_ms"),
                              p95_ms=record.get("p95_ms"))
            if point.interval < MIN_TICK_INTERVAL and self.points:
                last = self.points[-1]
                last.requests += point.requests
                last.failures += point.failures
                last.interval += point.interval
                last.time = point.time
            else:
                self.points.append(point)


@dataclass(frozen=True)
class LoadTotals:
    """The whole run as locust counts it (its stats CSV 'Aggregated' row), or summed from the ticks."""

    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class RunFacts:
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    mean_rps: float
    peak_users: int
    peak_ready: int
    peak_desired: int
    panic_after: float | None  # seconds from the load's start to the first sample in panic mode
    panic_seconds: float
    back_to_zero_after: float | None  # seconds from the load's stop to the first sample at zero
    load_seconds: float


@dataclass
class Timeline:
    samples: list[ScaleSample]
    load: list[LoadPoint]
    load_start: float | None
    load_stop: float | None

    @property
    def origin(self) -> float:
        """Time zero of the charts: the load's start, else the first thing recorded."""
        if self.load_start is not None:
            return self.load_start
        firsts = [s.time for s in self.samples[:1]] + [p.time - p.interval for p in self.load[:1]]
        return min(firsts) if firsts else 0.0

    def panic_periods(self) -> list[tuple[float, float]]:
        """(start, end) in unix seconds of each run of samples in panic mode."""
        periods: list[tuple[float, float]] = []
        start: float | None = None
        for sample in self.samples:
            if sample.panicking and start is None:
                start = sample.time
            elif not sample.panicking and start is not None:
                periods.append((start, sample.time))
                start = None
        if start is not None:
            periods.append((start, self.samples[-1].time))
        return periods

    def back_to_zero_at(self) -> float | None:
        if self.load_stop is None:
            return None
        return next((s.time for s in self.samples if s.time >= self.load_stop and s.at_zero), None)

    def point_at(self, time: float) -> LoadPoint | None:
        """The second of load that `time` falls in, if any."""
        ends = [p.time for p in self.load]
        index = bisect.bisect_left(ends, time)
        if index < len(self.load) and self.load[index].time - self.load[index].interval <= time:
            return self.load[index]
        return None

    def facts(self, totals: LoadTotals | None = None) -> RunFacts:
        if totals is None:
            totals = LoadTotals(requests=sum(p.requests for p in self.load),
                                failures=sum(p.failures for p in self.load), p50_ms=None, p95_ms=None)
        start, stop = self.load_start, self.load_stop
        if start is not None and stop is not None:
            load_seconds = stop - start
        else:
            load_seconds = sum(p.interval for p in self.load)
        first_panic = next((s.time for s in self.samples if s.panicking), None)
        zero_at = self.back_to_zero_at()
        return RunFacts(
            requests=totals.requests, failures=totals.failures, p50_ms=totals.p50_ms, p95_ms=totals.p95_ms,
            mean_rps=totals.requests / load_seconds if load_seconds > 0 else 0.0,
            peak_users=max((p.users for p in self.load), default=0),
            peak_ready=max((s.ready for s in self.samples), default=0),
            peak_desired=max((s.desired for s in self.samples), default=0),
            panic_after=None if first_panic is None else max(0.0, first_panic - self.origin),
            panic_seconds=sum(end - begin for begin, end in self.panic_periods()),
            back_to_zero_after=None if zero_at is None or stop is None else zero_at - stop,
            load_seconds=load_seconds,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per scale sample, with the second of load it fell in (zeros outside the load)."""
        rows = []
        for sample in self.samples:
            point = self.point_at(sample.time)
            rows.append({
                "t_s": round(sample.time - self.origin, 3), "time": round(sample.time, 3),
                "users": point.users if point else 0, "rps": round(point.rps, 2) if point else 0.0,
                "failures_per_s": round(point.failures_per_s, 2) if point else 0.0,
                "p50_ms": _blank(point.p50_ms if point else None),
                "p95_ms": _blank(point.p95_ms if point else None),
                "ready": sample.ready, "desired": sample.desired, "starting": sample.starting,
                "panicking": int(sample.panicking), "metric": sample.metric,
                "stable_value": round(sample.stable_value, 3), "panic_value": round(sample.panic_value, 3),
                "queue_depth": sample.queue_depth,
                "in_flight": sample.in_flight,
            })
        return rows

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=TIMELINE_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows())


def read_locust_totals(stats_csv: Path) -> LoadTotals | None:
    """The 'Aggregated' row of locust's `<prefix>_stats.csv` (None when locust never wrote it)."""
    try:
        with stats_csv.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return None
    row = next((r for r in rows if r.get("Name") == "Aggregated"), None)
    if row is None:
        return None
    return LoadTotals(requests=int(row["Request Count"]), failures=int(row["Failure Count"]),
                      p50_ms=_number(row.get("50%")), p95_ms=_number(row.get("95%")))


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None


def _blank(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)
