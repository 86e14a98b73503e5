"""What the registry stores, as typed records: functions, revisions, routes, events, deploy outcomes.

Records are immutable values read in one snapshot; the control API and the deploy service answer
with their `to_json()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from protocol.manifest import FunctionManifest
from revisions.traffic import RolloutPlan, TrafficTarget, describe_split, targets_to_json

READY, FAILED = "Ready", "Failed"


@dataclass(frozen=True)
class RevisionRecord:
    name: str
    function: str
    number: int
    digest: str
    manifest: dict[str, Any]
    files: dict[str, str]
    smoke: dict[str, Any] | None
    status: str
    message: str
    created: float
    build_log: str = ""

    @property
    def function_manifest(self) -> FunctionManifest:
        return FunctionManifest.model_validate(self.manifest)

    def to_json(self, *, with_log: bool = False) -> dict[str, Any]:
        data = {"name": self.name, "function": self.function, "number": self.number, "digest": self.digest,
                "status": self.status, "message": self.message, "created": self.created,
                "manifest": self.manifest, "files": self.files, "smoke": self.smoke}
        if with_log:
            data["build_log"] = self.build_log.splitlines()
        return data


@dataclass(frozen=True)
class RouteRecord:
    """A function's route: the current one, or a row of its route history."""

    function: str
    targets: tuple[TrafficTarget, ...]
    version: int | None  # the history version this route equals; None while a rollout moves it
    reason: str
    updated: float
    restores: int | None = None  # history rows written by a rollback: the version they restored

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "targets": targets_to_json(self.targets), "version": self.version,
                "reason": self.reason, "updated": self.updated, "split": describe_split(self.targets)}


@dataclass(frozen=True)
class FunctionRecord:
    name: str
    created: float
    updated: float
    route: RouteRecord | None
    latest_revision: str | None  # the newest Ready revision
    revision_count: int
    rollout: RolloutPlan | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "updated": self.updated,
                "latest_revision": self.latest_revision, "revision_count": self.revision_count,
                "traffic": None if self.route is None else self.route.to_json(),
                "rollout": None if self.rollout is None else self.rollout.to_json()}


@dataclass(frozen=True)
class EventRecord:
    id: int
    time: float
    function: str | None
    revision: str | None
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "function": self.function, "revision": self.revision,
                "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class DeployOutcome:
    """What recording a built function did: a new revision, or nothing ('unchanged')."""

    status: Literal["created", "unchanged"]
    revision: RevisionRecord
    route: RouteRecord | None
    rollout: RolloutPlan | None = None
    routed: bool = True  # for "unchanged": whether the existing revision still receives traffic

    @property
    def message(self) -> str:
        if self.status == "unchanged":
            hint = "" if self.routed else " (not routed; give it traffic with `zeroserve traffic`)"
            return f"unchanged: {self.revision.name}{hint}"
        text = f"created {self.revision.name}"
        if self.rollout is not None:
            text += f"; rolling out to {self.rollout.target_percent}% over {self.rollout.duration:g}s"
        if self.route is not None:
            text += f"; traffic: {describe_split(self.route.targets)}"
        return text


@dataclass(frozen=True)
class Removal:
    """Revisions removed from the registry, and the digests no remaining revision uses."""

    revisions: list[str] = field(default_factory=list)
    unused_digests: list[str] = field(default_factory=list)
