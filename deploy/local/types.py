"""Values the local supervisor hands to its callers and to the processes it starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import ConfigDict, TypeAdapter

# Where a ready replica listens: the activator's own type, so endpoints pass to it as they are.
from activator.contracts import ReplicaEndpoint
from deploy.local.messages import LaunchMode
from deploy.local.replica_plan import ReplicaState
from functions.isolation import Confinement

__all__ = [
    "ExitReason", "ReplicaCounters", "ReplicaEndpoint", "ReplicaInfo", "ReplicaSetStatus", "ReplicaSpec",
    "TemplateSpec",
]

# Why a replica's process ended (or its start never made one): every start ends in exactly one of these.
ExitReason = Literal["scale_down", "crash", "out_of_memory", "start_failure"]
EXIT_REASONS: tuple[ExitReason, ...] = ("scale_down", "crash", "out_of_memory", "start_failure")


@dataclass(frozen=True)
class ReplicaSetStatus:
    """One revision's replicas as the supervisor sees them now.

    `restarts` counts replicas that died without being asked to (after ready) plus failed starts;
    `last_error` is the most recent of those, kept after recovery so operators can see what happened.
    """

    desired: int
    ready: int
    starting: int
    draining: int
    last_error: str | None
    restarts: int


@dataclass
class ReplicaCounters:
    """One revision's replica starts and exits since the platform started (Prometheus counters).

    `started` counts every start asked for; each ends in one exit reason (`scale_down` includes starts
    called off and the platform stopping), so `started - sum(exited)` replicas are starting or serving.
    `restarts` is ReplicaSetStatus.restarts: crashes after ready plus failed starts.
    """

    started: int = 0
    exited: dict[ExitReason, int] = field(default_factory=dict)
    restarts: int = 0

    def count_exit(self, reason: ExitReason) -> None:
        self.exited[reason] = self.exited.get(reason, 0) + 1


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica, for status pages, tests and the cold-start benchmark.

    `timings_ms` (once ready): fork (request sent -> child running), load (-> app loaded, limits and env
    included), listen (-> uvicorn accepting), report (-> supervisor saw ready), total (request -> ready).
    `mode` is empty until its process exists.
    """

    replica_id: str
    revision: str
    state: ReplicaState
    pid: int | None
    socket_path: str
    mode: LaunchMode | Literal[""]
    timings_ms: dict[str, float] = field(default_factory=dict)
    requested_at: float | None = None  # the supervisor's clock when its start was asked for


@dataclass(frozen=True, kw_only=True)
class ReplicaSpec:
    """Everything a new replica process needs, in a memfd that only the replica reads.

    Never in argv, and never through the zygote's memory: `manifest` and `confinement` carry the
    function's env, whose values may be secrets, and every replica forked later would inherit a copy.
    Encoded like the messages (deploy.local.messages): JSON by a pydantic TypeAdapter.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")
    replica_id: str
    revision: str
    function_dir: str
    socket_path: str
    manifest: dict[str, Any]      # normalised function.yaml
    app_factory: str
    confinement: Confinement      # env, identity, limits, workdir
    memory: str | None            # resources.memory as written, for "out of memory: 512Mi"
    graceful_shutdown_seconds: float
    keep_alive_seconds: float
    view: tuple[str, ...] = ()    # spawned replicas only: what their view must reach
    # stdout and stderr are the log capture's pipes: line-buffered, each line tagged with its request id
    tag_output: bool = False

    def to_json(self) -> bytes:
        return REPLICA_SPEC.dump_json(self)

    @classmethod
    def from_json(cls, data: str | bytes) -> ReplicaSpec:
        return REPLICA_SPEC.validate_json(data)


REPLICA_SPEC: Final = TypeAdapter(ReplicaSpec)


@dataclass(frozen=True, kw_only=True)
class TemplateSpec:
    """What a warm template needs: the revision's function and the confinement its replicas get.

    In a memfd, like ReplicaSpec (the confinement carries the function's env); the template applies the
    confinement before it loads the function, and every replica forked from it inherits exactly that.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")
    template_id: str
    revision: str
    function_dir: str
    manifest: dict[str, Any]      # normalised function.yaml
    confinement: Confinement
    memory: str | None

    def to_json(self) -> bytes:
        return TEMPLATE_SPEC.dump_json(self)

    @classmethod
    def from_json(cls, data: str | bytes) -> TemplateSpec:
        return TEMPLATE_SPEC.validate_json(data)


TEMPLATE_SPEC: Final = TypeAdapter(TemplateSpec)


def read_spec_memfd(fd: int) -> bytes:
    """All of a spec's memfd (ReplicaSpec, TemplateSpec), which is then closed: it holds the function's env."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
