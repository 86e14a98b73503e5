"""Retention rules, table-driven (revisions/registry/retention.py); the registry test deletes for real."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from revisions.records import RouteRecord
from revisions.registry.retention import protected_revisions, revisions_to_delete
from revisions.route_decisions import RouteState
from revisions.traffic import RolloutPlan, TrafficTarget


def state(targets: list[TrafficTarget], *, rollout: RolloutPlan | None = None, latest: str = "f-00009") -> RouteState:
    route = RouteRecord("f", tuple(targets), 1, "test", 0.0)
    return RouteState("f", route, rollout, frozenset(), frozenset(), latest)


class Protect(NamedTuple):
    name: str
    state: RouteState
    protected: set[str]


PROTECT = [
    Protect("routed and tagged revisions",
            state([TrafficTarget.to("f-00001", 100), TrafficTarget.to("f-00002", 0, "x")]), {"f-00001", "f-00002"}),
    Protect("@latest protects the newest Ready revision", state([TrafficTarget.to("@latest", 100)]), {"f-00009"}),
    Protect("a rollout protects its revision and its base",
            state([TrafficTarget.to("f-00003", 100)],
                  rollout=RolloutPlan("f", "f-00004", 100, None, (TrafficTarget.to("f-00002", 100),), 0.0, 10.0)),
            {"f-00002", "f-00003", "f-00004"}),
    Protect("no route protects nothing", RouteState("f"), set()),
]


@pytest.mark.parametrize("case", PROTECT, ids=[c.name for c in PROTECT])
def test_protected_revisions(case: Protect) -> None:
    assert protected_revisions(case.state) == case.protected


NEWEST_FIRST = ["f-00006", "f-00005", "f-00004", "f-00003", "f-00002", "f-00001"]
DELETE = [
    ("keep the newest unrouted ones", set(), 2, ["f-00003", "f-00002", "f-00001"]),
    ("the newest revision is always kept", {"f-00001"}, 0, ["f-00005", "f-00004", "f-00003", "f-00002"]),
    ("protected revisions do not count against the budget", {"f-00005", "f-00004"}, 1, ["f-00002", "f-00001"]),
    ("a negative budget keeps none extra", set(), -3, NEWEST_FIRST[1:]),
]


@pytest.mark.parametrize(("protected", "keep", "doomed"), [d[1:] for d in DELETE], ids=[d[0] for d in DELETE])
def test_revisions_to_delete(protected: set[str], keep: int, doomed: list[str]) -> None:
    assert revisions_to_delete(NEWEST_FIRST, protected, keep) == doomed
    assert revisions_to_delete([], protected, keep) == []
