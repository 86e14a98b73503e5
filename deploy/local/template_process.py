"""A warm template seen from the supervisor: wait for its report, ask it for replicas, stop it.

The template (deploy.local.warm_template) is a child of the zygote; the zygote's launcher forks it
(`ZygoteLauncher.start_template`) and watches its pidfd like a replica's. This object holds our end of
its control socket: TemplateReady or TemplateFailed arrive there first, then Forked (with the replica's
pidfd and status pipe) or ForkFailed per ForkRequest, and Exited for each replica it reaped. `retire`
shuts down our sending side: the template forks nothing more and exits once its last replica has.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from pydantic import ValidationError

from deploy.local.launcher import ReplicaProcess
from deploy.local.messages import (
    FORK_REQUEST,
    TEMPLATE,
    TEMPLATE_MESSAGE,
    Exited,
    Forked,
    ForkFailed,
    ForkRequest,
    TemplateFailed,
    TemplateReady,
)

log = logging.getLogger("zeroserve.supervisor")


class TemplateError(RuntimeError):
    """The template cannot fork replicas (it failed to load, is not fork-safe, or is gone)."""


class TemplateProcess:
    def __init__(self, template_id: str, revision: str, control: socket.socket, process: ReplicaProcess):
        self.template_id = template_id
        self.revision = revision
        self.process = process                  # the template's own process (a zygote child)
        self.private_bytes = 0
        self.load_ms = 0.0
        self._control: socket.socket | None = control
        self._replicas: dict[int, ReplicaProcess] = {}     # until the template reports it reaped them
        self._early_exits: dict[int, int] = {}
        self.retired = False
        self._loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[TemplateReady] = self._loop.create_future()
        self._pending: dict[str, asyncio.Future[ReplicaProcess]] = {}
        control.setblocking(False)
        self._loop.add_reader(control, self._on_control)
        process.exited.add_done_callback(lambda _: self.close())

    @property
    def usable(self) -> bool:
        return (self._control is not None and not self.retired and self.ready.done() and not self.ready.cancelled()
                and self.ready.exception() is None)

    def _on_control(self) -> None:
        assert self._control is not None
        while self._control is not None:
            try:
                data, fds, _, _ = socket.recv_fds(self._control, 1 << 16, 2)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self.close()
                return
            try:
                message = TEMPLATE_MESSAGE.validate_json(data)
            except ValidationError as exc:
                log.error("warm template %s sent an unreadable message (%s): %r", self.template_id, exc, data[:200])
                _close_all(fds)
                continue
            if isinstance(message, Forked):
                self._on_forked(message, fds)
                continue
            _close_all(fds)
            if isinstance(message, TemplateReady):
                self.private_bytes = message.private_bytes
                self.load_ms = message.load_ms
                if not self.ready.done():
                    self.ready.set_result(message)
            elif isinstance(message, TemplateFailed):
                self._fail(TemplateError(message.error))
            elif isinstance(message, ForkFailed):
                future = self._pending.pop(message.replica_id, None)
                if future is not None and not future.done():
                    future.set_exception(TemplateError(message.error))
            elif isinstance(message, Exited):
                reaped = self._replicas.pop(message.pid, None)
                if reaped is not None:
                    reaped.mark_exited(message.returncode)
                elif len(self._early_exits) < 1024:
                    self._early_exits[message.pid] = message.returncode

    def _on_forked(self, message: Forked, fds: list[int]) -> None:
        pidfd, status_fd = (fds[0], fds[1]) if message.has_pidfd else (None, fds[0])
        process = ReplicaProcess(message.pid, status_fd, pidfd, TEMPLATE)
        self._replicas[process.pid] = process
        if process.pid in self._early_exits:  # reaped before we got here (no-pidfd kernels)
            process.mark_exited(self._early_exits.pop(process.pid))
        future = self._pending.pop(message.replica_id, None)
        if future is None or future.done():
            process.send_signal(signal.SIGKILL)  # nobody waits for it any more
            process.exited.add_done_callback(lambda _: process.close())
        else:
            future.set_result(process)

    async def launch(self, replica_id: str, spec_fd: int, sock: socket.socket,
                     output: tuple[int, int] | None) -> ReplicaProcess:
        """Fork a replica from the template; it serves on `sock` (bound by the supervisor)."""
        if not self.usable or self._control is None:
            raise TemplateError(f"warm template {self.template_id} is not ready")
        if replica_id in self._pending:
            raise TemplateError(f"replica {replica_id} is already starting")
        future: asyncio.Future[ReplicaProcess] = self._loop.create_future()
        self._pending[replica_id] = future
        data = FORK_REQUEST.dump_json(ForkRequest(replica_id=replica_id))
        try:
            socket.send_fds(self._control, [data], [spec_fd, sock.fileno(), *(output or ())])
        except OSError as exc:
            self._pending.pop(replica_id, None)
            raise TemplateError(f"warm template {self.template_id} is not reachable: {exc}") from None
        return await future

    def _fail(self, error: TemplateError) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved here; waiters get it through `ready`
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def retire(self) -> None:
        """Fork nothing more: the template exits when its last replica has (they keep serving until then)."""
        if self.retired:
            return
        self.retired = True
        self._fail(TemplateError(f"warm template {self.template_id} retired"))
        if self._control is not None:
            try:
                self._control.shutdown(socket.SHUT_WR)
            except OSError:
                self.close()

    def close(self) -> None:
        """The template is gone (its socket reached end of file, or it exited): forget it."""
        self.retired = True
        if self._control is not None:
            self._loop.remove_reader(self._control)
            self._control.close()
            self._control = None
        self._fail(TemplateError(f"warm template {self.template_id} stopped"))
        for replica in self._replicas.values():
            replica.mark_exited()  # its replicas died with it (PR_SET_PDEATHSIG); their pidfds say so too
        self._replicas.clear()
        if self.process.exited.done():
            self.process.close()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)

