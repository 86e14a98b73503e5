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
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from deploy.local.fork_channel import ForkChannel
from deploy.local.limits import FORK_SAFETY_ENV
from deploy.local.messages import (
    FORK,
    FORK_REQUEST,
    SPAWN,
    ZYGOTE_MESSAGE,
    ZYGOTE_REQUEST,
    ForkRequest,
    LaunchMode,
    SmokeRequest,
    TemplateRequest,
    ZygoteHello,
    ZygoteKind,
)
from deploy.local.replica_process import ReplicaProcess
from deploy.local.types import ReplicaSpec, TemplateSpec
from functions.isolation import inherited_environment
from functions.isolation.environment import with_runtime_on_path
from functions.isolation.orphans import ProcessRecords

log = logging.getLogger("zeroserve.supervisor")

ZYGOTE_HELLO_TIMEOUT = 120.0   # importing torch on a busy 2-core machine can take tens of seconds
ZYGOTE_STOP_TIMEOUT = 5.0


class LaunchError(RuntimeError):
    """The replica process could not be created at all (not a load error: that comes over its pipe)."""


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
        self._channel: ForkChannel | None = None  # our end of the zygote's control socket
        self._zygote_exit: asyncio.Future[None] | None = None
        self._hello_future: asyncio.Future[ZygoteHello] | None = None
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
        self._hello_future = loop.create_future()
        self._zygote_exit = loop.create_future()
        self._channel = ForkChannel(ours, f"zygote '{self.kind}'", ZYGOTE_MESSAGE, self.mode, error=LaunchError,
                                    on_message=self._on_hello, on_closed=self._on_control_closed)
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
        return (self._channel is not None and self._channel.open and self._zygote_exit is not None
                and not self._zygote_exit.done())

    async def ready(self) -> ZygoteHello:
        if not self.running:
            self.start()
        assert self._hello_future is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._hello_future), ZYGOTE_HELLO_TIMEOUT)
        except TimeoutError:
            raise LaunchError(f"zygote '{self.kind}' did not finish its imports in "
                              f"{ZYGOTE_HELLO_TIMEOUT:.0f}s") from None

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
        error = LaunchError(f"zygote '{self.kind}' exited")
        if self._hello_future is not None and not self._hello_future.done():
            self._hello_future.set_exception(error)
            self._hello_future.exception()  # retrieved here; waiters get it through ready()
        if self._channel is not None:
            self._channel.close()
            self._channel.fail_pending(error)
            self._channel.processes.clear()  # replicas die with their zygote (PR_SET_PDEATHSIG); pidfds report it

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
        message = FORK_REQUEST.dump_json(ForkRequest(replica_id=spec.replica_id))
        spec_fd = spec_memfd(spec)
        try:
            # The zygote makes the output pipes the child's fds 1 and 2, and closes its own copies.
            future = await self._request(spec.replica_id, "replica", message, [spec_fd, *(output or ())])
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
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec_fd = spec_memfd(spec)
        try:
            message = ZYGOTE_REQUEST.dump_json(TemplateRequest(template_id=spec.template_id))
            future = await self._request(spec.template_id, "template", message,
                                         [spec_fd, theirs.fileno(), *(output or ())])
        except LaunchError:
            ours.close()
            raise
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
        request_fd = os.memfd_create(f"zeroserve-smoke-{smoke_id}", os.MFD_CLOEXEC)
        try:
            os.write(request_fd, request)
            os.lseek(request_fd, 0, os.SEEK_SET)
            future = await self._request(smoke_id, "smoke child", ZYGOTE_REQUEST.dump_json(
                SmokeRequest(smoke_id=smoke_id)), [request_fd, *output])
        finally:
            os.close(request_fd)
        process = await future
        process.close_status()  # its report is its stdout and exit status
        return process

    async def _request(self, key: str, what: str, message: bytes, fds: list[int]) -> asyncio.Future[ReplicaProcess]:
        if self._channel is None:
            raise LaunchError(f"zygote '{self.kind}' is not reachable")
        return await self._channel.request(key, what, message, fds)

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
