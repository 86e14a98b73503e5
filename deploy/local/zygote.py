"""The zygote: a process that has imported the runtime, started no threads, and forks replicas.

A fresh interpreter needs over a second to import numpy, ONNX Runtime and the serving stack; a fork of
this process has them already, so a replica only loads its model and binds its socket.

Protocol with the supervisor: one SOCK_SEQPACKET socket (fd given with --control-fd), one message
(deploy.local.messages, JSON) per packet.
  zygote -> supervisor  ZygoteHello {"event": "hello", "pid", "kind", "fork_safe", "threads", "reason",
                                     "import_ms", "warmup_ms", "preimport_errors", "isolation_error"}
  supervisor -> zygote  ForkRequest {"op": "fork", "replica_id"} + fds [a memfd holding the ReplicaSpec,
                                     and optionally the replica's stdout and stderr pipes]
  zygote -> supervisor  Forked {"event": "forked", "replica_id", "pid", "has_pidfd"}
                               + fds [pidfd, status pipe read end]
                        ForkFailed {"event": "fork_failed", "replica_id", "error"}
                        Exited {"event": "exited", "pid", "returncode"}     (after reaping: no zombies)
End of file on the socket means the supervisor is gone: the zygote stops its replicas and exits.
Replicas are direct children (reaped here on SIGCHLD) and carry PR_SET_PDEATHSIG, so they die with it;
the zygote carries one too (`--parent-pid`), so it dies with the platform, even a SIGKILLed one.

The zygote never sees a function's env: a replica's spec (env included) is in a memfd that only the
forked child reads (the zygote closes its copy right after the fork), so no secret of one function
sits in the memory, or among the open files, every later replica inherits.
It starts with the platform's allowlisted environment only. With `--view DIR`, it first enters the
file system view replicas need (functions.isolation.view), once, before it imports anything.
"""

from __future__ import annotations

import argparse
import base64
import gc
import importlib
import os
import socket
import sys
import time
from typing import NoReturn, cast

from pydantic import ValidationError

from deploy.local.forker import Forker, thread_count
from deploy.local.limits import FORK_SAFETY_ENV
from deploy.local.messages import (
    ZYGOTE_MESSAGE,
    ZYGOTE_REQUEST,
    ForkRequest,
    SmokeRequest,
    TemplateRequest,
    ZygoteHello,
    ZygoteKind,
)
from functions.isolation import die_with_parent
from functions.isolation.view import enter_view, runtime_paths

COMMON_PREIMPORTS = (
    "numpy", "onnxruntime", "uvloop", "httptools", "uvicorn", "uvicorn.config", "uvicorn.server",
    "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.off", "ctypes",
    "deploy.local.replica", "functions.app", "functions.loaders.onnx_model",
    "functions.loaders.python_handler", "deploy.local.warm_template", "deploy.local.smoke_child",
    "functions.isolation.confined_smoke", "functions.smoke",
)
PREIMPORTS: dict[ZygoteKind, tuple[str, ...]] = {
    "default": COMMON_PREIMPORTS,
    "torch": (*COMMON_PREIMPORTS, "torch", "functions.loaders.torchscript"),
}

# A 4->3 classifier (MatMul, Add, Softmax; opset 17; seed-0 weights) built with onnx.helper. Loading it
# once with one intra-op thread initialises ONNX Runtime's environment and kernel registry without
# starting threads, which takes ~5-10 ms off every replica's first session.
WARMUP_MODEL = base64.b64decode(
    "CAg6xwEKEQoBeAoBVxIBaCIGTWF0TXVsCg4KAWgKAUISAXoiA0FkZAocCgF6EgF5IgdTb2Z0bWF4KgsKBGF4aXMYAaABAhIEaXJp"
    "cyo7CAQIAxABQgFXSjBsvwA+f0YHvr3yIz/f1dY9oSEJv/0iuT556aY/5nNyP/4nNL9V+aG/6o4fv25FKT0qFQgDEAFCAUJKDE7N"
    "FMDsCmC+A3qfv1oUCgF4Eg8KDQgBEgkKAxIBTgoCCARiFAoBeRIPCg0IARIJCgMSAU4KAggDQgQKABAR"
)



def preimport(modules: tuple[str, ...]) -> dict[str, str]:
    errors = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported in hello; replicas fail with the real error
            errors[name] = f"{type(exc).__name__}: {exc}"
    return errors


def warm_up_onnxruntime() -> None:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(WARMUP_MODEL, sess_options=options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.ones((1, 4), dtype=np.float32)})
    del session


