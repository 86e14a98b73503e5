"""The replica client's HTTP/1.1 edge cases, against scripted servers on real Unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from activator import http1
from activator.http1 import ReplicaClient, ReplicaUnreachable, UpstreamError
from tests.activator.harness import run

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]



class Scripted:
    """A Unix-socket server running `handler` per connection; counts connections and requests."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        return head


@contextlib.asynccontextmanager
async def scripted(handler: Callable[[Scripted, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                   ) -> AsyncIterator[tuple[Scripted, str]]:
    directory = tempfile.mkdtemp(prefix="zs-h1-")
    path = os.path.join(directory, "s.sock")
    state = Scripted(handler)  # type: ignore[arg-type]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await handler(state, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, path)
    try:
        yield state, path
    finally:
        server.close()
        await server.wait_closed()
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.rmdir(directory)


async def read_all(response: http1.Response) -> bytes:
    parts = []
    while chunk := await response.read():
        parts.append(chunk)
    return b"".join(parts)


HOST = [(b"host", b"replica")]


def keep_alive(replies: list[bytes]):
    """Answer each request on the connection with the next canned reply."""
    async def handler(state: Scripted, reader, writer) -> None:
        for reply in replies:
            await state.read_request(reader)
            writer.write(reply)
            await writer.drain()
        await reader.read()  # hold the connection until the client closes it
    return handler


def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given():
    async def scenario():
        reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        async with scripted(keep_alive([reply, reply])) as (server, path):
            client = ReplicaClient(path)
            for _ in range(2):
                response = await client.request(b"GET", b"/v2/models?x=%20", HOST, None)
                assert (response.status, await read_all(response)) == (200, b"ok")
                response.release()
            assert server.connections == 1
            assert server.requests[0] == b"GET /v2/models?x=%20 HTTP/1.1\r\nhost: replica\r\n\r\n"
            await client.close()
    run(scenario())


@pytest.mark.parametrize(("reply", "body", "reused"), [
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     b"abcde", True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
    (b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n", b"", True),
    (b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz",
     b"z", True),
    (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nz", b"z", False),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nz", b"z", False),
])
def test_response_framings(reply, body, reused):
    async def scenario():
        empty = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        async with scripted(keep_alive([reply, empty])) as (server, path):
            client = ReplicaClient(path)
            response = await client.request(b"GET", b"/", HOST, None)
            assert response.status in (200, 204, 304)
            assert await read_all(response) == body
            response.release()
            second = await client.request(b"GET", b"/", HOST, None)
            assert second.status == 200
            second.release()
            assert server.connections == (1 if reused else 2)
            await client.close()
    run(scenario())


def test_a_body_delimited_by_close_ends_at_eof():
    async def handler(state, reader, writer) -> None:
        await state.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    async def scenario():
        async with scripted(handler) as (_, path):
            response = await ReplicaClient(path).request(b"GET", b"/", HOST, None)
            assert await read_all(response) == b"until the end"
            response.release()
    run(scenario())


def test_head_response_does_not_wait_for_the_announced_body():
    async def scenario():
        reply = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"
        async with scripted(keep_alive([reply])) as (server, path):
            client = ReplicaClient(path)
            response = await client.request(b"HEAD", b"/", HOST, None)
            assert response.status == 200 and response.complete and await response.read() == b""
            response.release()
            assert not client._idle  # not reused: the parser's idea of the next message is unreliable
    run(scenario())


def test_truncated_body_and_garbage_are_errors():
    async def truncated(state, reader, writer) -> None:
        await state.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    async def garbage(state, reader, writer) -> None:
        await state.read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def scenario():
        async with scripted(truncated) as (_, path):
            response = await ReplicaClient(path).request(b"GET", b"/", HOST, None)
            with pytest.raises(UpstreamError, match="closed the connection"):
                await read_all(response)
            response.release()
        async with scripted(garbage) as (_, path):
            with pytest.raises(UpstreamError, match="invalid response"):
                await ReplicaClient(path).request(b"GET", b"/", HOST, None)
    run(scenario())


def test_a_replica_closing_before_answering_is_an_upstream_error_not_unreachable():
    async def handler(state, reader, writer) -> None:
        await state.read_request(reader)
        writer.close()

    async def scenario():
        async with scripted(handler) as (_, path):
            with pytest.raises(UpstreamError):
                await ReplicaClient(path).request(b"GET", b"/", HOST, None)
    run(scenario())


def test_no_socket_or_no_listener_is_unreachable(tmp_path):
    async def scenario():
        with pytest.raises(ReplicaUnreachable):
            await ReplicaClient(str(tmp_path / "missing.sock")).request(b"GET", b"/", HOST, None)
        stale = tmp_path / "stale.sock"
        import socket
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(stale))
        listener.close()  # the file stays, nobody listens: what a SIGKILLed replica leaves
        with pytest.raises(ReplicaUnreachable):
            await ReplicaClient(str(stale)).request(b"GET", b"/", HOST, None)
    run(scenario())


def test_idle_connections_closed_by_the_replica_or_too_old_are_not_used(monkeypatch):
    async def one_then_close(state, reader, writer) -> None:
        await state.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()  # keep-alive promised, then the replica's idle timeout fires

    async def scenario():
        async with scripted(one_then_close) as (server, path):
            client = ReplicaClient(path)
            response = await client.request(b"GET", b"/", HOST, None)
            response.release()
            async with asyncio.timeout(5):
                while client._idle:  # connection_lost removes it from the pool
                    await asyncio.sleep(0.001)
            response = await client.request(b"GET", b"/", HOST, None)
            assert response.status == 200 and server.connections == 2
            response.release()
        reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        async with scripted(keep_alive([reply, reply])) as (server, path):
            monkeypatch.setattr(http1, "KEEPALIVE_SECONDS", 0.0)
            client = ReplicaClient(path)
            for _ in range(2):
                (await client.request(b"GET", b"/", HOST, None)).release()
            assert server.connections == 2
    run(scenario())


def test_streamed_bodies_are_chunked_unless_a_length_is_given():
    async def echo_body(state, reader, writer) -> None:
        for _ in range(3):
            head = await state.read_request(reader)
            if b"transfer-encoding: chunked" in head:
                raw = await reader.readuntil(b"0\r\n\r\n")
            else:
                length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                raw = await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(raw), raw))
            await writer.drain()

    async def parts():
        yield b"abc"
        yield b"de"

    async def scenario():
        async with scripted(echo_body) as (_, path):
            client = ReplicaClient(path)
            response = await client.request(b"POST", b"/", HOST, parts())
            assert await read_all(response) == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            response.release()
            response = await client.request(b"POST", b"/", [*HOST, (b"content-length", b"5")], parts())
            assert await read_all(response) == b"abcde"
            response.release()
            response = await client.request(b"POST", b"/", HOST, b"whole")  # length added for bytes
            assert await read_all(response) == b"whole"
            response.release()
            await client.close()
    run(scenario())


