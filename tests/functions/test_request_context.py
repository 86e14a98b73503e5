"""The runtime's request context (functions/request_context.py): ids from headers, and tagged output lines."""

from __future__ import annotations

import contextvars
import io

from functions.request_context import TAG_END, TAG_START, TaggedStream, enter_request, request_id, traceparent

PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def in_new_context(fn):
    return contextvars.copy_context().run(fn)


def test_enter_request_takes_valid_ids_and_ignores_anything_else():
    def valid():
        assert enter_request([(b"zeroserve-request-id", b"5c1c6f2e9d3b7a10"), (b"traceparent", PARENT)]) == \
            b"5c1c6f2e9d3b7a10"
        return request_id(), traceparent()

    def hostile():
        found = enter_request([(b"zeroserve-request-id", b"evil\nline"), (b"traceparent", b"00-nope")])
        return found, request_id(), traceparent()

    assert in_new_context(valid) == ("5c1c6f2e9d3b7a10", PARENT.decode())
    assert in_new_context(hostile) == (None, None, None)
    assert request_id() is None  # nothing leaked into this context


def test_lines_written_during_a_request_are_tagged_once_each():
    sink = io.StringIO()
    stream = TaggedStream(sink)
    stream.write("before\n")

    def during():
        enter_request([(b"zeroserve-request-id", b"abc")])
        print("one", file=stream)           # print writes the text, then "\n"
        stream.write("two\nthree\npart")
        stream.write("ial\n")

    in_new_context(during)
    stream.write("after\n")
    tag = f"{TAG_START}abc{TAG_END}"
    assert sink.getvalue() == f"before\n{tag}one\n{tag}two\n{tag}three\n{tag}partial\nafter\n"
