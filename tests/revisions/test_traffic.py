"""Table tests for the pure traffic rules: validation, edits, deploy policies, rollouts, route picks."""

from __future__ import annotations

import random

import pytest

from revisions.traffic import (
    LATEST,
    ResolvedRoute,
    RolloutPlan,
    RouteTable,
    TrafficError,
    TrafficTarget,
    edit_targets,
    freeze_latest,
    parse_percents,
    promote_tag,
    rollout_percent,
    route_after_deploy,
    scale_percents,
    validate_targets,
)

T = TrafficTarget
REVS = {"iris-00001", "iris-00002", "iris-00003"}


def split(targets):
    return [(t.ref, t.percent, t.tag) for t in targets]


# ------------------------------------------------------------------------------------------ validation

@pytest.mark.parametrize(
    ("targets", "rule"),
    [
        ([], "at least one target"),
        ([T("iris-00001", percent=60), T("iris-00002", percent=30)],
         "percents must sum to 100, got 90 (iris-00001=60, iris-00002=30)"),
        ([T("iris-00001", percent=60), T("iris-00002", percent=50)], "must sum to 100, got 110"),
        ([T("iris-00001", percent=120), T("iris-00002", percent=-20)], "from 0 to 100, got 120"),
        ([T("iris-00009", percent=100)], "unknown revision 'iris-00009' of function 'iris'"),
        ([T("iris-00001", latest=True, percent=100)], "either a revision or latest"),
        ([T(None, percent=100)], "must name a revision or latest"),
        ([T("iris-00001", percent=100, tag="Canary")], "tag 'Canary' must be a DNS-1035 label"),
        ([T("iris-00001", percent=100, tag="1abc")], "DNS-1035 label"),
        ([T("iris-00001", percent=100, tag="a" * 60)], "'<tag>-<function>' must stay within 63"),
        ([T("iris-00001", percent=100, tag="x"), T("iris-00002", percent=0, tag="x")],
         "tag 'x' is used more than once"),
        ([T(latest=True, percent=100)], "@latest needs a ready revision"),
    ],
)
def test_validate_refuses_naming_the_rule(targets, rule):
    with pytest.raises(TrafficError) as err:
        validate_targets("iris", targets, REVS, has_ready_revision=False)
    assert rule in str(err.value)
    assert str(err.value).startswith("traffic:")


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([T("iris-00001", percent=100)], [("iris-00001", 100, None)]),
        ([T("iris-00001", percent=90), T("iris-00002", percent=10)],
         [("iris-00001", 90, None), ("iris-00002", 10, None)]),
        # a tag with 0 % pins a revision; untagged 0 % targets are dropped; duplicates merge
        ([T("iris-00001", percent=100), T("iris-00002", percent=0, tag="canary"), T("iris-00003", percent=0)],
         [("iris-00001", 100, None), ("iris-00002", 0, "canary")]),
        ([T("iris-00001", percent=50), T("iris-00001", percent=50)], [("iris-00001", 100, None)]),
        ([T(latest=True, percent=100, tag="current")], [(LATEST, 100, "current")]),
    ],
)
def test_validate_accepts_and_normalises(targets, expected):
    assert split(validate_targets("iris", targets, REVS)) == expected


# --------------------------------------------------------------------------------------------- edits

BASE = [T("iris-00001", percent=100)]


@pytest.mark.parametrize(
    ("current", "kwargs", "expected"),
    [
        (BASE, {"percents": {"iris-00001": 90, "iris-00002": 10}},
         [("iris-00001", 90, None), ("iris-00002", 10, None)]),
        (BASE, {"tags": {"canary": "iris-00002"}}, [("iris-00001", 100, None), ("iris-00002", 0, "canary")]),
        # tag then percent on the same revision lands on the one tagged target
        (BASE, {"tags": {"canary": "iris-00002"}, "percents": {"iris-00001": 80, "iris-00002": 20}},
         [("iris-00001", 80, None), ("iris-00002", 20, "canary")]),
        # percents by tag name; revisions not named drop out unless tagged
        ([T("iris-00001", percent=100), T("iris-00002", percent=0, tag="canary")],
         {"percents": {"canary": 100}}, [("iris-00002", 100, "canary")]),
        ([T("iris-00001", percent=90), T("iris-00002", percent=10, tag="canary")],
         {"untag": ["canary"]}, [("iris-00001", 90, None), ("iris-00002", 10, None)]),
        ([T("iris-00001", percent=100), T("iris-00002", percent=0, tag="canary")],
         {"untag": ["canary"]}, [("iris-00001", 100, None)]),
        (BASE, {"tags": {"prod": "iris-00001"}}, [("iris-00001", 100, "prod")]),
        (BASE, {"percents": {"@latest": 100}}, [(LATEST, 100, None)]),
    ],
)
def test_edit_targets(current, kwargs, expected):
    assert split(edit_targets("iris", current, **kwargs)) == expected


