"""Our end of a forker's control socket (deploy.local.forker: the zygote, or a warm template).

The zygote launcher and each warm template's handle hold one: it sends fork requests (a replica, a template, a
smoke child), turns each Forked answer into the `ReplicaProcess` its request waits for (or a ForkFailed into
the owner's error), and records every Exited: a process the forker reaped before its Forked was read here
(kernels without pidfds) is marked exited the moment it is. What else the forker says (the zygote's hello, a
template's ready report) goes to the owner's `on_message`; end of file to its `on_closed`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from deploy.local.messages import Exited, Forked, ForkFailed, LaunchMode
from deploy.local.replica_process import ReplicaProcess

log = logging.getLogger("zeroserve.supervisor")

MAX_MESSAGE_BYTES = 1 << 16
MAX_EARLY_EXITS = 1024  # exits of pids no Forked named yet; the oldest go first


class ForkChannel:
    def __init__(self, sock: socket.socket, name: str, messages: TypeAdapter[Any], mode: LaunchMode, *,
                 error: Callable[[str], Exception], on_message: Callable[[Any], None],
                 on_closed: Callable[[], None]):
        self.name = name  # "zygote 'default'", "warm template t3": for messages
        self.mode = mode  # what the processes forked here are
        self.processes: dict[int, ReplicaProcess] = {}  # until the forker reports it reaped them
        self._sock: socket.socket | None = sock
        self._messages = messages
        self._error = error
        self._on_message = on_message
        self._on_closed = on_closed
        self._pending: dict[str, asyncio.Future[ReplicaProcess]] = {}
        self._early_exits: dict[int, int] = {}
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._loop.add_reader(sock, self._on_readable)

    @property
    def open(self) -> bool:
        return self._sock is not None

    async def request(self, key: str, what: str, data: bytes, fds: list[int]) -> asyncio.Future[ReplicaProcess]:
        """Send a fork request for `key` with `fds` (the caller closes its copies); the future its Forked resolves.

        `what` names the kind of child for the refusal of a second request under the same key."""
        if key in self._pending:
            raise self._error(f"{what} {key} is already starting")
        if self._sock is None:
            raise self._error(f"{self.name} is not reachable")
        future: asyncio.Future[ReplicaProcess] = self._loop.create_future()
        self._pending[key] = future
        try:
            await send_with_fds(self._sock, data, fds)
        except OSError as exc:
            self._pending.pop(key, None)
            raise self._error(f"{self.name} is not reachable: {exc}") from None
        return future

    def fail_pending(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def shutdown_write(self) -> bool:
        """Tell the forker we ask nothing more (it exits once its children have); False if the socket is gone."""
        if self._sock is None:
            return False
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._sock.close()
            self._sock = None

    def _on_readable(self) -> None:
        while self._sock is not None:
            try:
                data, fds, _, _ = socket.recv_fds(self._sock, MAX_MESSAGE_BYTES, 2)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._on_closed()
                return
            try:
                message = self._messages.validate_json(data)
            except ValidationError as exc:
                log.error("%s sent an unreadable message (%s): %r", self.name, exc, data[:200])
                close_fds(fds)
                continue
            if isinstance(message, Forked):
                self._on_forked(message, fds)  # the fds are the child's now
                continue
            close_fds(fds)
            if isinstance(message, ForkFailed):
                future = self._pending.pop(message.replica_id, None)
                if future is not None and not future.done():
                    future.set_exception(self._error(message.error))
            elif isinstance(message, Exited):
                self._on_exited(message)
            else:
                self._on_message(message)

    def _on_forked(self, message: Forked, fds: list[int]) -> None:
        pidfd, status_fd = (fds[0], fds[1]) if message.has_pidfd else (None, fds[0])
        process = ReplicaProcess(message.pid, status_fd, pidfd, self.mode)
        self.processes[process.pid] = process
        if process.pid in self._early_exits:  # reaped before we got here (no-pidfd kernels)
            process.mark_exited(self._early_exits.pop(process.pid))
        future = self._pending.pop(message.replica_id, None)
        if future is None or future.done():
            process.send_signal(signal.SIGKILL)  # nobody waits for it any more
            process.exited.add_done_callback(lambda _: process.close())
        else:
            future.set_result(process)

    def _on_exited(self, message: Exited) -> None:
        reaped = self.processes.pop(message.pid, None)
        if reaped is not None:
            reaped.mark_exited(message.returncode)
            return
        self._early_exits[message.pid] = message.returncode
        if len(self._early_exits) > MAX_EARLY_EXITS:
            self._early_exits.pop(next(iter(self._early_exits)))


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def send_with_fds(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    """sendmsg with SCM_RIGHTS on a non-blocking socket, waiting for room when the buffer is full."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(sock, [data], fds)
            return
        except BlockingIOError:
            writable: asyncio.Future[None] = loop.create_future()
            loop.add_writer(sock, _resolve, writable)
            try:
                await writable
            finally:
                loop.remove_writer(sock)
