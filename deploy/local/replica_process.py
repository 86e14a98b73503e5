"""A process the supervisor watches: a replica, a warm template or a smoke child, whoever forked or spawned it.

Replicas are the zygote's (or a template's) children, not ours, so waitpid is not an option: `exited` resolves
the moment the process dies (its pidfd turns readable), and the exit status arrives from whoever reaps it.
"""

from __future__ import annotations

import asyncio
import os
import signal

from pydantic import ValidationError

from deploy.local.messages import STATUS_REPORT, LaunchMode, ReplicaFailed, StatusReport

MAX_STATUS_BYTES = 64 << 10


class ReplicaProcess:
    def __init__(self, pid: int, status_fd: int, pidfd: int | None, mode: LaunchMode):
        self.pid = pid
        self.mode = mode
        self.returncode: int | None = None
        self._status_fd: int | None = status_fd
        self._pidfd = pidfd
        self._loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = self._loop.create_future()
        self._returncode_known = asyncio.Event()
        if pidfd is not None:
            self._loop.add_reader(pidfd, self._on_pidfd, pidfd)

    def _on_pidfd(self, pidfd: int) -> None:
        self._loop.remove_reader(pidfd)
        self.mark_exited()

    def mark_exited(self, returncode: int | None = None) -> None:
        if returncode is not None and self.returncode is None:
            self.returncode = returncode
            self._returncode_known.set()
        if not self.exited.done():
            self.exited.set_result(None)

    async def exit_description(self, wait: float = 1.0) -> str:
        """'exit status N' / 'killed by SIGKILL', waiting briefly for the reaper to tell us."""
        if self.returncode is None:
            try:
                await asyncio.wait_for(self._returncode_known.wait(), wait)
            except TimeoutError:
                return "exit status unknown"
        code = self.returncode
        assert code is not None
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    async def read_status(self) -> StatusReport | None:
        """The replica's one status report; None when it died (or closed the pipe) without one."""
        fd = self._status_fd
        if fd is None:
            return None
        os.set_blocking(fd, False)
        done: asyncio.Future[bytes] = self._loop.create_future()
        buffer = bytearray()

        def on_readable() -> None:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            buffer.extend(chunk)
            if (not chunk or b"\n" in buffer or len(buffer) > MAX_STATUS_BYTES) and not done.done():
                done.set_result(bytes(buffer))

        self._loop.add_reader(fd, on_readable)
        try:
            data = await done
        finally:
            self._loop.remove_reader(fd)
            self.close_status()
        line = data.split(b"\n", 1)[0]
        if not line:
            return None
        try:
            return STATUS_REPORT.validate_json(line)
        except ValidationError:
            return ReplicaFailed(error=f"unreadable status line from replica: {line[:200]!r}")

    def close_status(self) -> None:
        if self._status_fd is not None:
            os.close(self._status_fd)
            self._status_fd = None

    def send_signal(self, sig: int) -> None:
        if self.exited.done():
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.close_status()
        if self._pidfd is not None:
            if not self.exited.done():
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
