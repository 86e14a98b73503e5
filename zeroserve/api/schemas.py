"""The control API's request bodies and answers, as pydantic models: `/api/v1/openapi.json` is built from them.

Records that already have the API's shape are used as they are (`TrafficTarget`, `RolloutPlan`,
`RouteRecord`, `EventRecord`, `FunctionUrls`); the views below add what the API shows beside a record
(its URLs, its revisions, the build log as lines).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from deploy.results import DeployStatus
from protocol.function_urls import FunctionUrls
from revisions.records import FunctionRecord, RevisionRecord, RevisionStatus, RouteRecord
from revisions.registry import FailedBuildRecord
from revisions.traffic import RolloutPlan, TrafficTarget

# ------------------------------------------------------------------------------------------ request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrafficBody(_Body):
    """The whole route (PUT): replaces every target."""

    targets: list[TrafficTarget]


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


# ------------------------------------------------------------------------------------------------ answers


class Health(BaseModel):
    ok: bool


class RevisionSummary(BaseModel):
    """A revision in a list: everything but its manifest and files."""

    name: str = Field(description="<function>-<number>, e.g. iris-00002")
    function: str
    number: int
    digest: str = Field(description="sha256 over the files and the normalised manifest: the revision's identity")
    status: RevisionStatus
    message: str
    created: float = Field(description="seconds since the epoch")
    smoke: dict[str, Any] | None = Field(description="what the smoke test reported")
    runtime: str | None = Field(description="the manifest's runtime: onnx, torch or python")

    @classmethod
    def of(cls, record: RevisionRecord) -> RevisionSummary:
        return cls(name=record.name, function=record.function, number=record.number, digest=record.digest,
                   status=record.status, message=record.message, created=record.created, smoke=record.smoke,
                   runtime=record.manifest.get("runtime"))


class RevisionDetail(BaseModel):
    """One revision, with its normalised manifest, its files and its build log."""

    name: str
    function: str
    number: int
    digest: str
    status: RevisionStatus
    message: str
    created: float
    manifest: dict[str, Any] = Field(description="the normalised function.yaml")
    files: dict[str, str] = Field(description="path -> sha256 of every file of the artifact")
    smoke: dict[str, Any] | None
    build_log: list[str] = Field(description="the build log, one line per item")

    @classmethod
    def of(cls, record: RevisionRecord) -> RevisionDetail:
        return cls(name=record.name, function=record.function, number=record.number, digest=record.digest,
                   status=record.status, message=record.message, created=record.created,
                   manifest=record.manifest, files=record.files, smoke=record.smoke,
                   build_log=record.build_log.splitlines())


class FunctionView(FunctionUrls):
    """A function: its route and rollout, and where it answers."""

    name: str
    created: float
    updated: float
    latest_revision: str | None = Field(description="the newest Ready revision")
    revision_count: int
    traffic: RouteRecord | None = Field(description="the current route; null before the first deploy")
    rollout: RolloutPlan | None = Field(description="the gradual rollout in progress, if any")

    @classmethod
    def of(cls, record: FunctionRecord, urls: dict[str, Any], **more: Any) -> Self:
        """The view of `record` at `urls` (`ControlContext.function_urls`); `more`: a subclass's fields."""
        return cls(name=record.name, created=record.created, updated=record.updated,
                   latest_revision=record.latest_revision, revision_count=record.revision_count,
                   traffic=record.route, rollout=record.rollout, **urls, **more)


class TargetTraffic(BaseModel):
    revision: str | None
    percent: int
    tag: str | None
    url: str | None = Field(description="the tag's own URL on the target")


class TargetAlias(BaseModel):
    """A Lambda alias: `live` (the route) or a tag."""

    name: str
    version: str = Field(description="its FunctionVersion")
    revision: str | None = Field(description="the revision that version holds (its Description)")
    weights: dict[str, float] = Field(description="RoutingConfig.AdditionalVersionWeights: version -> weight")
    url: str | None = Field(description="the alias' function URL")
    auth_type: str | None = Field(description="the URL's AuthType: NONE or AWS_IAM")


