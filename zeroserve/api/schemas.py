"""Request bodies of the control API (responses are the registry records' `to_json()` shapes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from revisions.traffic import TrafficTarget


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetBody(_Body):
    """One route target, as in Knative's `spec.traffic[]`: a revision or `latest: true`."""

    revision: str | None = Field(None, description="revision name, e.g. iris-00002")
    latest: bool = Field(False, description="the latest ready revision instead of a fixed one")
    percent: int = Field(0, description="share of the function's requests, 0..100; all targets sum to 100")
    tag: str | None = Field(None, description="a name giving the target its own URL: <tag>-<function>")

    def to_target(self) -> TrafficTarget:
        return TrafficTarget(revision=self.revision, latest=self.latest, percent=self.percent, tag=self.tag)


class TrafficBody(_Body):
    """The whole route (PUT): replaces every target."""

    targets: list[TargetBody]


class TrafficEditBody(_Body):
    """A kn-style edit (PATCH): new percents by revision, '@latest' or tag; tags to add or remove."""

    percents: dict[str, int] | None = Field(
        None, description="e.g. {\"iris-00001\": 90, \"iris-00002\": 10}; targets not named get 0 %")
    tags: dict[str, str] = Field(default_factory=dict, description="tag -> revision (or @latest)")
    untag: list[str] = Field(default_factory=list)


class TagBody(_Body):
    revision: str = Field(..., description="revision name, or @latest")


class PromoteBody(_Body):
    tag: str
