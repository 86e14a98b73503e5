"""function.yaml `scaling` -> DeciderSpec and windows; invalid configs refused with Knative's ranges."""

from __future__ import annotations

import pytest

from autoscaler import DeciderSpec, decider_spec, decider_spec_for, resolve_metric_target, window_lengths
from protocol.manifest import ManifestError, Scaling, parse_manifest


def manifest(scaling: dict | None = None, **top: object) -> dict:
    return {"name": "iris", "model": "model.onnx", "scaling": scaling or {}, **top}


@pytest.mark.parametrize(
    "scaling, concurrency, target, total",
    [
        ({}, 0, 70.0, 100.0),  # container-concurrency-target-default 100 at 70 %
        ({}, 10, 7.0, 10.0),  # containerConcurrency is the per-pod total
        ({"target": 50}, 0, 35.0, 50.0),
        ({"target": 50}, 10, 7.0, 10.0),  # target capped by containerConcurrency
        ({"target": 5}, 10, 3.5, 5.0),
        ({"target_utilization": 100}, 10, 10.0, 10.0),
        ({"metric": "rps"}, 0, 140.0, 200.0),  # requests-per-second-target-default 200
        ({"metric": "rps", "target": 500}, 10, 350.0, 500.0),  # rps is not capped by concurrency
        ({"metric": "rps", "target": 50, "target_utilization": 50}, 0, 25.0, 50.0),
        ({"target": 0.01, "target_utilization": 1}, 0, 0.01, 0.01),  # never below Knative's TargetMin
    ],
)
def test_metric_target_follows_knative(scaling: dict, concurrency: int, target: float, total: float) -> None:
    parsed = parse_manifest(manifest(scaling, concurrency=concurrency))
    assert resolve_metric_target(parsed.scaling, parsed.concurrency) == pytest.approx((target, total))


def test_default_decider_spec() -> None:
    spec = decider_spec(Scaling())
    assert spec == DeciderSpec(target_value=70.0, total_value=100.0, panic_threshold=2.0, max_scale_up_rate=1000.0,
                               max_scale_down_rate=2.0, stable_window=60.0, target_burst_capacity=211.0,
                               activation_scale=1, scale_down_delay=0.0, reachable=True)


def test_decider_spec_carries_every_knob() -> None:
    parsed = parse_manifest(manifest({
        "window": "2m", "panic_threshold_percentage": 350, "max_scale_up_rate": 3, "max_scale_down_rate": 4,
        "target_burst_capacity": -1, "activation_scale": 2, "scale_down_delay": "15s", "target": 20,
    }, concurrency=8))
    spec = decider_spec_for(parsed, reachable=False)
    assert (spec.stable_window, spec.panic_threshold, spec.max_scale_up_rate, spec.max_scale_down_rate) == (
        120.0, 3.5, 3.0, 4.0)
    assert (spec.target_burst_capacity, spec.activation_scale, spec.scale_down_delay, spec.reachable) == (
        -1.0, 2, 15.0, False)
    assert (spec.target_value, spec.total_value) == pytest.approx((5.6, 8.0))


@pytest.mark.parametrize(
    "window, percentage, stable, panic",
    [
        ("60s", 10, 60.0, 6.0),
        ("25s", 10, 25.0, 3.0),  # 2.5 s rounds half up, like Go's Duration.Round (Python's round gives 2)
        ("15s", 10, 15.0, 2.0),
        ("6s", 1, 6.0, 1.0),  # 0.06 s: at least one second
        ("1h", 100, 3600.0, 3600.0),
        ("7s", 50, 7.0, 4.0),
    ],
)
def test_window_lengths(window: str, percentage: float, stable: float, panic: float) -> None:
    scaling = parse_manifest(manifest({"window": window, "panic_window_percentage": percentage})).scaling
    assert window_lengths(scaling) == (stable, panic)
    assert scaling.panic_window == panic


