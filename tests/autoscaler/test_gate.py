"""Bounds and the scale-to-zero gate with an injected clock: grace, retention, activation timeout."""

from __future__ import annotations

import pytest

from autoscaler import GateSpec, ScaleBounds, ScaleGate


@pytest.mark.parametrize(
    "bounds, desired, reachable, initialized, expected, reason",
    [
        (ScaleBounds(), 5, True, True, 5, ""),
        (ScaleBounds(min_scale=2), 0, True, True, 2, "raised to min_scale 2"),
        (ScaleBounds(min_scale=2), 0, False, True, 0, ""),  # min ignored when unreachable
        (ScaleBounds(max_scale=3), 10, True, True, 3, "capped at max_scale 3"),
        (ScaleBounds(max_scale=3), 10, False, True, 3, "capped at max_scale 3"),  # max always applies
        (ScaleBounds(max_scale=0), 10_000, True, True, 10_000, ""),  # 0: unbounded
        (ScaleBounds(initial_scale=3), 1, True, False, 3, "initial_scale 3 until the revision first becomes ready"),
        (ScaleBounds(initial_scale=3), 1, True, True, 1, ""),  # reached once: no longer a floor
        (ScaleBounds(initial_scale=3), 1, False, False, 3, "initial_scale 3 until the revision first becomes ready"),
        (ScaleBounds(min_scale=4, initial_scale=3), 0, True, False, 4, "raised to min_scale 4"),
        (ScaleBounds(initial_scale=1), 0, True, False, 0, ""),  # initial 1 is not a floor (Knative: > 1)
    ],
)
def test_bounds(bounds: ScaleBounds, desired: int, reachable: bool, initialized: bool, expected: int,
                reason: str) -> None:
    assert bounds.apply(desired, reachable, initialized) == (expected, reason)


SPEC = GateSpec(enable_scale_to_zero=True, grace_period=30.0, retention=0.0, stable_window=60.0,
                activation_timeout=100.0)


def run(gate: ScaleGate, ticks: list[tuple[float, int, int, int, str]]) -> None:
    """Each tick: (now, desired, ready, expected applied, expected activity)."""
    for now, desired, ready, applied, activity in ticks:
        result = gate.apply(now, desired, ready)
        assert (result.applied, result.activity) == (applied, activity), (now, result)


def test_first_start_brings_up_initial_scale_and_goes_to_zero_after_window_and_grace() -> None:
    gate = ScaleGate(ScaleBounds(initial_scale=1), SPEC, now=0.0)
    assert (gate.applied, gate.activity) == (1, "activating")
    run(gate, [
        (2.0, 0, 0, 1, "activating"),  # starting: leave it alone
        (4.0, 0, 1, 1, "active"),  # ready at 4: active since 4
        (62.0, 0, 1, 1, "active"),  # 58 s active: keep 1 until the stable window has seen demand
        (64.0, 0, 1, 1, "inactive"),  # 60 s active with no demand: inactive since 64, replica stays
        (93.0, 0, 1, 1, "inactive"),  # 29 s inactive: grace not over
        (94.0, 0, 1, 0, "inactive"),  # exactly the grace period: to zero
        (96.0, 0, 0, 0, "inactive"),
    ])
    assert "at zero" in gate.apply(98.0, 0, 0).reason


def test_retention_longer_than_grace_keeps_the_last_replica_longer() -> None:
    gate = ScaleGate(ScaleBounds(), GateSpec(grace_period=30.0, retention=90.0, stable_window=60.0), now=0.0,
                     initialized=True, ready_pods=1)
    run(gate, [
        (60.0, 0, 1, 1, "inactive"),  # active since 0 for a full window: inactive at 60
        (120.0, 0, 1, 1, "inactive"),  # grace passed, retention not
        (149.0, 0, 1, 1, "inactive"),
        (150.0, 0, 1, 0, "inactive"),  # 90 s of retention
    ])


def test_retention_shorter_than_grace_changes_nothing() -> None:
    gate = ScaleGate(ScaleBounds(), GateSpec(grace_period=30.0, retention=10.0), now=0.0, initialized=True,
                     ready_pods=1)
    run(gate, [(60.0, 0, 1, 1, "inactive"), (80.0, 0, 1, 1, "inactive"), (90.0, 0, 1, 0, "inactive")])


