"""A replica: one revision's app, loaded and served over a Unix socket by uvicorn in this process.

It runs in a child forked by the zygote (`run_replica`), or as `python -m deploy.local.replica` where
fork is unsafe. Either way it reports exactly one line over its status pipe: ready (with timings) as
soon as uvicorn accepts on the socket, or the start error text. After that the pipe is closed and the
supervisor watches the process itself (pidfd) for the rest of its life.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

import uvicorn
import uvloop

from deploy.local.limits import apply_memory_limit, apply_thread_limit
from deploy.local.types import ReplicaSpec
from protocol.manifest import FunctionManifest

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
LISTEN_BACKLOG = 2048
MAX_ERROR_CHARS = 4000


class StatusReporter:
    """Writes the replica's single status line to the supervisor, then closes the pipe."""

    def __init__(self, fd: int):
        self.fd = fd
        self.reported = False

    def ready(self, timings: dict[str, float], warnings: list[str]) -> None:
        self._send({"event": "ready", "pid": os.getpid(), "timings": timings, "warnings": warnings})

    def error(self, text: str) -> None:
        self._send({"event": "error", "pid": os.getpid(), "error": text[:MAX_ERROR_CHARS]})

    def _send(self, message: dict[str, Any]) -> None:
        if self.reported:
            return
        self.reported = True
        try:
            os.write(self.fd, json.dumps(message).encode() + b"\n")
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


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this replica when its parent dies, so a crashed platform leaves no orphans."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        print(f"zeroserve replica: prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}",
              file=sys.stderr)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def name_process(replica_id: str) -> None:
    """A forked replica's command line is the zygote's; its name (ps -o comm, top) says what it is."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, replica_id[-15:].encode(), 0, 0, 0)  # comm holds 15 bytes: keep the tail


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


def describe_start_error(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "MemoryError while loading: resources.memory is too small for this model"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def run_replica(spec: ReplicaSpec, status_fd: int, *, parent_pid: int | None,
                started: float | None = None) -> NoReturn:
    """Load, bind, serve until SIGTERM; never returns (os._exit, so no zygote state is unwound)."""
    timings = {"forked": started if started is not None else time.monotonic()}
    reporter = StatusReporter(status_fd)
    warnings: list[str] = []
    exit_code = 1
    sock: socket.socket | None = None
    try:
        if parent_pid is not None:
            die_with_parent(parent_pid)
        name_process(spec.replica_id)
        os.chdir(spec.function_dir)
        os.environ.update(spec.env)
        apply_thread_limit(spec.threads)
        if spec.memory_bytes is not None:
            warning = apply_memory_limit(spec.memory_bytes)
            if warning:
                warnings.append(warning)
                print(f"zeroserve replica {spec.replica_id}: {warning}", file=sys.stderr, flush=True)
        app = load_app(spec)
        timings["loaded"] = time.monotonic()
        sock = bind_unix_socket(spec.socket_path)
        config = uvicorn.Config(
            app, http="httptools", lifespan="off", ws="none", interface="asgi3", access_log=False,
            log_config=None, log_level="warning", server_header=False,
            # Only the activator connects, over a private socket: no forwarded-header rewriting.
            proxy_headers=False,
            timeout_graceful_shutdown=spec.graceful_shutdown_seconds,  # type: ignore[arg-type]
            timeout_keep_alive=spec.keep_alive_seconds,  # type: ignore[arg-type]
        )

        def on_listening() -> None:
            timings["listening"] = time.monotonic()
            reporter.ready(timings, warnings)

        server = ReplicaServer(config, on_listening)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve(sockets=[sock]))
        exit_code = 0
    except BaseException as exc:  # noqa: BLE001 - every start failure must reach the supervisor as text
        if not reporter.reported:
            reporter.error(describe_start_error(exc))
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            print(f"zeroserve replica {spec.replica_id} of {spec.revision}:", file=sys.stderr)
            traceback.print_exc()
    finally:
        if sock is not None:
            try:
                os.unlink(spec.socket_path)
            except OSError:
                pass
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(exit_code)


def main(argv: list[str] | None = None) -> NoReturn:
    """Spawn mode: the supervisor starts this module where forking a zygote is unsafe."""
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m deploy.local.replica")
    parser.add_argument("--spec", required=True, help="JSON spec file (removed once read)")
    parser.add_argument("--status-fd", type=int, required=True)
    args = parser.parse_args(argv)
    spec_path = Path(args.spec)
    spec = ReplicaSpec.from_json(spec_path.read_bytes())
    spec_path.unlink(missing_ok=True)
    run_replica(spec, args.status_fd, parent_pid=os.getppid(), started=started)


if __name__ == "__main__":
    main()