class TargetState(BaseModel):
    """A deploy target's own view of a function (Knative: the Service's Ready condition, URL, tag URLs,
    latest ready revision, the traffic it serves; Lambda: versions, aliases and their URLs, State and
    LastUpdateStatus, concurrency). `error` when the target could not be asked."""

    target: str = Field(description="knative, lambda")
    error: str | None = None
    namespace: str | None = None
    service: str | None = Field(None, description="the target's name for the function")
    ready: bool | None = Field(None, description="the Ready condition: true, false, or null (unknown)")
    reason: str | None = None
    message: str | None = None
    url: str | None = None
    tag_urls: dict[str, str] = Field(default_factory=dict)
    latest_ready_revision: str | None = None
    latest_created_revision: str | None = None
    traffic: list[TargetTraffic] = Field(default_factory=list, description="the split the target serves now")
    region: str | None = Field(None, description="Lambda: the functions' region")
    state: str | None = Field(None, description="Lambda: the function's State (Active, Pending, Failed, ...)")
    last_update_status: str | None = Field(None, description="Lambda: LastUpdateStatus (Successful, InProgress, "
                                                             "Failed)")
    versions: dict[str, str] = Field(default_factory=dict, description="Lambda: published version -> revision")
    aliases: list[TargetAlias] = Field(default_factory=list, description="Lambda: `live` and one alias per tag")
    provisioned_concurrency: dict[str, Any] | None = Field(None, description="Lambda: on `live`, as "
                                                                             "GetProvisionedConcurrencyConfig says")
    reserved_concurrency: int | None = Field(None, description="Lambda: the function's reserved concurrency")
    image: str | None = Field(None, description="Lambda: the image $LATEST runs")


class FunctionDetail(FunctionView):
    revisions: list[RevisionSummary]
    targets: list[str] = Field(description="where the function runs: its newest revision's function.yaml targets")
    target_states: list[TargetState] = Field(description="each target other than local, as it reports the function")


class FailedBuild(BaseModel):
    """A failed build or refused deploy of a function (newest 10 kept), with its cleaned build log."""

    id: int = Field(description="increasing: a newer failed build has a greater id")
    time: float = Field(description="seconds since the epoch")
    message: str = Field(description="what failed, naming the file and the fault (the `build-failed` event's message)")
    log: list[str] = Field(description="the build log, one line per item, secrets removed; a log over 64 KiB keeps its "
                                       "tail after a first line saying it was clipped")

    @classmethod
    def of(cls, record: FailedBuildRecord) -> FailedBuild:
        return cls(id=record.id, time=record.time, message=record.message, log=record.log)


class Export(BaseModel):
    """A function as a target's resource (`zeroserve export knative FN`): what a deploy applies."""

    function: str
    target: str
    revision: str = Field(description="the revision the resource runs (the function's newest)")
    media_type: str = Field(description="e.g. application/yaml")
    content: str = Field(description="the resource, byte for byte as a deploy applies it")
    notes: list[str] = Field(description="what a cluster operator must set for it to behave as function.yaml says")


class Deleted(BaseModel):
    deleted: str = Field(description="the function deleted")
    revisions: list[str] = Field(description="its revisions, deleted with it")


class TrafficView(FunctionUrls):
    """A function's route after a read or a change, its rollout, and its URLs (one per tag)."""

    function: str
    traffic: RouteRecord | None
    rollout: RolloutPlan | None


class DeployAnswer(BaseModel):
    """A deploy's result: 201 created, 200 unchanged, 400 failed (then `error` repeats the message)."""

    status: DeployStatus
    message: str
    function: str | None
    revision: str | None
    digest: str | None
    traffic: list[TrafficTarget] | None = Field(description="the route after the deploy")
    rollout: RolloutPlan | None
    error: str | None = Field(None, description="only when the deploy failed")
    log: list[str] = Field(description="the build log, one line per item")


class WebhookDeployAnswer(DeployAnswer):
    commit: str = Field(description="the commit the webhook deployed")


class WebhookAccepted(BaseModel):
    status: Literal["accepted"]
    function: str
    commit: str
    message: str


class WebhookIgnored(BaseModel):
    status: Literal["ignored"]
    function: str
    message: str