def test_demand_returning_during_grace_cancels_scale_to_zero() -> None:
    gate = ScaleGate(ScaleBounds(), SPEC, now=0.0, initialized=True, ready_pods=1)
    run(gate, [
        (60.0, 0, 1, 1, "inactive"),
        (70.0, 2, 1, 2, "active"),  # demand again: active since 70
        (72.0, 0, 2, 1, "active"),  # active only 2 s: keep 1
        (130.0, 0, 1, 1, "inactive"),
        (160.0, 0, 1, 0, "inactive"),
    ])


def test_activation_that_never_becomes_ready_times_out_to_zero() -> None:
    gate = ScaleGate(ScaleBounds(), SPEC, now=0.0)
    run(gate, [(50.0, 0, 0, 1, "activating"), (100.0, 0, 0, 1, "activating")])  # exactly the timeout: hold
    result = gate.apply(100.5, 0, 0)
    assert (result.applied, result.activity) == (0, "inactive")
    assert result.reason.startswith("activation timed out: no replica became ready within 100s")


def test_activation_with_demand_keeps_trying() -> None:
    # Knative only gives up on an activation once nothing is asking for the revision any more.
    gate = ScaleGate(ScaleBounds(), SPEC, now=0.0)
    run(gate, [(500.0, 3, 0, 3, "activating"), (502.0, 0, 0, 0, "inactive")])


def test_scale_to_zero_disabled_keeps_one() -> None:
    gate = ScaleGate(ScaleBounds(), GateSpec(enable_scale_to_zero=False), now=0.0, initialized=True, ready_pods=1)
    for now in (60.0, 600.0, 6000.0):
        result = gate.apply(now, 0, 1)
        assert (result.applied, result.activity, result.reason) == (1, "active", "scale to zero is disabled: keeping 1")


def test_min_scale_never_reaches_the_zero_gate_and_unreachable_ignores_it() -> None:
    gate = ScaleGate(ScaleBounds(min_scale=2), SPEC, now=0.0, initialized=True, ready_pods=2)
    run(gate, [(100.0, 0, 2, 2, "active"), (1000.0, 0, 2, 2, "active")])
    # Traffic moved away: min no longer applies; active for long, so inactive now and zero after grace.
    assert gate.apply(1002.0, 0, 2, reachable=False).applied == 2
    assert gate.apply(1032.0, 0, 2, reachable=False).applied == 0


def test_initial_scale_zero_starts_inactive_at_zero() -> None:
    gate = ScaleGate(ScaleBounds(initial_scale=0), SPEC, now=0.0)
    assert (gate.applied, gate.activity) == (0, "inactive")
    run(gate, [(2.0, 0, 0, 0, "inactive")])


def test_initial_scale_above_one_is_a_floor_until_first_ready() -> None:
    gate = ScaleGate(ScaleBounds(initial_scale=3, max_scale=5), SPEC, now=0.0)
    assert gate.applied == 3
    run(gate, [
        (2.0, 1, 2, 3, "activating"),  # 2 of 3 ready: still activating, still 3
        (4.0, 1, 3, 3, "active"),  # 3 ready: initialized
        (6.0, 1, 3, 1, "active"),  # now the decider's 1 goes through
    ])


def test_initial_scale_capped_by_max_scale() -> None:
    assert ScaleGate(ScaleBounds(initial_scale=4, max_scale=2), SPEC, now=0.0).applied == 2


def test_poke_at_zero_activates_at_once_within_bounds() -> None:
    gate = ScaleGate(ScaleBounds(initial_scale=0, max_scale=2), SPEC, now=0.0)
    result = gate.poke(10.0, pods=3)
    assert (result.applied, result.activity) == (2, "activating")
    assert result.reason == "request at zero: activating 2"
    again = gate.poke(10.5, pods=3)
    assert (again.applied, again.reason) == (2, "poke: already scaling to 2")
    # The next tick with no measured demand yet leaves the starting replicas alone.
    run(gate, [(12.0, 0, 0, 2, "activating"), (14.0, 1, 1, 1, "active")])


def test_poke_respects_min_scale() -> None:
    gate = ScaleGate(ScaleBounds(min_scale=3), SPEC, now=0.0, initialized=True, ready_pods=0)  # restart, none up
    assert gate.poke(1.0, pods=1).applied == 3


def test_restart_of_an_existing_revision_keeps_what_runs() -> None:
    gate = ScaleGate(ScaleBounds(), SPEC, now=0.0, initialized=True, ready_pods=4)
    assert (gate.applied, gate.activity) == (4, "active")
    idle = ScaleGate(ScaleBounds(), SPEC, now=0.0, initialized=True, ready_pods=0)
    assert (idle.applied, idle.activity) == (0, "inactive")
