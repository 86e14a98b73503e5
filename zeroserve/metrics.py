"""The platform's own Prometheus metrics, besides the activator's: cold starts, the autoscaler, replicas, deploys.

Like the activator's (activator/metrics.py), they are plain numbers kept where things happen and turned
into metric families only when /metrics is scraped, by the collectors here. Names follow Knative's
where Knative has one (its autoscaler's `desired_pods`, `panic_mode`, ...), under `zeroserve_`;
docs/observability.md lists every family with its unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from activator.metrics import Histogram
from deploy.deploy_metrics import DeployMetrics
from deploy.local.types import EXIT_REASONS, ReplicaCounters

# Seconds: a forked replica of a small model answers in tens of milliseconds, a torch model in seconds.
COLD_START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
PHASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                 60.0)
# In order: waiting until a replica was asked for, the fork, the model load, until the socket accepted,
# and from then until the replica's response head (its ready report, routing and the inference).
PHASES = ("queue", "fork", "load", "listen", "first_byte")
LABELS = ["function", "revision"]


def cold_start_phases(since: float, answered: float, requested_at: float | None,
                      timings_ms: dict[str, float]) -> dict[str, float]:
    """The phases (seconds) of a cold start from `since` to `answered` served by a replica whose start was
    asked for at `requested_at` (same clock) and took `timings_ms`; empty when the replica did not say."""
    if requested_at is None or not all(name in timings_ms for name in ("fork", "load", "listen")):
        return {}
    fork, load, listen = (timings_ms[name] / 1000 for name in ("fork", "load", "listen"))
    return {"queue": max(requested_at - since, 0.0), "fork": fork, "load": load, "listen": listen,
            "first_byte": max(answered - (requested_at + fork + load + listen), 0.0)}


class ColdStarts:
    """Per revision: the cold start histogram and one per phase."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, str], Histogram] = {}
        self._phases: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, function: str, revision: str, seconds: float, phases: dict[str, float]) -> None:
        key = (function, revision)
        self._totals.setdefault(key, Histogram(COLD_START_BUCKETS)).observe(seconds)
        for phase, value in phases.items():
            self._phases.setdefault((function, revision, phase), Histogram(PHASE_BUCKETS)).observe(value)

    def families(self) -> Iterator[Metric]:
        total = HistogramMetricFamily(
            "zeroserve_cold_start_seconds",
            "Seconds from the first request that found its revision at zero replicas to its response headers",
            labels=LABELS)
        for (function, revision), histogram in list(self._totals.items()):
            total.add_metric([function, revision], histogram.cumulative(), histogram.sum)
        phases = HistogramMetricFamily(
            "zeroserve_cold_start_phase_seconds",
            "Cold starts by phase: queue (until a replica was asked for), fork, load (the model), listen "
            "(until the socket accepted), first_byte (until the replica's response headers)",
            labels=[*LABELS, "phase"])
        for (function, revision, phase), histogram in list(self._phases.items()):
            phases.add_metric([function, revision, phase], histogram.cumulative(), histogram.sum)
        yield from (total, phases)


@dataclass(frozen=True)
class RevisionScale:
    """One revision as the autoscaler and the supervisor see it, at scrape time."""

    function: str
    revision: str
    metric: str                  # "concurrency" or "rps"
    desired: int                 # the decider's wish
    requested: int               # what the supervisor was asked to run
    ready: int
    starting: int
    terminating: int
    panicking: bool
    stable_value: float
    panic_value: float
    target: float                # per replica, utilization applied
    excess_burst_capacity: int
    replicas: ReplicaCounters


class PlatformCollector(Collector):
    """Cold starts, the autoscaler's view of each revision and its replicas' starts and exits."""

    def __init__(self, cold_starts: ColdStarts, rows: Callable[[], Iterable[RevisionScale]]):
        self._cold_starts = cold_starts
        self._rows = rows

    def collect(self) -> Iterator[Metric]:
        yield from self._cold_starts.families()
        rows = list(self._rows())
        yield from _autoscaler_families(rows)
        yield from _replica_families(rows)


def _gauge(name: str, help_text: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"zeroserve_autoscaler_{name}", help_text, labels=LABELS)


