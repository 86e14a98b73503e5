"""The local replica supervisor: keeps each revision at the replica count the autoscaler asks for.

Replicas are forked from a pre-imported zygote (one per runtime kind), serve on Unix sockets under
`<run_dir>/replicas/`, and report ready over a pipe. The supervisor tells its owner (the activator)
which replicas are routable through `on_replicas_changed`, drains before stopping, sees a crash the
moment it happens (pidfd), replaces crashed replicas, and backs off exponentially when a revision's
replicas keep failing to start, reporting the start error through `on_start_failed` so requests
waiting for that revision fail with the error instead of hanging.

What to start, what to retire, and when to try again are decided by `replica_plan` (pure, table-tested);
this module is the I/O shell around it: processes, sockets, timers, callbacks. It reads the time only
through its `clock`.

Replicas are confined (functions.isolation): the platform's allowlisted environment plus the
function's `env`, a private home under `<run_dir>/home/`, `resources.threads` and `resources.memory`,
death with the zygote. With `identities` (the platform runs as root) each function's replicas run as
its own unprivileged user, in a file system view that reaches only the runtime, `run_dir` and
`shared_dirs` (the artifact store), and may read only their own function directory.

With `logs` (deploy.local.replica_logs), each replica's stdout and stderr are captured line by line
into its revision's log; without, replicas write to the platform's own. Starts and exits are counted
per revision, by exit reason (`counters`), for the platform's metrics.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from deploy.local.identities import IdentityPolicy
from deploy.local.launcher import Launcher, LaunchError, SpawnLauncher, ZygoteLauncher, spec_memfd
from deploy.local.limits import FORK_SAFETY_ENV
from deploy.local.messages import ReplicaFailed, ReplicaReady, StatusReport, ZygoteKind
from deploy.local.replica import bind_unix_socket
from deploy.local.replica_logs import FunctionLogs, ReplicaOutput
from deploy.local.replica_plan import (
    DRAINING,
    GONE,
    READY,
    STARTING,
    STOPPING,
    Actions,
    Backoff,
    Failures,
    ReplicaFacts,
    ReplicaSetState,
    ReplicaState,
    after_crash,
    after_ready,
    after_start_failure,
    error_for_waiters,
    exit_reason,
    failure_exit,
    plan,
)
from deploy.local.replica_process import ReplicaProcess
from deploy.local.template_process import TemplateError, TemplateProcess
from deploy.local.types import (
    ExitReason,
    ReplicaCounters,
    ReplicaEndpoint,
    ReplicaInfo,
    ReplicaSetStatus,
    ReplicaSpec,
    TemplateSpec,
)
from deploy.local.warm_templates import WarmTemplates
from functions.isolation import Confinement, Identity, function_environment, inherited_environment
from functions.isolation.files import private_dir, share_read_only
from functions.isolation.orphans import ProcessRecords
from protocol.manifest import FunctionManifest

log = logging.getLogger("zeroserve.supervisor")

DEFAULT_APP_FACTORY = "functions.app:create_app"
SOCKET_DIR_NAME = "replicas"
HOME_DIR_NAME = "home"
PROCESSES_DIR_NAME = "processes"
LOCK_FILE_NAME = "supervisor.lock"
MAX_UNIX_PATH = 107            # sun_path is 108 bytes with the terminating NUL
EXIT_GRACE_AFTER_KILL = 5.0
# The loop's timers may fire a little before `clock` reaches their time (uvloop counts whole, cached
# milliseconds); a retry planned again for a moment later then waits at least this, never spins.
MIN_RETRY_WAIT = 0.001

Clock = Callable[[], float]

OnReplicasChanged = Callable[[str, list[ReplicaEndpoint]], None]
OnStartFailed = Callable[[str, str], None]
OnReplicaFailed = Callable[[str, str], None]
Drain = Callable[[str, str, float], Awaitable[None]]


class UnknownRevisionError(LookupError):
    def __init__(self, revision: str):
        super().__init__(f"revision '{revision}' is not registered with the supervisor")
        self.revision = revision


@dataclass(eq=False)
class _Replica:
    replica_id: str
    socket_path: str
    requested_at: float            # the supervisor's clock, which replicas' timings are compared with
    state: ReplicaState = STARTING
    process: ReplicaProcess | None = None
    ready_at: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    output: ReplicaOutput | None = None   # its captured stdout and stderr
    exit_kind: ExitReason | None = None   # set when it fails; otherwise it ends by a scale-down

    def facts(self) -> ReplicaFacts:
        return ReplicaFacts(self.replica_id, self.state, self.requested_at, self.ready_at)


@dataclass(eq=False)
class _ReplicaSet:
    revision: str
    function_dir: Path
    manifest: FunctionManifest
    manifest_data: dict[str, Any]
    desired: int = 0
    replicas: dict[str, _Replica] = field(default_factory=dict)  # in the order their starts were asked for
    failures: Failures = field(default_factory=Failures)
    retry_timer: asyncio.TimerHandle | None = None
    published: list[ReplicaEndpoint] | None = None
    identity: Identity | None = None   # who its replicas run as (None: the platform's own user)
    home: Path | None = None           # the function's private HOME, made when its first replica starts
    counters: ReplicaCounters = field(default_factory=ReplicaCounters)

    @property
    def kind(self) -> ZygoteKind:
        return "torch" if self.manifest.runtime == "torch" else "default"

    def in_state(self, *states: ReplicaState) -> list[_Replica]:
        return [r for r in self.replicas.values() if r.state in states]

    def state(self) -> ReplicaSetState:
        """What replica_plan decides from."""
        return ReplicaSetState(tuple(r.facts() for r in self.replicas.values()), self.failures)


def prepare_run_dir(run_dir: Path) -> None:
    """run_dir must be ours: not a symlink nor someone else's directory (it may sit in /tmp).

    Mode 0711: replicas' users may pass through to their home and artifact, but not list what is here.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    info = os.lstat(run_dir)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise RuntimeError(f"run_dir {run_dir} is not a directory owned by this user (uid {os.geteuid()}); "
                           "remove it or use another data dir")
    os.chmod(run_dir, 0o711)


