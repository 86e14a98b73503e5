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
import socket
from typing import Any

from deploy.local.fork_channel import ForkChannel
from deploy.local.messages import (
    FORK_REQUEST,
    TEMPLATE,
    TEMPLATE_MESSAGE,
    ForkRequest,
    TemplateFailed,
    TemplateReady,
)
from deploy.local.replica_process import ReplicaProcess

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
        self.retired = False
        self.ready: asyncio.Future[TemplateReady] = asyncio.get_running_loop().create_future()
        self._channel = ForkChannel(control, f"warm template {template_id}", TEMPLATE_MESSAGE, TEMPLATE,
                                    error=TemplateError, on_message=self._on_message, on_closed=self.close)
        process.exited.add_done_callback(lambda _: self.close())

    @property
    def usable(self) -> bool:
        return (self._channel.open and not self.retired and self.ready.done() and not self.ready.cancelled()
                and self.ready.exception() is None)

    def _on_message(self, message: Any) -> None:
        if isinstance(message, TemplateReady):
            self.private_bytes = message.private_bytes
            self.load_ms = message.load_ms
            if not self.ready.done():
                self.ready.set_result(message)
        elif isinstance(message, TemplateFailed):
            self._fail(TemplateError(message.error))

    async def launch(self, replica_id: str, spec_fd: int, sock: socket.socket,
                     output: tuple[int, int] | None) -> ReplicaProcess:
        """Fork a replica from the template; it serves on `sock` (bound by the supervisor)."""
        if not self.usable:
            raise TemplateError(f"warm template {self.template_id} is not ready")
        data = FORK_REQUEST.dump_json(ForkRequest(replica_id=replica_id))
        future = await self._channel.request(replica_id, "replica", data, [spec_fd, sock.fileno(), *(output or ())])
        return await future

    def _fail(self, error: TemplateError) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved here; waiters get it through `ready`
        self._channel.fail_pending(error)

    def retire(self) -> None:
        """Fork nothing more: the template exits when its last replica has (they keep serving until then)."""
        if self.retired:
            return
        self.retired = True
        self._fail(TemplateError(f"warm template {self.template_id} retired"))
        if self._channel.open and not self._channel.shutdown_write():
            self.close()

    def close(self) -> None:
        """The template is gone (its socket reached end of file, or it exited): forget it."""
        self.retired = True
        self._channel.close()
        self._fail(TemplateError(f"warm template {self.template_id} stopped"))
        for replica in self._channel.processes.values():
            replica.mark_exited()  # its replicas died with it (PR_SET_PDEATHSIG); their pidfds say so too
        self._channel.processes.clear()
        if self.process.exited.done():
            self.process.close()
