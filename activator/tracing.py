"""Request ids and W3C Trace Context at the activator: what lets one request be followed end to end.

Every request gets an id, 16 hex digits, which is also the activator's span id in the trace: the
`traceparent` the client sent (W3C Trace Context, level 1) is continued with that span as the parent,
or a new trace starts when it sent none or one that does not parse. The replica receives both headers
(`zeroserve-request-id`, `traceparent`; whatever the client sent under those names is replaced), and
the response carries them back, so a client can quote the id and a tracing backend can join the trace.
`tracestate` passes through untouched, as the specification asks of a hop that adds nothing to it.

The cost is one random draw and two small byte formats per request (bench/activator.py).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable

REQUEST_ID_HEADER = b"zeroserve-request-id"
TRACEPARENT_HEADER = b"traceparent"
# Replaced on the way to the replica: the client's copies never reach it.
TRACE_HEADERS = frozenset({REQUEST_ID_HEADER, TRACEPARENT_HEADER})
# version-traceid-parentid-flags; version ff is invalid, and version 00 has nothing after the flags.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[!-~]*)?")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
# A trace started here is marked sampled: a handler that records spans with a parent-based sampler keeps
# them, and finds them by the trace id the response names.
_NEW_TRACE_FLAGS = b"01"

access_log = logging.getLogger("zeroserve.access")
# Takes a finished request: (trace, method, path, status, arrived, finished), times on the event loop's clock.
SpanRecorder = Callable[["RequestTrace", str, str, int, float, float], None]
_random = random.Random()  # seeded from os.urandom; ids need to be unique, not secret


class RequestTrace:
    """One request's id and trace context, and the times its access-log line and cold start are made of."""

    __slots__ = ("request_id", "trace_id", "parent_span", "flags", "headers", "function", "revision", "cold_since",
                 "acquired")

    def __init__(self, request_headers: Iterable[tuple[bytes, bytes]]):
        span = b"%016x" % (_random.getrandbits(64) or 1)  # an all-zero span id is invalid
        parent = None
        for name, value in request_headers:
            if name == TRACEPARENT_HEADER:
                parent = _parse_traceparent(value)
                break
        if parent is not None:
            trace_id, parent_span, flags = parent
        else:
            trace_id, parent_span, flags = b"%032x" % (_random.getrandbits(128) or 1), None, _NEW_TRACE_FLAGS
        self.request_id = span
        self.trace_id = trace_id
        self.parent_span = parent_span  # the client's span, this request's parent in the trace; None: a new trace
        self.flags = flags
        # Sent to the replica and echoed to the client, in this order.
        self.headers = [(REQUEST_ID_HEADER, span), (TRACEPARENT_HEADER, b"00-%s-%s-%s" % (trace_id, span, flags))]
        self.function = ""  # who answers, once routed
        self.revision = ""
        self.cold_since: float | None = None  # the clock when this request found no replica and asked for one
        self.acquired: float | None = None  # loop time a replica was acquired (only with the access log or export)


def _parse_traceparent(value: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(trace id, parent span id, flags) of a valid traceparent, else None (the trace restarts, as the spec says)."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest) or trace_id == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    # A later version's extra fields are dropped: we forward what version 00 defines.
    return trace_id, span, flags


def log_access(trace: RequestTrace, method: str, path: str, status: int, arrived: float, finished: float) -> None:
    """One line per request: who answered, how, and how long it waited for a replica (off by default)."""
    queued = 0.0 if trace.acquired is None else trace.acquired - arrived
    access_log.info(
        "request_id=%s trace_id=%s method=%s path=%s function=%s revision=%s status=%d queue_ms=%.1f "
        "duration_ms=%.1f cold=%s",
        trace.request_id.decode(), trace.trace_id.decode(), method, _printable(path), trace.function or "-",
        trace.revision or "-", status, queued * 1000, (finished - arrived) * 1000,
        "true" if trace.cold_since is not None else "false",
    )


def _printable(path: str) -> str:
    # A path with spaces or control characters must not split or forge a log line.
    return path if path.isprintable() and " " not in path else repr(path)