@pytest.mark.parametrize(
    ("current", "kwargs", "rule"),
    [
        (BASE, {"untag": ["nope"]}, "tag 'nope' does not exist"),
        ([T("iris-00001", percent=100, tag="a")], {"tags": {"a": "iris-00002"}}, "tag 'a' already names"),
        ([T("iris-00001", percent=100, tag="a")], {"percents": {"a": 50, "iris-00001": 50}},
         "given more than once"),
        (BASE, {"tags": {"Bad_Tag": "iris-00001"}}, "DNS-1035"),
    ],
)
def test_edit_refuses(current, kwargs, rule):
    with pytest.raises(TrafficError, match=rule):
        edit_targets("iris", current, **kwargs)


@pytest.mark.parametrize(
    ("pairs", "rule"),
    [(["iris-00001"], "is not REVISION=PERCENT"), (["iris-00001=ten"], "whole number, got 'ten'"),
     (["a=1", "a=2"], "given more than once"), (["=5"], "is not REVISION=PERCENT")],
)
def test_parse_percents_refuses(pairs, rule):
    with pytest.raises(TrafficError, match=rule):
        parse_percents(pairs)


def test_promote_and_freeze_latest():
    route = [T("iris-00001", percent=100), T("iris-00002", percent=0, tag="canary"),
             T("iris-00003", percent=0, tag="next")]
    assert split(promote_tag("iris", route, "canary")) == [("iris-00002", 100, "canary"), ("iris-00003", 0, "next")]
    with pytest.raises(TrafficError, match="tag 'nope' does not exist"):
        promote_tag("iris", route, "nope")
    frozen = freeze_latest([T(latest=True, percent=100, tag="cur")], "iris-00002")
    assert split(frozen) == [("iris-00002", 100, "cur")]


# -------------------------------------------------------------------------------------------- deploys

@pytest.mark.parametrize(
    ("current", "percent", "tag", "expected"),
    [
        ([], 100, None, [("iris-00003", 100, None)]),
        ([], 0, "canary", [("iris-00003", 100, "canary")]),  # first revision: nowhere else to go
        (BASE, 100, None, [("iris-00003", 100, None)]),
        (BASE, 10, None, [("iris-00001", 90, None), ("iris-00003", 10, None)]),
        # the rest stays where it was, scaled proportionally (largest remainder keeps the sum exact)
        ([T("iris-00001", percent=50), T("iris-00002", percent=50)], 10, None,
         [("iris-00001", 45, None), ("iris-00002", 45, None), ("iris-00003", 10, None)]),
        ([T("iris-00001", percent=67), T("iris-00002", percent=33)], 25, None,
         [("iris-00001", 50, None), ("iris-00002", 25, None), ("iris-00003", 25, None)]),
        # pin: 0 % with a tag leaves the split alone
        (BASE, 0, "canary", [("iris-00001", 100, None), ("iris-00003", 0, "canary")]),
        # a tag moves to the new revision; the old one keeps its share untagged
        ([T("iris-00001", percent=90), T("iris-00002", percent=10, tag="canary")], 10, "canary",
         [("iris-00001", 81, None), ("iris-00002", 9, None), ("iris-00003", 10, "canary")]),
        # other tags survive a full deploy as 0 % pins
        ([T("iris-00001", percent=100), T("iris-00002", percent=0, tag="old")], 100, None,
         [("iris-00002", 0, "old"), ("iris-00003", 100, None)]),
    ],
)
def test_route_after_deploy(current, percent, tag, expected):
    result = route_after_deploy(current, "iris-00003", percent, tag)
    assert split(result) == expected
    assert sum(t.percent for t in result) == 100
    validate_targets("iris", result, REVS)


