"""Forwarding one request to a replica and its response back: header rules, streamed bodies.

The wire work is `activator.http1` (pooled keep-alive connections over the replica's Unix socket);
this module decides what is forwarded. Request bodies stream from the ASGI `receive` channel and
response bodies back through `send`, chunk by chunk, with flow control on both sides, so a large
body never sits in memory whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from activator.http1 import ReplicaClient, ReplicaUnreachable, Response, UpstreamError
from activator.tracing import TRACE_HEADERS
from protocol.asgi import Scope

__all__ = ["ClientGone", "ReplicaClient", "ReplicaFailed", "ReplicaUnreachable", "RequestBody",
           "relay_response", "replica_target", "request_content_length", "request_headers", "send_upstream"]

# RFC 9110 §7.6.1 connection-specific fields, plus `expect`: 100-continue is answered by our server.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"expect",
})
# The activator's own server writes these for every response; the replica's copies would be duplicates.
_SET_BY_FRONT_SERVER = frozenset({b"date", b"server"})
# Only the activator says whether a request was a cold start: a replica cannot claim one (or hide one).
_SET_BY_ACTIVATOR = frozenset({b"zeroserve-cold-start"})
_NOT_RELAYED = HOP_BY_HOP | _SET_BY_FRONT_SERVER | _SET_BY_ACTIVATOR
# Bodies up to this size are read whole before sending: one write, and a retry can replay them.
SMALL_BODY = 64 * 1024


class ReplicaFailed(Exception):
    """The replica was reached but gave no response head; `status` is 502 or 504."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


class RequestBody:
    """The ASGI request body, whole (small) or streamed, remembering whether it can be sent again."""

    __slots__ = ("_receive", "_content_length", "_whole", "started", "finished", "client_gone")

    def __init__(self, receive: Any, content_length: int | None):
        self._receive = receive
        self._content_length = content_length
        self._whole: bytes | None = None
        self.started = False
        self.finished = False
        self.client_gone = False

    @property
    def replayable(self) -> bool:
        return self._whole is not None or not self.started

    async def payload(self) -> bytes | RequestBody:
        if self._whole is not None:
            return self._whole
        if self._content_length is not None and self._content_length <= SMALL_BODY:
            self._whole = b"".join([chunk async for chunk in self._chunks()])
            return self._whole
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ClientGone("the client disconnected while sending the request body")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.finished = True
                return


def request_headers(scope: Scope, prefix: bytes, *, drop_authorization: bool = False) -> list[tuple[bytes, bytes]]:
    """The client's headers minus hop-by-hop ones, plus x-forwarded-* describing the original request.

    With `drop_authorization` the platform token a protected function was called with stays here:
    user code never sees it. The client's request id and traceparent are dropped too: the activator
    sends its own (activator.tracing).
    """
    headers: list[tuple[bytes, bytes]] = []
    host = b""
    forwarded_for = b""
    dropped: set[bytes] = {b"authorization", *TRACE_HEADERS} if drop_authorization else set(TRACE_HEADERS)
    for name, value in scope["headers"]:
        if name == b"connection":
            dropped.update(token.strip().lower() for token in value.split(b","))
    for name, value in scope["headers"]:
        if name in HOP_BY_HOP or name in dropped:
            continue
        if name == b"host":
            host = value
        elif name == b"x-forwarded-for":
            forwarded_for = value
            continue
        headers.append((name, value))
    client = scope.get("client")
    if client:
        address = client[0].encode("latin-1")
        forwarded_for = forwarded_for + b", " + address if forwarded_for else address
    if forwarded_for:
        headers.append((b"x-forwarded-for", forwarded_for))
    if host:
        headers.append((b"x-forwarded-host", host))
    else:
        headers.append((b"host", b"localhost"))  # HTTP/1.1 requires one; an HTTP/1.0 client may send none
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
    if prefix:
        headers.append((b"x-forwarded-prefix", prefix))
    return headers


def replica_target(raw_path: bytes, query_string: bytes) -> bytes:
    """The request target as received: already percent-encoded, never re-quoted."""
    return raw_path + b"?" + query_string if query_string else raw_path


def request_content_length(scope: Scope) -> tuple[bool, int | None]:
    """(has a body, its declared length)."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
    return (chunked or bool(length)), length


async def send_upstream(
    client: ReplicaClient,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: RequestBody | None,
    deadline: float,
) -> Response:
    """Send the request and wait (until `deadline`, loop time) for the response head.

    Raises ReplicaUnreachable when no connection could be made (nothing was sent and the body, read
    whole or not yet started, can be sent elsewhere), ReplicaFailed (502/504) or ClientGone.
    """
    data = None if body is None else await body.payload()
    try:
        async with asyncio.timeout_at(deadline):
            return await client.request(method.encode("latin-1"), target, headers, data)
    except TimeoutError:
        raise ReplicaFailed(504, "did not start answering in time") from None
    except UpstreamError as error:
        if body is not None and body.client_gone:
            raise ClientGone(str(error)) from None
        raise ReplicaFailed(502, f"failed before answering: {error}") from None


def response_headers(response: Response, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The replica's headers minus hop-by-hop ones and those our own server writes (date, server);
    `extra` (the activator's) replace namesakes, so a replica naming its revision is not sent twice."""
    skipped = _NOT_RELAYED.union(name for name, _ in extra)
    headers = [(name, value) for name, value in response.headers if name.lower() not in skipped]
    headers.extend(extra)
    return headers


async def relay_response(
    response: Response,
    extra_headers: list[tuple[bytes, bytes]],
    receive: Any,
    send: Any,
    body: RequestBody | None,
) -> str | None:
    """Stream the replica's response to the client; returns what broke if the replica failed mid-body.

    After a failure the response is left incomplete, so the server closes the client's connection
    rather than passing a truncated body off as whole.
    """
    try:
        await send({"type": "http.response.start", "status": response.status,
                    "headers": response_headers(response, extra_headers)})
        chunk = await response.read()
        if response.complete:  # the whole (small) body is here: one send
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
            return None
        await _stream_rest(response, chunk, receive, send, watch_client=body is None or body.finished)
        return None
    except UpstreamError as error:
        return str(error)
    finally:
        response.release()


async def _stream_rest(
    response: Response, chunk: bytes, receive: Any, send: Any, *, watch_client: bool
) -> None:
    # A long stream is cancelled when its client goes away; uvicorn's `send` drops data silently
    # after a disconnect, so only `receive` can tell. It is safe to call once the body was consumed.
    watcher = asyncio.ensure_future(_disconnected(receive)) if watch_client else None
    relay = asyncio.ensure_future(_copy(response, chunk, send))
    try:
        if watcher is None:
            await relay
            return
        await asyncio.wait((relay, watcher), return_when=asyncio.FIRST_COMPLETED)
        if not relay.done():
            relay.cancel()
            return
        relay.result()
    finally:
        for task in (relay, watcher):
            if task is not None and not task.done():
                task.cancel()


async def _copy(response: Response, chunk: bytes, send: Any) -> None:
    while chunk:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        chunk = await response.read()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
