"""uvicorn's httptools protocol with `ConnectionLimits` enforced and every error it answers in JSON.

uvicorn itself puts no bound on a request head (llhttp accumulates a header as long as it keeps coming),
no deadline on a client that sends its head slowly, and answers parse errors as text/plain. This
subclass, passed as `uvicorn.Config(http=limited_http_protocol(limits))`, adds:

- 431 when the headers pass `max_header_bytes` in all or `max_headers` in number, 414 when the request
  target alone passes `max_header_bytes`, 400 naming what llhttp could not parse;
- `header_timeout`: a request head must arrive whole within it (from the connection's start for the first
  request, from its first byte for later ones), else 408 (or a plain close if nothing arrived);
- `keep_alive_timeout` for idle connections (uvicorn's own timer, given our value);
- `max_connections`: a connection beyond it is answered 503 at once and never reaches the app.

Every answer is `{"error": "..."}` with `connection: close`, then a lingering close (see `_Lingering`).
The cost on the hot path is a few integer additions per request and per header; the head deadline needs a
timer only while a head is incomplete after a read, which a normal client's single-packet head never is.

Both it and `CoalescingHttpToolsProtocol` (no limits; what replicas use) send each response's head in
the same write as its body (`_HeadWithBody`), which saves a syscall per response on both hops.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Sequence
from typing import Any, Final

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from functions.connection_limits import ConnectionLimits

# After an error answer: how long the rest of the client's request is read and dropped before closing,
# and how much of it, so the answer is not lost to a reset (closing with unread input sends RST).
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 1 << 20


class _Refusal(Exception):
    """Raised from a parser callback: answer `status` with `message` and close."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, default_headers: Sequence[tuple[bytes, bytes]] = (),
                   extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole HTTP/1.1 response: `{"error": message}` as JSON, `connection: close`."""
    body = json.dumps({"error": message}).encode()
    lines = [STATUS_LINE[status]]
    for name, value in (*default_headers, *extra):
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


class _Lingering(asyncio.Protocol):
    """Owns a connection after its error answer: the write side is shut (the client sees the end of the
    response), what the client still sends is read and dropped, and the socket closes at the client's EOF,
    after LINGER_SECONDS, or past LINGER_MAX_BYTES, whichever comes first."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self.transport = transport
        self.dropped = 0
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()
        self.timer = loop.call_later(LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        self.dropped += len(data)
        if self.dropped > LINGER_MAX_BYTES:
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


class _Nothing(enum.Enum):
    YET = 0  # an enum member, not object(), so `held is _NOTHING_YET` narrows what `held` is


_NOTHING_YET: Final = _Nothing.YET
# Joining the held head with a body up to this size costs less than a vectored write; larger ones go as two
# buffers in one writelines (one syscall all the same, no copy).
_JOIN_BELOW = 16 * 1024


class _HeadWithBody:
    """Stands in for the transport in one uvicorn response cycle so the response head leaves in the same
    send as the first body chunk: one syscall and one segment instead of two, on every response. (uvicorn
    writes the head at `http.response.start` and the body at `http.response.body`; on loopback each send
    also pays the receiver's wake-up, so the second one is most of what an extra hop costs.)

    The cycle's first write is held until its second write, its close, or the end of the current loop
    step (a call_soon), whichever comes first: a streamed response whose body comes later, or a
    `100 Continue` that the client must see before it sends the body, is not held back any longer.
    """

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | _Nothing | None = _NOTHING_YET

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._transport.write(data)
        elif held is _NOTHING_YET:
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            if len(data) < _JOIN_BELOW:
                self._transport.write(held + data)
            else:
                self._transport.writelines((held, data))

    def flush(self) -> None:
        held = self._held
        if held is not None and held is not _NOTHING_YET:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def drop(self) -> None:
        """Forget anything held: the connection is being answered with an error or cut."""
        self._held = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing each response's head with its first body chunk (`_HeadWithBody`).

    Nothing else changes, so a server with no limits of its own (a replica behind the activator) can use it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer: _HeadWithBody | None = None  # the latest request cycle's

    def on_headers_complete(self) -> None:
        cycle = self.cycle
        super().on_headers_complete()
        if self.cycle is not cycle:  # a new request cycle (not a WebSocket upgrade)
            self._writer = _HeadWithBody(self.transport, self.loop)
            # A stand-in, not a Transport: the cycle calls only write, close and is_closing on it.
            self.cycle.transport = self._writer  # type: ignore[assignment]


class LimitedHttpToolsProtocol(CoalescingHttpToolsProtocol):
    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.limits
        # uvicorn annotates it int but only passes it to call_later: fractions of a second work.
        self.timeout_keep_alive = limits.keep_alive_timeout  # type: ignore[assignment]
        self._max_header_bytes = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._header_timeout = limits.header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_open = False  # a message began and its headers are not complete yet
        self._head_bytes = 0  # request target + headers of the open head, as the parser reported them
        self._head_read = 0  # bytes of reads that fell wholly inside the open head
        self._messages = 0

    # -- connection ------------------------------------------------------------------------------

    # As in uvicorn's own: asyncio types the argument BaseTransport, a stream connection gets a Transport.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Never counted, never parsed: answered and handed to a lingering close at once.
            self.transport = transport
            self._answer_and_linger(503, "the server has too many open connections; retry later",
                                    ((b"retry-after", b"1"),))
            return
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, with errors answered in JSON and the head's size and deadline kept.
        self._unset_keepalive_if_required()
        continuing = self._head_open
        message = self._messages
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._cancel_head_timer()  # the head is complete; a WebSocket protocol may own the socket now
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            self._refuse(exc)
            return
        if self._head_open:
            if continuing and message == self._messages:
                # The whole read belongs to a head llhttp is still accumulating (a header it has not
                # reported yet counts only here).
                self._head_read += len(data)
                if self._head_read > self._max_header_bytes:
                    self._refuse(_Refusal(431, self._headers_too_large()))
                    return
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self._header_timeout, self._head_timed_out)
        elif self._head_timer is not None:
            self._cancel_head_timer()

    # -- parser callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0
        self._head_read = 0
        self._messages += 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_header_bytes:
            raise _Refusal(414, f"the request target is longer than {self._max_header_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_header_bytes:
            raise _Refusal(431, self._headers_too_large())
        if len(self.headers) >= self._max_headers:
            raise _Refusal(431, f"more than {self._max_headers} request headers")
        # The rest is uvicorn's on_header.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    # -- answers -------------------------------------------------------------------------------------

    def _headers_too_large(self) -> str:
        return f"the request head is larger than {self._max_header_bytes} bytes"

    def _refuse(self, exc: Exception) -> None:
        cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
        if isinstance(cause, _Refusal):
            status, message = cause.status, cause.message
        elif isinstance(cause, httptools.HttpParserError) and str(cause):
            status, message = 400, f"malformed HTTP request: {cause}"
        elif isinstance(cause, UnicodeDecodeError):
            status, message = 400, "malformed HTTP request: the request target is not ASCII"
        else:
            status, message = 400, "malformed HTTP request"
        self.logger.debug("%s %s from %s", status, message, self.client)
        self._answer_and_linger(status, message)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined head waits behind a request still being served (reading may be paused for it).
            self._head_timer = self.loop.call_later(self._header_timeout, self._head_timed_out)
        elif self._head_open:
            self._answer_and_linger(408, f"the request head did not arrive within {self._header_timeout:g}s")
        else:
            self.transport.close()  # nothing of a request arrived: an idle close, no answer

    def _answer_and_linger(self, status: int, message: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        cycle = self.cycle
        in_flight = cycle is not None and not cycle.response_complete
        answering = self.pipeline or (in_flight and cycle.response_started)
        self._drop()
        if answering:
            # An answer (to this request or to an earlier pipelined one) may be on the wire: cut the
            # connection rather than write into the middle of it.
            self.transport.close()
            return
        self.transport.write(error_response(status, message, self.server_state.default_headers, extra))
        self.transport.set_protocol(_Lingering(self.transport, self.loop))

    def _drop(self) -> None:
        """Forget this connection as uvicorn's connection_lost would (another protocol, or none, takes it)."""
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        self.connections.discard(self)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
            if self._writer is not None:
                self._writer.drop()
        if self.flow is not None:
            self.flow.resume_writing()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


def limited_http_protocol(limits: ConnectionLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to pass as `uvicorn.Config(http=...)`, enforcing `limits`."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
