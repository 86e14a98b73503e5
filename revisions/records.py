"""What the registry stores, as typed records: functions, revisions, routes, events, deploy outcomes.

Records are immutable values read in one snapshot. Those read from the database are pydantic
dataclasses (a row that does not fit its record fails where it is read, naming the field);
`RouteRecord` and `EventRecord` serialise (`pydantic_core.to_jsonable_python`, FastAPI's
`response_model`) to exactly what the control API answers, and the API's views of functions and
revisions (`zeroserve/api/schemas.py`) are built from the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic
from pydantic import Field, computed_field

from protocol.manifest import FunctionManifest
from revisions.traffic import RolloutPlan, TrafficTarget, describe_split

RevisionStatus = Literal["Ready", "Failed"]
READY: RevisionStatus = "Ready"
FAILED: RevisionStatus = "Failed"


@pydantic.dataclasses.dataclass(frozen=True)
class RevisionRecord:
    name: str
    function: str
    number: int
    digest: str
    manifest: dict[str, Any]  # the normalised function.yaml
    files: dict[str, str]  # path -> sha256 of every file of the artifact
    smoke: dict[str, Any] | None  # what the smoke test reported
    status: RevisionStatus
    message: str
    created: float
    build_log: str = ""

    @property
    def function_manifest(self) -> FunctionManifest:
        return FunctionManifest.model_validate(self.manifest)


@pydantic.dataclasses.dataclass(frozen=True)
class RouteRecord:
    """A function's route: the current one, or a row of its route history."""

    function: str
    targets: tuple[TrafficTarget, ...]
    version: int | None = Field(description="the history version this route equals; null while a rollout "
                                            "moves it")
    reason: str = Field(description="what made the route (deploy, traffic, rollback, promote, rollout)")
    updated: float = Field(description="when (seconds since the epoch)")
    # History rows written by a rollback: the version they restored (the registry's, not the API's).
    restores: int | None = Field(default=None, exclude=True)

    # mypy refuses decorators over @property; pydantic documents this ignore for @computed_field.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def split(self) -> str:
        """The route in one line, as messages and events show it: 'iris-00001=90, iris-00002=10 (canary)'."""
        return describe_split(self.targets)


@pydantic.dataclasses.dataclass(frozen=True)
class FunctionRecord:
    name: str
    created: float
    updated: float
    route: RouteRecord | None
    latest_revision: str | None  # the newest Ready revision
    revision_count: int
    rollout: RolloutPlan | None = None


@pydantic.dataclasses.dataclass(frozen=True)
class EventRecord:
    """Something that happened to a function: a deploy, a failed build, a traffic change, a rollout step."""

    id: int
    time: float
    function: str | None
    revision: str | None
    kind: str = Field(description="e.g. function, revision, deploy-unchanged, build-failed, traffic, rollout, "
                                  "rollback, delete, retention, revision-status, replica-exited")
    message: str = Field(description="what happened, naming the function, revision and rule")


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
