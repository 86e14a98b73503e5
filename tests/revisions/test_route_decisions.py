"""Route decisions, table-driven with an injected `now`: one row per rule of deploy, traffic, promote,
rollback and rollout ticks (revisions/route_decisions.py). No SQLite: states are built by hand."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from protocol.manifest import Traffic
from revisions.errors import ConflictError
from revisions.records import RouteRecord
from revisions.route_decisions import (
    RouteDecision,
    RouteState,
    decide_deploy,
    decide_edit,
    decide_promote,
    decide_rollback,
    decide_rollout_tick,
    decide_set_traffic,
    is_routed,
    previous_route,
)
from revisions.traffic import RolloutPlan, TrafficError, TrafficTarget

FN = "iris"
R1, R2, R3, NEW = "iris-00001", "iris-00002", "iris-00003", "iris-00009"


def t(ref: str, percent: int = 0, tag: str | None = None) -> TrafficTarget:
    return TrafficTarget.to(ref, percent, tag)


def route(*targets: TrafficTarget, version: int | None = 1, restores: int | None = None) -> RouteRecord:
    return RouteRecord(FN, tuple(targets), version, "test", 0.0, restores)


def state(current: RouteRecord | None = None, *, rollout: RolloutPlan | None = None,
          ready: tuple[str, ...] = (R1, R2, R3), failed: tuple[str, ...] = ()) -> RouteState:
    ready_names = frozenset(ready)
    latest = max(ready_names) if ready_names else None
    return RouteState(FN, current, rollout, ready_names | frozenset(failed), ready_names, latest)


def plan(base: tuple[TrafficTarget, ...], *, revision: str = R3, percent: int = 100, started: float = 0.0,
         duration: float = 100.0, tag: str | None = None) -> RolloutPlan:
    return RolloutPlan(FN, revision, percent, tag, base, started, duration)


def split(decision: RouteDecision) -> list[tuple[str, int, str | None]]:
    assert decision.change is not None
    return [(x.ref, x.percent, x.tag) for x in decision.change.targets]


def kinds(decision: RouteDecision) -> list[str]:
    return [e.kind for e in decision.events]


# ------------------------------------------------------------------------------------------------ deploys


class Deploy(NamedTuple):
    name: str
    before: RouteState
    policy: dict
    split: list[tuple[str, int, str | None]]
    settled: bool = True  # False: a rollout step, not history
    rollout_percent: int | None = None  # the target of a rollout this deploy starts
    events: list[str] = ["traffic"]


NINETY_TEN = route(t(R1, 90), t(R2, 10))
ROLLING = plan((t(R1, 100),), revision=R2, duration=100.0)

DEPLOYS = [
    Deploy("a function's first revision takes everything", state(None, ready=()), {"percent": 10},
           [(NEW, 100, None)]),
    Deploy("default policy: the new revision takes 100 %", state(NINETY_TEN), {}, [(NEW, 100, None)]),
    Deploy("default policy keeps other tags as 0 % pins", state(route(t(R1, 100), t(R2, 0, "old"))), {},
           [(R2, 0, "old"), (NEW, 100, None)]),
    Deploy("percent: the rest stays where it was, scaled (largest remainder)", state(NINETY_TEN), {"percent": 10},
           [(R1, 81, None), (R2, 9, None), (NEW, 10, None)]),
    Deploy("percent 0 with a tag pins the new revision", state(NINETY_TEN), {"percent": 0, "tag": "cand"},
           [(R1, 90, None), (R2, 10, None), (NEW, 0, "cand")]),
    Deploy("a tag moves from an older revision; its old pin disappears",
           state(route(t(R1, 100), t(R2, 0, "cand"))), {"percent": 0, "tag": "cand"},
           [(R1, 100, None), (NEW, 0, "cand")]),
    Deploy("@latest is frozen to the revision it named before the deploy",
           state(route(t("@latest", 90), t(R1, 10))), {"percent": 10},
           [(R1, 9, None), (R3, 81, None), (NEW, 10, None)]),
    Deploy("rollout_duration over a route starts at 1 %, not history", state(NINETY_TEN),
           {"rollout_duration": 10}, [(R1, 89, None), (R2, 10, None), (NEW, 1, None)], settled=False,
           rollout_percent=100, events=["rollout-start", "traffic"]),
    Deploy("rollout_duration on a first revision: no rollout", state(None, ready=()), {"rollout_duration": 10},
           [(NEW, 100, None)]),
    Deploy("rollout to 1 % or less is immediate", state(NINETY_TEN), {"rollout_duration": 10, "percent": 1},
           [(R1, 89, None), (R2, 10, None), (NEW, 1, None)]),
    Deploy("a deploy supersedes an active rollout (cancelled at its percent now)",
           state(route(t(R1, 50), t(R2, 50), version=None), rollout=ROLLING), {},
           [(NEW, 100, None)], events=["rollout-cancelled", "traffic"]),
    Deploy("a rollout over a superseded rollout starts from the current split",
           state(route(t(R1, 50), t(R2, 50), version=None), rollout=ROLLING), {"rollout_duration": 10, "percent": 50},
           [(R1, 50, None), (R2, 49, None), (NEW, 1, None)], settled=False, rollout_percent=50,
           events=["rollout-cancelled", "rollout-start", "traffic"]),
]


@pytest.mark.parametrize("case", DEPLOYS, ids=[c.name for c in DEPLOYS])
def test_deploy(case: Deploy) -> None:
    decision = decide_deploy(case.before, NEW, Traffic.model_validate(case.policy), now=50.0)
    assert split(decision) == case.split
    assert decision.change is not None and decision.change.settled == case.settled
    assert decision.change.reason == (f"deploy of {NEW}" if case.settled else f"rollout of {NEW}: 1%")
    started = decision.start_rollout
    assert (None if started is None else started.target_percent) == case.rollout_percent
    if started is not None:
        assert case.before.route is not None
        assert (started.revision, started.started, started.base) == (NEW, 50.0, case.before.route.targets)
    assert kinds(decision) == case.events
    assert decision.stop_rollout == (case.before.rollout is not None)


def test_deploy_event_messages_name_the_split_and_the_cancelled_rollout() -> None:
    decision = decide_deploy(state(route(t(R1, 50), t(R2, 50), version=None), rollout=ROLLING), NEW,
                             Traffic.model_validate({"percent": 10}), now=50.0)
    assert [(e.revision, e.message) for e in decision.events] == [
        (R2, f"rollout of {R2} stopped at 50%: superseded by the deploy of {NEW}"),
        (NEW, f"traffic: {R1}=45, {R2}=45, {NEW}=10"),
    ]


def test_deploy_with_an_impossible_tag_is_refused() -> None:
    long = "a-very-long-function-name-that-is-almost-at-the-limit"
    before = RouteState(long, route(t(f"{long}-00001", 100)), None, frozenset({f"{long}-00001"}),
                        frozenset({f"{long}-00001"}), f"{long}-00001")
    with pytest.raises(TrafficError, match="must stay within 63"):
        decide_deploy(before, f"{long}-00002", Traffic.model_validate({"tag": "a-long-tag-too"}), now=0.0)


class Routed(NamedTuple):
    name: str
    current: RouteRecord | None
    revision: str
    routed: bool


ROUTED = [
    Routed("a target with traffic", NINETY_TEN, R2, True),
    Routed("a 0 % pin is reachable by its tag", route(t(R1, 100), t(R2, 0, "old")), R2, True),
    Routed("@latest names the newest Ready revision", route(t("@latest", 100)), R3, True),
    Routed("not named by the route", NINETY_TEN, R3, False),
    Routed("no route at all", None, R1, False),
]


@pytest.mark.parametrize("case", ROUTED, ids=[c.name for c in ROUTED])
def test_is_routed(case: Routed) -> None:
    assert is_routed(state(case.current), case.revision) is case.routed


# ------------------------------------------------------------------------------------ traffic and promote


class Manual(NamedTuple):
    name: str
    before: RouteState
    decide: object  # (state, now) -> RouteDecision
    split: list[tuple[str, int, str | None]] | None  # None: refused with `error`
    reason: str = "traffic"
    events: list[str] = ["traffic"]
    error: tuple[type[Exception], str] | None = None


MANUAL = [
    Manual("set: a complete route, normalised", state(NINETY_TEN),
           lambda s, now: decide_set_traffic(s, [t(R2, 60), t(R1, 40), t(R3, 0)], now),
           [(R1, 40, None), (R2, 60, None)]),
    Manual("set: percents must sum to 100", state(NINETY_TEN),
           lambda s, now: decide_set_traffic(s, [t(R1, 60), t(R2, 30)], now), None,
           error=(TrafficError, r"must sum to 100, got 90 \(iris-00001=60, iris-00002=30\)")),
    Manual("set: an unknown revision is refused", state(NINETY_TEN),
           lambda s, now: decide_set_traffic(s, [t("iris-00007", 100)], now), None,
           error=(TrafficError, "unknown revision 'iris-00007' of function 'iris'")),
    Manual("set: a revision that is not Ready takes no traffic", state(NINETY_TEN, failed=("iris-00004",)),
           lambda s, now: decide_set_traffic(s, [t("iris-00004", 100)], now), None,
           error=(TrafficError, "revision 'iris-00004' is not Ready")),
    Manual("set: @latest needs a Ready revision", state(NINETY_TEN, ready=(), failed=(R1, R2)),
           lambda s, now: decide_set_traffic(s, [t("@latest", 100)], now), None,
           error=(TrafficError, "@latest needs a ready revision")),
    Manual("edit: kn-style percents", state(NINETY_TEN),
           lambda s, now: decide_edit(s, now, percents={R2: 100}), [(R2, 100, None)]),
    Manual("edit: a tag pins a revision at 0 %", state(NINETY_TEN),
           lambda s, now: decide_edit(s, now, tags={"next": R3}), [(R1, 90, None), (R2, 10, None), (R3, 0, "next")]),
    Manual("edit: needs a route", state(None), lambda s, now: decide_edit(s, now, percents={R1: 100}), None,
           error=(ConflictError, "traffic: function 'iris' has no route yet")),
    Manual("a manual change stops a rollout", state(route(t(R1, 50), t(R2, 50), version=None), rollout=ROLLING),
           lambda s, now: decide_edit(s, now, percents={R1: 100}), [(R1, 100, None)],
           events=["rollout-cancelled", "traffic"]),
    Manual("promote: all traffic to the tag's revision, other tags stay pinned",
           state(route(t(R1, 100), t(R2, 0, "next"), t(R3, 0, "old"))),
           lambda s, now: decide_promote(s, "next", now), [(R2, 100, "next"), (R3, 0, "old")], reason="promote next"),
    Manual("promote: the tag must exist", state(NINETY_TEN), lambda s, now: decide_promote(s, "nope", now), None,
           error=(TrafficError, "tag 'nope' does not exist on function 'iris'")),
    Manual("promote: needs a route", state(None), lambda s, now: decide_promote(s, "next", now), None,
           error=(ConflictError, "has no route yet")),
]


@pytest.mark.parametrize("case", MANUAL, ids=[c.name for c in MANUAL])
def test_manual_change(case: Manual) -> None:
    decide = case.decide
    assert callable(decide)
    if case.error is not None:
        with pytest.raises(case.error[0], match=case.error[1]):
            decide(case.before, 50.0)
        return
    decision = decide(case.before, 50.0)
    assert split(decision) == case.split
    assert decision.change is not None and decision.change.settled and decision.change.restores is None
    assert decision.change.reason == case.reason
    assert kinds(decision) == case.events and decision.stop_rollout == (case.before.rollout is not None)
    assert decision.events[-1].message.startswith(f"{case.reason}: ") and decision.start_rollout is None


def test_manual_change_event_messages_name_the_rule_and_the_stopped_rollout() -> None:
    decision = decide_promote(state(route(t(R1, 50), t(R2, 50, "next"), version=None), rollout=ROLLING), "next", 50.0)
    assert [(e.revision, e.message) for e in decision.events] == [
        (R2, f"rollout of {R2} stopped at 50%: overridden by promote next"),
        (None, f"promote next: {R2}=100 (next)"),
    ]


# ----------------------------------------------------------------------------------------------- rollback


H1, H2, H3 = route(t(R1, 100), version=1), route(t(R2, 100), version=2), route(t(R1, 90), t(R2, 10), version=3)
ROLLED_BACK_TO_2 = route(t(R2, 100), version=4, restores=2)


class Rollback(NamedTuple):
    name: str
    before: RouteState
    history: list[RouteRecord]
    split: list[tuple[str, int, str | None]] | None  # None: refused with `error`
    restores: int | None = None
    events: list[str] = ["rollback"]
    error: str = ""


ROLLBACKS = [
    Rollback("back to the route before the current one", state(H3), [H1, H2, H3], [(R2, 100, None)], restores=2),
    Rollback("history in any order", state(H3), [H3, H1, H2], [(R2, 100, None)], restores=2),
    Rollback("again goes one further (skips what a rollback restored)", state(ROLLED_BACK_TO_2),
             [H1, H2, H3, ROLLED_BACK_TO_2], [(R1, 100, None)], restores=1),
    Rollback("nothing earlier: refused", state(H1), [H1], None, error="has no earlier route to go back to"),
    Rollback("a rollout stopped part-way goes back to the newest settled route",
             state(route(t(R1, 50), t(R3, 50), version=None)), [H1, H2, H3], [(R1, 90, None), (R2, 10, None)],
             restores=3),
    Rollback("during a rollout: the route before the deploy, no history version",
             state(route(t(R1, 50), t(R2, 50), version=None), rollout=ROLLING), [H1], [(R1, 100, None)],
             events=["rollout-cancelled", "rollback"]),
    Rollback("during a first rollout with no base: refused",
             state(route(t(R2, 100), version=None), rollout=plan((), revision=R2)), [], None,
             error="has no route before iris-00002"),
    Rollback("a previous route naming a revision no longer Ready: refused",
             state(H3, ready=(R1, R3), failed=(R2,)), [H1, H2, H3], None,
             error="the previous route cannot be restored: traffic: revision 'iris-00002' is not Ready"),
    Rollback("no route yet: refused", state(None), [], None, error="traffic: function 'iris' has no route yet"),
]


@pytest.mark.parametrize("case", ROLLBACKS, ids=[c.name for c in ROLLBACKS])
def test_rollback(case: Rollback) -> None:
    if case.split is None:
        with pytest.raises(ConflictError, match=case.error):
            decide_rollback(case.before, case.history, now=50.0)
        return
    decision = decide_rollback(case.before, case.history, now=50.0)
    assert split(decision) == case.split
    assert decision.change is not None and decision.change.settled and decision.change.restores == case.restores
    expected_reason = (f"rollback to route {case.restores}" if case.restores is not None
                       else f"rollback: cancelled the rollout of {R2}")
    assert decision.change.reason == expected_reason and kinds(decision) == case.events
    assert decision.stop_rollout == (case.before.rollout is not None)


def test_previous_route_of_an_empty_history_is_none() -> None:
    assert previous_route(route(t(R1, 100), version=None), []) is None


# ----------------------------------------------------------------------------------------------- rollouts


class Tick(NamedTuple):
    name: str
    before: RouteState
    now: float
    split: list[tuple[str, int, str | None]] | None  # None: no route change
    settled: bool = False
    stop: bool = False
    events: list[str] = []
    unchanged: bool = False  # the decision is None: nothing to do


AT_1 = route(t(R1, 99), t(R2, 1), version=None)
AT_50 = route(t(R1, 50), t(R2, 50), version=None)

TICKS = [
    Tick("no rollout: nothing to do", state(NINETY_TEN), 50.0, None, unchanged=True),
    Tick("mid-way: the split at now, not history", state(AT_1, rollout=ROLLING), 50.0,
         [(R1, 50, None), (R2, 50, None)]),
    Tick("already at the split for now: nothing to do", state(AT_50, rollout=ROLLING), 50.5, None, unchanged=True),
    Tick("at the end: settled, rollout done", state(AT_50, rollout=ROLLING), 100.0, [(R2, 100, None)],
         settled=True, stop=True, events=["rollout-done"]),
    Tick("a late tick past the end finishes it", state(AT_1, rollout=ROLLING), 1e6, [(R2, 100, None)],
         settled=True, stop=True, events=["rollout-done"]),
    Tick("a base revision gone: stop, route left as it is", state(AT_1, rollout=ROLLING, ready=(R2, R3)), 50.0,
         None, stop=True, events=["rollout-cancelled"]),
]


@pytest.mark.parametrize("case", TICKS, ids=[c.name for c in TICKS])
def test_rollout_tick(case: Tick) -> None:
    decision = decide_rollout_tick(case.before, case.now)
    if case.unchanged:
        assert decision is None
        return
    assert decision is not None
    if case.split is None:
        assert decision.change is None
    else:
        assert split(decision) == case.split
        assert decision.change is not None and decision.change.settled == case.settled
    assert decision.stop_rollout == case.stop and kinds(decision) == case.events


def test_rollout_tick_messages() -> None:
    step = decide_rollout_tick(state(AT_1, rollout=ROLLING), 50.0)
    assert step is not None and step.change is not None and step.change.reason == f"rollout of {R2}: 50%"
    gone = decide_rollout_tick(state(AT_1, rollout=ROLLING, ready=(R2, R3)), 50.0)
    assert gone is not None and gone.events[0].message.startswith(f"rollout of {R2} stopped at 50%: cannot continue: ")
    assert "unknown revision 'iris-00001'" in gone.events[0].message
    done = decide_rollout_tick(state(AT_50, rollout=ROLLING), 100.0)
    assert done is not None and done.events[0].message == f"rollout of {R2} complete: {R2}=100"
