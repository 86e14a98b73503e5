"""A replica: one revision's app, loaded and served over a Unix socket by uvicorn in this process.

It runs in a child forked by the zygote (`run_replica`), or as `python -m deploy.local.replica` where
fork is unsafe. Either way it reports exactly one line over its status pipe: ready (with timings) as
soon as uvicorn accepts on the socket, or the start error text. After that the pipe is closed and the
supervisor watches the process itself (pidfd) for the rest of its life.

The process starts as the platform's user (root, in production) and binds its socket in the platform's
private socket directory while it still may; then it confines itself (`functions.isolation.confine`:
environment, limits, the function's own uid/gid, death with its parent, the function directory as
working directory) before the first line of user code: the handler's import and `load()`, or a model
file ONNX Runtime parses. A failed allocation while serving exits with OUT_OF_MEMORY_EXIT_CODE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import uvicorn
import uvloop

from deploy.local.messages import STATUS_REPORT, ReplicaFailed, ReplicaReady, StartMarks, StatusReport
from deploy.local.types import ReplicaSpec, read_spec_memfd
from functions.http_protocol import CoalescingHttpToolsProtocol  # head + body in one write
from functions.isolation import OUT_OF_MEMORY_EXIT_CODE, confine, die_with_parent, is_out_of_memory
from functions.isolation.limits import out_of_memory_message
from functions.isolation.view import enter_view, runtime_paths
from functions.request_context import TaggedStream
from protocol.manifest import FunctionManifest

PR_SET_NAME = 15
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded in the zygote, before it forks
LISTEN_BACKLOG = 2048
MAX_ERROR_CHARS = 4000


class StatusReporter:
    """Writes the replica's single status line to the supervisor, then closes the pipe."""

    def __init__(self, fd: int):
        self.fd = fd
        self.reported = False

    def ready(self, timings: StartMarks, warnings: list[str]) -> None:
        self._send(ReplicaReady(pid=os.getpid(), timings=timings, warnings=tuple(warnings)))

    def error(self, text: str) -> None:
        self._send(ReplicaFailed(pid=os.getpid(), error=text[:MAX_ERROR_CHARS]))

    def _send(self, report: StatusReport) -> None:
        if self.reported:
            return
        self.reported = True
        try:
            os.write(self.fd, STATUS_REPORT.dump_json(report) + b"\n")
            os.close(self.fd)
        except OSError:
            pass  # the supervisor is gone; pdeathsig or its pidfd watch takes it from here


class ReplicaServer(uvicorn.Server):
    """uvicorn that reports ready the moment it accepts, and exits 0 after a graceful SIGTERM."""

    def __init__(self, config: uvicorn.Config, on_listening: Any):
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self._on_listening()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after shutdown (killing us by SIGTERM); a drained
        # replica finishing its graceful stop should exit 0 and unlink its socket instead.
        self._captured_signals.clear()


def name_process(replica_id: str) -> None:
    """A forked replica's command line is the zygote's; its name (ps -o comm, top) says what it is."""
    _LIBC.prctl(PR_SET_NAME, replica_id[-15:].encode(), 0, 0, 0)  # comm holds 15 bytes: keep the tail


def tag_output() -> None:
    """stdout and stderr go to the log capture: each line reaches it when written, tagged with the id of the
    request being served (functions.request_context), also from the model's thread and from `logging`."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        with contextlib.suppress(AttributeError, ValueError):  # not a TextIOWrapper: written as it is
            stream.reconfigure(line_buffering=True)
        setattr(sys, name, TaggedStream(stream))


def load_app(spec: ReplicaSpec) -> Any:
    module_name, _, attr = spec.app_factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    manifest = FunctionManifest.model_validate(spec.manifest)
    return factory(Path(spec.function_dir), manifest=manifest, revision=spec.revision)


def bind_unix_socket(path: str) -> socket.socket:
    """Bind and listen before uvicorn starts, so connections queue from the first moment."""
    try:
        os.unlink(path)  # a stale socket from a replica that died without cleaning up
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


class OutOfMemoryExit:
    """Wraps the loaded model: a failed allocation in predict() ends the replica, as a container's OOM kill
    would, instead of leaving a process that may have half-built state serving requests. The supervisor
    replaces it (with backoff when it keeps happening) and reports "out of memory: <limit>"."""

    def __init__(self, function: Any, replica_id: str, memory: str | None):
        self._function = function
        self._replica_id = replica_id
        self._memory = memory

    def predict(self, inputs: Any) -> Any:
        try:
            return self._function.predict(inputs)
        except Exception as exc:
            if is_out_of_memory(exc):
                print(f"zeroserve replica {self._replica_id}: {out_of_memory_message(self._memory)} "
                      f"(resources.memory) in {getattr(self._function, 'source', 'predict')}: "
                      f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                os._exit(OUT_OF_MEMORY_EXIT_CODE)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._function, name)


def guard_out_of_memory(app: Any, spec: ReplicaSpec) -> None:
    """Put OutOfMemoryExit around the runtime's model (functions.app: app.runner.function), if it has one."""
    runner: Any = getattr(app, "runner", None)
    if spec.memory is not None and getattr(runner, "function", None) is not None:
        runner.function = OutOfMemoryExit(runner.function, spec.replica_id, spec.memory)


