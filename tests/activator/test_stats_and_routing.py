"""Time-weighted concurrency (injected clock), Host/path routing, tag resolution, metrics rendering."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from activator.contracts import RevisionStats
from activator.metrics import ActivatorCollector, RevisionCounters, RevisionGauges, registry_with
from activator.routing import RouteError, host_label, resolve_label, target_of
from activator.stats import ConcurrencyMeter

# -- ConcurrencyMeter -----------------------------------------------------------------------


def test_average_is_the_time_weighted_integral():
    meter = ConcurrencyMeter(now=100.0)
    meter.arrive(100.0)   # 1 in flight for 0.5 s
    meter.arrive(100.5)   # 2 in flight for 0.25 s
    meter.depart(100.75)  # 1 in flight for 0.25 s
    meter.depart(101.0)
    assert meter.collect(101.0) == RevisionStats(average_concurrency=1.25, request_count=2)


def test_collect_resets_the_interval_and_carries_ongoing_requests():
    meter = ConcurrencyMeter(now=0.0)
    for _ in range(3):
        meter.arrive(0.0)
    assert meter.collect(2.0) == RevisionStats(3.0, 3)
    meter.depart(3.0)  # 3 for 1 s, then 2 for 1 s
    assert meter.collect(4.0) == RevisionStats(2.5, 0)
    assert meter.collect(5.0) == RevisionStats(2.0, 0)


def test_idle_interval_reports_zero_and_empty_interval_reports_current():
    meter = ConcurrencyMeter(now=0.0)
    assert meter.collect(1.0) == RevisionStats(0.0, 0)
    meter.arrive(1.0)
    assert meter.collect(1.0) == RevisionStats(1.0, 1)


def test_a_stale_timestamp_never_adds_negative_area():
    meter = ConcurrencyMeter(now=10.0)
    meter.arrive(10.0)
    meter.depart(9.0)  # earlier than the last event
    assert meter.collect(12.0).average_concurrency == pytest.approx(0.0)


# -- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "domain", "label"), [
    (b"iris.localhost", "localhost", "iris"),
    (b"iris.localhost:8080", "localhost", "iris"),
    (b"IRIS.LocalHost:8080", "localhost", "iris"),
    (b"canary-iris.localhost", "localhost", "canary-iris"),
    (b"iris.fn.example.com", "fn.example.com", "iris"),
    (b"iris.localhost.", "localhost", "iris"),
    (b"localhost:8080", "localhost", None),
    (b"127.0.0.1:8080", "localhost", None),
    (b"a.b.localhost", "localhost", None),
    (b"[::1]:8080", "localhost", None),
    (b"iris.example.com", "localhost", None),
    (b"", "localhost", None),
])
def test_host_label(host, domain, label):
    assert host_label(host, domain) == label


def scope(path: bytes, host: bytes = b"127.0.0.1:8080") -> dict:
    return {"type": "http", "path": path.decode(), "raw_path": path, "headers": [(b"host", host)]}


@pytest.mark.parametrize(("path", "host", "label", "forwarded", "prefix"), [
    (b"/fn/iris/v2/models/iris/infer", b"127.0.0.1", "iris", b"/v2/models/iris/infer", b"/fn/iris"),
    (b"/fn/iris", b"127.0.0.1", "iris", b"/", b"/fn/iris"),
    (b"/fn/iris/", b"127.0.0.1", "iris", b"/", b"/fn/iris"),
    (b"/fn/canary-iris/v2", b"127.0.0.1", "canary-iris", b"/v2", b"/fn/canary-iris"),
    (b"/fn/ir%69s/a%2Fb", b"127.0.0.1", "iris", b"/a%2Fb", b"/fn/ir%69s"),
    (b"/v2/models/iris", b"iris.localhost:8080", "iris", b"/v2/models/iris", b""),
    (b"/fn/other/x", b"iris.localhost", "iris", b"/fn/other/x", b""),  # a function host owns every path
])
def test_target_of(path, host, label, forwarded, prefix):
    target = target_of(scope(path, host), "localhost")
    assert (target.label, target.raw_path, target.prefix) == (label, forwarded, prefix)


@pytest.mark.parametrize("path", [b"/fn/", b"/fn//x", b"/api/v1/functions", b"/"])
def test_target_of_refuses_requests_naming_no_function(path):
    with pytest.raises(RouteError) as error:
        target_of(scope(path), "localhost")
    assert error.value.status == 404 and "function" in error.value.message


class Routes:
    def __init__(self, functions: dict[str, set[str]]):
        self.functions = functions

    def has_function(self, function: str) -> bool:
        return function in self.functions

    def has_tag(self, function: str, tag: str) -> bool:
        return tag in self.functions.get(function, set())


@pytest.mark.parametrize(("label", "expected"), [
    ("iris", ("iris", None)),
    ("canary-iris", ("iris", "canary")),
    ("canary-my-model", ("my-model", "canary")),
    ("v2-beta-my-model", ("my-model", "v2-beta")),
    ("shadow-iris", ("shadow-iris", None)),  # an existing function of exactly that name wins
])
def test_resolve_label(label, expected):
    routes = Routes({"iris": {"canary"}, "my-model": {"canary", "v2-beta"}, "shadow-iris": set()})
    assert resolve_label(routes, label) == expected


@pytest.mark.parametrize(("label", "message"), [
    ("nope", "function 'nope' not found"),
    ("canary-nope", "function 'canary-nope' not found"),
    ("blue-iris", "tag 'blue' not found for function 'iris'"),
])
def test_resolve_label_names_what_is_missing(label, message):
    with pytest.raises(RouteError) as error:
        resolve_label(Routes({"iris": {"canary"}}), label)
    assert error.value.status == 404 and error.value.message == message


# -- metrics rendering -----------------------------------------------------------------------


def test_metrics_render_counters_gauges_and_histogram():
    counters = RevisionCounters()
    for status in (200, 200, 503):
        counters.count_response(status)
    counters.observe_latency(0.0004)
    counters.observe_latency(0.2)
    registry = registry_with(ActivatorCollector(lambda: [RevisionGauges("iris-00001", counters, 4, 2, "iris")]))
    text = generate_latest(registry).decode()
    assert 'zeroserve_activator_requests_total{code="200",function="iris",revision="iris-00001"} 2.0' in text
    assert 'zeroserve_activator_requests_total{code="503",function="iris",revision="iris-00001"} 1.0' in text
    assert 'zeroserve_activator_queue_depth{function="iris",revision="iris-00001"} 4.0' in text
    assert 'zeroserve_activator_in_flight{function="iris",revision="iris-00001"} 2.0' in text
    assert ('zeroserve_activator_proxy_latency_seconds_bucket{function="iris",le="0.0005",revision="iris-00001"} 1.0'
            in text)
    assert ('zeroserve_activator_proxy_latency_seconds_bucket{function="iris",le="0.25",revision="iris-00001"} 2.0'
            in text)
    assert 'zeroserve_activator_proxy_latency_seconds_count{function="iris",revision="iris-00001"} 2.0' in text
