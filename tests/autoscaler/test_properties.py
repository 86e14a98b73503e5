"""Invariants of the decider and the gate over random specs and tick sequences (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import Decider, DeciderSpec, GateSpec, ScaleBounds, ScaleGate

metric = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)
specs = st.builds(
    DeciderSpec,
    target_value=st.floats(min_value=0.5, max_value=200.0),
    total_value=st.floats(min_value=1.0, max_value=300.0),
    panic_threshold=st.floats(min_value=1.1, max_value=10.0),
    max_scale_up_rate=st.floats(min_value=1.01, max_value=1000.0),
    max_scale_down_rate=st.floats(min_value=1.01, max_value=10.0),
    stable_window=st.sampled_from([6.0, 30.0, 60.0]),
    target_burst_capacity=st.sampled_from([-1.0, 0.0, 50.0, 211.0]),
    activation_scale=st.sampled_from([1, 2, 5]),
    scale_down_delay=st.just(0.0),
    reachable=st.booleans(),
)
# (seconds since the previous tick, ready pods, stable value, panic value)
ticks = st.lists(st.tuples(st.sampled_from([1.0, 2.0, 2.0, 7.0, 30.0]), st.integers(0, 60), metric, metric),
                 min_size=1, max_size=40)
SETTINGS = settings(max_examples=120, deadline=None)


@SETTINGS
@given(spec=specs, steps=ticks)
def test_desired_never_exceeds_the_up_rate_bound(spec: DeciderSpec, steps: list) -> None:
    # Ready counts only grow here, so a panic ratchet from an earlier tick is within today's bound too.
    steps = sorted(steps, key=lambda s: s[1])
    d = Decider(spec, ready_pods=steps[0][1], now=0.0)
    now = 0.0
    for dt, ready, stable, panic in steps:
        now += dt
        result = d.scale(now, ready, stable, panic)
        bound = max(math.ceil(spec.max_scale_up_rate * max(1, ready)), spec.activation_scale)
        assert result.desired_scale <= bound


@SETTINGS
@given(spec=specs, steps=ticks)
def test_desired_never_below_the_down_rate_bound_while_reachable(spec: DeciderSpec, steps: list) -> None:
    d = Decider(spec.with_reachable(True), ready_pods=steps[0][1], now=0.0)
    now = 0.0
    for dt, ready, stable, panic in steps:
        now += dt
        result = d.scale(now, ready, stable, panic)
        assert result.desired_scale >= math.floor(max(1, ready) / spec.max_scale_down_rate)


@SETTINGS
@given(spec=specs, steps=ticks, delay=st.sampled_from([0.0, 4.0, 30.0]))
def test_desired_never_decreases_while_panicking(spec: DeciderSpec, steps: list, delay: float) -> None:
    d = Decider(DeciderSpec(**{**spec.__dict__, "scale_down_delay": delay}), ready_pods=steps[0][1], now=0.0)
    now, previous, previous_ratchet = 0.0, None, 0
    for dt, ready, stable, panic in steps:
        now += dt
        result = d.scale(now, ready, stable, panic)
        assert d.last is not None
        ratchet = d.last.before_delay
        if result.panicking and previous is not None and previous.panicking:
            assert ratchet >= previous_ratchet
            if delay == 0.0:
                assert result.desired_scale >= previous.desired_scale
        # With a scale-down delay, a peak from *before* this panic can expire from the delay window during
        # it (Knative applies the delay after the panic ratchet), so only the ratchet itself is monotonic;
        # the delayed value never goes below it.
        assert result.desired_scale >= ratchet
        previous, previous_ratchet = result, ratchet


@SETTINGS
@given(spec=specs, ready=st.integers(0, 60), stable=metric, panic=metric)
def test_stable_mode_is_the_clamped_ceiling(spec: DeciderSpec, ready: int, stable: float, panic: float) -> None:
    d = Decider(spec, ready_pods=min(ready, 1), now=0.0)
    result = d.scale(2.0, ready, stable, panic)
    if not result.panicking:
        r = max(1, ready)
        low = math.floor(r / spec.max_scale_down_rate) if spec.reachable else 0
        expected = min(max(math.ceil(stable / spec.target_value), low), math.ceil(spec.max_scale_up_rate * r))
        if 0 < expected < spec.activation_scale:
            expected = spec.activation_scale
        assert result.desired_scale == expected
    ebc = result.excess_burst_capacity
    if spec.target_burst_capacity > 0:
        assert ebc == math.floor(ready * spec.total_value - spec.target_burst_capacity - panic)
    else:
        assert ebc == spec.target_burst_capacity


@SETTINGS
@given(
    min_scale=st.integers(0, 4),
    extra=st.integers(0, 6),
    unbounded=st.booleans(),
    initial=st.integers(0, 4),
    steps=st.lists(st.tuples(st.sampled_from([2.0, 2.0, 10.0, 40.0]), st.integers(0, 15), st.integers(0, 12),
                             st.booleans()), min_size=1, max_size=40),
)
def test_gate_keeps_applied_scale_within_bounds(min_scale: int, extra: int, unbounded: bool, initial: int,
                                                steps: list) -> None:
    max_scale = 0 if unbounded else max(1, min_scale + extra, initial)
    gate = ScaleGate(ScaleBounds(min_scale, max_scale, initial), GateSpec(), now=0.0)
    now = 0.0
    for dt, desired, ready, reachable in steps:
        now += dt
        applied = gate.apply(now, desired, ready, reachable).applied
        assert applied >= 0
        if max_scale:
            assert applied <= max_scale
        if reachable:
            assert applied >= min_scale
        if desired > 0:
            assert applied > 0  # demand is never gated to zero