class Zygote(Forker):
    """Forks replicas, and warm templates (deploy.local.warm_template), of any revision."""

    messages = ZYGOTE_MESSAGE

    def handle(self, data: bytes, fds: list[int]) -> None:
        try:
            request = ZYGOTE_REQUEST.validate_json(data)
        except ValidationError:
            request = None
        if isinstance(request, ForkRequest) and len(fds) in (1, 3):
            self.fork(request.replica_id, fds[0], (fds[1], fds[2]) if len(fds) == 3 else None)
        elif isinstance(request, TemplateRequest) and len(fds) in (2, 4):
            self.fork(request.template_id, fds[0], (fds[2], fds[3]) if len(fds) == 4 else None, extra_fd=fds[1],
                      role="template")
        elif isinstance(request, SmokeRequest) and len(fds) == 3:
            self.fork(request.smoke_id, fds[0], (fds[1], fds[2]), role="smoke")
        else:
            print(f"zeroserve zygote: unknown message {data[:200]!r} with {len(fds)} fds", file=sys.stderr,
                  flush=True)

    def run_child(self, role: str, spec_fd: int, status_w: int, started: float, extra_fd: int | None) -> NoReturn:
        """In the forked child: a replica, a warm template (`extra_fd`: its control socket) or a smoke child."""
        # Imported here, not at the top: the zygote imports the runtime after entering its view (prepare).
        from deploy.local.replica import StatusReporter, read_spec, run_replica
        from deploy.local.smoke_child import run_smoke_child
        from deploy.local.warm_template import run_template

        if role == "template" and extra_fd is not None:
            os.close(status_w)  # a template reports over its own socket
            run_template(spec_fd, socket.socket(fileno=extra_fd), self.pid)
        if role == "smoke":
            os.close(status_w)  # its exit status and stdout are its report
            run_smoke_child(spec_fd, self.pid)
        try:
            spec = read_spec(spec_fd)
        except (OSError, ValueError, TypeError) as exc:
            StatusReporter(status_w).error(f"cannot read the replica spec: {exc}")
            os._exit(1)
        run_replica(spec, status_w, parent_pid=self.pid, started=started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.zygote")
    parser.add_argument("--kind", choices=sorted(PREIMPORTS), default="default")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--preimport", action="append", default=[],
                        help="extra module to import (the app factory's)")
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--parent-pid", type=int, help="die with this process (the platform)")
    parser.add_argument("--view", action="append", default=[],
                        help="a directory replicas must reach (their view also keeps Python's own)")
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    os.environ.update(FORK_SAFETY_ENV)
    control = socket.socket(fileno=args.control_fd)
    kind = cast(ZygoteKind, args.kind)  # one of PREIMPORTS' keys: argparse checked it
    hello = prepare(kind, tuple(args.preimport), args.view, warm_up=not args.no_warmup)
    Zygote(control).serve(hello)


def prepare(kind: ZygoteKind, extra_preimports: tuple[str, ...], view: list[str], *, warm_up: bool) -> ZygoteHello:
    """Enter the view, import and warm up what every replica forked from here shares; say whether forking is safe."""
    started = time.monotonic()
    isolation_error = None
    if view:
        try:
            enter_view([*runtime_paths(), *view])
        except Exception as exc:  # noqa: BLE001 - reported in hello: no replica may start without its view
            isolation_error = f"cannot build the file system view functions run in: {exc}"
    errors = preimport((*PREIMPORTS[kind], *extra_preimports))
    imported = time.monotonic()
    if warm_up and "onnxruntime" not in errors:
        try:
            warm_up_onnxruntime()
        except Exception as exc:  # noqa: BLE001 - a failed warm-up costs milliseconds, not correctness
            errors["onnxruntime warm-up"] = f"{type(exc).__name__}: {exc}"
    warmed = time.monotonic()
    # Objects alive now are shared with every replica; freezing them keeps the collector from
    # touching (and so copying) their pages in each child.
    gc.collect()
    gc.freeze()
    threads = thread_count()
    reason = fork_unsafe_reason(kind, threads)
    return ZygoteHello(pid=os.getpid(), kind=kind, fork_safe=reason is None, threads=threads, reason=reason,
                       import_ms=round((imported - started) * 1000, 1), warmup_ms=round((warmed - imported) * 1000, 1),
                       preimport_errors=errors, isolation_error=isolation_error)


def fork_unsafe_reason(kind: ZygoteKind, threads: int) -> str | None:
    if not sys.platform.startswith("linux"):
        return f"fork is only used on Linux (this is {sys.platform})"
    if threads != 1:
        return (f"{threads} threads are running after importing {', '.join(PREIMPORTS[kind][-2:])}; "
                "forking a threaded process can deadlock")
    return None


if __name__ == "__main__":
    main()
