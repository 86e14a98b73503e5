"""From the decider's desired scale to the scale actually applied: bounds and the scale-to-zero gate.

Ports the KPA reconciler's `scaler.scale` / `handleScaleToZero` and `computeActiveCondition`
(pkg/reconciler/autoscaling/kpa): min/max/initial scale, and a revision's activity
(activating -> active -> inactive) that decides when the last replica may go. Pure: `now` is passed in.

One deliberate difference: Knative may scale to zero as soon as the activator has been in the path for
the grace period. zeroserve's activator is always in the path, which would make the grace period moot,
so here a revision must have been *inactive* for max(grace period, retention) before it goes to zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Activity = Literal["activating", "active", "inactive"]

# Knative: the deployment's progress deadline (600 s) plus a 10 s buffer.
DEFAULT_ACTIVATION_TIMEOUT = 610.0
# Knative's scaleUnknown: "leave the current scale alone", distinct from a wish for zero.
_UNKNOWN = -1


@dataclass(frozen=True)
class ScaleBounds:
    min_scale: int = 0
    max_scale: int = 0  # 0: unbounded
    initial_scale: int = 1

    def limits(self, reachable: bool, initialized: bool) -> tuple[int, int]:
        # An unreachable revision gets no traffic, so keeping min_scale warm would only waste replicas.
        low = self.min_scale if reachable else 0
        if self.initial_scale > 1 and not initialized:
            # The first start must reach initial_scale before the revision counts as ready.
            low = max(low, self.initial_scale)
        return low, self.max_scale

    def apply(self, desired: int, reachable: bool, initialized: bool) -> tuple[int, str]:
        """(bounded scale, why it differs from `desired`, or '')."""
        low, high = self.limits(reachable, initialized)
        if desired < low:
            if self.initial_scale > 1 and not initialized and low == self.initial_scale:
                return low, f"initial_scale {low} until the revision first becomes ready"
            return low, f"raised to min_scale {low}"
        if high and desired > high:
            return high, f"capped at max_scale {high}"
        return desired, ""


@dataclass(frozen=True)
class GateSpec:
    """Knative's scale-to-zero knobs (config-autoscaler) plus the stable window they depend on."""

    enable_scale_to_zero: bool = True
    grace_period: float = 30.0
    retention: float = 0.0
    stable_window: float = 60.0
    activation_timeout: float = DEFAULT_ACTIVATION_TIMEOUT


@dataclass(frozen=True)
class GateResult:
    applied: int
    reason: str  # '' when the desired scale went through untouched
    activity: Activity


class ScaleGate:
    """Holds a revision's activity and the scale last applied; `apply` is called once per tick."""

    def __init__(self, bounds: ScaleBounds, spec: GateSpec, now: float, *, initialized: bool = False,
                 ready_pods: int = 0, reachable: bool = True):
        self.bounds = bounds
        self.spec = spec
        self.initialized = initialized
        if initialized:
            # An existing revision (say, after a platform restart): keep what runs, judge from here on.
            self.applied = max(0, ready_pods)
            self.activity: Activity = "active" if ready_pods > 0 else "inactive"
        else:
            # A revision's first start brings up initial_scale replicas before any metric exists.
            low, high = bounds.limits(reachable, initialized=False)
            start = max(bounds.initial_scale, low)
            self.applied = min(start, high) if high else start
            self.activity = "activating" if self.applied > 0 else "inactive"
            # Starting nothing (initial_scale 0) has trivially reached its initial scale; Knative marks the
            # scale target initialized on its first reconcile for the same reason.
            self.initialized = self.applied == 0
        self.since = now  # when `activity` last changed

    def poke(self, now: float, pods: int, reachable: bool = True) -> GateResult:
        """A request is waiting at zero: bring up `pods` (within bounds) now instead of at the next tick."""
        if self.applied > 0:
            return GateResult(self.applied, f"poke: already scaling to {self.applied}", self.activity)
        scale, _ = self.bounds.apply(max(1, pods), reachable, self.initialized)
        self.applied = max(1, scale)
        self._set(now, "activating")
        return GateResult(self.applied, f"request at zero: activating {self.applied}", self.activity)

    def apply(self, now: float, desired: int, ready_pods: int, reachable: bool = True) -> GateResult:
        bounded, reason = self.bounds.apply(desired, reachable, self.initialized)
        if bounded != 0:
            want = applied = bounded
        else:
            want, applied, reason = self._toward_zero(now)
        self._update_activity(now, ready_pods, want, reachable)
        self.applied = applied
        return GateResult(applied, reason, self.activity)

    def _toward_zero(self, now: float) -> tuple[int, int, str]:
        """(want, applied, reason) when the bounded desired scale is zero."""
        spec = self.spec
        if not spec.enable_scale_to_zero:
            return 1, 1, "scale to zero is disabled: keeping 1"
        elapsed = now - self.since
        if self.activity == "activating":
            # A revision that never becomes ready must not hold a replica slot forever.
            if elapsed > spec.activation_timeout:
                return 0, 0, (f"activation timed out: no replica became ready within "
                              f"{spec.activation_timeout:g}s; scaled to zero")
            # Otherwise leave the replicas that are starting alone: they were asked for a reason.
            return _UNKNOWN, self.applied, f"activating: waiting for a replica to become ready ({elapsed:g}s)"
        if self.activity == "active":
            if elapsed >= spec.stable_window:
                # Active long enough for the stable window to have seen any demand: go inactive; the
                # replicas stay until the grace period has passed.
                linger = max(spec.grace_period, spec.retention)
                return 0, self.applied, f"no demand: inactive, scaling to zero in {linger:g}s"
            # A freshly activated revision keeps one replica until its stable window has seen demand.
            return 1, 1, f"no demand: keeping 1 until active for the stable window ({spec.stable_window - elapsed:g}s)"
        linger = max(spec.grace_period, spec.retention)
        if self.applied == 0:
            return 0, 0, "no demand: at zero"
        if elapsed >= linger:
            return 0, 0, f"no demand for {elapsed:g}s: scaled to zero (grace period {spec.grace_period:g}s, " \
                         f"retention {spec.retention:g}s)"
        # Neither before the grace period (time for in-flight work and routing to settle) nor before the
        # retention period (the last replica is expensive to bring back).
        return 0, self.applied, f"inactive: scaling to zero in {linger - elapsed:g}s"

    def _update_activity(self, now: float, ready_pods: int, want: int, reachable: bool) -> None:
        """Knative's computeActiveCondition, with `want` the scale this tick asked for."""
        low = self.bounds.min_scale if reachable else 0
        min_ready = max(low, self.bounds.initial_scale) if not self.initialized else max(low, 1)
        if ready_pods >= min_ready:
            self.initialized = True
        if want == 0 or min_ready == 0:
            self._set(now, "inactive")
        elif ready_pods < min_ready:
            if want > 0 or self.activity != "inactive":
                self._set(now, "activating")
        elif want > 0 or self.activity != "inactive":
            self._set(now, "active")

    def _set(self, now: float, activity: Activity) -> None:
        if activity != self.activity:
            self.activity = activity
            self.since = now
