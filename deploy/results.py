"""The final word on a deploy: `created`, `unchanged` or `failed`, with its message and build log.

Transport-independent: the control API maps the status to HTTP (`zeroserve/api/errors.py`), the git
remote prints it to the pusher (`deploy/git/push.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import to_jsonable_python

from revisions.records import DeployOutcome
from revisions.traffic import describe_split, targets_from_json, targets_to_json

DeployStatus = Literal["created", "unchanged", "failed"]


@dataclass
class DeployResult:
    """What a deploy did; a failed build or a refused deploy is a result too (never an exception)."""

    status: DeployStatus
    message: str
    function: str | None = None
    revision: str | None = None
    digest: str | None = None
    traffic: list[dict[str, Any]] | None = None
    rollout: dict[str, Any] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def traffic_summary(self) -> str:
        """The route after this deploy in one line: "iris-00001=90, iris-00002=10 (canary)"."""
        return describe_split(targets_from_json(self.traffic or []))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "message": self.message, "function": self.function,
                                "revision": self.revision, "digest": self.digest, "traffic": self.traffic,
                                "rollout": self.rollout}
        if not self.ok:
            data["error"] = self.message
        return data

    @classmethod
    def from_outcome(cls, outcome: DeployOutcome, log: list[str]) -> DeployResult:
        return cls(
            status=outcome.status, message=outcome.message, function=outcome.revision.function,
            revision=outcome.revision.name, digest=outcome.revision.digest,
            traffic=None if outcome.route is None else targets_to_json(outcome.route.targets),
            rollout=None if outcome.rollout is None else to_jsonable_python(outcome.rollout), log=log,
        )


def describe_outcome(outcome: DeployOutcome) -> str:
    """The build log's "traffic" step: what the deploy did to the route."""
    name = outcome.revision.name
    if outcome.status != "created":
        return f"content unchanged (same as {name}); route left as it is"
    now = describe_split(outcome.route.targets) if outcome.route else "(no route)"
    if outcome.rollout is not None:
        rollout = outcome.rollout
        return f"rolling {name} out to {rollout.target_percent}% over {rollout.duration:g} s; now {now}"
    return now
