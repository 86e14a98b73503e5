"""Prometheus metrics of the activator, kept as plain counters and rendered only when scraped.

The hot path does a dict increment and a bisect per request; `prometheus_client` objects (and their
locks) are built at scrape time by a custom collector that the composition root (zeroserve/up.py,
`MetricsEndpoint`) serves at /metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

# Seconds; from sub-millisecond warm hops to cold starts and long inferences.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0)


@dataclass(slots=True)
class RevisionCounters:
    responses: dict[int, int] = field(default_factory=dict)  # status code -> count
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def count_response(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1

    def observe_latency(self, seconds: float) -> None:
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


@dataclass(frozen=True, slots=True)
class RevisionGauges:
    revision: str
    counters: RevisionCounters
    queue_depth: int
    in_flight: int


class ActivatorCollector(Collector):
    """Renders the activator's counters; `rows` is read on the event loop's thread or copied first."""

    def __init__(self, rows: Callable[[], Iterable[RevisionGauges]]):
        self._rows = rows

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        rows = list(self._rows())
        requests = CounterMetricFamily(
            "zeroserve_activator_requests", "Requests answered by the activator, by revision and status code",
            labels=["revision", "code"],
        )
        queue = GaugeMetricFamily(
            "zeroserve_activator_queue_depth", "Requests waiting for a free replica", labels=["revision"]
        )
        in_flight = GaugeMetricFamily(
            "zeroserve_activator_in_flight", "Requests being proxied to a replica", labels=["revision"]
        )
        latency = HistogramMetricFamily(
            "zeroserve_activator_proxy_latency_seconds",
            "Seconds from a request's arrival to the replica's response headers, queueing included",
            labels=["revision"],
        )
        bounds = [str(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for row in rows:
            for code, count in list(row.counters.responses.items()):
                requests.add_metric([row.revision, str(code)], count)
            queue.add_metric([row.revision], row.queue_depth)
            in_flight.add_metric([row.revision], row.in_flight)
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, row.counters.latency_buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([row.revision], buckets, row.counters.latency_sum)
        yield from (requests, queue, in_flight, latency)


def registry_with(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
