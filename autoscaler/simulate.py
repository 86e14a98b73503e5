"""Replay a load trace through the autoscaler and replicas that take time to start.

    python -m autoscaler.simulate autoscaler/traces/step.yaml --png docs/img/autoscaler-step.png

A trace is YAML (arrival-rate phases plus the function's settings) or CSV (`second,rate` rows; the
settings then come from the command line). The model, stepped every 0.1 s of simulated time:

- requests arrive (Poisson with the trace's seed, or an exact fluid rate with `poisson: false`) and wait
  in the activator's queue until a ready replica has a free slot; each takes `service_time` seconds;
- once a second the autoscaler gets the time-weighted concurrency (waiting + in flight, as the activator
  reports it) and the arrivals; every `tick` seconds it decides, and the replica set follows at once,
  new replicas becoming ready `startup_time` later; a request arriving at zero pokes the autoscaler;
- replicas removed on a scale-down stop taking requests and finish what they hold.

This is the only module of the package that does I/O (reading the trace, printing, the PNG).
"""

from __future__ import annotations

import argparse
import csv
import heapq
import math
import random
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoscaler.config import decider_spec, window_lengths
from autoscaler.revision import RevisionAutoscaler, ScaleDecision
from protocol.manifest import Scaling, parse_manifest

STEP = 0.1  # seconds of simulated time per step
SAMPLE = 1.0  # the platform samples the activator once a second


@dataclass(frozen=True)
class Phase:
    duration: float
    rate_from: float  # arrivals per second at the start of the phase
    rate_to: float  # ... and at its end (equal for a constant rate)


@dataclass
class Trace:
    name: str
    phases: list[Phase]
    service_time: float = 1.0
    startup_time: float = 4.0
    concurrency: int = 0  # containerConcurrency, as in function.yaml
    replica_capacity: int = 0  # requests one replica serves at once; 0: containerConcurrency, else 100
    tick: float = 2.0
    warm: int = 0  # replicas already ready at t=0 (a revision that has been serving); 0: its first start
    seed: int | None = 1  # None: fluid arrivals, exactly the rate
    scaling: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.phases)

    @property
    def slots(self) -> int:
        if self.replica_capacity > 0:
            return self.replica_capacity
        return self.concurrency if self.concurrency > 0 else 100

    def rate_at(self, t: float) -> float:
        start = 0.0
        for phase in self.phases:
            if t < start + phase.duration:
                share = (t - start) / phase.duration
                return phase.rate_from + (phase.rate_to - phase.rate_from) * share
            start += phase.duration
        return 0.0


class TraceError(ValueError):
    """A trace file that cannot be replayed; the message names the file and the field."""


def _phase(raw: object, where: str) -> Phase:
    if not isinstance(raw, dict):
        raise TraceError(f"{where}: must be a mapping with duration and rate (or from/to)")
    unknown = set(raw) - {"duration", "rate", "from", "to"}
    if unknown:
        raise TraceError(f"{where}: unknown key(s) {sorted(unknown)}")
    if "duration" not in raw:
        raise TraceError(f"{where}: missing duration")
    if "rate" not in raw and not {"from", "to"} <= set(raw):
        raise TraceError(f"{where}: missing rate (or from and to, for a ramp)")
    try:
        duration = float(raw["duration"])
        if "rate" in raw:
            start = end = float(raw["rate"])
        else:
            start, end = float(raw["from"]), float(raw["to"])
    except (TypeError, ValueError):
        raise TraceError(f"{where}: duration, rate, from and to must be numbers") from None
    if not (duration > 0 and math.isfinite(duration)) or min(start, end) < 0:
        raise TraceError(f"{where}: duration must be positive and rates non-negative")
    return Phase(duration, start, end)


_TRACE_KEYS = {"name", "description", "phases", "service_time", "startup_time", "concurrency", "replica_capacity",
               "tick", "warm", "seed", "poisson", "scaling"}


