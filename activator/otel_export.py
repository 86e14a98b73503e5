"""OpenTelemetry export of the activator's request spans, when the `otel` extra is installed.

Each function request becomes one SERVER span with the ids the activator already gave it (activator.tracing):
its span id is the request id, its trace id the one the response's `traceparent` names, and its parent the
client's span when the client sent a `traceparent`. So a trace in Jaeger or Tempo and the platform's access log,
the replica's log lines and error bodies all name the same request.

The span is built after the response, from times the activator took anyway, and handed to the SDK's batch
processor, which exports over OTLP/HTTP from its own thread: the request path pays for no tracer, context or
exporter call, and nothing is built at all when export is off (the default). The SDK is imported only here and
only when export is asked for, so the platform runs without it.
"""

from __future__ import annotations

import importlib.util
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from activator.tracing import RequestTrace

# The packages the `otel` extra installs; checked before anything is imported, for a clear refusal.
REQUIRED_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
INSTALL_HINT = "pip install 'zeroserve[otel]'"
TRACES_PATH = "/v1/traces"


class OtelUnavailable(RuntimeError):
    """Export was asked for, and the OpenTelemetry packages are not installed."""


def missing_modules() -> list[str]:
    missing = []
    for name in REQUIRED_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:  # a parent package is missing
            missing.append(name)
    return missing


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for an endpoint given as OTEL_EXPORTER_OTLP_ENDPOINT is: a base URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def check_endpoint(endpoint: str) -> str:
    """The endpoint, or ValueError naming what is wrong with it."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the OpenTelemetry endpoint {endpoint!r} is not an http(s) URL with a host "
                         "(e.g. http://localhost:4318, the collector's OTLP/HTTP port)")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and `ps`; OTLP sends them as headers.
        raise ValueError("the OpenTelemetry endpoint must not carry credentials; set OTEL_EXPORTER_OTLP_HEADERS")
    return endpoint


class SpanExport:
    """Turns finished requests into spans and queues them for the OTLP exporter."""

    def __init__(self, processor: BatchSpanProcessor, service_name: str = "zeroserve"):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._processor = processor
        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, as users of the SDK expect; the
        # platform's name stands in only for the SDK's "unknown_service" when neither names one.
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": service_name}))
        self._resource = resource
        self._scope = InstrumentationScope("zeroserve.activator")

    @classmethod
    def to_endpoint(cls, endpoint: str, *, schedule_delay_ms: float = 1000) -> SpanExport:
        """Export over OTLP/HTTP to a collector at `endpoint` (its base URL); OtelUnavailable without the SDK."""
        missing = missing_modules()
        if missing:
            raise OtelUnavailable(f"OpenTelemetry export needs {', '.join(missing)}: {INSTALL_HINT}")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = OTLPSpanExporter(endpoint=traces_url(check_endpoint(endpoint)))
        return cls(BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_ms))

    def record(self, trace: RequestTrace, method: str, path: str, status: int, arrived: float,
               finished: float) -> None:
        """One request's span; `arrived`, `finished` and `trace.acquired` are event-loop times."""
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        end_ns = time.time_ns()
        start_ns = end_ns - int((finished - arrived) * 1e9)
        flags = TraceFlags(int(trace.flags, 16))
        context = SpanContext(int(trace.trace_id, 16), int(trace.request_id, 16), is_remote=False, trace_flags=flags)
        parent = None
        if trace.parent_span is not None:
            parent = SpanContext(int(trace.trace_id, 16), int(trace.parent_span, 16), is_remote=True,
                                 trace_flags=flags)
        attributes: dict[str, str | int | float | bool] = {
            "http.request.method": method,
            "url.path": path,
            "http.response.status_code": status,
            "zeroserve.request_id": trace.request_id.decode(),
            "zeroserve.cold_start": trace.cold_since is not None,
        }
        if trace.function:
            attributes["zeroserve.function"] = trace.function
        if trace.revision:
            attributes["zeroserve.revision"] = trace.revision
        events = []
        if trace.acquired is not None:
            queued = trace.acquired - arrived
            attributes["zeroserve.queue_ms"] = round(queued * 1000, 3)
            events.append(Event("replica acquired", timestamp=start_ns + int(queued * 1e9)))
        # Server spans: 5xx is an error of ours; 4xx is the caller's, left unset (OTel's HTTP conventions).
        span_status = Status(StatusCode.ERROR, f"HTTP {status}") if status >= 500 else Status(StatusCode.UNSET)
        name = f"{method} {trace.function}" if trace.function else method
        span = ReadableSpan(name, context=context, parent=parent, resource=self._resource, attributes=attributes,
                            events=events, kind=SpanKind.SERVER, status=span_status, start_time=start_ns,
                            end_time=end_ns, instrumentation_scope=self._scope)
        self._processor.on_end(span)

    def shutdown(self) -> None:
        """Export what is queued, then stop the exporter's thread."""
        self._processor.shutdown()
