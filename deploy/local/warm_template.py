"""A warm template: one revision's function, loaded once in a process forked from the zygote, that forks replicas.

A replica forked by the zygote loads its model itself (ONNX session, handler import: milliseconds, and
more for big models). A template does that once, ahead of the first request, and each replica forked
from it shares the loaded model copy-on-write and only starts serving: a cold start pays fork + listen.

The template is confined exactly as its replicas are (functions.isolation.confine: the environment
allowlist plus the function's env, limits, the function's unprivileged uid, death with the zygote)
before the first line of user code (the model load or the handler's import), and a replica forked
from it inherits exactly that and nothing else. It serves nothing itself.

Fork safety: a process with threads must not fork. After loading, the template counts its threads; a
load that started any (an ONNX session with an intra-op pool of more than one thread, a handler that
starts one) is refused with TemplateFailed, and the supervisor starts that revision's replicas from
the zygote as before.

The template is a small zygote (deploy.local.forker.Forker, as the zygote): its replicas are its children; it reaps
them and reports their exits; they die with it (PR_SET_PDEATHSIG), as it dies with the zygote. The
socket a replica serves on is bound by the supervisor and handed over with the request: the template
runs as the function's user, which may not write the platform's socket directory.

Protocol (SOCK_SEQPACKET, deploy.local.messages, one message per packet):
  template -> supervisor  TemplateReady {"event": "template_ready", pid, load_ms, private_bytes}
                          TemplateFailed {"event": "template_failed", error}   (then it exits)
  supervisor -> template  ForkRequest {"op": "fork", replica_id} + fds [ReplicaSpec memfd, listening socket,
                                                                        optionally stdout and stderr]
  template -> supervisor  Forked + fds [pidfd, status pipe], ForkFailed, Exited (as the zygote's)
The supervisor shuts down its sending side to retire a template (evicted, or the platform stops): the
template forks nothing more, reports its replicas' exits until none is left, then exits.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from deploy.local.forker import Forker, thread_count
from deploy.local.messages import FORK_REQUEST, TEMPLATE_MESSAGE, TemplateFailed, TemplateReady
from deploy.local.replica import (
    FromTemplate,
    StatusReporter,
    describe_start_error,
    name_process,
    read_spec,
    run_replica,
)
from deploy.local.types import TemplateSpec, read_spec_memfd
from functions.isolation import confine
from protocol.manifest import FunctionManifest


def private_bytes() -> int:
    """Memory this process holds of its own: pages it does not share with the zygote (or anyone)."""
    total = 0
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return total


def read_template_spec(fd: int) -> TemplateSpec:
    return TemplateSpec.from_json(read_spec_memfd(fd))


def load(spec: TemplateSpec, zygote_pid: int) -> Any:
    """Confine this process as the revision's replicas are, then load the function (user code from there)."""
    from functions.loaders import load_function

    confine(spec.confinement, parent_pid=zygote_pid)
    manifest = FunctionManifest.model_validate(spec.manifest)
    return load_function(Path(spec.function_dir), manifest)


class Template(Forker):
    messages = TEMPLATE_MESSAGE

    def __init__(self, control: socket.socket, function: Any):
        super().__init__(control)
        self.function = function

    def handle(self, data: bytes, fds: list[int]) -> None:
        try:
            request = FORK_REQUEST.validate_json(data)
        except ValidationError:
            request = None
        if request is not None and len(fds) in (2, 4):
            self.fork(request.replica_id, fds[0], (fds[2], fds[3]) if len(fds) == 4 else None, extra_fd=fds[1])
        else:
            print(f"zeroserve template: unknown message {data[:200]!r} with {len(fds)} fds", file=sys.stderr,
                  flush=True)

    def run_child(self, role: str, spec_fd: int, status_w: int, started: float, extra_fd: int | None) -> NoReturn:
        """In the forked child: a replica of the loaded function, serving on the socket in `extra_fd`."""
        try:
            spec = read_spec(spec_fd)
        except (OSError, ValueError, TypeError) as exc:
            StatusReporter(status_w).error(f"cannot read the replica spec: {exc}")
            os._exit(1)
        assert extra_fd is not None  # handle() always passes the socket
        run_replica(spec, status_w, parent_pid=self.pid, started=started,
                    template=FromTemplate(function=self.function, sock=socket.socket(fileno=extra_fd)))

    def on_control_closed(self) -> None:
        """Retired: fork nothing more; report the replicas' exits until none is left (they keep serving)."""
        self.selector.unregister(self.control)
        while self.children:
            self.selector.select()
            self.drain_wakeups()
            self.reap()


def run_template(spec_fd: int, control: socket.socket, zygote_pid: int) -> NoReturn:
    """In the zygote's child: load, report, then fork replicas until the supervisor retires it."""
    started = time.monotonic()
    memory: str | None = None
    try:
        spec = read_template_spec(spec_fd)
        memory = spec.memory
        name_process(spec.template_id)
        function = load(spec, zygote_pid)
        threads = thread_count()
        if threads != 1:
            control.send(TEMPLATE_MESSAGE.dump_json(TemplateFailed(
                error=f"loading the function started {threads - 1} thread(s) (e.g. an ONNX Runtime intra-op "
                      "pool: resources.threads > 1, or unset on a multi-core machine); forking it would be unsafe")))
            os._exit(0)
        # Objects alive now are shared with every replica; freezing keeps the collector off their pages.
        gc.collect()
        gc.freeze()
        ready = TemplateReady(pid=os.getpid(), load_ms=round((time.monotonic() - started) * 1000, 1),
                              private_bytes=private_bytes())
    except BaseException as exc:  # noqa: BLE001 - the supervisor falls back to the zygote, and says why
        try:
            control.send(TEMPLATE_MESSAGE.dump_json(TemplateFailed(error=describe_start_error(exc, memory))))
        finally:
            os._exit(1)
    exit_code = 1
    try:
        Template(control, function).serve(ready)
        exit_code = 0
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(exit_code)
