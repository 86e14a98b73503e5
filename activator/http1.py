"""A small HTTP/1.1 client for replica Unix sockets: a keep-alive pool, streamed bodies both ways,
responses parsed by httptools (llhttp, the parser uvicorn uses).

It does one thing: send a request the activator already validated to a replica it trusts, and hand
back the response head and a body to read chunk by chunk. It costs about a third of what aiohttp
costs per request (docs/activator.md has the numbers), and the activator pays it on every request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable
from typing import cast

import httptools

# Response bytes buffered per connection before the socket is paused (the consumer is the client).
HIGH_WATER = 64 * 1024
# Below uvicorn's default keep-alive (5 s), so the activator, not the replica, retires idle
# connections and a request is never written into a connection the replica is closing.
KEEPALIVE_SECONDS = 4.0


class ReplicaUnreachable(Exception):
    """No connection could be made: nothing was sent, so the request may go elsewhere."""


class UpstreamError(Exception):
    """The connection broke or the replica answered garbage after the request was (partly) sent."""


class Response:
    """A response head and its body, read with `read()` until it returns b""."""

    __slots__ = ("status", "headers", "_connection", "_chunks", "_buffered", "_done", "_error", "_waiter",
                 "_writer")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], connection: _Connection):
        self.status = status
        self.headers = headers
        self._connection: _Connection | None = connection  # None once released
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None  # a request body still being sent

    @property
    def complete(self) -> bool:
        """The whole body has been read."""
        return self._done and not self._chunks

    async def read(self) -> bytes:
        """The next chunk of the body; b"" once it ended. Raises UpstreamError if the replica failed."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < HIGH_WATER // 2 and self._connection is not None:
            self._connection.resume_reading()
        return chunk

    def release(self) -> None:
        """Give the connection back to the pool if the exchange finished cleanly, else close it."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        writer = self._writer
        if writer is not None:
            if not writer.done():
                writer.cancel()
                connection.reusable = False
            elif writer.cancelled() or writer.exception() is not None:
                connection.reusable = False
        connection.client._release(connection, clean=self._done and self._error is None)

    # -- fed by the connection ----------------------------------------------------------

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake()

    def _finish(self) -> None:
        self._done = True
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if not self._done:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One connection to a replica; carries one request at a time."""

    def __init__(self, client: ReplicaClient):
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[Response] | None = None
        self._response: Response | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_request = False
        self._until_eof = False  # a body with neither length nor chunking ends when the replica closes
        self._interim = False
        self._reading_paused = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None

    def start(self, head_request: bool) -> asyncio.Future[Response]:
        self._head = asyncio.get_running_loop().create_future()
        self._response = None
        self._head_request = head_request
        return self._head

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    async def drain(self) -> None:
        if self.closed:
            raise UpstreamError("the replica closed the connection while the request was being sent")
        if self._write_paused:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def resume_reading(self) -> None:
        if self._reading_paused and not self.closed and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream connection's transport is a Transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._broken(UpstreamError(f"the replica sent an invalid response: {error}"))
            self.close()

    def eof_received(self) -> bool:
        self.reusable = False
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self.client._forget(self)
        if self._until_eof and self._response is not None:
            self._response._finish()
        detail = f": {exc}" if exc else ""
        self._broken(UpstreamError(f"the replica closed the connection{detail}"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _broken(self, error: UpstreamError) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if self._response is not None:
            self._response._fail(error)
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(error)

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim response (103 Early Hints...): the real one follows
            self._interim = True
            return
        if self._head is None or self._head.done():  # nothing asked for it: the replica is confused
            self.close()
            return
        response = self._response = Response(status, self._headers, self)
        if not self._parser.should_keep_alive():
            self.reusable = False
        if self._head_request:
            # llhttp would wait for the body a HEAD response announces but never sends.
            response._finish()
            self.reusable = False
        else:
            names = {name.lower() for name, _ in self._headers}
            self._until_eof = (b"content-length" not in names and b"transfer-encoding" not in names
                               and status not in (204, 304))
        self._head.set_result(response)

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is None or response._done:
            return
        response._feed(body)
        if response._buffered > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self._parser.should_keep_alive():
            self.reusable = False
        self._until_eof = False
        if self._response is not None:
            self._response._finish()


class ReplicaClient:
    """Pooled keep-alive HTTP/1.1 connections to one replica's Unix socket."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self._idle: list[_Connection] = []
        self._closed = False

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes] | None,
    ) -> Response:
        """Send a request and return once the response head arrived.

        `headers` go out as given (the caller owns Host and framing headers such as content-length);
        a streamed body without a content-length header is sent chunked.
        Raises ReplicaUnreachable (nothing sent) or UpstreamError.
        """
        connection = await self._checkout()
        head = connection.start(head_request=method == b"HEAD")
        try:
            whole = body if isinstance(body, bytes) else None
            stream = None if body is None or isinstance(body, bytes) else body
            has_length = body is not None and any(name == b"content-length" for name, _ in headers)
            lines = [method, b" ", target, b" HTTP/1.1\r\n"]
            for name, value in headers:
                lines += (name, b": ", value, b"\r\n")
            chunked = stream is not None and not has_length
            if chunked:
                lines.append(b"transfer-encoding: chunked\r\n")
            elif whole is not None and not has_length:
                lines.append(b"content-length: %d\r\n" % len(whole))
            lines.append(b"\r\n")
            if whole is not None:
                lines.append(whole)
            assert connection.transport is not None
            connection.transport.write(b"".join(lines))
            if stream is None:
                return await head
            writer = asyncio.ensure_future(_send_body(connection, stream, chunked))
            try:
                # The replica may answer before it read the whole body; a failing body stops the wait.
                await asyncio.wait((head, writer), return_when=asyncio.FIRST_COMPLETED)
                if writer.done() and (failure := writer.exception()) is not None:
                    raise failure
                response = await head
            except BaseException:
                writer.cancel()
                raise
            response._writer = writer
            return response
        except BaseException:
            if not head.done():
                head.cancel()  # nobody will read it: no "exception never retrieved" when the socket closes
            connection.close()
            raise

    async def close(self) -> None:
        self._closed = True
        self.discard_idle()

    def discard_idle(self) -> None:
        """Close the pooled idle connections: after one of them failed, the rest share its fate
        (a killed replica's sockets), and a fresh connect tells at once whether it still listens."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _checkout(self) -> _Connection:
        now = asyncio.get_running_loop().time()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: least likely to be near expiry
            if not connection.closed and now - connection.idle_since < KEEPALIVE_SECONDS:
                return connection
            connection.close()
        try:
            _, connection = await asyncio.get_running_loop().create_unix_connection(
                lambda: _Connection(self), self.socket_path
            )
        except OSError as error:
            raise ReplicaUnreachable(error.strerror or type(error).__name__) from None
        return connection

    def _release(self, connection: _Connection, *, clean: bool) -> None:
        if clean and connection.reusable and not connection.closed and not self._closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            connection.close()

    def _forget(self, connection: _Connection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)


async def _send_body(connection: _Connection, body: AsyncIterable[bytes], chunked: bool) -> None:
    transport = connection.transport
    assert transport is not None
    async for chunk in body:
        if connection.closed:
            raise UpstreamError("the replica closed the connection while the request was being sent")
        if chunked:
            transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
        else:
            transport.write(chunk)
        await connection.drain()
    if chunked:
        transport.write(b"0\r\n\r\n")
