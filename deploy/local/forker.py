"""What the zygote and warm templates share: fork a child per request, reap children, report their exits.

One SOCK_SEQPACKET control socket to the supervisor, one typed message (deploy.local.messages) per packet; the
children's exits arrive as SIGCHLD through a wakeup pipe, and each is reported (Exited) after reaping, so no
zombie is left. A child drops everything of its parent's (`become_replica`) before it runs what it was forked for.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time
from abc import ABC, abstractmethod
from typing import Any, NoReturn

from pydantic import TypeAdapter

from deploy.local.messages import Exited, Forked, ForkFailed

MAX_MESSAGE_BYTES = 1 << 20
STOP_GRACE_SECONDS = 3.0


def thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1  # unknown: treated as unsafe


class Forker(ABC):
    """Forks children on request (`handle`, `run_child`: what a subclass does), reaps them and reports their exits."""

    messages: TypeAdapter[Any]

    def __init__(self, control: socket.socket):
        self.control = control
        self.pid = os.getpid()
        self.children: set[int] = set()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work
        # Ctrl-C in a terminal reaches the whole process group; the supervisor decides what stops.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def send(self, message: Any, fds: list[int] | None = None) -> None:
        data = self.messages.dump_json(message)
        if fds:
            socket.send_fds(self.control, [data], fds)
        else:
            self.control.send(data)

    def serve(self, hello: Any) -> None:
        self.send(hello)
        self.selector.register(self.control, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE_BYTES, 4)
                    if not data:
                        self.on_control_closed()
                        return
                    try:
                        self.handle(data, fds)
                    finally:
                        for fd in fds:
                            os.close(fd)
                else:
                    self.drain_wakeups()
                    self.reap()

    @abstractmethod
    def handle(self, data: bytes, fds: list[int]) -> None:
        """One control message from the supervisor, with the fds that came with it."""

    def fork(self, replica_id: str, spec_fd: int, output: tuple[int, int] | None = None, *,
             extra_fd: int | None = None, role: str = "replica") -> None:
        """Fork a child that runs `run_child`; it reads its spec from `spec_fd` and writes to `output` (stdout,
        stderr) when given (all closed here by the caller afterwards)."""
        status_r, status_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(status_r)
            os.close(status_w)
            self.send(ForkFailed(replica_id=replica_id, error=f"fork: {exc}"))
            return
        if pid == 0:
            started = time.monotonic()
            try:
                os.close(status_r)
                self.become_replica(output)
                self.run_child(role, spec_fd, status_w, started, extra_fd)
            finally:
                os._exit(1)
        os.close(status_w)
        self.children.add(pid)
        fds = [status_r]
        try:
            # Opened before this loop can reap the child, so the pid cannot have been reused.
            fds.insert(0, os.pidfd_open(pid))
        except (AttributeError, OSError):
            pass  # no pidfd (old kernel): the supervisor falls back to our "exited" messages
        try:
            self.send(Forked(replica_id=replica_id, pid=pid, has_pidfd=len(fds) == 2), fds)
        finally:
            for fd in fds:
                os.close(fd)

    @abstractmethod
    def run_child(self, role: str, spec_fd: int, status_w: int, started: float, extra_fd: int | None) -> NoReturn:
        """In the forked child, with the parent's state dropped (`become_replica`): become what was asked for."""

    def on_control_closed(self) -> None:
        """The supervisor is gone: stop every child."""
        self.stop_children()

    def become_replica(self, output: tuple[int, int] | None = None) -> None:
        """In the forked child: drop everything that belongs to the zygote; write to `output`, if given."""
        if output is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(output[0], 1)
            os.dup2(output[1], 2)
            for fd in output:  # 1 and 2 are the copies it writes to
                if fd > 2:
                    os.close(fd)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        self.selector.close()
        self.control.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            try:
                self.send(Exited(pid=pid, returncode=os.waitstatus_to_exitcode(status)))
            except OSError:
                pass  # supervisor gone; we are about to stop anyway

    def stop_children(self) -> None:
        """The supervisor is gone: SIGTERM every replica, SIGKILL what is left after a grace period."""
        for pid in list(self.children):
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            self.selector.select(timeout=0.05)
            self.drain_wakeups()
            self.reap()
        for pid in list(self.children):
            _kill(pid, signal.SIGKILL)
        while self.children:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.children.discard(pid)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
