"""The KPA autoscaler: Knative's algorithm as pure functions of an explicit clock.

Layers, bottom up: metric windows (`window`), the decider (`decider`), bounds and the scale-to-zero gate
(`gate`), the function.yaml translation (`config`) and the per-revision object the platform ticks
(`revision`). Nothing here reads a clock or does I/O except the `simulate` command.
"""

from autoscaler.config import (
    CONCURRENCY_TARGET_DEFAULT,
    RPS_TARGET_DEFAULT,
    WindowLengths,
    decider_spec,
    decider_spec_for,
    resolve_metric_target,
    window_lengths,
)
from autoscaler.decider import TICK_INTERVAL, Decider, DeciderSpec, Explanation, ScaleResult
from autoscaler.gate import DEFAULT_ACTIVATION_TIMEOUT, Activity, GateResult, GateSpec, ScaleBounds, ScaleGate
from autoscaler.max_window import MaxWindow
from autoscaler.revision import RevisionAutoscaler, ScaleDecision
from autoscaler.window import Aggregation, MetricWindow, WeightedMetricWindow, make_window

__all__ = [
    "CONCURRENCY_TARGET_DEFAULT", "DEFAULT_ACTIVATION_TIMEOUT", "RPS_TARGET_DEFAULT", "TICK_INTERVAL",
    "Activity", "Aggregation", "Decider", "DeciderSpec", "Explanation", "GateResult", "GateSpec", "MaxWindow",
    "MetricWindow", "RevisionAutoscaler", "ScaleBounds", "ScaleDecision", "ScaleGate", "ScaleResult",
    "WeightedMetricWindow", "WindowLengths", "decider_spec", "decider_spec_for", "make_window",
    "resolve_metric_target", "window_lengths",
]
