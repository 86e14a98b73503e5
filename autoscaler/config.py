"""From function.yaml's `scaling` block to the decider's spec and the window lengths.

Ports Knative's `ResolveMetricTarget` and `MakeDecider` (pkg/reconciler/autoscaling): the manifest speaks
in percentages and annotations, the decider in per-pod values and ratios.
"""

from __future__ import annotations

from typing import NamedTuple

from autoscaler.decider import DeciderSpec
from protocol.manifest import FunctionManifest, Scaling

# config-autoscaler defaults: container-concurrency-target-default and requests-per-second-target-default.
CONCURRENCY_TARGET_DEFAULT = 100.0
RPS_TARGET_DEFAULT = 200.0
# Knative's autoscaling.TargetMin: a smaller target would ask for absurd pod counts.
TARGET_MIN = 0.01


class WindowLengths(NamedTuple):
    stable: float  # seconds
    panic: float  # seconds, window * panic_window_percentage / 100 rounded half up, at least 1 s


def resolve_metric_target(scaling: Scaling, container_concurrency: int = 0) -> tuple[float, float]:
    """(target, total): the per-pod value to aim for and the most one pod can take."""
    if scaling.metric == "rps":
        total = RPS_TARGET_DEFAULT
    else:
        # Unlimited concurrency (0) still needs a soft target to scale on.
        total = float(container_concurrency) if container_concurrency > 0 else CONCURRENCY_TARGET_DEFAULT
    if scaling.target is not None:
        total = scaling.target
        if scaling.metric == "concurrency" and container_concurrency > 0:
            # A pod cannot be asked to hold more requests than it will accept.
            total = min(scaling.target, float(container_concurrency))
    target = max(TARGET_MIN, total * scaling.target_utilization / 100.0)
    return target, total


def window_lengths(scaling: Scaling) -> WindowLengths:
    # Scaling.panic_window owns the rounding rule; it can never exceed the stable window (percentage <= 100).
    return WindowLengths(stable=scaling.window, panic=scaling.panic_window)


def decider_spec(scaling: Scaling, container_concurrency: int = 0, reachable: bool = True) -> DeciderSpec:
    target, total = resolve_metric_target(scaling, container_concurrency)
    return DeciderSpec(
        target_value=target,
        total_value=total,
        panic_threshold=scaling.panic_threshold_percentage / 100.0,
        max_scale_up_rate=scaling.max_scale_up_rate,
        max_scale_down_rate=scaling.max_scale_down_rate,
        stable_window=scaling.window,
        target_burst_capacity=scaling.target_burst_capacity,
        activation_scale=scaling.activation_scale,
        scale_down_delay=scaling.scale_down_delay,
        reachable=reachable,
    )


def decider_spec_for(manifest: FunctionManifest, reachable: bool = True) -> DeciderSpec:
    return decider_spec(manifest.scaling, manifest.concurrency, reachable)
