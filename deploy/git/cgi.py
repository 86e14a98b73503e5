"""`git http-backend` as a CGI behind ASGI, streamed both ways.

The request body is written to the backend's stdin as it arrives, and its stdout is relayed to the
client chunk by chunk as it is produced: during a push, receive-pack sends the hook's progress over
git's side-band while the build runs, so a response buffered until the end would show the pusher
nothing until the push is over. Nothing here reads a whole body into memory.

The backend runs in its own process group: a client that goes away, or a body over the size limit,
ends it together with receive-pack and the hook it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from protocol.asgi import Receive, Send, send_json_error

logger = logging.getLogger("zeroserve.git")

_READ_CHUNK = 64 * 1024
_STDERR_TAIL = 4000


class BodyTooLarge(Exception):
    pass


async def run_cgi(command: list[str], env: dict[str, str], receive: Receive, send: Send, *,
                  max_body: int | None = None, cwd: str | None = None) -> int | None:
    """Run the CGI `command` for one request; returns its exit status (None if it had to be killed)."""
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=cwd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stderr_tail = bytearray()
    body_task = asyncio.create_task(_pump_body(process, receive, max_body))
    stderr_task = asyncio.create_task(_collect(process.stderr, stderr_tail))
    started = False
    try:
        status, headers = await _read_headers(process.stdout)
        if status is None:
            # The body task raises BodyTooLarge in the same step as it kills the backend, so by the
            # time the backend's EOF is seen here, it is done.
            too_large = body_task.done() and not body_task.cancelled() and body_task.exception() is not None
            if too_large and isinstance(body_task.exception(), BodyTooLarge):
                await send_json_error(send, 413, f"request body exceeds the limit of {max_body} bytes")
                return None
            await stderr_task
            logger.warning("git http-backend answered nothing: %s", _tail(stderr_tail))
            await send_json_error(send, 502, "git http-backend failed; see the platform log")
            return await process.wait()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        started = True
        while True:
            chunk = await process.stdout.read(_READ_CHUNK)
            if not chunk:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        code = await process.wait()
        await stderr_task
        if code != 0 and stderr_tail:
            logger.info("git http-backend exited with %s: %s", code, _tail(stderr_tail))
        return code
    except BaseException:
        _kill(process)
        if not started:
            with contextlib.suppress(Exception):
                await send_json_error(send, 500, "git http-backend failed; see the platform log")
        raise
    finally:
        if process.returncode is None:
            _kill(process)
            with contextlib.suppress(Exception):
                await process.wait()
        body_task.cancel()
        stderr_task.cancel()
        await _wait_quietly(body_task)
        await _wait_quietly(stderr_task)


async def _pump_body(process: asyncio.subprocess.Process, receive: Receive, max_body: int | None) -> None:
    """Request body -> stdin, then watch for the client leaving (which ends the backend)."""
    assert process.stdin is not None
    size = 0
    more = True
    try:
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                _kill(process)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if max_body is not None and size > max_body:
                _kill(process)
                raise BodyTooLarge()
            if chunk:
                process.stdin.write(chunk)
                await process.stdin.drain()
            more = message.get("more_body", False)
    except (BrokenPipeError, ConnectionResetError):
        return  # the backend stopped reading (it answered an error); its answer says why
    finally:
        if not process.stdin.is_closing():
            process.stdin.close()
    while True:  # after the body, receive() returns only when the client disconnects
        message = await receive()
        if message["type"] == "http.disconnect":
            _kill(process)
            return


async def _read_headers(stdout: asyncio.StreamReader) -> tuple[int | None, list[tuple[bytes, bytes]]]:
    """CGI response headers up to the blank line; `Status:` becomes the HTTP status."""
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = []
    seen_any = False
    while True:
        line = await stdout.readline()
        if not line:
            return (status if seen_any else None), headers
        line = line.rstrip(b"\r\n")
        if not line:
            return (status or 200), headers
        seen_any = True
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"status":
            code = value.split(b" ", 1)[0]
            status = int(code) if code.isdigit() else 500
        elif name and name not in (b"connection", b"transfer-encoding", b"content-length"):
            headers.append((name, value))


async def _collect(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        into.extend(chunk)
        del into[:-_STDERR_TAIL]


async def _wait_quietly(task: asyncio.Task[Any]) -> None:
    with contextlib.suppress(BaseException):
        await task


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _tail(data: bytearray) -> str:
    return bytes(data).decode("utf-8", "replace").strip()


__all__ = ["run_cgi"]