def _autoscaler_families(rows: list[RevisionScale]) -> Iterator[Metric]:
    gauges = {
        "desired_pods": _gauge("desired_pods", "Replicas the autoscaler's decider wants (Knative: desired_pods)"),
        "requested_pods": _gauge("requested_pods", "Replicas asked of the supervisor, after the scale bounds and "
                                                   "the scale-to-zero gate (Knative: requested_pods)"),
        "actual_pods": _gauge("actual_pods", "Ready replicas (Knative: actual_pods)"),
        "not_ready_pods": _gauge("not_ready_pods", "Replicas starting, not ready yet (Knative: not_ready_pods)"),
        "terminating_pods": _gauge("terminating_pods", "Replicas draining or stopping (Knative: terminating_pods)"),
        "panic_mode": _gauge("panic_mode", "1 while the autoscaler is in panic mode, else 0"),
        "excess_burst_capacity": _gauge("excess_burst_capacity", "Spare capacity beyond target_burst_capacity; "
                                                                 "negative: the activator stays in the path"),
    }
    by_metric = {
        "concurrency": (_gauge("stable_request_concurrency", "Average requests in flight over the stable window"),
                        _gauge("panic_request_concurrency", "Average requests in flight over the panic window"),
                        _gauge("target_concurrency_per_pod", "Requests in flight per replica the autoscaler aims "
                                                             "for (target x target_utilization)")),
        "rps": (_gauge("stable_requests_per_second", "Requests per second over the stable window"),
                _gauge("panic_requests_per_second", "Requests per second over the panic window"),
                _gauge("target_requests_per_second", "Requests per second per replica the autoscaler aims for")),
    }
    for row in rows:
        names = [row.function, row.revision]
        for key, value in (("desired_pods", row.desired), ("requested_pods", row.requested),
                           ("actual_pods", row.ready), ("not_ready_pods", row.starting),
                           ("terminating_pods", row.terminating), ("panic_mode", int(row.panicking)),
                           ("excess_burst_capacity", row.excess_burst_capacity)):
            gauges[key].add_metric(names, value)
        stable, panic, target = by_metric["rps" if row.metric == "rps" else "concurrency"]
        stable.add_metric(names, row.stable_value)
        panic.add_metric(names, row.panic_value)
        target.add_metric(names, row.target)
    yield from gauges.values()
    for families in by_metric.values():
        yield from families


def _replica_families(rows: list[RevisionScale]) -> Iterator[Metric]:
    started = CounterMetricFamily("zeroserve_replicas_started", "Replica starts asked for (each ends in one exit)",
                                  labels=LABELS)
    exited = CounterMetricFamily(
        "zeroserve_replicas_exited",
        "Replicas that ended, by reason: scale_down (asked to stop, or called off while starting), crash, "
        "out_of_memory, start_failure", labels=[*LABELS, "reason"])
    restarts = CounterMetricFamily("zeroserve_replica_restarts",
                                   "Replicas replaced after a crash or a failed start", labels=LABELS)
    for row in rows:
        names = [row.function, row.revision]
        started.add_metric(names, row.replicas.started)
        for reason in EXIT_REASONS:
            exited.add_metric([*names, reason], row.replicas.exited.get(reason, 0))
        restarts.add_metric(names, row.replicas.restarts)
    yield from (started, exited, restarts)


class DeployCollector(Collector):
    """Builds and deploys by outcome: histograms of their duration (`_count`: how many)."""

    def __init__(self, metrics: DeployMetrics):
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        builds, deploys = self._metrics.snapshot()
        for name, help_text, by_outcome in (
            ("zeroserve_build_duration_seconds", "Builds (manifest, files, smoke test, digest, store) by outcome: "
                                                 "succeeded or failed", builds),
            ("zeroserve_deploy_duration_seconds", "Deploys, build included, by outcome: created, unchanged or "
                                                  "failed", deploys),
        ):
            family = HistogramMetricFamily(name, help_text, labels=["outcome"])
            for outcome, histogram in by_outcome.items():
                family.add_metric([outcome], histogram.cumulative(), histogram.sum)
            yield family


class WarmTemplateCollector(Collector):
    """The supervisor's warm templates (docs/supervisor.md): how many, the memory they hold, hits and misses."""

    def __init__(self, status: Callable[[], dict[str, Any]]):
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        for name, help_text, value in (
                ("warm_templates", "Warm templates ready to fork replicas", status["count"]),
                ("warm_template_bytes", "Memory the warm templates hold of their own (not shared with the zygote)",
                 status["bytes"]),
                ("warm_template_budget_bytes", "What they may hold in all (--warm-templates-memory)",
                 status["budget_bytes"])):
            yield GaugeMetricFamily(f"zeroserve_{name}", help_text, value=value)
        for name, help_text, value in (
                ("warm_template_hits", "Replica starts forked from a warm template", status["hits"]),
                ("warm_template_misses", "Replica starts that found no warm template ready", status["misses"]),
                ("warm_template_evictions", "Warm templates stopped to stay within the budget", status["evictions"])):
            yield CounterMetricFamily(f"zeroserve_{name}", help_text, value=value)