class WebhookPing(BaseModel):
    ok: bool
    function: str


class WebhookSecret(BaseModel):
    """How to configure the webhook at the hosting service: the URL, the secret, what to send."""

    function: str
    secret: str
    signature_header: str
    url: str
    content_type: str
    events: list[str]


class WebhookSecretDeleted(BaseModel):
    function: str
    deleted: bool


# ---------------------------------------------------------------------------------------------- scale status

ReplicaState = Literal["starting", "ready", "draining", "stopping", "gone"]


class ReplicaStatus(BaseModel):
    id: str
    pid: int | None
    state: ReplicaState
    timings_ms: dict[str, float] = Field(description="fork, load, listen, report, total (once ready)")


class ScaleDecisionStatus(BaseModel):
    applied: int = Field(description="replicas asked of the supervisor")
    desired: int = Field(description="replicas the decider wanted before the bounds and the zero gate")
    reason: str
    age_seconds: float


class RevisionScaleStatus(BaseModel):
    """One revision as the autoscaler sees it. `stable_value` and `panic_value` are the averages of
    `metric` over the stable and panic windows: concurrent requests, or requests per second for rps."""

    revision: str
    percent: int
    tags: list[str]
    ready: int
    desired: int
    starting: int
    draining: int
    panicking: bool
    metric: Literal["concurrency", "rps"]
    stable_value: float
    panic_value: float
    queue_depth: int
    in_flight: int
    last_decision: ScaleDecisionStatus | None
    last_error: str | None
    restarts: int
    replicas: list[ReplicaStatus]
    warm_template: WarmTemplateStatus | None = None


class WarmTemplateStatus(BaseModel):
    """A revision's warm template (docs/supervisor.md): `ready` (its pid and the memory it holds of its own),
    `starting`, or `none` with the reason when there is one (its load started threads, failed, too big)."""

    state: Literal["ready", "starting", "none"]
    pid: int | None
    private_bytes: int
    reason: str | None


class WarmTemplatesSummary(BaseModel):
    """All warm templates: the budget (--warm-templates-memory), how many are ready and what they hold; starts
    forked from one (hits) or not (misses), and templates stopped to stay within the budget (evictions)."""

    budget_bytes: int
    count: int
    bytes: int
    hits: int
    misses: int
    evictions: int


class TargetRevisionScale(BaseModel):
    """One revision as a target reports it (Knative: the Revision's desired and actual replicas)."""

    revision: str
    ready: bool | None
    reason: str | None
    message: str | None
    desired: int | None
    actual: int | None
    version: str | None = Field(None, description="Lambda: the published version holding the revision")
    percent: int | None = Field(None, description="Lambda: its share of alias `live`")
    tags: list[str] = Field(default_factory=list, description="Lambda: the tag aliases on its version")


class TargetScaleStatus(BaseModel):
    """A target's scale: Knative's per Revision; Lambda's is its own (State, LastUpdateStatus, concurrency)."""

    target: str
    error: str | None = Field(None, description="why the target could not be asked")
    revisions: list[TargetRevisionScale] = Field(default_factory=list)
    service: str | None = Field(None, description="the target's name for the function")
    state: str | None = Field(None, description="Lambda: the function's State")
    last_update_status: str | None = Field(None, description="Lambda: LastUpdateStatus")
    last_update_reason: str | None = Field(None, description="Lambda: LastUpdateStatusReason")
    provisioned_concurrency: dict[str, Any] | None = Field(
        None, description="Lambda: on `live`: Requested/Allocated/AvailableProvisionedConcurrentExecutions, Status")
    reserved_concurrency: int | None = Field(None, description="Lambda: the function's reserved concurrency")
    notes: list[str] = Field(default_factory=list, description="what the target could not tell")


class ScaleStatus(BaseModel):
    function: str
    revisions: list[RevisionScaleStatus]
    data_plane: bool = Field(description="false while only the control plane runs (no scale status)")
    warm_templates: WarmTemplatesSummary | None = None
    targets: list[TargetScaleStatus] = Field(default_factory=list,
                                             description="each target other than local: its scale per revision")