def test_an_early_answer_while_the_body_is_still_being_sent():
    async def refuse(state, reader, writer) -> None:
        await state.read_request(reader)
        writer.write(b"HTTP/1.1 413 Content Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    never_ending = asyncio.Event()

    async def slow_body():
        yield b"x" * 1000
        await never_ending.wait()  # the client keeps uploading forever
        yield b"y"

    async def scenario():
        async with scripted(refuse) as (_, path):
            client = ReplicaClient(path)
            response = await client.request(b"POST", b"/", HOST, slow_body())
            assert response.status == 413
            response.release()  # stops the upload and drops the connection
            assert not client._idle
    run(scenario())


def test_a_failing_request_body_surfaces_its_own_error():
    async def handler(state, reader, writer) -> None:
        await state.read_request(reader)
        await reader.read()

    class Gone(Exception):
        pass

    async def broken_body():
        yield b"first"
        raise Gone("client left")

    async def scenario():
        async with scripted(handler) as (_, path):
            with pytest.raises(Gone):
                await ReplicaClient(path).request(b"POST", b"/", HOST, broken_body())
    run(scenario())


def test_large_response_pauses_reading_until_consumed():
    size = 8 * 1024 * 1024

    async def big(state, reader, writer) -> None:
        await state.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        block = b"b" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()

    async def scenario():
        async with scripted(big) as (_, path):
            response = await ReplicaClient(path).request(b"GET", b"/", HOST, None)
            first = await response.read()
            async with asyncio.timeout(5):  # nobody reads: the buffer fills to the mark, then reading stops
                while not response._connection._reading_paused:
                    await asyncio.sleep(0.001)
            buffered = response._buffered
            for _ in range(20):  # and it stays stopped while nobody reads
                await asyncio.sleep(0)
            assert response._buffered == buffered <= http1.HIGH_WATER + 512 * 1024  # not the whole 8 MiB
            total = len(first) + len(await read_all(response))
            assert total == size
            response.release()
    run(scenario())
