"""The KPA decision: one pure `scale()` over an explicit spec and a tiny state.

A line-by-line port of Knative Serving's `pkg/autoscaler/scaling/autoscaler.go` (`Scale`). Metric values
are revision-wide averages over the stable and panic windows (the caller owns the windows); `now` is
seconds on any monotonic clock. Each rule carries the reason it exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

from autoscaler.max_window import MaxWindow

# Knative's autoscaler ticks every 2 s; the scale-down delay remembers one value per tick-sized slot.
TICK_INTERVAL = 2.0


@dataclass(frozen=True)
class DeciderSpec:
    """Knative's `DeciderSpec`, metric-agnostic: seconds for durations, ratios (not percentages)."""

    target_value: float  # metric per pod to aim for (target * utilization)
    total_value: float  # metric one pod can take at most (containerConcurrency, or the target)
    panic_threshold: float = 2.0  # panic when the panic-window demand is this many times the ready pods
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window: float = 60.0
    target_burst_capacity: float = 211.0  # -1: unlimited (activator always in path), 0: only at zero
    activation_scale: int = 1
    scale_down_delay: float = 0.0
    reachable: bool = True

    def __post_init__(self) -> None:
        # Only what would break the arithmetic; the manifest enforces Knative's full ranges.
        for name in ("target_value", "max_scale_up_rate", "max_scale_down_rate", "panic_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"DeciderSpec.{name} must be a positive number (got {value!r})")
        for name in ("stable_window", "scale_down_delay", "total_value"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"DeciderSpec.{name} must be a non-negative number (got {value!r})")

    def with_reachable(self, reachable: bool) -> DeciderSpec:
        return replace(self, reachable=reachable)


class ScaleResult(NamedTuple):
    desired_scale: int
    excess_burst_capacity: int
    panicking: bool


@dataclass(frozen=True)
class Explanation:
    """The intermediate numbers of the last `scale()`, so the platform can say *why* it scaled."""

    ready_pods: int
    stable_value: float
    panic_value: float
    stable_pods: int  # desired from the stable window, after rate limits and activation scale
    panic_pods: int  # desired from the panic window, likewise
    max_scale_up: int
    max_scale_down: int
    panicking: bool
    panic_started: bool
    panic_ended: bool
    before_delay: int  # desired before the scale-down delay
    desired: int

    def describe(self, target_value: float) -> str:
        if self.desired > self.before_delay:
            return (f"scale-down delayed: keeping {self.desired}, the highest desired scale in the delay window "
                    f"(now {self.before_delay})")
        if self.panicking:
            state = "entered panic" if self.panic_started else "panic"
            return (f"{state}: panic-window demand {self.panic_value:g} / target {target_value:g} needs "
                    f"{self.panic_pods}, stable {self.stable_pods}; never scaling down in panic -> {self.desired}")
        prefix = "panic over: " if self.panic_ended else ""
        return f"{prefix}stable: demand {self.stable_value:g} / target {target_value:g} -> {self.desired}"


class Decider:
    """Knative's KPA `autoscaler`: holds the spec, the panic state and the scale-down delay window."""

    def __init__(self, spec: DeciderSpec, ready_pods: int = 0, now: float = 0.0):
        self._spec = spec
        # Start in panic with more than one ready pod: a restarted autoscaler has lost its metric
        # history and would otherwise scale a busy revision down on empty windows.
        self._panic_time: float | None = now if ready_pods > 1 else None
        self._max_panic_pods = max(0, int(ready_pods))
        self._delay_window: MaxWindow | None = (
            MaxWindow(spec.scale_down_delay, TICK_INTERVAL) if spec.scale_down_delay > 0 else None
        )
        self.last: Explanation | None = None

    @property
    def spec(self) -> DeciderSpec:
        return self._spec

    @property
    def panicking(self) -> bool:
        return self._panic_time is not None

    @property
    def panic_time(self) -> float | None:
        """When the panic was last extended (the latest over-threshold tick), or None."""
        return self._panic_time

    def update(self, spec: DeciderSpec) -> None:
        """Swap the spec, keeping the panic state and the delay history."""
        if spec.scale_down_delay <= 0:
            self._delay_window = None
        elif self._delay_window is None:
            self._delay_window = MaxWindow(spec.scale_down_delay, TICK_INTERVAL)
        elif spec.scale_down_delay != self._delay_window.duration:
            self._delay_window = self._delay_window.resized(spec.scale_down_delay)
        self._spec = spec

    def scale(self, now: float, ready_pods: int, stable: float, panic: float) -> ScaleResult:
        """One tick of Knative's `Scale`, in its order: rate limits, pods per window, panic, delay, burst."""
        spec = self._spec
        # Zero ready pods count as one, so the rate limits still allow scaling up from zero.
        ready = max(1.0, float(ready_pods))
        limits = _rate_limits(spec, ready)
        stable_wanted = math.ceil(stable / spec.target_value)
        panic_wanted = math.ceil(panic / spec.target_value)
        stable_pods = _pods_within_limits(stable_wanted, limits, spec.activation_scale)
        panic_pods = _pods_within_limits(panic_wanted, limits, spec.activation_scale)

        # Compare raw panic demand with what is ready: a burst at this ratio will queue before the
        # stable window notices it.
        over_threshold = panic_wanted / ready >= spec.panic_threshold
        transition = _panic_transition(self._panic_time, over_threshold, now, spec.stable_window)
        self._panic_time = transition.panic_time
        if transition.ended:
            self._max_panic_pods = 0

        desired = stable_pods
        if self._panic_time is not None:
            desired = self._max_panic_pods = _panic_ratchet(self._max_panic_pods, stable_pods, panic_pods)
        before_delay = desired
        desired = self._delay_scale_down(now, desired)

        excess = _excess_burst_capacity(spec, ready_pods, panic)
        self.last = Explanation(
            ready_pods=ready_pods, stable_value=stable, panic_value=panic, stable_pods=stable_pods,
            panic_pods=panic_pods, max_scale_up=limits.max_scale_up, max_scale_down=limits.max_scale_down,
            panicking=self._panic_time is not None, panic_started=transition.started,
            panic_ended=transition.ended, before_delay=before_delay, desired=desired,
        )
        return ScaleResult(int(desired), int(excess), self._panic_time is not None)

    def _delay_scale_down(self, now: float, desired: int) -> int:
        """The highest desired scale over the scale-down delay window (just `desired` without a delay)."""
        if self._delay_window is None:
            return desired
        # Remember every decision so a scale-down only happens once the delay window is all lower;
        # an unreachable revision has no traffic to keep warm for, so it is not delayed.
        self._delay_window.record(now, desired)
        return self._delay_window.current() if self._spec.reachable else desired


class _RateLimits(NamedTuple):
    max_scale_up: int
    max_scale_down: int


def _rate_limits(spec: DeciderSpec, ready: float) -> _RateLimits:
    """The most pods one decision may ask for and the fewest, given `ready` (already at least one)."""
    # At least one more pod, however conservative the up-rate: ceil keeps N -> N+1 possible.
    max_scale_up = math.ceil(spec.max_scale_up_rate * ready)
    # An unreachable revision gets no traffic, so nothing protects it from dropping straight to zero.
    max_scale_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0
    return _RateLimits(max_scale_up, max_scale_down)


def _pods_within_limits(wanted: int, limits: _RateLimits, activation_scale: int) -> int:
    """The pods one window's demand asks for, once the rate limits and the activation scale are applied."""
    # Keep each count inside the rate limits: a bad metric sample cannot swing the scale wildly.
    pods = int(min(max(wanted, limits.max_scale_down), limits.max_scale_up))
    # Any demand at all brings up at least activation_scale pods, so a cold start lands with headroom.
    if activation_scale > 1 and 0 < pods < activation_scale:
        return activation_scale
    return pods


class _PanicTransition(NamedTuple):
    panic_time: float | None  # when the panic was last extended, None when not panicking
    started: bool
    ended: bool


def _panic_transition(panic_time: float | None, over_threshold: bool, now: float,
                      stable_window: float) -> _PanicTransition:
    """Enter, extend, keep or end panic mode for this tick."""
    if over_threshold:
        # Begin, or extend: panic lasts a full stable window after the last over-threshold tick.
        return _PanicTransition(now, started=panic_time is None, ended=False)
    if panic_time is not None and panic_time + stable_window < now:
        # The burst has made its way into the stable average, which can take over again.
        return _PanicTransition(None, started=False, ended=True)
    return _PanicTransition(panic_time, started=False, ended=False)


def _panic_ratchet(max_panic_pods: int, stable_pods: int, panic_pods: int) -> int:
    """The desired scale in panic, which is also the new most pods this panic has asked for."""
    # The stable window can exceed the panic one (a burst just ending); provision for the larger.
    desired = max(stable_pods, panic_pods)
    # Never scale down in panic: ratchet to the most pods this panic has asked for.
    return max(max_panic_pods, desired)


def _excess_burst_capacity(spec: DeciderSpec, ready_pods: int, panic: float) -> int:
    """Spare capacity beyond the burst to absorb: 0 when target_burst_capacity is 0, -1 when it is unlimited."""
    # Excess burst capacity decides whether the activator stays in the path: spare capacity of the
    # ready pods (not the floor of one) minus the burst to absorb and what is in flight right now.
    if spec.target_burst_capacity == 0:
        return 0
    if spec.target_burst_capacity > 0:
        return math.floor(ready_pods * spec.total_value - spec.target_burst_capacity - panic)
    return -1
