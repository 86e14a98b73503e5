"""ScaleHistory: rates and p95 from the activator's real counters, replicas and panic from the platform's collector."""

from __future__ import annotations

import pytest

from activator.metrics import ActivatorCollector, RevisionCounters, RevisionGauges, registry_with
from deploy.local.types import ReplicaCounters
from zeroserve.metrics import ColdStarts, PlatformCollector, RevisionScale
from zeroserve.scale_history import ScaleHistory, quantile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scale_row(revision: str, ready: int, requested: int, panicking: bool) -> RevisionScale:
    return RevisionScale(function="iris", revision=revision, metric="concurrency", desired=requested,
                         requested=requested, ready=ready, starting=0, terminating=0, panicking=panicking,
                         stable_value=0.0, panic_value=0.0, target=7.0, excess_burst_capacity=0,
                         replicas=ReplicaCounters())


def test_points_carry_rates_p95_replicas_and_panic_per_function():
    counters = {"iris-00001": RevisionCounters(), "iris-00002": RevisionCounters(), "echo-00001": RevisionCounters()}
    scale = {"iris-00001": scale_row("iris-00001", 0, 0, False), "iris-00002": scale_row("iris-00002", 0, 0, False)}
    registry = registry_with(ActivatorCollector(
        lambda: [RevisionGauges(name, c, 0, 0, name.rsplit("-", 1)[0]) for name, c in counters.items()]))
    registry.register(PlatformCollector(ColdStarts(), lambda: list(scale.values())))
    clock = Clock()
    history = ScaleHistory(registry, clock=clock)

    history.sample()
    assert history.points("iris") == []  # a rate needs two readings

    clock.now += 2.0
    for _ in range(8):  # 8 fast answers on one revision, 2 slow ones (one a 503) on the other
        counters["iris-00001"].count_response(200)
        counters["iris-00001"].observe_latency(0.004)
    for status in (200, 503):
        counters["iris-00002"].count_response(status)
        counters["iris-00002"].observe_latency(0.2)
    counters["echo-00001"].count_response(200)
    scale["iris-00001"] = scale_row("iris-00001", 1, 2, True)
    scale["iris-00002"] = scale_row("iris-00002", 1, 1, False)
    history.sample()

    [point] = history.points("iris")
    assert point.requests_per_second == pytest.approx(10 / 2.0)
    assert point.errors_per_second == pytest.approx(1 / 2.0)
    assert point.p95_ms is not None and 100 < point.p95_ms <= 250  # in the slow requests' bucket (0.1, 0.25]
    assert (point.ready, point.desired, point.panicking) == (2, 3, True)
    assert history.points("echo")[0].requests_per_second == pytest.approx(0.5)

    clock.now += 1.0
    history.sample()  # an idle second: no latency to report, the counters do not go back
    idle = history.points("iris", since=point.time)
    assert [(p.requests_per_second, p.p95_ms) for p in idle] == [(0.0, None)]
    assert history.points("nobody") == []


def test_only_the_newest_points_are_kept():
    registry = registry_with(ActivatorCollector(lambda: [RevisionGauges("a-00001", RevisionCounters(), 0, 0, "a")]))
    clock = Clock()
    history = ScaleHistory(registry, keep=3, clock=clock)
    for _ in range(6):
        history.sample()
        clock.now += 1
    assert [p.time for p in history.points("a")] == [1003.0, 1004.0, 1005.0]


@pytest.mark.parametrize(("before", "after", "expected"), [
    ({}, {0.1: 0, 1.0: 0, float("inf"): 0}, None),                     # nothing observed
    ({}, {0.1: 100, 1.0: 100, float("inf"): 100}, 0.095),              # all in the first bucket: interpolated
    ({0.1: 50, 1.0: 50, float("inf"): 50}, {0.1: 50, 1.0: 150, float("inf"): 150}, 0.955),  # only the delta counts
    ({}, {0.1: 0, 1.0: 0, float("inf"): 10}, 1.0),                     # beyond the last bound: that bound
])
def test_quantile_interpolates_like_histogram_quantile(before, after, expected):
    value = quantile(0.95, before, after)
    assert value == (None if expected is None else pytest.approx(expected))