def load_trace(path: str | Path, overrides: dict[str, Any] | None = None) -> Trace:
    path = Path(path)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror})") from None
    if path.suffix == ".csv":
        phases = []
        for number, row in enumerate(csv.DictReader(text.splitlines()), start=2):
            rate = row.get("rate")
            if rate is None:
                raise TraceError(f"{path}: needs a header line 'second,rate'")
            phases.append(_phase({"duration": 1, "rate": rate}, f"{path}:{number}"))
        data: dict[str, Any] = {"name": path.stem}
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TraceError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise TraceError(f"{path}: must be a mapping with 'phases'")
        unknown = set(data) - _TRACE_KEYS
        if unknown:
            raise TraceError(f"{path}: unknown key(s) {sorted(unknown)}")
        raw_phases = data.get("phases")
        if not isinstance(raw_phases, list) or not raw_phases:
            raise TraceError(f"{path}: phases must be a non-empty list")
        phases = [_phase(p, f"{path}: phases[{i}]") for i, p in enumerate(raw_phases)]
    if not phases:
        raise TraceError(f"{path}: no arrivals")
    data = {**data, **overrides}
    seed = None if data.get("poisson") is False else data.get("seed", 1)
    try:
        trace = Trace(
            name=str(data.get("name", path.stem)), phases=phases, description=str(data.get("description", "")),
            service_time=float(data.get("service_time", 1.0)), startup_time=float(data.get("startup_time", 4.0)),
            concurrency=int(data.get("concurrency", 0)), replica_capacity=int(data.get("replica_capacity", 0)),
            tick=float(data.get("tick", 2.0)), warm=int(data.get("warm", 0)), seed=None if seed is None else int(seed),
            scaling=dict(data.get("scaling") or {}),
        )
    except (TypeError, ValueError) as exc:
        raise TraceError(f"{path}: {exc}") from None
    if trace.service_time <= 0 or trace.tick <= 0 or trace.startup_time < 0 or trace.warm < 0:
        raise TraceError(f"{path}: service_time and tick must be positive, startup_time and warm non-negative")
    return trace


@dataclass
class Sample:
    """The state at one autoscaler tick."""

    t: float
    rate: float
    concurrency: float  # the last second's time-weighted average (waiting + in flight)
    queued: int
    in_flight: int
    ready: int
    decision: ScaleDecision


@dataclass
class Result:
    trace: Trace
    scaling: Scaling
    samples: list[Sample]
    waits: list[float]  # seconds each served request waited for a replica slot
    arrivals: int

    @property
    def panic_seconds(self) -> float:
        return sum(self.trace.tick for s in self.samples if s.decision.panicking)


class _Replicas:
    """Replicas that become ready `startup` seconds after being asked for."""

    def __init__(self, startup: float):
        self.startup = startup
        self.ready_at: list[float] = []

    def scale_to(self, now: float, count: int) -> None:
        if count > len(self.ready_at):
            self.ready_at.extend([now + self.startup] * (count - len(self.ready_at)))
        elif count < len(self.ready_at):
            # Stop the ones still starting first: they serve nobody yet.
            self.ready_at.sort()
            del self.ready_at[count:]

    def ready(self, now: float) -> int:
        return sum(1 for t in self.ready_at if t <= now + 1e-9)


def simulate(trace: Trace) -> Result:
    manifest = parse_manifest({"name": "sim", "handler": "sim:Model", "concurrency": trace.concurrency,
                               "scaling": trace.scaling}, source=f"{trace.name} (scaling)")
    scaling = manifest.scaling
    rng = random.Random(trace.seed) if trace.seed is not None else None
    autoscaler = RevisionAutoscaler(scaling, trace.concurrency, now=0.0, ready_pods=trace.warm,
                                    initialized=trace.warm > 0)
    replicas = _Replicas(trace.startup_time)
    replicas.ready_at = [0.0] * trace.warm
    replicas.scale_to(0.0, autoscaler.applied)
    queue: deque[float] = deque()
    finishing: list[float] = []
    waits: list[float] = []
    samples: list[Sample] = []
    fluid = area = 0.0
    arrived_in_second = arrivals = 0
    last_concurrency = 0.0
    steps_per_sample = round(SAMPLE / STEP)
    steps_per_tick = round(trace.tick / STEP)
    for step in range(1, round(trace.duration / STEP) + 1):
        t = step * STEP
        while finishing and finishing[0] <= t + 1e-9:
            heapq.heappop(finishing)
        rate = trace.rate_at(t - STEP)
        if rng is not None:
            count = _poisson(rng, rate * STEP)
        else:
            fluid += rate * STEP
            count = math.floor(fluid + 1e-9)
            fluid -= count
        queue.extend([t] * count)
        arrived_in_second += count
        arrivals += count
        if count and autoscaler.applied == 0:
            # The activator's first waiter at zero pokes the autoscaler instead of waiting for a tick.
            replicas.scale_to(t, autoscaler.poke(t).applied)
        ready = replicas.ready(t)
        capacity = ready * trace.slots
        while queue and len(finishing) < capacity:
            waits.append(t - queue.popleft())
            heapq.heappush(finishing, t + trace.service_time)
        area += (len(queue) + len(finishing)) * STEP
        if step % steps_per_sample == 0:
            last_concurrency = area / SAMPLE
            autoscaler.record(t, last_concurrency, arrived_in_second)
            area, arrived_in_second = 0.0, 0
        if step % steps_per_tick == 0:
            decision = autoscaler.tick(t, ready)
            replicas.scale_to(t, decision.applied)
            samples.append(Sample(t, rate, last_concurrency, len(queue), len(finishing), ready, decision))
    return Result(trace, scaling, samples, waits, arrivals)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; the means here are small (rate * 0.1 s), normal approximation above 30."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def summary(result: Result) -> list[str]:
    trace, scaling = result.trace, result.scaling
    spec = decider_spec(scaling, trace.concurrency)
    lengths = window_lengths(scaling)
    waits = sorted(result.waits)
    p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else 0.0
    mean = sum(waits) / len(waits) if waits else 0.0
    peak = max((s.decision.applied for s in result.samples), default=0)
    lines = [
        f"trace {trace.name}: {trace.duration:g}s, service {trace.service_time:g}s, startup {trace.startup_time:g}s, "
        f"{trace.slots} slots per replica, containerConcurrency {trace.concurrency}",
        f"autoscaler: metric {scaling.metric}, target {spec.target_value:g} per replica, stable window "
        f"{lengths.stable:g}s, panic window {lengths.panic:g}s at {spec.panic_threshold:g}x, grace "
        f"{scaling.scale_to_zero_grace_period:g}s",
        f"requests {result.arrivals}, served {len(waits)}, wait mean {mean:.2f}s p99 {p99:.2f}s, peak replicas {peak}, "
        f"panic {result.panic_seconds:g}s",
    ]
    return lines


