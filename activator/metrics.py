"""Prometheus metrics of the activator, kept as plain counters and rendered only when scraped.

The hot path does a dict increment and a bisect per request; `prometheus_client` objects (and their
locks) are built at scrape time by a custom collector that the composition root (zeroserve/up.py,
`MetricsEndpoint`) serves at /metrics. `Histogram` is the plain histogram the platform's other
collectors (zeroserve/metrics.py) keep too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

# Seconds; from sub-millisecond warm hops to cold starts and long inferences.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0)
# Why the activator answered a request itself instead of a replica (all 503 but `timeout`, a 504).
REJECTION_REASONS = ("queue_full", "timeout", "start_failed", "shutting_down")


class Histogram:
    """Counts per bucket (upper bounds `bounds`, then +Inf) and the sum of what was observed."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs as `HistogramMetricFamily.add_metric` takes them."""
        total, buckets = 0, list[tuple[str, float]]()
        for bound, count in zip([*(str(b) for b in self.bounds), "+Inf"], list(self.counts), strict=True):
            total += count
            buckets.append((bound, total))
        return buckets


@dataclass(slots=True)
class RevisionCounters:
    responses: dict[int, int] = field(default_factory=dict)  # status code -> count
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    rejections: dict[str, int] = field(default_factory=dict)  # one of REJECTION_REASONS -> count

    def count_response(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1

    def observe_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def count_rejection(self, reason: str) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class RevisionGauges:
    revision: str
    counters: RevisionCounters
    queue_depth: int
    in_flight: int
    function: str = ""


class ActivatorCollector(Collector):
    """Renders the activator's counters; `rows` is read on the event loop's thread or copied first."""

    def __init__(self, rows: Callable[[], Iterable[RevisionGauges]]):
        self._rows = rows

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        rows = list(self._rows())
        labels = ["function", "revision"]
        requests = CounterMetricFamily(
            "zeroserve_activator_requests", "Requests answered by the activator, by revision and status code",
            labels=[*labels, "code"],
        )
        rejected = CounterMetricFamily(
            "zeroserve_activator_rejected_requests",
            "Requests the activator answered itself: queue_full (503, the queue was at queue_limit), timeout "
            "(504, no free replica within timeout_seconds), start_failed (503, the revision could not start), "
            "shutting_down (503)",
            labels=[*labels, "reason"],
        )
        queue = GaugeMetricFamily(
            "zeroserve_activator_queue_depth", "Requests waiting for a free replica", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "zeroserve_activator_in_flight", "Requests being proxied to a replica", labels=labels
        )
        latency = HistogramMetricFamily(
            "zeroserve_activator_proxy_latency_seconds",
            "Seconds from a request's arrival to the replica's response headers, queueing included",
            labels=labels,
        )
        for row in rows:
            names = [row.function, row.revision]
            for code, count in list(row.counters.responses.items()):
                requests.add_metric([*names, str(code)], count)
            for reason in REJECTION_REASONS:
                rejected.add_metric([*names, reason], row.counters.rejections.get(reason, 0))
            queue.add_metric(names, row.queue_depth)
            in_flight.add_metric(names, row.in_flight)
            latency.add_metric(names, row.counters.latency.cumulative(), row.counters.latency.sum)
        yield from (requests, rejected, queue, in_flight, latency)


def registry_with(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
