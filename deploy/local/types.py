"""Values the local supervisor hands to its callers and to the processes it starts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Where a ready replica listens: the activator's own type, so endpoints pass to it as they are.
from activator.contracts import ReplicaEndpoint

__all__ = ["ReplicaEndpoint", "ReplicaInfo", "ReplicaSetStatus", "ReplicaSpec"]


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


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica, for status pages, tests and the cold-start benchmark.

    `timings_ms` (once ready): fork (request sent -> child running), load (-> app loaded, limits and env
    included), listen (-> uvicorn accepting), report (-> supervisor saw ready), total (request -> ready).
    """

    replica_id: str
    revision: str
    state: str
    pid: int | None
    socket_path: str
    mode: str
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything a new replica process needs, in a private file (0600) the replica reads and removes.

    Never in argv, and never through the zygote's memory: `manifest` and `confinement` carry the
    function's env, whose values may be secrets, and every replica forked later would inherit a copy.
    """

    replica_id: str
    revision: str
    function_dir: str
    socket_path: str
    manifest: dict[str, Any]
    app_factory: str
    confinement: dict[str, Any]   # functions.isolation.Confinement: env, identity, limits, workdir
    memory: str | None            # resources.memory as written, for "out of memory: 512Mi"
    graceful_shutdown_seconds: float
    keep_alive_seconds: float
    view: list[str] = field(default_factory=list)  # spawned replicas only: what their view must reach

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ReplicaSpec:
        return cls(**json.loads(text))