def table(result: Result, every: float) -> list[str]:
    rows = [f"{'t':>6} {'rate':>7} {'conc':>7} {'queue':>6} {'ready':>5} {'want':>5} {'apply':>5} "
            f"{'panic':>5}  reason"]
    next_at = 0.0
    for s in result.samples:
        if s.t + 1e-9 < next_at:
            continue
        next_at = s.t + every
        d = s.decision
        rows.append(f"{s.t:6.0f} {s.rate:7.1f} {s.concurrency:7.1f} {s.queued:6d} {s.ready:5d} {d.desired:5d} "
                    f"{d.applied:5d} {'yes' if d.panicking else '':>5}  {d.reason}")
    return rows


def plot(result: Result, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result.samples
    t = [s.t for s in samples]
    fig, (load, pods, queue) = plt.subplots(3, 1, figsize=(10, 8), sharex=True,
                                            gridspec_kw={"height_ratios": [1, 1.3, 1]})
    load.plot(t, [s.rate for s in samples], color="tab:gray", label="arrivals (req/s)")
    load.plot(t, [s.concurrency for s in samples], color="tab:blue", label="concurrency (waiting + in flight)")
    load.plot(t, [s.decision.stable_value for s in samples], color="tab:green", lw=1, ls="--",
              label="stable-window average")
    load.plot(t, [s.decision.panic_value for s in samples], color="tab:red", lw=1, ls=":",
              label="panic-window average")
    load.set_ylabel("load")
    load.legend(loc="upper right", fontsize=8)
    pods.step(t, [s.decision.desired for s in samples], where="post", color="tab:orange", label="desired (decider)")
    pods.step(t, [s.decision.applied for s in samples], where="post", color="tab:purple", ls="--",
              label="applied (bounds, zero gate)")
    pods.step(t, [s.ready for s in samples], where="post", color="tab:blue", label="ready replicas")
    pods.set_ylabel("replicas")
    pods.legend(loc="upper right", fontsize=8)
    queue.plot(t, [s.queued for s in samples], color="tab:brown", label="requests waiting for a slot")
    queue.set_ylabel("queued")
    queue.set_xlabel("seconds")
    queue.legend(loc="upper right", fontsize=8)
    for axis in (load, pods, queue):
        for start, end in _panic_spans(result):
            axis.axvspan(start, end, color="tab:red", alpha=0.12, lw=0)
        axis.grid(alpha=0.3)
    pods.text(0.01, 0.95, "shaded: panic mode", transform=pods.transAxes, fontsize=8, va="top", color="tab:red")
    fig.suptitle(f"{result.trace.name}: {result.trace.description}".rstrip(": "), fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _panic_spans(result: Result) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    start: float | None = None
    tick = result.trace.tick
    for s in result.samples:
        if s.decision.panicking and start is None:
            start = s.t
        elif not s.decision.panicking and start is not None:
            spans.append((start, s.t))
            start = None
    if start is not None:
        spans.append((start, result.samples[-1].t + tick))
    return spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoscaler.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", help="trace file: .yaml (phases + settings) or .csv (second,rate)")
    parser.add_argument("--png", help="write the plot here (matplotlib, Agg)")
    parser.add_argument("--every", type=float, default=10.0, help="print one table row per this many seconds")
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    parser.add_argument("--service-time", type=float, dest="service_time")
    parser.add_argument("--startup-time", type=float, dest="startup_time")
    parser.add_argument("--concurrency", type=int, help="containerConcurrency")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    overrides = {"service_time": args.service_time, "startup_time": args.startup_time,
                 "concurrency": args.concurrency, "seed": args.seed}
    try:
        result = simulate(load_trace(args.trace, overrides))
    except (TraceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print("\n".join(table(result, args.every)))
    print("\n".join(summary(result)))
    if args.png:
        print(f"plot: {plot(result, args.png)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
