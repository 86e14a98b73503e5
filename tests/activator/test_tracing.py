"""Request ids and W3C traceparent at the activator (activator/tracing.py), and its access-log line."""

from __future__ import annotations

import logging
import re

import pytest

from activator.tracing import RequestTrace, log_access

PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def sent(trace: RequestTrace) -> dict[bytes, bytes]:
    return dict(trace.headers)


def test_a_valid_traceparent_is_continued_with_the_request_id_as_the_span():
    trace = RequestTrace([(b"host", b"iris.localhost"), (b"traceparent", PARENT)])
    assert re.fullmatch(rb"[0-9a-f]{16}", trace.request_id)
    assert trace.trace_id == b"0af7651916cd43dd8448eb211c80319c"
    assert sent(trace) == {b"zeroserve-request-id": trace.request_id,
                           b"traceparent": b"00-0af7651916cd43dd8448eb211c80319c-" + trace.request_id + b"-01"}


@pytest.mark.parametrize("value", [
    b"00-00000000000000000000000000000000-b7ad6b7169203331-01",   # all-zero trace id
    b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",   # all-zero parent
    b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   # version ff is invalid
    b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",   # upper case
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",  # version 00 ends at the flags
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",     # short parent
    b"garbage",
])
def test_an_invalid_traceparent_starts_a_new_trace(value):
    trace = RequestTrace([(b"traceparent", value)])
    assert trace.trace_id not in value and re.fullmatch(rb"[0-9a-f]{32}", trace.trace_id)
    assert sent(trace)[b"traceparent"] == b"00-" + trace.trace_id + b"-" + trace.request_id + b"-01"


def test_a_later_version_is_read_for_what_version_00_defines():
    trace = RequestTrace([(b"traceparent", b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra")])
    assert sent(trace)[b"traceparent"] == b"00-0af7651916cd43dd8448eb211c80319c-" + trace.request_id + b"-00"


def test_no_traceparent_starts_a_sampled_trace_and_ids_differ_per_request():
    traces = [RequestTrace([]) for _ in range(1000)]
    assert len({t.request_id for t in traces}) == 1000 and len({t.trace_id for t in traces}) == 1000
    assert all(sent(t)[b"traceparent"].endswith(b"-01") for t in traces)


def test_the_access_log_line_names_the_request_revision_status_and_times(caplog):
    trace = RequestTrace([(b"traceparent", PARENT)])
    trace.function, trace.revision, trace.acquired, trace.cold_since = "iris", "iris-00001", 10.25, 9.0
    with caplog.at_level(logging.INFO, logger="zeroserve.access"):
        log_access(trace, "POST", "/v2/models/iris/infer\nforged=1", 200, 10.0, 10.5)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (f"request_id={trace.request_id.decode()} trace_id=0af7651916cd43dd8448eb211c80319c "
                    "method=POST path='/v2/models/iris/infer\\nforged=1' function=iris revision=iris-00001 "
                    "status=200 queue_ms=250.0 duration_ms=500.0 cold=true")