@pytest.mark.parametrize(
    ("shares", "total", "expected"),
    [([1, 1, 1], 100, [34, 33, 33]), ([100], 0, [0]), ([0, 0], 50, [0, 0]), ([60, 40], 90, [54, 36])],
)
def test_scale_percents(shares, total, expected):
    assert scale_percents(shares, total) == expected


# ------------------------------------------------------------------------------------------- rollouts

@pytest.mark.parametrize(
    ("target", "duration", "elapsed", "expected"),
    [
        (100, 60, 0, 1),       # Knative starts every rollout at 1 %
        (100, 60, 0.5, 1),
        (100, 60, 1, 2),       # 60 steps of one second: 99 % in 60 steps
        (100, 60, 30, 50),
        (100, 60, 59.9, 98),
        (100, 60, 60, 100),
        (100, 60, 600, 100),
        (50, 10, 5, 25),       # 10 steps (1 s minimum) for 49 %
        (10, 300, 150, 5),     # 9 steps of ~33 s: at most one step per percent
        (1, 60, 0, 1),
        (100, 0, 0, 100),
    ],
)
def test_rollout_percent(target, duration, elapsed, expected):
    assert rollout_percent(target, 1000.0, duration, 1000.0 + elapsed) == expected


def test_rollout_percent_never_decreases():
    values = [rollout_percent(100, 0.0, 37.0, t / 10) for t in range(0, 400)]
    assert values == sorted(values)
    assert values[0] == 1 and values[-1] == 100


def test_rollout_plan_routes():
    plan = RolloutPlan("iris", "iris-00002", 100, None, (T("iris-00001", percent=100),), 0.0, 10.0)
    assert split(plan.route_at(0.0)) == [("iris-00001", 99, None), ("iris-00002", 1, None)]
    assert split(plan.route_at(10.0)) == [("iris-00002", 100, None)]
    assert not plan.done_at(9.99) and plan.done_at(10.0)


# ---------------------------------------------------------------------------------------- route table

def test_route_table_pick_tags_and_updates():
    table = RouteTable()
    route = ResolvedRoute.build("iris", [T("iris-00001", percent=90), T("iris-00002", percent=10, tag="c"),
                                         T(latest=True, percent=0, tag="latest")], "iris-00003")
    table.update("iris", route)
    assert table.has_function("iris") and not table.has_function("echo")
    assert table.pick("iris", None, 0.0) == "iris-00001"
    assert table.pick("iris", None, 0.8999) == "iris-00001"
    assert table.pick("iris", None, 0.9) == "iris-00002"
    assert table.pick("iris", None, 0.99999999) == "iris-00002"
    assert table.pick("iris", "c", 0.0) == "iris-00002"
    assert table.pick("iris", "latest", 0.5) == "iris-00003"
    assert table.pick("iris", "nope", 0.5) is None and not table.has_tag("iris", "nope")
    assert table.pick("echo", None, 0.5) is None
    table.update("iris", None)
    assert table.pick("iris", None, 0.5) is None


def test_incomplete_route_serves_nothing():
    route = ResolvedRoute.build("iris", [T("iris-00001", percent=50)], None)
    assert route.pick(None, 0.1) is None


@pytest.mark.parametrize("percents", [(90, 10), (60, 30, 10), (1, 99), (34, 33, 33)])
def test_observed_split_matches_chi_square(percents):
    """Chi-square goodness of fit at alpha = 0.001 over 20k picks with a fixed seed."""
    names = [f"iris-{i:05d}" for i in range(1, len(percents) + 1)]
    route = ResolvedRoute.build("iris", [T(n, percent=p) for n, p in zip(names, percents, strict=True)], None)
    rng = random.Random(1234)
    draws = 20_000
    counts = dict.fromkeys(names, 0)
    for _ in range(draws):
        counts[route.pick(None, rng.random())] += 1
    chi2 = sum((counts[n] - draws * p / 100) ** 2 / (draws * p / 100) for n, p in zip(names, percents, strict=True))
    # critical values of chi-square at p = 0.001 for 1, 2 degrees of freedom
    critical = {1: 10.828, 2: 13.816}[len(percents) - 1]
    assert chi2 < critical, (counts, chi2)
