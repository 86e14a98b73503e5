"""The request a replica is serving: its id and W3C traceparent, for handlers and for log lines.

The activator sends `zeroserve-request-id` and `traceparent` with every request (activator.tracing);
the runtime keeps them in context variables for the request's life, including while the model runs in
its thread, so a handler can read them:

    from functions.request_context import request_id, traceparent

    def predict(self, inputs):
        print("scoring", len(inputs["x"]))      # the platform's log capture tags this line with the id
        call_feature_store(headers={"traceparent": traceparent()})

In a replica the platform starts, stdout and stderr are `TaggedStream`s: a line written while a request
is being served starts with `TAG_START + id + TAG_END`, which the log capture
(deploy/local/replica_logs.py) takes off and keeps as the line's request id. A batch of several
requests runs with their ids joined by commas.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any, TextIO

REQUEST_ID_HEADER = b"zeroserve-request-id"
TRACEPARENT_HEADER = b"traceparent"
# Record and unit separators: no text a handler prints by accident starts with them.
TAG_START = "\x1e"
TAG_END = "\x1f"
# What a request id may be (the activator's are 16 hex digits); anything else in the header is ignored,
# so a client of a runtime served alone (`zeroserve serve`) cannot put text into log lines or bodies.
_REQUEST_ID = re.compile(rb"[0-9A-Za-z._-]{1,64}")
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

_request_id: ContextVar[str | None] = ContextVar("zeroserve_request_id", default=None)
_traceparent: ContextVar[str | None] = ContextVar("zeroserve_traceparent", default=None)


def request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return _request_id.get()


def traceparent() -> str | None:
    """The W3C traceparent of the request being served, the activator's span as parent (None outside one)."""
    return _traceparent.get()


def enter_request(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """Take the request's id and traceparent from its headers into this context; returns the id, if any."""
    found_id = found_parent = None
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            found_id = value
        elif name == TRACEPARENT_HEADER:
            found_parent = value
    if found_id is not None and _REQUEST_ID.fullmatch(found_id):
        _request_id.set(found_id.decode("ascii"))
    else:
        found_id = None
    if found_parent is not None and _TRACEPARENT.fullmatch(found_parent):
        _traceparent.set(found_parent.decode("ascii"))
    return found_id


def set_batch(ids: list[str | None], parents: list[str | None]) -> None:
    """In the batcher's task: the batch about to run carries these requests' ids (a lone one: its parent too)."""
    known = [i for i in ids if i]
    _request_id.set(",".join(known) if known else None)
    _traceparent.set(parents[0] if len(parents) == 1 else None)


class TaggedStream:
    """A text stream that starts each line written during a request with the request's id, tagged."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._at_line_start = True

    def write(self, text: str) -> int:
        if not text:
            return 0
        written = len(text)
        rid = _request_id.get()
        if rid is not None:
            tag = f"{TAG_START}{rid}{TAG_END}"
            tagged = text.replace("\n", "\n" + tag)
            if tagged.endswith(tag):  # a tag belongs to the next line, written when it is
                tagged = tagged[: -len(tag)]
            text = (tag + tagged) if self._at_line_start else tagged
        self._at_line_start = text.endswith("\n")
        self._stream.write(text)
        return written

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer...
        return getattr(self._stream, name)
