"""The per-revision autoscaler the platform ticks: windows + decider + gate, driven second by second."""

from __future__ import annotations

import pytest

from autoscaler import RevisionAutoscaler, ScaleDecision
from protocol.manifest import Scaling, parse_manifest


def drive(ra: RevisionAutoscaler, start: int, end: int, concurrency: float, ready: int,
          requests: float = 0.0) -> list[ScaleDecision]:
    """Record one sample per second and tick every 2 s over [start, end), like the platform does."""
    decisions = []
    for t in range(start, end):
        ra.record(float(t), concurrency, requests)
        if t % 2 == 0:
            decisions.append(ra.tick(float(t), ready))
    return decisions


def test_scale_from_zero_by_poke_and_back_to_zero_after_window_and_grace() -> None:
    ra = RevisionAutoscaler(Scaling(initial_scale=0), now=0.0)
    assert (ra.applied, ra.last.activity) == (0, "inactive")
    ra.record(50.0, 0.0, 0)  # nothing to measure at zero: not recorded
    assert ra.stable_window.is_empty(50.0)

    poked = ra.poke(100.2)
    assert (poked.applied, poked.activity) == (1, "activating")
    assert poked.reason == "request at zero: activating 1"

    ra.record(101.0, 1.0, 1)  # the waiting request, as the activator reports it
    first = ra.tick(102.0, ready_pods=0)
    assert (first.stable_value, first.desired, first.applied, first.activity) == (1.0, 1, 1, "activating")
    ready = ra.tick(104.0, ready_pods=1)
    assert (ready.applied, ready.activity) == (1, "active")

    decisions = drive(ra, 102, 240, concurrency=0.0, ready=1)
    zero_at = next(d.at for d in decisions if d.applied == 0)
    # The sample at 101 leaves the 60 s window at 161; at 164 the revision has been active (since 104)
    # for a stable window, goes inactive, and 30 s of grace later it is scaled to zero.
    inactive_at = next(d.at for d in decisions if d.activity == "inactive")
    assert (inactive_at, zero_at) == (164.0, 194.0)
    assert "scaled to zero (grace period 30s" in next(d.reason for d in decisions if d.at == 194.0)
    assert all(d.applied == 1 for d in decisions if d.at < 194.0)


def test_steady_load_scales_to_demand_over_target() -> None:
    ra = RevisionAutoscaler(Scaling(), container_concurrency=10, now=0.0, ready_pods=1, initialized=True)
    decisions = drive(ra, 0, 120, concurrency=35.0, ready=5)  # target 10 x 70 % = 7 per replica
    last = decisions[-1]
    assert (last.desired, last.applied, last.panicking, last.stable_value) == (5, 5, False, 35.0)
    assert last.reason == "stable: demand 35 / target 7 -> 5"


def test_rps_metric_scales_on_request_counts() -> None:
    ra = RevisionAutoscaler(Scaling(metric="rps", target=10, target_utilization=100), now=0.0, ready_pods=1,
                            initialized=True)
    last = drive(ra, 0, 20, concurrency=1.0, ready=5, requests=50)[-1]
    assert (last.stable_value, last.desired) == (50.0, 5)


def test_a_burst_panics_and_never_scales_down_until_the_stable_window_passes() -> None:
    ra = RevisionAutoscaler(Scaling(), container_concurrency=10, now=0.0, ready_pods=1, initialized=True)
    drive(ra, 0, 60, concurrency=5.0, ready=1)
    burst = drive(ra, 60, 66, concurrency=100.0, ready=1)
    assert burst[-1].panicking and burst[-1].applied >= 10
    peak = burst[-1].applied
    calm = drive(ra, 66, 124, concurrency=5.0, ready=peak)
    assert all(d.panicking and d.applied == peak for d in calm)
    after = drive(ra, 124, 140, concurrency=5.0, ready=peak)
    assert not after[-1].panicking and after[-1].applied < peak


def test_unreachable_revision_ignores_min_scale() -> None:
    ra = RevisionAutoscaler(Scaling(min_scale=2), now=0.0, ready_pods=2, initialized=True)
    assert drive(ra, 0, 100, concurrency=0.0, ready=2)[-1].applied == 2
    ra.set_reachable(False)
    decisions = drive(ra, 100, 200, concurrency=0.0, ready=2)
    assert decisions[0].applied == 2  # inactive now, the replicas linger for the grace period
    assert next(d.at for d in decisions if d.applied == 0) == 130.0


def test_update_keeps_state_and_resets_windows_only_when_their_shape_changes() -> None:
    ra = RevisionAutoscaler(Scaling(), container_concurrency=10, now=0.0, ready_pods=1, initialized=True)
    drive(ra, 0, 30, concurrency=14.0, ready=2)
    windows = ra.stable_window
    ra.update(Scaling(target=5))  # same windows: samples kept; target capped by concurrency 10 -> 5 x 70 %
    assert ra.stable_window is windows and ra.decider.spec.target_value == pytest.approx(3.5)
    assert ra.tick(30.0, 2).desired == 4
    ra.update(Scaling(window="30s"))
    assert ra.stable_window is not windows and ra.stable_window.window == 30.0 and ra.panic_window.window == 3.0
    ra.update(Scaling(window="30s", metric="rps"))
    assert ra.stable_window.is_empty(30.0)
    ra.update(Scaling(window="30s", min_scale=3), container_concurrency=0)
    assert ra.gate.bounds.min_scale == 3 and ra.decider.spec.total_value == 100.0


def test_for_manifest_and_weighted_aggregation() -> None:
    m = parse_manifest({"name": "iris", "model": "m.onnx", "concurrency": 4, "scaling": {"window": "10s"}})
    ra = RevisionAutoscaler.for_manifest(m, now=0.0, aggregation="weighted-exponential", ready_pods=1,
                                         initialized=True)
    assert ra.decider.spec.total_value == 4.0 and type(ra.stable_window).__name__ == "WeightedMetricWindow"
    last = drive(ra, 0, 30, concurrency=10.0, ready=4)[-1]
    assert last.stable_value == pytest.approx(9.99, abs=0.01)  # 99.9 % of the weight in a full window


def test_first_start_decision_says_initial_scale() -> None:
    ra = RevisionAutoscaler(Scaling(initial_scale=2), now=0.0)
    assert (ra.applied, ra.last.reason, ra.last.activity) == (2, "first start: initial_scale 2", "activating")