@pytest.mark.parametrize(
    "scaling, message",
    [
        ({"window": "5s"}, "scaling.window: must be between 6s and 1h (got 5s)"),
        ({"window": "61m"}, "scaling.window: must be between 6s and 1h (got 61m)"),
        ({"window": "6500ms"}, "scaling.window: must be a whole number of seconds (got 6500ms)"),
        ({"window": "soon"}, "scaling.window: 'soon' is not a duration"),
        ({"panic_window_percentage": 0.5}, "scaling.panic_window_percentage: must be between 1 and 100"),
        ({"panic_window_percentage": 101}, "scaling.panic_window_percentage: must be between 1 and 100"),
        ({"panic_threshold_percentage": 109}, "scaling.panic_threshold_percentage: must be between 110 and 1000"),
        ({"panic_threshold_percentage": 1001}, "scaling.panic_threshold_percentage: must be between 110 and 1000"),
        ({"max_scale_up_rate": 1}, "scaling.max_scale_up_rate: must be greater than 1 (got 1)"),
        ({"max_scale_down_rate": 0.5}, "scaling.max_scale_down_rate: must be greater than 1 (got 0.5)"),
        ({"min_scale": 3, "max_scale": 2}, "scaling.min_scale: must be <= scaling.max_scale (3 > 2)"),
        ({"min_scale": -1}, "scaling.min_scale: must be >= 0"),
        ({"max_scale": -1}, "scaling.max_scale: must be >= 0"),
        ({"initial_scale": 4, "max_scale": 2}, "scaling.initial_scale: must be <= scaling.max_scale (4 > 2)"),
        ({"initial_scale": -1}, "scaling.initial_scale: must be >= 0"),
        ({"activation_scale": 0}, "scaling.activation_scale: must be at least 2 (got 0"),
        ({"activation_scale": -3}, "scaling.activation_scale: must be at least 2 (got -3"),
        ({"activation_scale": 5, "max_scale": 3}, "scaling.activation_scale: must be <= scaling.max_scale (5 > 3)"),
        ({"target": 0.001}, "scaling.target: must be at least 0.01"),
        ({"target_utilization": 0}, "scaling.target_utilization: must be between 1 and 100"),
        ({"target_utilization": 120}, "scaling.target_utilization: must be between 1 and 100"),
        ({"scale_down_delay": -1}, "scaling.scale_down_delay: must be between 0s and 1h (got -1s)"),
        ({"scale_down_delay": "2h"}, "scaling.scale_down_delay: must be between 0s and 1h (got 2h)"),
        ({"scale_down_delay": "1500ms"}, "scaling.scale_down_delay: must be a whole number of seconds"),
        ({"scale_to_zero_grace_period": 0}, "scaling.scale_to_zero_grace_period: must be positive"),
        ({"scale_to_zero_retention": -1}, "scaling.scale_to_zero_retention: must be between 0s and 1h"),
        ({"scale_to_zero_retention": "90m"}, "scaling.scale_to_zero_retention: must be between 0s and 1h"),
        ({"target_burst_capacity": -2}, "scaling.target_burst_capacity: must be -1 (unlimited) or at least 0"),
        ({"metric": "cpu"}, "scaling.metric: must be one of"),
        ({"max_scale_up_rate": "nan"}, "scaling.max_scale_up_rate: input should be a finite number"),
        ({"target": float("inf")}, "scaling.target: input should be a finite number"),
        ({"scale_to_zero_grace_period": "inf"}, "scaling.scale_to_zero_grace_period: input should be a finite"),
        ({"panic_window": 10}, "scaling.panic_window: unknown key"),
    ],
)
def test_invalid_scaling_is_refused_naming_key_and_rule(scaling: dict, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(manifest(scaling))
    assert any(problem.startswith(message) for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "scaling",
    [
        {"window": "6s"}, {"window": "1h"}, {"panic_window_percentage": 1}, {"panic_window_percentage": 100},
        {"panic_threshold_percentage": 110}, {"panic_threshold_percentage": 1000}, {"max_scale_up_rate": 1.01},
        {"target_burst_capacity": -1}, {"target_burst_capacity": 0}, {"activation_scale": 2},
        {"min_scale": 2, "max_scale": 2}, {"initial_scale": 0}, {"scale_down_delay": "1h"},
        {"scale_to_zero_retention": "1h"}, {"metric": "rps", "target": 0.01},
    ],
)
def test_boundary_values_are_accepted(scaling: dict) -> None:
    parse_manifest(manifest(scaling))
