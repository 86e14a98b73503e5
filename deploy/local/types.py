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
    """Everything a new replica process needs, sent to the zygote (or a spawned process) as JSON."""

    replica_id: str
    revision: str
    function_dir: str
    socket_path: str
    manifest: dict[str, Any]
    app_factory: str
    env: dict[str, str]
    threads: int | None
    memory_bytes: int | None
    graceful_shutdown_seconds: float
    keep_alive_seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ReplicaSpec:
        return cls(**json.loads(text))