def describe_start_error(exc: BaseException, memory: str | None) -> str:
    if memory is not None and is_out_of_memory(exc):
        return f"{out_of_memory_message(memory)} (resources.memory) while loading: {type(exc).__name__}: {exc}"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def uvicorn_config(app: Any, spec: ReplicaSpec) -> uvicorn.Config:
    return uvicorn.Config(
        app, http=CoalescingHttpToolsProtocol, lifespan="off", ws="none", interface="asgi3", access_log=False,
        log_config=None, log_level="warning", server_header=False,
        # Only the activator connects, over a private socket: no forwarded-header rewriting.
        proxy_headers=False,
        # uvicorn annotates both as int but uses them as seconds (call_later, wait_for): fractions work.
        timeout_graceful_shutdown=spec.graceful_shutdown_seconds,  # type: ignore[arg-type]
        timeout_keep_alive=spec.keep_alive_seconds,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class FromTemplate:
    """A replica forked from its revision's warm template: the function is loaded, the process confined,
    and its socket was bound and handed over by the supervisor (this process may not enter the socket
    directory any more)."""

    function: Any            # functions.loaders.LoadedFunction
    sock: socket.socket


def run_replica(spec: ReplicaSpec, status_fd: int, *, parent_pid: int | None,
                started: float | None = None, template: FromTemplate | None = None) -> NoReturn:
    """Load, bind, serve until SIGTERM; never returns (os._exit, so no zygote state is unwound)."""
    forked = started if started is not None else time.monotonic()
    reporter = StatusReporter(status_fd)
    warnings: list[str] = []
    exit_code = 1
    sock: socket.socket | None = None
    try:
        name_process(spec.replica_id)
        if template is not None:
            sock = template.sock
            if parent_pid is not None:
                die_with_parent(parent_pid)  # the template's own confinement; the fork cleared this one
        else:
            # Bound while this process may still write the platform's socket directory; only the activator
            # connects, once this replica has reported ready.
            sock = bind_unix_socket(spec.socket_path)
            warnings = confine(spec.confinement, parent_pid=parent_pid)
        if spec.tag_output:
            tag_output()
        for warning in warnings:
            print(f"zeroserve replica {spec.replica_id}: {warning}", file=sys.stderr, flush=True)
        if template is not None:
            app = app_for(template.function, spec)
        else:
            app = load_app(spec)  # user code from here on
        guard_out_of_memory(app, spec)
        loaded = time.monotonic()

        def on_listening() -> None:
            reporter.ready(StartMarks(forked=forked, loaded=loaded, listening=time.monotonic()), warnings)

        server = ReplicaServer(uvicorn_config(app, spec), on_listening)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve(sockets=[sock]))
        exit_code = 0
    except BaseException as exc:  # noqa: BLE001 - every start failure must reach the supervisor as text
        if not reporter.reported:
            reporter.error(describe_start_error(exc, spec.memory))
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            print(f"zeroserve replica {spec.replica_id} of {spec.revision}:", file=sys.stderr)
            traceback.print_exc()
    finally:
        if sock is not None and template is None:
            try:
                os.unlink(spec.socket_path)
            except OSError:
                pass
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(exit_code)


def app_for(function: Any, spec: ReplicaSpec) -> Any:
    """The runtime's app around a function its template loaded (templates exist for the default factory only)."""
    from functions.app import FunctionApp

    manifest = FunctionManifest.model_validate(spec.manifest)
    return FunctionApp(function, manifest, revision=spec.revision)


def main(argv: list[str] | None = None) -> NoReturn:
    """Spawn mode: the supervisor starts this module where forking a zygote is unsafe."""
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m deploy.local.replica")
    parser.add_argument("--spec-fd", type=int, required=True, help="file descriptor holding the JSON spec")
    parser.add_argument("--status-fd", type=int, required=True)
    args = parser.parse_args(argv)
    spec = read_spec(args.spec_fd)
    parent_pid = os.getppid()
    if spec.view:
        try:
            enter_view([*runtime_paths(), *spec.view])
        except Exception as exc:  # noqa: BLE001 - reported like any start failure, then exit
            StatusReporter(args.status_fd).error(f"cannot build the replica's file system view: {exc}")
            os._exit(1)
    run_replica(spec, args.status_fd, parent_pid=parent_pid, started=started)


def read_spec(fd: int) -> ReplicaSpec:
    return ReplicaSpec.from_json(read_spec_memfd(fd))


if __name__ == "__main__":
    main()
