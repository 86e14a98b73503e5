"""OpenTelemetry export (issue 15): a real `zeroserve up --otel-endpoint` sends each function request as a span over
OTLP/HTTP to a collector (here a real HTTP server in the test that decodes what the SDK's exporter posts), with the
ids the response names; without the `otel` extra the setting is refused, naming the extra."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.observability.test_observability import TRACEPARENT, body, traced_function
from tests.zeroserve.control.harness import REPO
from tests.zeroserve.platform.conftest import Platform, stop_leaving_nothing, wait_for

trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2",
                                    reason="the otel extra (opentelemetry-exporter-otlp-proto-http) is not installed")


class Collector:
    """An OTLP/HTTP traces receiver on 127.0.0.1: keeps every span it is sent, keyed by its span id (hex)."""

    def __init__(self) -> None:
        self.spans: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = trace_service.ExportTraceServiceRequest()
                request.ParseFromString(data)
                with collector.lock:
                    for resource_spans in request.resource_spans:
                        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                collector.spans[span.span_id.hex()] = {
                                    "path": self.path, "name": span.name, "trace_id": span.trace_id.hex(),
                                    "parent": span.parent_span_id.hex(), "kind": span.kind,
                                    "status": span.status.code, "resource": resource,
                                    "duration_ns": span.end_time_unix_nano - span.start_time_unix_nano,
                                    "events": [e.name for e in span.events],
                                    "attributes": {a.key: _value(a.value) for a in span.attributes}}
                answer = trace_service.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def span(self, span_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.spans.get(span_id)


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


def test_each_request_is_exported_as_a_span_with_the_ids_the_response_names(tmp_path: Path, collector: Collector):
    platform = Platform(tmp_path / "data", {"ZEROSERVE_OTEL_ENDPOINT": collector.url,
                                            "OTEL_SERVICE_NAME": "zeroserve-test"}).start()
    try:
        # At zero from the start: the first request is a cold start.
        platform.deploy(traced_function(tmp_path, "traced", scaling={"initial_scale": 0}))
        url = platform.fn_url("traced", "v2/models/traced/infer")

        cold = httpx.post(url, json=body(1), headers={"traceparent": TRACEPARENT}, timeout=60)
        assert cold.status_code == 200, cold.text
        span = wait_for(lambda: collector.span(cold.headers["zeroserve-request-id"]), "the cold request's span")
        # The client's trace goes on: same trace id, the client's span as parent, the request id as span id.
        assert span["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert span["parent"] == "b7ad6b7169203331"
        assert span["path"] == "/v1/traces"
        assert span["name"] == "POST traced"
        assert span["kind"] == 2  # SPAN_KIND_SERVER
        assert span["resource"]["service.name"] == "zeroserve-test"  # OTEL_SERVICE_NAME applies
        attributes = span["attributes"]
        assert attributes["zeroserve.function"] == "traced"
        assert attributes["zeroserve.revision"] == "traced-00001"
        assert attributes["http.response.status_code"] == 200
        assert attributes["zeroserve.cold_start"] is True
        assert attributes["zeroserve.queue_ms"] > 0
        assert span["events"] == ["replica acquired"]
        assert span["duration_ns"] > 1_000_000  # the handler sleeps 1 ms

        # No traceparent: a new trace, with no parent; the echoed traceparent names it.
        fresh = httpx.post(url, json=body(1), timeout=60)
        span = wait_for(lambda: collector.span(fresh.headers["zeroserve-request-id"]), "the warm request's span")
        assert fresh.headers["traceparent"].split("-")[1] == span["trace_id"]
        assert span["parent"] == ""
        assert span["attributes"]["zeroserve.cold_start"] is False

        # A 404 of ours is the caller's error: exported, status left unset (not ERROR).
        missing = httpx.post(platform.fn_url("nothing-here", "v2/models/x/infer"), json=body(1), timeout=30)
        assert missing.status_code == 404
        span = wait_for(lambda: collector.span(missing.headers["zeroserve-request-id"]), "the 404's span")
        assert span["status"] == 0 and span["attributes"]["http.response.status_code"] == 404

        # A caller that chose not to sample: nothing exported for it, while a sampled request after it is.
        unsampled = httpx.post(url, json=body(1), timeout=60,
                               headers={"traceparent": "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00"})
        sampled = httpx.post(url, json=body(1), timeout=60, headers={"traceparent": TRACEPARENT})
        wait_for(lambda: collector.span(sampled.headers["zeroserve-request-id"]), "the sampled request's span")
        assert collector.span(unsampled.headers["zeroserve-request-id"]) is None
    finally:
        stop_leaving_nothing([platform])


def test_otel_endpoint_is_checked_and_refused_without_the_extra(tmp_path: Path):
    # Settings refuse a bad endpoint, naming the setting; the OTLP packages made unimportable in a child
    # interpreter stand for a machine without the extra.
    check = """
import sys
from zeroserve.settings import Settings, SettingsError
for env in ({"ZEROSERVE_OTEL_ENDPOINT": "localhost:4318"},
            {"ZEROSERVE_OTEL_ENDPOINT": "http://user:secret@localhost:4318"}):
    try:
        Settings.load(env)
    except SettingsError as exc:
        print("REFUSED", exc)
sys.modules["opentelemetry.exporter"] = None  # an import of it now fails, as without the extra
try:
    Settings.load({"ZEROSERVE_OTEL_ENDPOINT": "http://localhost:4318"})
except SettingsError as exc:
    print("REFUSED", exc)
"""
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    refusals = [line for line in result.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refusals) == 3, result.stdout
    assert "ZEROSERVE_OTEL_ENDPOINT" in refusals[0] and "not an http(s) URL" in refusals[0]
    assert "credentials" in refusals[1] and "secret" not in refusals[1]
    assert "pip install 'zeroserve[otel]'" in refusals[2]
