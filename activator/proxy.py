"""HTTP/1.1 to one replica over its Unix socket: pooled keep-alive connections, streamed bodies.

aiohttp is the client (one session per replica, no cookie jar, no decompression): request bodies
stream from the ASGI `receive` channel and response bodies back through `send`, chunk by chunk, with
both servers' flow control in between, so a large body never sits in memory whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from activator.contracts import ReplicaEndpoint

# RFC 9110 §7.6.1 connection-specific fields, plus `expect`: 100-continue is answered by our server.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "expect",
})
_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
# The activator's own server writes these for every response; the replica's copies would be duplicates.
_SET_BY_FRONT_SERVER = frozenset({b"date", b"server"})
_NOT_RELAYED = _HOP_BY_HOP_BYTES | _SET_BY_FRONT_SERVER
# Bodies up to this size are read whole before sending: one write, and a retry can replay them.
SMALL_BODY = 64 * 1024
# Below uvicorn's default keep-alive (5 s), so the activator, not the replica, closes idle
# connections and a request is never written into a connection the replica is closing.
KEEPALIVE_SECONDS = 4.0


class ReplicaUnreachable(Exception):
    """The request never reached the replica (no socket, connection refused): safe to send elsewhere."""


class ReplicaFailed(Exception):
    """The replica was reached but gave no response head; `status` is 502 or 504."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


class RequestBody:
    """The ASGI request body as an aiohttp payload, remembering whether it can be sent again."""

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


class ReplicaClient:
    """A pooled keep-alive HTTP client for one replica's socket, created on first use."""

    def __init__(self, endpoint: ReplicaEndpoint):
        self.endpoint = endpoint
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.UnixConnector(
                path=self.endpoint.socket_path, limit=0, keepalive_timeout=KEEPALIVE_SECONDS
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None),  # deadlines are the activator's
                trust_env=False,
            )
            # aiohttp replays a failed GET/PUT/DELETE once on the same replica. A request that reached a
            # replica which then died must fail (502), not run again: it may be what killed it. There is
            # no public switch; tests/activator cover the behaviour if the attribute ever goes away.
            self._session._retry_connection = False
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def request_headers(scope: dict, prefix: bytes) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop ones, plus x-forwarded-* describing the original request."""
    headers: list[tuple[str, str]] = []
    host = ""
    forwarded_for = ""
    dropped: set[bytes] = set()
    for name, value in scope["headers"]:
        if name == b"connection":
            dropped.update(token.strip().lower() for token in value.split(b","))
    for name, value in scope["headers"]:
        if name in _HOP_BY_HOP_BYTES or name in dropped:
            continue
        text = value.decode("latin-1")
        if name == b"host":
            host = text
        elif name == b"x-forwarded-for":
            forwarded_for = text
            continue
        headers.append((name.decode("latin-1"), text))
    client = scope.get("client")
    if client:
        forwarded_for = f"{forwarded_for}, {client[0]}" if forwarded_for else client[0]
    if forwarded_for:
        headers.append(("x-forwarded-for", forwarded_for))
    if host:
        headers.append(("x-forwarded-host", host))
    headers.append(("x-forwarded-proto", scope.get("scheme", "http")))
    if prefix:
        headers.append(("x-forwarded-prefix", prefix.decode("latin-1")))
    return headers


def replica_url(raw_path: bytes, query_string: bytes) -> URL:
    # Already percent-encoded by the client: sent on as received, never re-quoted.
    target = raw_path.decode("latin-1")
    if query_string:
        target += "?" + query_string.decode("latin-1")
    return URL("http://localhost" + target, encoded=True)


def request_content_length(scope: dict) -> tuple[bool, int | None]:
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
    url: URL,
    headers: list[tuple[str, str]],
    body: RequestBody | None,
    deadline: float,
) -> aiohttp.ClientResponse:
    """Send the request and wait (until `deadline`, loop time) for the response head."""
    data = None if body is None else await body.payload()
    try:
        async with asyncio.timeout_at(deadline):
            return await client.session.request(
                method, url, headers=headers, data=data, allow_redirects=False, compress=None
            )
    except aiohttp.ClientConnectorError as error:
        if body is None or body.replayable:
            raise ReplicaUnreachable(str(error)) from None
        raise ReplicaFailed(502, f"could not connect: {error}") from None
    except TimeoutError:
        raise ReplicaFailed(504, "did not start answering in time") from None
    except (aiohttp.ClientError, OSError) as error:
        if body is not None and body.client_gone:
            raise ClientGone(str(error)) from None
        raise ReplicaFailed(502, f"failed before answering: {error!r}") from None


def response_headers(response: aiohttp.ClientResponse, extra: list[tuple[bytes, bytes]]) -> list:
    """The replica's headers minus hop-by-hop ones and those our own server writes (date, server);
    `extra` (the activator's) replace namesakes, so a replica naming its revision is not sent twice."""
    skipped = _NOT_RELAYED.union(name for name, _ in extra)
    headers = [(name, value) for name, value in response.raw_headers if name.lower() not in skipped]
    headers.extend(extra)
    return headers


async def relay_response(
    response: aiohttp.ClientResponse,
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
        reader = response.content
        chunk = await reader.readany()
        if reader.at_eof():  # the whole (small) body is here: one send
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
            return None
        await _stream_rest(reader, chunk, receive, send, watch_client=body is None or body.finished)
        return None
    except (aiohttp.ClientError, OSError) as error:
        return repr(error)
    finally:
        response.release()


async def _stream_rest(
    reader: aiohttp.StreamReader, chunk: bytes, receive: Any, send: Any, *, watch_client: bool
) -> None:
    # A long stream is cancelled when its client goes away; uvicorn's `send` drops data silently
    # after a disconnect, so only `receive` can tell. It is safe to call once the body was consumed.
    watcher = asyncio.ensure_future(_disconnected(receive)) if watch_client else None
    relay = asyncio.ensure_future(_copy(reader, chunk, send))
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


async def _copy(reader: aiohttp.StreamReader, chunk: bytes, send: Any) -> None:
    while chunk:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        chunk = await reader.readany()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
