"""Starting replica processes, seen from the supervisor: fork from a zygote, or spawn where that is unsafe.

Both launchers return a `ReplicaProcess`: the pid, the status pipe the replica reports on, and an
`exited` future that resolves the moment the process dies (pidfd readable; replicas are the zygote's
children, not ours, so waitpid is not an option here).

What the processes get: the zygote and spawned replicas start with the platform's allowlisted
environment (functions.isolation.environment) and die with the platform (PR_SET_PDEATHSIG); each
replica's spec, which carries the function's env, goes in a memfd (anonymous memory, never a file
on disk) handed over as a file descriptor that only the replica reads; the zygote passes it on
unread. Each zygote and spawned replica leads its own process group
and is recorded in `processes`, so a restarted platform sweeps what a killed one left.

A replica's stdout and stderr are the write ends of its own pipes (`output`, from
deploy.local.replica_logs) when the supervisor captures its logs; otherwise the platform's own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from deploy.local.limits import FORK_SAFETY_ENV
from deploy.local.messages import (
    FORK,
    FORK_REQUEST,
    SPAWN,
    STATUS_REPORT,
    ZYGOTE_MESSAGE,
    ZYGOTE_REQUEST,
    Exited,
    Forked,
    ForkFailed,
    ForkRequest,
    LaunchMode,
    ReplicaFailed,
    SmokeRequest,
    StatusReport,
    TemplateRequest,
    ZygoteHello,
    ZygoteKind,
    ZygoteMessage,
)
from deploy.local.types import ReplicaSpec, TemplateSpec
from functions.isolation import inherited_environment
from functions.isolation.environment import with_runtime_on_path
from functions.isolation.orphans import ProcessRecords

log = logging.getLogger("zeroserve.supervisor")

ZYGOTE_HELLO_TIMEOUT = 120.0   # importing torch on a busy 2-core machine can take tens of seconds
ZYGOTE_STOP_TIMEOUT = 5.0
MAX_STATUS_BYTES = 64 << 10


class LaunchError(RuntimeError):
    """The replica process could not be created at all (not a load error: that comes over its pipe)."""


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


# (stdout, stderr): the write ends a replica gets as its fds 1 and 2; None: it shares the platform's.
Output = tuple[int, int] | None


class Launcher(Protocol):
    mode: LaunchMode

    async def launch(self, spec: ReplicaSpec, output: Output = None) -> ReplicaProcess: ...

    async def close(self) -> None: ...


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def launch_environment() -> dict[str, str]:
    """What the zygote and spawned replicas start with: the allowlist, fork safety, our packages."""
    return with_runtime_on_path({**inherited_environment(), **FORK_SAFETY_ENV})


def spec_memfd(spec: ReplicaSpec | TemplateSpec) -> int:
    """The spec in a memfd, positioned at its start; the caller closes it once handed over."""
    name = spec.replica_id if isinstance(spec, ReplicaSpec) else spec.template_id
    fd = os.memfd_create(f"zeroserve-spec-{name}", os.MFD_CLOEXEC)
    data = spec.to_json()
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _close_all(fds: list[int]) -> None:
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


class SpawnLauncher:
    """A fresh interpreter per replica (`python -m deploy.local.replica`): slow to start, always safe."""

    mode: LaunchMode = SPAWN

    def __init__(self, spec_dir: Path, *, view: tuple[str, ...] = (), processes: ProcessRecords | None = None):
        self.spec_dir = spec_dir
        self.view = view
        self.processes = processes
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    async def launch(self, spec: ReplicaSpec, output: Output = None) -> ReplicaProcess:
        if self.view:
            spec = replace(spec, view=self.view)
        spec_fd = spec_memfd(spec)
        status_r, status_w = os.pipe()
        stdout, stderr = output if output is not None else (None, None)
        try:
            child = subprocess.Popen(
                [sys.executable, "-P", "-m", "deploy.local.replica", "--spec-fd", str(spec_fd),
                 "--status-fd", str(status_w)],
                pass_fds=[status_w, spec_fd], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                start_new_session=True, cwd="/", env=launch_environment(),
            )
        except OSError as exc:
            os.close(status_r)
            raise LaunchError(f"cannot spawn a replica process: {exc}") from None
        finally:
            os.close(status_w)
            os.close(spec_fd)
        self._children[child.pid] = child
        if self.processes is not None:
            self.processes.add(child.pid, "replica")
        process = ReplicaProcess(child.pid, status_r, _pidfd_open(child.pid), self.mode)
        process.exited.add_done_callback(lambda _: self._reap(child, process))
        if process._pidfd is None:  # no pidfd: a thread waits for the exit instead
            asyncio.get_running_loop().run_in_executor(None, child.wait).add_done_callback(
                lambda _: process.mark_exited(child.returncode))
        return process

    def _reap(self, child: subprocess.Popen[bytes], process: ReplicaProcess) -> None:
        self._children.pop(child.pid, None)
        process.mark_exited(child.wait())  # already exited: returns at once and reaps the zombie
        if self.processes is not None:
            self.processes.remove(child.pid)

    async def close(self) -> None:
        for child in list(self._children.values()):
            child.kill()
            child.wait()
        self._children.clear()


class ZygoteLauncher:
    """Forks replicas from a pre-imported zygote; falls back to spawning when the zygote is not fork-safe."""

    mode: LaunchMode = FORK

    def __init__(self, kind: ZygoteKind, *, spec_dir: Path, preimports: tuple[str, ...] = (),
                 view: tuple[str, ...] = (), processes: ProcessRecords | None = None):
        self.kind = kind
        self.spec_dir = spec_dir
        self.preimports = preimports
        self.view = view  # directories replicas must reach; empty: no view (functions run as our user)
        self.processes = processes
        self.hello: ZygoteHello | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._zygote_exit: asyncio.Future[None] | None = None
        self._hello_future: asyncio.Future[ZygoteHello] | None = None
        self._pending: dict[str, asyncio.Future[ReplicaProcess]] = {}
        self._processes: dict[int, ReplicaProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._spawn: SpawnLauncher | None = None
        self._closed = False

    # --- zygote lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the zygote; returns at once (the zygote reports when its imports are done)."""
        if self._closed:
            raise LaunchError("the launcher is closed")
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # -P and cwd "/": nothing of the platform's working directory is importable by, or visible to, replicas.
        argv = [sys.executable, "-P", "-m", "deploy.local.zygote", "--kind", self.kind,
                "--control-fd", str(theirs.fileno()), "--parent-pid", str(os.getpid())]
        for module in self.preimports:
            argv += ["--preimport", module]
        for directory in self.view:
            argv += ["--view", directory]
        try:
            # Own session: Ctrl-C in a terminal reaches the supervisor only, which stops everything in order.
            self._popen = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                           start_new_session=True, cwd="/", env=launch_environment())
        finally:
            theirs.close()
        if self.processes is not None:
            self.processes.add(self._popen.pid, f"zygote {self.kind}")
        ours.setblocking(False)
        self._control = ours
        self._hello_future = loop.create_future()
        self._zygote_exit = loop.create_future()
        loop.add_reader(ours, self._on_control)
        pidfd = _pidfd_open(self._popen.pid)
        if pidfd is not None:
            def on_exit() -> None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
                self._on_zygote_exit()
            loop.add_reader(pidfd, on_exit)
        else:  # no pidfd (old kernel): a thread waits for the exit instead
            loop.run_in_executor(None, self._popen.wait).add_done_callback(lambda _: self._on_zygote_exit())
        log.info("zygote '%s' starting (pid %d)", self.kind, self._popen.pid)

    @property
    def running(self) -> bool:
        return self._control is not None and self._zygote_exit is not None and not self._zygote_exit.done()

    async def ready(self) -> ZygoteHello:
        if not self.running:
            self.start()
        assert self._hello_future is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._hello_future), ZYGOTE_HELLO_TIMEOUT)
        except TimeoutError:
            raise LaunchError(f"zygote '{self.kind}' did not finish its imports in "
                              f"{ZYGOTE_HELLO_TIMEOUT:.0f}s") from None

    def _on_control(self) -> None:
        assert self._control is not None
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._control, 1 << 16, 2)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._on_control_closed()
                return
            try:
                message = ZYGOTE_MESSAGE.validate_json(data)
            except ValidationError as exc:
                log.error("zygote '%s' sent an unreadable message (%s): %r", self.kind, exc, data[:200])
                _close_all(fds)
                continue
            self._handle(message, fds)

    def _handle(self, message: ZygoteMessage, fds: list[int]) -> None:
        if isinstance(message, Forked):
            self._on_forked(message, fds)  # the fds are the replica's now
            return
        if isinstance(message, ZygoteHello):
            self._on_hello(message)
        elif isinstance(message, ForkFailed):
            future = self._pending.pop(message.replica_id, None)
            if future is not None and not future.done():
                future.set_exception(LaunchError(message.error))
        else:
            self._on_exited(message)
        _close_all(fds)

    def _on_forked(self, message: Forked, fds: list[int]) -> None:
        pidfd, status_fd = (fds[0], fds[1]) if message.has_pidfd else (None, fds[0])
        process = ReplicaProcess(message.pid, status_fd, pidfd, self.mode)
        self._processes[process.pid] = process  # until the zygote reports it reaped
        if process.pid in self._early_exits:  # reaped before we got here (no-pidfd kernels)
            process.mark_exited(self._early_exits.pop(process.pid))
        future = self._pending.pop(message.replica_id, None)
        if future is None or future.done():
            process.send_signal(signal.SIGKILL)  # nobody waits for it any more
            process.exited.add_done_callback(lambda _: process.close())
        else:
            future.set_result(process)

    def _on_exited(self, message: Exited) -> None:
        reaped = self._processes.pop(message.pid, None)
        if reaped is not None:
            reaped.mark_exited(message.returncode)
        else:
            self._early_exits[message.pid] = message.returncode
            if len(self._early_exits) > 1024:
                self._early_exits.pop(next(iter(self._early_exits)))

    def _on_hello(self, hello: ZygoteHello) -> None:
        self.hello = hello
        if hello.isolation_error:
            log.error("zygote '%s': %s; no replica can start until this is fixed (docs/security.md)", self.kind,
                      hello.isolation_error)
        for module, error in hello.preimport_errors.items():
            log.warning("zygote '%s': could not preimport %s: %s", self.kind, module, error)
        if hello.fork_safe:
            log.info("zygote '%s' ready (pid %d): imports %.0f ms, warm-up %.0f ms", self.kind, hello.pid,
                     hello.import_ms, hello.warmup_ms)
        else:
            log.warning("zygote '%s' is not fork-safe (%s): replicas are spawned as fresh processes instead "
                        "(cold starts take seconds, not milliseconds)", self.kind, hello.reason)
        if self._hello_future is not None and not self._hello_future.done():
            self._hello_future.set_result(hello)

    def _on_control_closed(self) -> None:
        """The zygote closed its end (it is exiting): nothing more can be forked from it."""
        if self._control is not None:
            asyncio.get_running_loop().remove_reader(self._control)
            self._control.close()
            self._control = None
        error = LaunchError(f"zygote '{self.kind}' exited")
        if self._hello_future is not None and not self._hello_future.done():
            self._hello_future.set_exception(error)
            self._hello_future.exception()  # retrieved here; waiters get it through ready()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._processes.clear()  # replicas die with their zygote (PR_SET_PDEATHSIG); pidfds report it

    def _on_zygote_exit(self) -> None:
        self._on_control_closed()
        if self._zygote_exit is None or self._zygote_exit.done():
            return
        if self._popen is not None:
            code = self._popen.wait()  # it has exited: this reaps without blocking
            if self.processes is not None:
                self.processes.remove(self._popen.pid)
            if not self._closed:
                log.error("zygote '%s' (pid %d) exited (status %s); its replicas die with it and are "
                          "replaced",
                          self.kind, self._popen.pid, code)
        self._zygote_exit.set_result(None)

    # --- launching -----------------------------------------------------------------------------------

    async def launch(self, spec: ReplicaSpec, output: Output = None) -> ReplicaProcess:
        if self._closed:
            raise LaunchError("the supervisor is stopping")
        hello = await self.ready()
        if hello.isolation_error:
            raise LaunchError(hello.isolation_error)
        if not hello.fork_safe:
            if self._spawn is None:
                self._spawn = SpawnLauncher(self.spec_dir, view=self.view, processes=self.processes)
            return await self._spawn.launch(spec, output)
        if spec.replica_id in self._pending:
            raise LaunchError(f"replica {spec.replica_id} is already starting")
        future: asyncio.Future[ReplicaProcess] = asyncio.get_running_loop().create_future()
        self._pending[spec.replica_id] = future
        message = FORK_REQUEST.dump_json(ForkRequest(replica_id=spec.replica_id))
        spec_fd = spec_memfd(spec)
        try:
            assert self._control is not None
            # The zygote makes the output pipes the child's fds 1 and 2, and closes its own copies.
            await send_with_fds(self._control, message, [spec_fd, *(output or ())])
        except (OSError, AssertionError) as exc:
            self._pending.pop(spec.replica_id, None)
            raise LaunchError(f"zygote '{self.kind}' is not reachable: {exc}") from None
        finally:
            os.close(spec_fd)  # the zygote holds its own copy until it has forked
        return await future

    async def start_template(self, spec: TemplateSpec, output: Output = None) -> tuple[socket.socket, ReplicaProcess]:
        """Fork a warm template (deploy.local.warm_template): our end of its control socket, and its process.

        Raises LaunchError when this zygote cannot fork (not fork-safe, no file system view, gone).
        """
        if self._closed:
            raise LaunchError("the supervisor is stopping")
        hello = await self.ready()
        if hello.isolation_error:
            raise LaunchError(hello.isolation_error)
        if not hello.fork_safe:
            raise LaunchError(f"zygote '{self.kind}' is not fork-safe: {hello.reason}")
        if spec.template_id in self._pending:
            raise LaunchError(f"template {spec.template_id} is already starting")
        future: asyncio.Future[ReplicaProcess] = asyncio.get_running_loop().create_future()
        self._pending[spec.template_id] = future
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec_fd = spec_memfd(spec)
        try:
            assert self._control is not None
            message = ZYGOTE_REQUEST.dump_json(TemplateRequest(template_id=spec.template_id))
            await send_with_fds(self._control, message, [spec_fd, theirs.fileno(), *(output or ())])
        except (OSError, AssertionError) as exc:
            self._pending.pop(spec.template_id, None)
            ours.close()
            raise LaunchError(f"zygote '{self.kind}' is not reachable: {exc}") from None
        finally:
            os.close(spec_fd)
            theirs.close()  # the template holds its own copy
        try:
            process = await future
        except BaseException:
            ours.close()
            raise
        process.close_status()  # a template reports over its socket, not the status pipe
        return ours, process

    async def fork_smoke(self, smoke_id: str, request: bytes, output: tuple[int, int]) -> ReplicaProcess | None:
        """Fork a build's smoke child (deploy.local.smoke_child) writing to `output`; None when this zygote cannot
        fork (not fork-safe, or no file system view): the builder then starts a fresh interpreter."""
        if self._closed:
            raise LaunchError("the supervisor is stopping")
        hello = await self.ready()
        if hello.isolation_error or not hello.fork_safe:
            return None
        if smoke_id in self._pending:
            raise LaunchError(f"smoke child {smoke_id} is already starting")
        future: asyncio.Future[ReplicaProcess] = asyncio.get_running_loop().create_future()
        self._pending[smoke_id] = future
        request_fd = os.memfd_create(f"zeroserve-smoke-{smoke_id}", os.MFD_CLOEXEC)
        try:
            os.write(request_fd, request)
            os.lseek(request_fd, 0, os.SEEK_SET)
            assert self._control is not None
            await send_with_fds(self._control, ZYGOTE_REQUEST.dump_json(SmokeRequest(smoke_id=smoke_id)),
                                [request_fd, *output])
        except (OSError, AssertionError) as exc:
            self._pending.pop(smoke_id, None)
            raise LaunchError(f"zygote '{self.kind}' is not reachable: {exc}") from None
        finally:
            os.close(request_fd)
        process = await future
        process.close_status()  # its report is its stdout and exit status
        return process

    async def close(self) -> None:
        """Close the control socket (the zygote stops its children and exits), then make sure it did."""
        self._closed = True
        if self._spawn is not None:
            await self._spawn.close()
        exit_future = self._zygote_exit
        self._on_control_closed()
        if self._popen is None or exit_future is None or exit_future.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(exit_future), ZYGOTE_STOP_TIMEOUT)
        except TimeoutError:
            log.warning("zygote '%s' did not exit in %.0fs; killing it", self.kind, ZYGOTE_STOP_TIMEOUT)
            self._popen.kill()
            await asyncio.shield(exit_future)
