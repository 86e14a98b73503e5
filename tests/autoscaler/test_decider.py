"""The KPA decider, table-driven with an injected clock: every rule of Knative's Scale()."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import pytest

from autoscaler import Decider, DeciderSpec, ScaleResult

BASE = DeciderSpec(target_value=10.0, total_value=10.0, panic_threshold=2.0, max_scale_up_rate=1000.0,
                   max_scale_down_rate=2.0, stable_window=60.0, target_burst_capacity=211.0,
                   activation_scale=1, scale_down_delay=0.0, reachable=True)


class Tick(NamedTuple):
    now: float
    ready: int
    stable: float
    panic: float
    desired: int
    panicking: bool = False


class Case(NamedTuple):
    name: str
    spec: dict
    created_ready: int
    ticks: list[Tick]


CASES = [
    Case("stable mode: ceil(stable / target)", {}, 1, [Tick(2, 1, 50.0, 10.0, 5)]),
    Case("stable rounds up", {}, 1, [Tick(2, 1, 50.01, 10.0, 6)]),
    Case("zero demand on one pod goes to zero (floor(1/2) = 0)", {}, 1, [Tick(2, 1, 0.0, 0.0, 0)]),
    Case("zero ready pods count as one", {"max_scale_up_rate": 2.0}, 0, [Tick(2, 0, 100.0, 10.0, 2)]),
    # Up-rate: ceil(rate * ready); 2 pods at rate 2 may become at most 4.
    Case("up-rate limit", {"max_scale_up_rate": 2.0}, 1, [Tick(2, 2, 100.0, 30.0, 4)]),
    Case("up-rate ceil lets N grow to N+1", {"max_scale_up_rate": 1.1}, 1, [Tick(2, 2, 100.0, 30.0, 3)]),
    Case("up-rate binds the panic count too", {"max_scale_up_rate": 2.0}, 1,
         [Tick(2, 1, 0.0, 100.0, 2, True)]),
    # Down-rate: floor(ready / rate); 10 pods at rate 2 may become no fewer than 5.
    Case("down-rate limit", {}, 1, [Tick(2, 10, 0.0, 0.0, 5)]),
    Case("down-rate floor lets N shrink to N-1", {"max_scale_down_rate": 1.1}, 1, [Tick(2, 10, 0.0, 0.0, 9)]),
    Case("down-rate does not bind when demand is higher", {}, 1, [Tick(2, 10, 80.0, 0.0, 8)]),
    Case("unreachable: no down-rate floor", {"reachable": False}, 1, [Tick(2, 10, 0.0, 0.0, 0)]),
    Case("unreachable: still up-rate bound", {"reachable": False, "max_scale_up_rate": 2.0}, 1,
         [Tick(2, 3, 200.0, 50.0, 6)]),
    Case("activation scale lifts a non-zero stable count", {"activation_scale": 3}, 1, [Tick(2, 1, 5.0, 5.0, 3)]),
    Case("activation scale leaves zero at zero", {"activation_scale": 3}, 1, [Tick(2, 1, 0.0, 0.0, 0)]),
    Case("activation scale does not cap a larger count", {"activation_scale": 3}, 1, [Tick(2, 1, 40.0, 10.0, 4)]),
    Case("activation scale lifts the panic count", {"activation_scale": 5}, 2, [Tick(2, 2, 0.0, 40.0, 5, True)]),
    # Panic: ceil(panic / target) / max(1, ready) >= threshold.
    Case("panic threshold reached exactly", {}, 1, [Tick(2, 1, 0.0, 20.0, 2, True)]),
    Case("just under the panic threshold", {}, 1, [Tick(2, 2, 30.0, 30.0, 3)]),
    Case("panic ratio uses pod counts: 31 -> 4 pods / 2 = 2.0", {}, 2, [Tick(2, 2, 0.0, 31.0, 4, True)]),
    Case("panic threshold 3x", {"panic_threshold": 3.0}, 1,
         [Tick(2, 2, 50.0, 50.0, 5), Tick(4, 2, 0.0, 51.0, 6, True)]),
    Case("panic at zero ready pods compares with one", {}, 0, [Tick(2, 0, 0.0, 20.0, 2, True)]),
    Case("in panic the larger of stable and panic counts wins", {}, 1,
         [Tick(2, 1, 80.0, 30.0, 8, True)]),
    Case(
        "panic ends only after a full stable window without an over-threshold tick",
        {},
        1,
        [
            Tick(0, 1, 0.0, 20.0, 2, True),  # start: 2 pods / 1 ready
            Tick(2, 2, 0.0, 0.0, 2, True),  # under threshold, but never scale down in panic
            Tick(60, 2, 0.0, 0.0, 2, True),  # exactly panic start + stable window: still panicking
            Tick(60.001, 2, 0.0, 0.0, 1),  # just past it: stable mode, down-rate floor(2 / 2)
        ],
    ),
    Case(
        "every over-threshold tick extends the panic",
        {},
        1,
        [
            Tick(0, 1, 0.0, 20.0, 2, True),
            Tick(30, 2, 0.0, 40.0, 4, True),  # 4 / 2 >= 2: extended to 30
            Tick(62, 4, 0.0, 0.0, 4, True),  # 0 + 60 has passed, but 30 + 60 has not
            Tick(90, 4, 0.0, 0.0, 4, True),
            Tick(92, 4, 0.0, 0.0, 2),  # ended; stable mode, floor(4 / 2)
        ],
    ),
    Case(
        "panic ratchets to the most pods it asked for",
        {},
        1,
        [
            Tick(0, 1, 0.0, 50.0, 5, True),
            Tick(2, 5, 10.0, 30.0, 5, True),  # wants 3 now, keeps 5
            Tick(4, 5, 90.0, 30.0, 9, True),  # stable demand rises: ratchet up to 9
            Tick(6, 9, 0.0, 0.0, 9, True),
        ],
    ),
    Case(
        "a new panic after the old one ended starts its ratchet afresh",
        {},
        1,
        [
            Tick(0, 1, 0.0, 80.0, 8, True),
            Tick(61, 8, 0.0, 0.0, 4),  # ended: max panic pods cleared
            Tick(63, 4, 0.0, 80.0, 8, True),
            Tick(65, 8, 0.0, 0.0, 8, True),
        ],
    ),
    Case("creation with more than one ready pod starts in panic", {}, 3,
         [Tick(2, 3, 0.0, 0.0, 3, True), Tick(60, 3, 0.0, 0.0, 3, True), Tick(61, 3, 0.0, 0.0, 1)]),
    Case("creation with one ready pod does not", {}, 1, [Tick(2, 1, 0.0, 0.0, 0)]),
    # Scale-down delay: the max over the last ceil(delay / 2 s) slots.
    Case(
        "scale-down delay holds the peak for the delay window",
        {"scale_down_delay": 10.0},
        1,
        [
            Tick(0, 1, 50.0, 10.0, 5),
            Tick(2, 1, 10.0, 10.0, 5),  # wants 1, delayed
            Tick(8, 1, 10.0, 10.0, 5),  # slot 4: slot 0 is still in the last 5 slots
            Tick(10, 1, 10.0, 10.0, 1),  # slot 5: the peak of slot 0 has left
        ],
    ),
    Case("scale-down delay never delays a scale-up", {"scale_down_delay": 10.0}, 1,
         [Tick(0, 1, 10.0, 10.0, 1), Tick(2, 1, 50.0, 10.0, 5)]),
    Case("an unreachable revision is not delayed", {"scale_down_delay": 10.0, "reachable": False}, 1,
         [Tick(0, 1, 50.0, 10.0, 5), Tick(2, 5, 0.0, 0.0, 0)]),
    Case("a 1 s delay keeps only the current 2 s slot", {"scale_down_delay": 1.0}, 1,
         [Tick(0, 1, 50.0, 10.0, 5), Tick(1, 1, 10.0, 10.0, 5), Tick(2, 1, 10.0, 10.0, 1)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decider_rules(case: Case) -> None:
    decider = Decider(replace(BASE, **case.spec), ready_pods=case.created_ready, now=0.0)
    for tick in case.ticks:
        result = decider.scale(now=tick.now, ready_pods=tick.ready, stable=tick.stable, panic=tick.panic)
        assert (result.desired_scale, result.panicking) == (tick.desired, tick.panicking), (case.name, tick)
        assert isinstance(result.desired_scale, int) and isinstance(result.excess_burst_capacity, int)


@pytest.mark.parametrize(
    "tbc, total, ready, panic, expected",
    [
        (0.0, 10.0, 3, 50.0, 0),  # 0: the activator is only in the path at zero
        (-1.0, 10.0, 3, 50.0, -1),  # -1: unlimited, always in the path
        (211.0, 100.0, 3, 50.0, 39),  # floor(3 * 100 - 211 - 50)
        (211.0, 13.33, 1, 10.0, -208),  # floor(-207.67)
        (211.0, 100.0, 0, 0.0, -211),  # uses the real ready count, not the floor of one
        (10.0, 10.0, 5, 0.5, 39),  # floor(50 - 10 - 0.5)
    ],
)
def test_excess_burst_capacity(tbc: float, total: float, ready: int, panic: float, expected: int) -> None:
    decider = Decider(replace(BASE, target_burst_capacity=tbc, total_value=total), ready_pods=ready, now=0.0)
    assert decider.scale(now=2.0, ready_pods=ready, stable=0.0, panic=panic).excess_burst_capacity == expected


def test_public_api_as_in_the_architecture() -> None:
    spec = DeciderSpec(target_value=10.0, total_value=13.33, panic_threshold=2.0,
                       max_scale_up_rate=1000.0, max_scale_down_rate=2.0, stable_window=60.0,
                       target_burst_capacity=211.0, activation_scale=1, scale_down_delay=0.0,
                       reachable=True)
    d = Decider(spec, ready_pods=1, now=100.0)
    r = d.scale(now=102.0, ready_pods=1, stable=50.0, panic=10.0)
    assert r == ScaleResult(5, -208, False)
    desired, ebc, panicking = r
    assert (r.desired_scale, r.excess_burst_capacity, r.panicking) == (desired, ebc, panicking)
    positional = DeciderSpec(10.0, 13.33, 2.0, 1000.0, 2.0, 60.0, 211.0, 1, 0.0, True)
    assert positional == spec


def test_update_changes_the_spec_and_keeps_panic_state() -> None:
    d = Decider(BASE, ready_pods=1, now=0.0)
    assert d.scale(now=0.0, ready_pods=1, stable=0.0, panic=50.0) == ScaleResult(5, -251, True)
    d.update(replace(BASE, target_value=5.0))
    # Still the same panic (started at 0), now with the new target: 40 / 5 = 8 pods, ratcheted.
    assert d.scale(now=2.0, ready_pods=5, stable=40.0, panic=0.0).desired_scale == 8
    assert d.panicking and d.panic_time == 0.0
    assert d.scale(now=61.0, ready_pods=8, stable=20.0, panic=0.0) == ScaleResult(4, -131, False)


def test_update_adds_resizes_and_removes_the_scale_down_delay() -> None:
    d = Decider(BASE, ready_pods=1, now=0.0)
    d.update(replace(BASE, scale_down_delay=4.0))  # 2 slots
    assert d.scale(now=0.0, ready_pods=1, stable=50.0, panic=0.0).desired_scale == 5
    d.update(replace(BASE, scale_down_delay=20.0))  # 10 slots, history kept
    assert d.scale(now=10.0, ready_pods=1, stable=10.0, panic=0.0).desired_scale == 5
    d.update(BASE)  # delay removed: no more holding
    assert d.scale(now=12.0, ready_pods=1, stable=10.0, panic=0.0).desired_scale == 1


def test_becoming_unreachable_through_update_drops_the_floor_and_the_delay() -> None:
    d = Decider(replace(BASE, scale_down_delay=30.0), ready_pods=1, now=0.0)
    assert d.scale(now=0.0, ready_pods=1, stable=60.0, panic=0.0).desired_scale == 6
    d.update(d.spec.with_reachable(False))
    assert d.scale(now=2.0, ready_pods=6, stable=0.0, panic=0.0).desired_scale == 0


def test_explanation_says_why() -> None:
    d = Decider(replace(BASE, scale_down_delay=120.0), ready_pods=1, now=0.0)
    d.scale(now=0.0, ready_pods=1, stable=0.0, panic=30.0)
    assert d.last is not None and d.last.describe(10.0).startswith("entered panic: panic-window demand 30")
    d.scale(now=2.0, ready_pods=3, stable=0.0, panic=30.0)
    assert d.last.describe(10.0).startswith("panic: ")
    d.scale(now=62.0, ready_pods=3, stable=0.0, panic=0.0)
    assert d.last.describe(10.0).startswith("scale-down delayed: keeping 3")
    d.scale(now=200.0, ready_pods=3, stable=10.0, panic=0.0)
    assert d.last.describe(10.0) == "stable: demand 10 / target 10 -> 1"


@pytest.mark.parametrize(
    "field, value",
    [("target_value", 0.0), ("target_value", float("nan")), ("max_scale_down_rate", 0.0),
     ("max_scale_up_rate", -1.0), ("panic_threshold", 0.0), ("stable_window", -1.0), ("scale_down_delay", -2.0),
     ("total_value", float("inf"))],
)
def test_spec_refuses_values_that_break_the_arithmetic(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"DeciderSpec.{field} must be"):
        replace(BASE, **{field: value})
