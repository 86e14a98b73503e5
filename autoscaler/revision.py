"""One revision's autoscaler as the platform drives it: samples every second, a tick every 2 s.

Wires the metric windows, the decider and the scale gate for one revision. Still pure: the platform
passes `now` (seconds, monotonic) and the ready replica count, and applies the returned scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.config import decider_spec, window_lengths
from autoscaler.decider import Decider
from autoscaler.gate import DEFAULT_ACTIVATION_TIMEOUT, Activity, GateSpec, ScaleBounds, ScaleGate
from autoscaler.window import Aggregation, MetricWindow, make_window
from protocol.manifest import FunctionManifest, Scaling


@dataclass(frozen=True)
class ScaleDecision:
    """One tick's outcome; `applied` is what the supervisor should run, `reason` says why."""

    at: float
    desired: int  # the decider's wish
    applied: int  # after min/max/initial bounds and the scale-to-zero gate
    panicking: bool
    stable_value: float
    panic_value: float
    excess_burst_capacity: int
    reason: str
    activity: Activity
    ready_pods: int


class RevisionAutoscaler:
    """Stable and panic windows for the configured metric, a Decider and a ScaleGate."""

    def __init__(self, scaling: Scaling, container_concurrency: int = 0, *, now: float, ready_pods: int = 0,
                 reachable: bool = True, initialized: bool = False, enable_scale_to_zero: bool = True,
                 activation_timeout: float = DEFAULT_ACTIVATION_TIMEOUT, aggregation: Aggregation = "linear",
                 granularity: float = 1.0):
        self.scaling = scaling
        self.container_concurrency = container_concurrency
        self.reachable = reachable
        self._aggregation: Aggregation = aggregation
        self._granularity = granularity
        self._enable_scale_to_zero = enable_scale_to_zero
        self._activation_timeout = activation_timeout
        self.stable_window, self.panic_window = self._make_windows()
        self.decider = Decider(decider_spec(scaling, container_concurrency, reachable), ready_pods, now)
        self.gate = ScaleGate(self._bounds(), self._gate_spec(), now, initialized=initialized,
                              ready_pods=ready_pods, reachable=reachable)
        self._ready_pods = ready_pods
        self.last: ScaleDecision = ScaleDecision(
            at=now, desired=self.gate.applied, applied=self.gate.applied, panicking=self.decider.panicking,
            stable_value=0.0, panic_value=0.0, excess_burst_capacity=0,
            reason=(f"first start: initial_scale {self.gate.applied}" if not initialized
                    else f"autoscaler started with {ready_pods} ready"),
            activity=self.gate.activity, ready_pods=ready_pods,
        )

    @classmethod
    def for_manifest(cls, manifest: FunctionManifest, *, now: float, **options: object) -> RevisionAutoscaler:
        # `options` are __init__'s keyword arguments, passed through (a TypedDict would repeat them all).
        return cls(manifest.scaling, manifest.concurrency, now=now, **options)  # type: ignore[arg-type]

    @property
    def applied(self) -> int:
        return self.gate.applied

    def _make_windows(self) -> tuple[MetricWindow, MetricWindow]:
        lengths = window_lengths(self.scaling)
        return (make_window(lengths.stable, self._granularity, self._aggregation),
                make_window(lengths.panic, self._granularity, self._aggregation))

    def _bounds(self) -> ScaleBounds:
        s = self.scaling
        return ScaleBounds(min_scale=s.min_scale, max_scale=s.max_scale, initial_scale=s.initial_scale)

    def _gate_spec(self) -> GateSpec:
        s = self.scaling
        return GateSpec(enable_scale_to_zero=self._enable_scale_to_zero, grace_period=s.scale_to_zero_grace_period,
                        retention=s.scale_to_zero_retention, stable_window=s.window,
                        activation_timeout=self._activation_timeout)

    def record(self, now: float, concurrency: float, requests: float) -> None:
        """One sample per second: time-weighted average concurrency and the requests that arrived."""
        if concurrency == 0 and requests == 0 and self.gate.applied == 0 and self._ready_pods == 0:
            # At zero there is no replica to measure (Knative has no pod to scrape), so silence is not
            # recorded and the first request after a long idle averages over a fresh, partial window.
            return
        value = requests if self.scaling.metric == "rps" else concurrency
        self.stable_window.record(now, value)
        self.panic_window.record(now, value)

    def tick(self, now: float, ready_pods: int) -> ScaleDecision:
        self._ready_pods = ready_pods
        stable = self.stable_window.average(now)
        panic = self.panic_window.average(now)
        result = self.decider.scale(now, ready_pods, stable, panic)
        gated = self.gate.apply(now, result.desired_scale, ready_pods, self.reachable)
        explanation = self.decider.last
        decided = explanation.describe(self.decider.spec.target_value) if explanation else ""
        reason = f"{decided}; {gated.reason}" if gated.reason else decided
        self.last = ScaleDecision(
            at=now, desired=result.desired_scale, applied=gated.applied, panicking=result.panicking,
            stable_value=stable, panic_value=panic, excess_burst_capacity=result.excess_burst_capacity,
            reason=reason, activity=gated.activity, ready_pods=ready_pods,
        )
        return self.last

    def poke(self, now: float) -> ScaleDecision:
        """A request arrived with no replica: scale to at least 1 (activation_scale) at once."""
        pods = max(1, self.scaling.activation_scale)
        gated = self.gate.poke(now, pods, self.reachable)
        self.last = ScaleDecision(
            at=now, desired=max(self.last.desired, pods), applied=gated.applied, panicking=self.decider.panicking,
            stable_value=self.last.stable_value, panic_value=self.last.panic_value,
            excess_burst_capacity=self.last.excess_burst_capacity, reason=gated.reason,
            activity=gated.activity, ready_pods=self._ready_pods,
        )
        return self.last

    def set_reachable(self, reachable: bool) -> None:
        """Traffic moved to or away from this revision (route change)."""
        self.reachable = reachable
        self.decider.update(self.decider.spec.with_reachable(reachable))

    def update(self, scaling: Scaling, container_concurrency: int | None = None) -> None:
        """A new scaling config for the same revision: panic state and activity are kept."""
        if container_concurrency is not None:
            self.container_concurrency = container_concurrency
        old = self.scaling
        self.scaling = scaling
        if window_lengths(scaling) != window_lengths(old) or scaling.metric != old.metric:
            # Bucket counts (or the metric itself) changed: start fresh windows rather than reinterpret.
            self.stable_window, self.panic_window = self._make_windows()
        self.decider.update(decider_spec(scaling, self.container_concurrency, self.reachable))
        self.gate.bounds = self._bounds()
        self.gate.spec = self._gate_spec()
