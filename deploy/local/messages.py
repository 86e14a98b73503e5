"""What the supervisor, its zygotes and its replicas say to each other, as typed messages.

Everything that crosses a process boundary in the local platform (these messages, and `ReplicaSpec` in
`types.py`) is a frozen dataclass encoded and decoded as JSON by a pydantic `TypeAdapter`; each message
names its kind in a `Literal` field (`event`, or `op`), which the adapter reads as the union's
discriminator. Plain dataclasses rather than pydantic models: building one costs nothing and validation
happens once, where a message is read; the ready report is on the cold-start path.

  supervisor -> zygote   ForkRequest (+ the spec's memfd), TemplateRequest (+ its spec's memfd, its socket),
                         SmokeRequest (+ the smoke request's memfd, stdout, stderr)
  zygote -> supervisor   ZygoteHello, Forked (+ pidfd, status pipe), ForkFailed, Exited
  template -> supervisor TemplateReady or TemplateFailed, then per ForkRequest (+ spec memfd, listening
                         socket): Forked (+ pidfd, status pipe) or ForkFailed; Exited
  replica -> supervisor  one StatusReport on its status pipe: ReplicaReady or ReplicaFailed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, TypeAdapter

ZygoteKind = Literal["default", "torch"]
LaunchMode = Literal["fork", "spawn", "template"]
FORK: Final = "fork"
SPAWN: Final = "spawn"
TEMPLATE: Final = "template"    # forked from the revision's warm template (deploy.local.warm_template)

# What the other side sends is ours: a key that is not a field is a bug, said where it is read.
_STRICT_FIELDS = ConfigDict(extra="forbid")


@dataclass(frozen=True, kw_only=True)
class ForkRequest:
    __pydantic_config__ = _STRICT_FIELDS
    op: Literal["fork"] = "fork"
    replica_id: str


@dataclass(frozen=True, kw_only=True)
class TemplateRequest:
    """Fork a warm template (deploy.local.warm_template) for one revision; fds: spec memfd, its control socket."""

    __pydantic_config__ = _STRICT_FIELDS
    op: Literal["template"] = "template"
    template_id: str


@dataclass(frozen=True, kw_only=True)
class SmokeRequest:
    """Fork a build's smoke child (deploy.local.smoke_fork); fds: the request's memfd, its stdout and stderr."""

    __pydantic_config__ = _STRICT_FIELDS
    op: Literal["smoke"] = "smoke"
    smoke_id: str


@dataclass(frozen=True, kw_only=True)
class TemplateReady:
    """The template has loaded its revision's function and may fork replicas of it."""

    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["template_ready"] = "template_ready"
    pid: int
    load_ms: float
    private_bytes: int                  # memory it holds of its own (not shared with the zygote)


@dataclass(frozen=True, kw_only=True)
class TemplateFailed:
    """The template could not load, or loading started threads (then forking it is unsafe)."""

    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["template_failed"] = "template_failed"
    error: str


@dataclass(frozen=True, kw_only=True)
class ZygoteHello:
    """The zygote's report once its imports are done; `Supervisor.zygotes()` shows it."""

    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["hello"] = "hello"
    pid: int
    kind: ZygoteKind
    fork_safe: bool
    threads: int
    reason: str | None                  # why it is not fork-safe
    import_ms: float
    warmup_ms: float
    preimport_errors: dict[str, str]    # module -> error
    isolation_error: str | None         # its file system view failed: no replica may start


@dataclass(frozen=True, kw_only=True)
class Forked:
    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["forked"] = "forked"
    replica_id: str
    pid: int
    has_pidfd: bool                     # the fds are [pidfd, status pipe], else [status pipe]


@dataclass(frozen=True, kw_only=True)
class ForkFailed:
    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["fork_failed"] = "fork_failed"
    replica_id: str
    error: str


@dataclass(frozen=True, kw_only=True)
class Exited:
    """A replica the zygote reaped."""

    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["exited"] = "exited"
    pid: int
    returncode: int


ZygoteMessage = Annotated[ZygoteHello | Forked | ForkFailed | Exited, Field(discriminator="event")]
ZygoteRequest = Annotated[ForkRequest | TemplateRequest | SmokeRequest, Field(discriminator="op")]
TemplateMessage = Annotated[TemplateReady | TemplateFailed | Forked | ForkFailed | Exited, Field(discriminator="event")]


@dataclass(frozen=True, kw_only=True)
class StartMarks:
    """When the replica reached each step of its start (time.monotonic, as the supervisor's clock)."""

    __pydantic_config__ = _STRICT_FIELDS
    forked: float
    loaded: float
    listening: float

    def phases_ms(self, requested_at: float, reported_at: float) -> dict[str, float]:
        """fork (asked -> child running), load, listen, report (-> supervisor saw ready), total."""
        return {
            "fork": (self.forked - requested_at) * 1000,
            "load": (self.loaded - self.forked) * 1000,
            "listen": (self.listening - self.loaded) * 1000,
            "report": (reported_at - self.listening) * 1000,
            "total": (reported_at - requested_at) * 1000,
        }


@dataclass(frozen=True, kw_only=True)
class ReplicaReady:
    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["ready"] = "ready"
    pid: int
    timings: StartMarks
    warnings: tuple[str, ...] = ()      # limits the OS refused


@dataclass(frozen=True, kw_only=True)
class ReplicaFailed:
    __pydantic_config__ = _STRICT_FIELDS
    event: Literal["error"] = "error"
    pid: int | None = None
    error: str


StatusReport = Annotated[ReplicaReady | ReplicaFailed, Field(discriminator="event")]

FORK_REQUEST: Final = TypeAdapter(ForkRequest)
ZYGOTE_REQUEST: Final[TypeAdapter[ZygoteRequest]] = TypeAdapter(ZygoteRequest)
TEMPLATE_MESSAGE: Final[TypeAdapter[TemplateMessage]] = TypeAdapter(TemplateMessage)
ZYGOTE_MESSAGE: Final[TypeAdapter[ZygoteMessage]] = TypeAdapter(ZygoteMessage)
STATUS_REPORT: Final[TypeAdapter[StatusReport]] = TypeAdapter(StatusReport)