class Supervisor:
    def __init__(
        self,
        run_dir: Path,
        *,
        on_replicas_changed: OnReplicasChanged,
        on_start_failed: OnStartFailed,
        drain: Drain | None = None,
        app_factory: str = DEFAULT_APP_FACTORY,
        start_timeout: float = 120.0,
        stop_timeout: float = 5.0,
        backoff: Backoff = Backoff(),
        replica_graceful_shutdown: float = 2.0,
        replica_keep_alive: float = 65.0,
        on_replica_failed: OnReplicaFailed | None = None,
        identities: IdentityPolicy | None = None,
        shared_dirs: tuple[Path, ...] = (),
        logs: FunctionLogs | None = None,
        warm_templates_memory: int = 0,
        clock: Clock = time.monotonic,
    ):
        self.run_dir = Path(run_dir)
        self.logs = logs
        self.socket_dir = self.run_dir / SOCKET_DIR_NAME
        self.home_dir = self.run_dir / HOME_DIR_NAME
        # Zygotes and spawned replicas, recorded so a restart sweeps what a killed platform left running.
        self.processes = ProcessRecords(self.run_dir / PROCESSES_DIR_NAME)
        self.identities = identities
        # What a function's view must reach besides the runtime and run_dir (only used with identities).
        self.shared_dirs = tuple(Path(d) for d in shared_dirs)
        # Computed once: the platform's environment does not change, and reading it per start costs.
        self._inherited_env = {**inherited_environment(), **FORK_SAFETY_ENV}
        self._on_replica_failed = on_replica_failed
        self.app_factory = app_factory
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.backoff = backoff
        # Replicas stamp their start timings with time.monotonic, which `timings_ms` compares with this.
        self._clock = clock
        # Below stop_timeout, so a replica finishes its own graceful exit before we SIGKILL it.
        self.replica_graceful_shutdown = min(replica_graceful_shutdown, max(stop_timeout - 1.0, 0.0))
        # Longer than the activator's client keep-alive, so the client always closes an idle connection
        # first and never sends a request on one the replica is closing.
        self.replica_keep_alive = replica_keep_alive
        self._on_replicas_changed = on_replicas_changed
        self._on_start_failed = on_start_failed
        self._drain = drain
        self._sets: dict[str, _ReplicaSet] = {}
        self._launchers: dict[ZygoteKind, Launcher] = {}
        # Warm templates (deploy.local.warm_template) for the default app factory only: they load through
        # functions.loaders, which is what that factory serves. 0 bytes: none.
        budget = warm_templates_memory if app_factory == DEFAULT_APP_FACTORY else 0
        self.templates = WarmTemplates(budget, self._start_template)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sequence = 0
        self._lock_file: IO[str] | None = None
        self._started = False
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare run_dir and start the zygote (its imports finish in the background)."""
        if self._started:
            return
        longest = len(str(self.socket_dir.resolve() / "r999999999.sock"))
        if longest > MAX_UNIX_PATH:
            raise ValueError(f"run_dir {self.run_dir} is too long for Unix socket paths ({longest} > "
                             f"{MAX_UNIX_PATH} bytes); use a shorter run directory")
        prepare_run_dir(self.run_dir)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.socket_dir, 0o700)  # the sockets accept anything: only our user may connect
        self._lock_file = open(self.run_dir / LOCK_FILE_NAME, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise RuntimeError(f"another zeroserve supervisor is using {self.run_dir}") from None
        self.processes.sweep()
        self._remove_stale_files()
        # Homes are scratch space, like /tmp: a new run starts them empty. Traversable, not listable.
        private_dir(self.home_dir, None, fresh=True)
        os.chmod(self.home_dir, 0o711)
        for rs in self._sets.values():
            rs.home = None
        self._stopping = False
        self._started = True
        self._launcher("default")
        for rs in self._sets.values():  # registered before start: e.g. a torch zygote imports for seconds
            self._launcher(rs.kind)
            self._want_template(rs)

    async def stop(self) -> None:
        """Drain and stop every replica, stop the zygotes, remove the sockets. Safe to call twice."""
        if not self._started:
            return
        self._stopping = True
        for rs in self._sets.values():
            if rs.retry_timer is not None:
                rs.retry_timer.cancel()
                rs.retry_timer = None
            rs.desired = 0
            self._apply(rs, plan(rs.state(), 0, self._clock()))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.templates.close()
        self.templates = WarmTemplates(self.templates.budget_bytes, self._start_template)
        for launcher in self._launchers.values():
            await launcher.close()
        self._launchers.clear()
        self._remove_stale_files()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        self._started = False

    def _remove_stale_files(self) -> None:
        for pattern in ("*.sock", "spec-*.json"):  # spec files: what older versions left, env included
            for path in self.socket_dir.glob(pattern):
                path.unlink(missing_ok=True)

    def launcher(self, kind: ZygoteKind) -> Launcher:
        """The launcher of `kind`'s zygote, started now if it was not (deploy.local.smoke_fork forks from it)."""
        if not self._started or self._stopping:
            raise LaunchError("the supervisor is not running")
        return self._launcher(kind)

    def _launcher(self, kind: ZygoteKind) -> Launcher:
        launcher = self._launchers.get(kind)
        if launcher is None:
            view = self._view()
            if sys.platform.startswith("linux"):
                preimports = (self.app_factory.partition(":")[0],)
                launcher = ZygoteLauncher(kind, spec_dir=self.socket_dir, preimports=preimports, view=view,
                                          processes=self.processes)
                launcher.start()
            else:
                log.warning("fork-based replicas need Linux (this is %s): spawning a fresh process per "
                            "replica instead (cold starts take seconds)", sys.platform)
                launcher = SpawnLauncher(self.socket_dir, view=view, processes=self.processes)
            self._launchers[kind] = launcher
        return launcher

    def _view(self) -> tuple[str, ...]:
        """What replicas' file system view must reach (besides the runtime); empty: no view."""
        if self.identities is None:
            return ()
        return (str(self.run_dir.resolve()), *(str(d.resolve()) for d in self.shared_dirs))

    # --- public API ----------------------------------------------------------------------------------

    def register_revision(self, revision: str, function_dir: Path, manifest: FunctionManifest) -> None:
        """Make a revision startable. Registering it again updates what new replicas load.

        With identities, the function's user gets its home and read access to `function_dir` (its group);
        the directory stays the platform's and read-only to the function.
        """
        identity = self.identities.for_function(manifest.name) if self.identities is not None else None
        if identity is not None:
            share_read_only(Path(function_dir), identity.gid)
        existing = self._sets.get(revision)
        if existing is not None:
            existing.function_dir = Path(function_dir)
            existing.manifest = manifest
            existing.manifest_data = manifest.normalised()
            rs = existing
        else:
            rs = _ReplicaSet(revision, Path(function_dir), manifest, manifest.normalised(), identity=identity)
            self._sets[revision] = rs
        if self._started and not self._stopping:
            self._launcher(rs.kind)  # a torch zygote imports for seconds: begin now, not on first request
            self._want_template(rs)  # loads now, so the first request only pays a fork

    async def set_scale(self, revision: str, n: int) -> None:
        """Ask for n replicas; returns at once. Starts continue in the background."""
        rs = self._get(revision)
        if n < 0:
            raise ValueError(f"revision '{revision}': scale must be >= 0, got {n}")
        if not self._started or self._stopping:
            raise RuntimeError("the supervisor is not running (call start() first)")
        rs.desired = n
        self._reconcile(rs)
        error = error_for_waiters(rs.state(), self._clock()) if n > 0 else None
        if error is not None:
            # Backing off: whoever asked for replicas now is waiting for them; tell it why none come.
            asyncio.get_running_loop().call_soon(self._report_start_failure, rs.revision, error)

    def status(self, revision: str) -> ReplicaSetStatus:
        rs = self._get(revision)
        draining = [r for r in rs.replicas.values()
                    if r.state == DRAINING or (r.state == STOPPING and r.ready_at is not None)]
        return ReplicaSetStatus(desired=rs.desired, ready=len(rs.in_state(READY)),
                                starting=len(rs.in_state(STARTING)), draining=len(draining),
                                last_error=rs.failures.last_error, restarts=rs.failures.restarts)

    def replicas(self, revision: str) -> list[ReplicaInfo]:
        rs = self._get(revision)
        return [ReplicaInfo(replica_id=r.replica_id, revision=revision, state=r.state,
                            pid=r.process.pid if r.process else None, socket_path=r.socket_path,
                            mode=r.process.mode if r.process else "", timings_ms=dict(r.timings_ms),
                            requested_at=r.requested_at)
                for r in rs.replicas.values()]

    def counters(self, revision: str) -> ReplicaCounters:
        """A copy of the revision's start and exit counts (and restarts)."""
        rs = self._get(revision)
        return ReplicaCounters(rs.counters.started, dict(rs.counters.exited), rs.failures.restarts)

    def endpoints(self, revision: str) -> list[ReplicaEndpoint]:
        return [ReplicaEndpoint(r.replica_id, r.socket_path) for r in self._get(revision).in_state(READY)]

    def warm_templates(self) -> dict[str, Any]:
        """Budget, count, bytes held, hits, misses, evictions, each template, and why a revision has none."""
        return self.templates.status()

    def zygotes(self) -> dict[str, dict[str, Any]]:
        """Each started zygote's report: pid, threads, fork_safe (and why not), import and warm-up ms."""
        return {kind: asdict(launcher.hello) for kind, launcher in self._launchers.items()
                if isinstance(launcher, ZygoteLauncher) and launcher.hello is not None}

    @property
    def revisions(self) -> list[str]:
        return list(self._sets)

    def _get(self, revision: str) -> _ReplicaSet:
        rs = self._sets.get(revision)
        if rs is None:
            raise UnknownRevisionError(revision)
        return rs

    # --- reconciling ---------------------------------------------------------------------------------

    def _reconcile(self, rs: _ReplicaSet) -> None:
        if not self._stopping:
            self._apply(rs, plan(rs.state(), rs.desired, self._clock()))

    def _apply(self, rs: _ReplicaSet, actions: Actions) -> None:
        for replica_id in actions.retire:
            self._retire(rs, rs.replicas[replica_id])
        if actions.retry_at is not None and rs.retry_timer is None:
            wait = max(actions.retry_at - self._clock(), MIN_RETRY_WAIT)
            rs.retry_timer = asyncio.get_running_loop().call_later(wait, self._retry, rs)
        for _ in range(actions.start):
            self._start_replica(rs)

    def _retry(self, rs: _ReplicaSet) -> None:
        rs.retry_timer = None
        self._reconcile(rs)

    def _start_replica(self, rs: _ReplicaSet) -> None:
        self._sequence += 1
        replica = _Replica(replica_id=f"{rs.revision}-r{self._sequence}",
                           socket_path=str(self.socket_dir.resolve() / f"r{self._sequence}.sock"),
                           requested_at=self._clock())
        rs.replicas[replica.replica_id] = replica
        rs.counters.started += 1
        self._spawn_task(self._run_replica(rs, replica))

    def _spawn_task(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _retire(self, rs: _ReplicaSet, replica: _Replica) -> None:
        if replica.state == STARTING:
            replica.state = STOPPING
            if replica.process is not None:
                replica.process.send_signal(signal.SIGKILL)  # not serving anything yet
        elif replica.state == READY:
            replica.state = DRAINING
            self._publish(rs)  # out of routing before anything else
            self._spawn_task(self._drain_and_stop(rs, replica))

    # --- one replica's life --------------------------------------------------------------------------

    async def _run_replica(self, rs: _ReplicaSet, replica: _Replica) -> None:
        try:
            await self._start_and_serve(rs, replica)
        except Exception:
            log.exception("revision %s: supervising replica %s failed", rs.revision, replica.replica_id)
        finally:
            process = replica.process
            if process is not None:
                process.send_signal(signal.SIGKILL)  # no-op when it already exited
                process.close()
            replica.state = GONE
            rs.replicas.pop(replica.replica_id, None)
            if replica.output is not None:
                replica.output.finish()
            rs.counters.count_exit(replica.exit_kind or "scale_down")
            try:
                os.unlink(replica.socket_path)
            except OSError:
                pass
            self._publish(rs)

    async def _start_and_serve(self, rs: _ReplicaSet, replica: _Replica) -> None:
        process = await self._launch(rs, replica)
        if process is None:
            return
        report, pipe_closed = await self._read_report(process)
        if replica.state != STARTING:  # called off while it loaded
            await self._terminate(process)
            return
        if not isinstance(report, ReplicaReady):
            error = await self._start_error(rs, process, report, pipe_closed)
            replica.state = GONE
            self._start_failed(rs, replica, error)  # report first: stopping a hung start takes seconds
            await self._terminate(process)
            return
        self._on_ready(rs, replica, report, self._clock())
        await self._serve(rs, replica, process)

    async def _serve(self, rs: _ReplicaSet, replica: _Replica, process: ReplicaProcess) -> None:
        """Until the ready replica exits; an exit it was not asked for (still READY) is a crash."""
        await process.exited
        if replica.state == READY:
            await self._on_crash(rs, replica, process)

    async def _launch(self, rs: _ReplicaSet, replica: _Replica) -> ReplicaProcess | None:
        """The replica's process; None when it could not be created (reported) or was called off meanwhile."""
        spec = self._spec(rs, replica)
        if self.logs is not None:
            replica.output = self.logs.capture(rs.manifest.name, rs.revision, replica.replica_id)
        output = replica.output.writers if replica.output is not None else None
        try:
            process = await self._from_template(rs, spec, output)
            if process is None:
                process = await asyncio.wait_for(self._launcher(rs.kind).launch(spec, output), self.start_timeout)
        except (LaunchError, TimeoutError) as exc:
            if replica.state == STARTING:
                replica.state = GONE
                reason = str(exc) or f"no answer from the zygote in {self.start_timeout:.0f}s"
                self._start_failed(rs, replica, f"could not start a replica process: {reason}")
            return None
        finally:
            if replica.output is not None:
                replica.output.close_writers()  # the process has its own copies: EOF comes when it exits
        replica.process = process
        if replica.state != STARTING:  # called off while the zygote forked it
            await self._terminate(process)
            return None
        return process

    async def _from_template(self, rs: _ReplicaSet, spec: ReplicaSpec,
                             output: tuple[int, int] | None) -> ReplicaProcess | None:
        """Fork the replica from its revision's warm template; None when it has none ready (one is asked for)."""
        if not self.templates.enabled:
            return None
        key = self._template_key(rs, spec.confinement)
        template = self.templates.take(rs.revision, key)
        if template is None:
            self.templates.want(rs.revision, key)
            return None
        try:
            # Bound here, while the socket directory is ours to write: the replica runs as the function's user.
            sock = bind_unix_socket(spec.socket_path)
        except OSError as exc:
            raise LaunchError(f"cannot bind the replica's socket {spec.socket_path}: {exc}") from None
        spec_fd = spec_memfd(spec)
        try:
            return await asyncio.wait_for(template.launch(spec.replica_id, spec_fd, sock, output), self.start_timeout)
        except TemplateError as exc:
            log.warning("revision %s: warm template failed to fork (%s); forking from the zygote", rs.revision, exc)
            self.templates.discard(rs.revision)
            return None
        finally:
            os.close(spec_fd)
            sock.close()  # the replica holds its own copy

    async def _start_template(self, revision: str) -> TemplateProcess:
        """Fork a warm template for `revision` from its zygote (WarmTemplates calls this)."""
        rs = self._get(revision)
        launcher = self._launcher(rs.kind)
        if not isinstance(launcher, ZygoteLauncher):
            raise LaunchError("warm templates need a fork-safe zygote (Linux)")
        self._sequence += 1
        template_id = f"{rs.revision}-t{self._sequence}"
        confinement = self._confinement(rs)
        spec = TemplateSpec(template_id=template_id, revision=rs.revision, function_dir=str(rs.function_dir.resolve()),
                            manifest=rs.manifest_data, confinement=confinement, memory=rs.manifest.resources.memory)
        output = self.logs.capture(rs.manifest.name, rs.revision, template_id) if self.logs is not None else None
        try:
            control, process = await launcher.start_template(spec, output.writers if output is not None else None)
        finally:
            if output is not None:
                output.close_writers()
        if output is not None:
            process.exited.add_done_callback(lambda _: output.finish())
        return TemplateProcess(template_id, rs.revision, control, process)

    def _want_template(self, rs: _ReplicaSet) -> None:
        if self.templates.enabled:
            self.templates.want(rs.revision, self._template_key(rs, self._confinement(rs)))

    def _template_key(self, rs: _ReplicaSet, confinement: Confinement) -> str:
        """What a template loaded: a revision registered again with other settings needs a new one."""
        return json.dumps([str(rs.function_dir.resolve()), rs.manifest_data, confinement.to_json()], sort_keys=True,
                          default=str)

    async def _read_report(self, process: ReplicaProcess) -> tuple[StatusReport | None, bool]:
        """The replica's status report (None: it sent none), and whether its pipe closed before start_timeout."""
        status_task = asyncio.ensure_future(process.read_status())
        status_or_exit: set[asyncio.Future[Any]] = {status_task, process.exited}
        done, _ = await asyncio.wait(status_or_exit, timeout=self.start_timeout, return_when=asyncio.FIRST_COMPLETED)
        if status_task not in done and process.exited.done():
            # Died: a line it wrote just before is still in the pipe, and EOF follows at once.
            await asyncio.wait({status_task}, timeout=0.5)
        if not status_task.done():
            status_task.cancel()
            return None, False
        report = status_task.result()
        if report is None and not process.exited.done():
            # End of file without a line: the process is dying (its fds close before it exits).
            await asyncio.wait({process.exited}, timeout=2.0)
        return report, True

    async def _start_error(self, rs: _ReplicaSet, process: ReplicaProcess, report: ReplicaFailed | None,
                           pipe_closed: bool) -> str:
        if report is not None:
            return report.error
        if process.exited.done():
            return f"the replica process exited before it was ready ({await self._exit_reason(rs, process)})"
        if pipe_closed:
            return "the replica closed its status pipe without reporting ready or an error"
        return f"the replica was not ready after {self.start_timeout:.0f}s (start_timeout)"

    async def _exit_reason(self, rs: _ReplicaSet, process: ReplicaProcess) -> str:
        description = await process.exit_description()  # sets returncode once the reaper tells
        return exit_reason(process.returncode, description, rs.manifest.resources.memory)

    def _spec(self, rs: _ReplicaSet, replica: _Replica) -> ReplicaSpec:
        manifest = rs.manifest
        function_dir = str(rs.function_dir.resolve())
        confinement = self._confinement(rs)
        return ReplicaSpec(
            replica_id=replica.replica_id, revision=rs.revision, function_dir=function_dir,
            socket_path=replica.socket_path, manifest=rs.manifest_data, app_factory=self.app_factory,
            confinement=confinement, memory=manifest.resources.memory,
            graceful_shutdown_seconds=self.replica_graceful_shutdown,
            keep_alive_seconds=self.replica_keep_alive, tag_output=self.logs is not None,
        )

    def _confinement(self, rs: _ReplicaSet) -> Confinement:
        """What a replica (and its revision's warm template) is confined to."""
        manifest = rs.manifest
        if rs.home is None:  # one home per function, shared by its revisions' replicas
            rs.home = private_dir(self.home_dir / manifest.name, rs.identity)
        threads = manifest.resources.threads
        env = function_environment(self._inherited_env, home=str(rs.home), function_env=manifest.env, threads=threads)
        return Confinement(env=env, identity=rs.identity, workdir=str(rs.function_dir.resolve()), threads=threads,
                           memory_bytes=manifest.resources.memory_bytes)

    def _on_ready(self, rs: _ReplicaSet, replica: _Replica, report: ReplicaReady, now: float) -> None:
        replica.state = READY
        replica.ready_at = now
        replica.timings_ms = report.timings.phases_ms(replica.requested_at, now)
        for warning in report.warnings:
            log.warning("revision %s: replica %s: %s", rs.revision, replica.replica_id, warning)
        rs.failures = after_ready(rs.failures)
        process = replica.process
        log.info("revision %s: replica %s ready (pid %s, %s) in %.1f ms", rs.revision, replica.replica_id,
                 process.pid if process else "?", process.mode if process else "",
                 (now - replica.requested_at) * 1000)
        self._publish(rs)

    async def _on_crash(self, rs: _ReplicaSet, replica: _Replica, process: ReplicaProcess) -> None:
        """A ready replica died without being asked to: out of routing and replaced at once, then reported."""
        replica.state = GONE
        self._publish(rs)
        rs.failures = after_crash(rs.failures, replica.ready_at, self._clock(), self.backoff)
        self._reconcile(rs)
        error = f"replica {replica.replica_id} exited unexpectedly ({await self._exit_reason(rs, process)})"
        replica.exit_kind = failure_exit(error, rs.manifest.resources.memory, "crash")
        rs.failures = replace(rs.failures, last_error=error)
        log.warning("revision %s: %s", rs.revision, error)
        waiting = error_for_waiters(rs.state(), self._clock())
        if waiting is not None:
            # Backing off with no replica: requests waiting for one hear why now, not after the backoff.
            self._report_start_failure(rs.revision, waiting)
        if self._on_replica_failed is not None:
            try:
                self._on_replica_failed(rs.revision, error)
            except Exception:
                log.exception("on_replica_failed failed for revision %s", rs.revision)

    def _start_failed(self, rs: _ReplicaSet, replica: _Replica, error: str) -> None:
        replica.exit_kind = failure_exit(error, rs.manifest.resources.memory, "start_failure")
        now = self._clock()
        rs.failures = after_start_failure(rs.failures, replica.requested_at, error, now, self.backoff)
        log.warning("revision %s: replica %s failed to start: %s (next attempt in %.1fs)", rs.revision,
                    replica.replica_id, error, max(rs.failures.retry_at - now, 0.0))
        self._report_start_failure(rs.revision, error)
        self._reconcile(rs)

    async def _drain_and_stop(self, rs: _ReplicaSet, replica: _Replica) -> None:
        if self._drain is not None:
            timeout = float(rs.manifest.timeout_seconds)
            try:
                await asyncio.wait_for(self._drain(rs.revision, replica.replica_id, timeout), timeout + 1.0)
            except TimeoutError:
                log.warning("revision %s: draining %s took over %.0fs; stopping it anyway", rs.revision,
                            replica.replica_id, timeout)
            except Exception:
                log.exception("revision %s: drain callback failed for %s", rs.revision, replica.replica_id)
        if replica.state == DRAINING:
            replica.state = STOPPING
            if replica.process is not None:
                await self._terminate(replica.process)

    async def _terminate(self, process: ReplicaProcess) -> None:
        """SIGTERM (uvicorn finishes in-flight requests), then SIGKILL after stop_timeout."""
        if process.exited.done():
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.exited), self.stop_timeout)
            return
        except TimeoutError:
            log.warning("replica pid %d ignored SIGTERM for %.0fs; killing it", process.pid,
                        self.stop_timeout)
        process.send_signal(signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(process.exited), EXIT_GRACE_AFTER_KILL)
        except TimeoutError:
            log.error("replica pid %d survived SIGKILL for %.0fs", process.pid, EXIT_GRACE_AFTER_KILL)

    # --- callbacks -----------------------------------------------------------------------------------

    def _publish(self, rs: _ReplicaSet) -> None:
        endpoints = [ReplicaEndpoint(r.replica_id, r.socket_path) for r in rs.in_state(READY)]
        if endpoints == rs.published:
            return
        rs.published = endpoints
        try:
            self._on_replicas_changed(rs.revision, list(endpoints))
        except Exception:
            log.exception("on_replicas_changed failed for revision %s", rs.revision)

    def _report_start_failure(self, revision: str, error: str) -> None:
        try:
            self._on_start_failed(revision, error)
        except Exception:
            log.exception("on_start_failed failed for revision %s", revision)
