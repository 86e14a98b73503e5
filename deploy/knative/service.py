"""function.yaml + revision + route -> a `serving.knative.dev/v1` Service: one pure function, no I/O.

The contract (docs/knative.md):

- `metadata.name` = the function, `metadata.namespace` from the settings, label
  `app.kubernetes.io/managed-by: zeroserve`.
- `spec.template.metadata.name` = the revision name (`iris-00002`): Knative's bring-your-own revision
  name, so a Knative Revision and a zeroserve revision are the same thing. Knative refuses a template
  change without a new name, which matches immutable revisions.
- every `scaling` key becomes its `autoscaling.knative.dev/*` annotation on the template, written out
  even when it is Knative's default, so a cluster whose config-autoscaler differs still scales the
  function as function.yaml says (`target` is written resolved, as the local KPA resolves it). Two
  exceptions are Knative's own rules: `activation-scale` is left out at 1 (Knative's implicit "no
  floor"; an explicit 1 is refused by its webhook) and below `min_scale` (where it has no effect and is
  refused too), and keys Knative takes only cluster-wide
  (`max_scale_up_rate`, `max_scale_down_rate`, `scale_to_zero_grace_period`, and what an
  `initial_scale` of 0 or a long `timeout_seconds` need) become *notes* naming the ConfigMap key to set.
- `containerConcurrency`, `timeoutSeconds`, resources (`threads` -> cpu, `memory`, `gpu` ->
  `nvidia.com/gpu: 1`), env (the function's `env` plus ZEROSERVE_ARTIFACT), store credentials only by
  reference (`envFrom` a Secret, or the pod's service account), the readiness probe on
  /v2/health/ready, the runtime image from the settings.
- `spec.traffic` = the route: `{revisionName, percent, tag}` with `latestRevision: false`, so the split
  is pinned exactly as the registry has it ('@latest' is frozen to the revision it means now).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.config import resolve_metric_target
from protocol.durations import format_duration
from protocol.manifest import FunctionManifest, Scaling
from revisions.artifact_uri import ArtifactURIError, check_remote_artifact_uri, remote_artifact_uri
from revisions.traffic import TrafficTarget, freeze_latest

API_VERSION = "serving.knative.dev/v1"
KIND = "Service"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "zeroserve"
AUTOSCALING = "autoscaling.knative.dev"
KPA_CLASS = "kpa.autoscaling.knative.dev"
READINESS_PATH = "/v2/health/ready"
ARTIFACT_ENV = "ZEROSERVE_ARTIFACT"
S3_ENDPOINT_ENV = "ZEROSERVE_S3_ENDPOINT_URL"
S3_REGION_ENV = "AWS_REGION"
GPU_RESOURCE = "nvidia.com/gpu"
# Knative's webhook refuses a container that sets these (its runtime contract provides them) ...
KNATIVE_RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})
# ... and the runtime image owns these.
RUNTIME_ENV = frozenset({ARTIFACT_ENV, S3_ENDPOINT_ENV, "ZEROSERVE_HOST"})
# config-defaults' max-revision-timeout-seconds: a longer timeoutSeconds is refused unless raised.
KNATIVE_MAX_REVISION_TIMEOUT = 600
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Keys Knative reads only from the config-autoscaler ConfigMap, with Knative's defaults (= the manifest's).
_CLUSTER_WIDE = (
    ("max_scale_up_rate", "max-scale-up-rate"),
    ("max_scale_down_rate", "max-scale-down-rate"),
    ("scale_to_zero_grace_period", "scale-to-zero-grace-period"),
)
_KNATIVE_DEFAULTS = Scaling()
_DURATION_KEYS = frozenset({"window", "scale_down_delay", "scale_to_zero_grace_period", "scale_to_zero_retention"})
GRACE_PERIOD_MIN = 6.0  # Knative refuses a config-autoscaler scale-to-zero-grace-period under its WindowMin


class KnativeTranslationError(ValueError):
    """A function, revision or route that cannot become a Knative Service; the message names the field."""


@dataclass(frozen=True)
class KnativeSettings:
    """What the platform knows about the cluster (ZEROSERVE_KUBE_NAMESPACE, ZEROSERVE_RUNTIME_IMAGE, ...)."""

    image: str  # the runtime image (Dockerfile at the repository root), pushed where the cluster pulls from
    namespace: str = "default"
    secret_name: str | None = None  # a Secret with the store's credentials (AWS_ACCESS_KEY_ID, ...), via envFrom
    service_account: str | None = None  # or credentials through the pod's service account (IRSA, workload identity)
    s3_endpoint: str | None = None  # an S3-compatible store's endpoint as the pods reach it (MinIO, R2)
    s3_region: str | None = None

    def check(self) -> None:
        if not isinstance(self.image, str) or not self.image.strip() or any(c.isspace() for c in self.image):
            raise KnativeTranslationError("settings: the runtime image is not set or not an image reference "
                                          f"({self.image!r}); set ZEROSERVE_RUNTIME_IMAGE (see docs/knative.md)")
        if not _DNS1123_LABEL.match(self.namespace or "") or len(self.namespace) > 63:
            raise KnativeTranslationError(f"settings: namespace {self.namespace!r} is not a DNS-1123 label")
        for what, name in (("secret", self.secret_name), ("service account", self.service_account)):
            if name is not None and (not _DNS1123_SUBDOMAIN.match(name) or len(name) > 253):
                raise KnativeTranslationError(f"settings: {what} name {name!r} is not a DNS-1123 subdomain")


@dataclass(frozen=True)
class KnativeService:
    """The Service to apply, and what the deploy log should say about keys Knative takes only cluster-wide."""

    service: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return str(self.service["metadata"]["name"])

    @property
    def revision(self) -> str:
        return str(self.service["spec"]["template"]["metadata"]["name"])


def knative_service(manifest: FunctionManifest, revision: str, artifact_uri: str, route: Sequence[TrafficTarget],
                    settings: KnativeSettings, *, latest_ready: str | None = None) -> KnativeService:
    """The Service running `revision` (built from `manifest`, stored at `artifact_uri`) with `route`'s split.

    '@latest' targets of the route are pinned to `latest_ready` (default: `revision`). Raises
    KnativeTranslationError naming the field at fault.
    """
    settings.check()
    function = manifest.name
    _check_revision(function, revision)
    _check_artifact_uri(function, revision, artifact_uri)
    if manifest.auth == "token":
        raise KnativeTranslationError(
            f"function '{function}': auth: token is not enforced on Knative (the platform's token never "
            "leaves the platform); use auth: none and protect the Service in the cluster (e.g. cluster-local "
            "visibility or an ingress policy)")
    notes = cluster_wide_notes(manifest)
    template_metadata: dict[str, Any] = {
        "name": revision,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        "annotations": scaling_annotations(manifest),
    }
    template_spec: dict[str, Any] = {
        "containerConcurrency": manifest.concurrency,
        "timeoutSeconds": manifest.timeout_seconds,
        "containers": [_container(manifest, artifact_uri, settings)],
    }
    if settings.service_account:
        template_spec["serviceAccountName"] = settings.service_account
    service = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": function, "namespace": settings.namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {
            "template": {"metadata": template_metadata, "spec": template_spec},
            "traffic": service_traffic(function, route, latest_ready=latest_ready or revision),
        },
    }
    return KnativeService(service, tuple(notes))


def cluster_artifact_uri(store: str | None, digest: str) -> str:
    """The ZEROSERVE_ARTIFACT for a revision, refusing stores a cluster cannot reach (anything but s3://)."""
    try:
        return remote_artifact_uri(store, digest, target="Knative", reached_by="the cluster",
                                   hint="any S3-compatible store; see docs/knative.md")
    except ArtifactURIError as exc:
        raise KnativeTranslationError(str(exc)) from None


def scaling_annotations(manifest: FunctionManifest) -> dict[str, str]:
    """Every per-revision scaling key as its autoscaling.knative.dev/* annotation (values are strings)."""
    s = manifest.scaling
    _, target = resolve_metric_target(s, manifest.concurrency)
    values: dict[str, str] = {
        "class": KPA_CLASS,
        "metric": s.metric,
        "target": _number(target),
        "target-utilization-percentage": _number(s.target_utilization),
        "min-scale": str(s.min_scale),
        "max-scale": str(s.max_scale),
        "initial-scale": str(s.initial_scale),
        "window": format_duration(s.window),
        "panic-window-percentage": _number(s.panic_window_percentage),
        "panic-threshold-percentage": _number(s.panic_threshold_percentage),
        "scale-down-delay": format_duration(s.scale_down_delay),
        "scale-to-zero-pod-retention-period": format_duration(s.scale_to_zero_retention),
        "target-burst-capacity": _number(s.target_burst_capacity),
    }
    # 1 is Knative's implicit default (its webhook refuses an explicit 1); below min-scale the floor never
    # applies (the revision never runs fewer than min-scale pods) and the webhook refuses it too.
    if s.activation_scale != 1 and s.activation_scale >= s.min_scale:
        values["activation-scale"] = str(s.activation_scale)
    return {f"{AUTOSCALING}/{key}": value for key, value in sorted(values.items())}


def cluster_wide_notes(manifest: FunctionManifest) -> list[str]:
    """What a cluster operator must set for this function to scale as function.yaml says (or nothing)."""
    s = manifest.scaling
    notes = []
    for key, configmap_key in _CLUSTER_WIDE:
        value, default = getattr(s, key), getattr(_KNATIVE_DEFAULTS, key)
        if value == default:
            continue
        shown = format_duration(value) if key in _DURATION_KEYS else _number(value)
        extra = ""
        if key == "scale_to_zero_grace_period" and value < GRACE_PERIOD_MIN:
            extra = f" (Knative's minimum there is {format_duration(GRACE_PERIOD_MIN)})"
        notes.append(f"scaling.{key} is {shown}, but Knative takes it only cluster-wide: set "
                     f"{configmap_key}: \"{shown}\" in ConfigMap config-autoscaler (namespace knative-serving)"
                     f"{extra}; until then this function scales with the cluster's value "
                     f"(default {format_duration(default) if key in _DURATION_KEYS else _number(default)})")
    if s.initial_scale == 0:
        notes.append("scaling.initial_scale is 0: Knative refuses it unless allow-zero-initial-scale: \"true\" is "
                     "set in ConfigMap config-autoscaler (namespace knative-serving)")
    if manifest.timeout_seconds > KNATIVE_MAX_REVISION_TIMEOUT:
        notes.append(f"timeout_seconds is {manifest.timeout_seconds}: Knative refuses more than "
                     f"max-revision-timeout-seconds (default {KNATIVE_MAX_REVISION_TIMEOUT}); set "
                     f"max-revision-timeout-seconds: \"{manifest.timeout_seconds}\" in ConfigMap config-defaults "
                     "(namespace knative-serving)")
    return notes


def service_traffic(function: str, route: Sequence[TrafficTarget], *, latest_ready: str) -> list[dict[str, Any]]:
    """The route as `spec.traffic`: every target pinned (`latestRevision: false`), tags kept, order kept."""
    if not route:
        raise KnativeTranslationError(f"function '{function}': the route has no targets")
    traffic = []
    for target in freeze_latest(route, latest_ready):
        entry: dict[str, Any] = {"revisionName": target.revision, "percent": target.percent,
                                 "latestRevision": False}
        if target.tag:
            entry["tag"] = target.tag
        traffic.append(entry)
    total = sum(entry["percent"] for entry in traffic)
    if total != 100:
        raise KnativeTranslationError(f"function '{function}': traffic percents sum to {total}, not 100")
    tags = [entry["tag"] for entry in traffic if "tag" in entry]
    if len(tags) != len(set(tags)):
        raise KnativeTranslationError(f"function '{function}': traffic tags must be unique ({', '.join(tags)})")
    return traffic


def _container(manifest: FunctionManifest, artifact_uri: str, settings: KnativeSettings) -> dict[str, Any]:
    env = _env(manifest, artifact_uri, settings)
    container: dict[str, Any] = {
        "image": settings.image,
        "env": env,
        "readinessProbe": {"httpGet": {"path": READINESS_PATH}},
    }
    if settings.secret_name:
        container["envFrom"] = [{"secretRef": {"name": settings.secret_name}}]
    resources = _resources(manifest)
    if resources:
        container["resources"] = resources
    return container


def _env(manifest: FunctionManifest, artifact_uri: str, settings: KnativeSettings) -> list[dict[str, str]]:
    function = manifest.name
    for name in sorted(manifest.env):
        if name in KNATIVE_RESERVED_ENV:
            raise KnativeTranslationError(f"function '{function}': env.{name}: Knative sets {name} itself "
                                          "(its runtime contract); remove it from function.yaml")
        if name in RUNTIME_ENV or (name == S3_REGION_ENV and settings.s3_region):
            raise KnativeTranslationError(f"function '{function}': env.{name}: reserved for the zeroserve "
                                          "runtime on Knative; rename it")
    env = [{"name": name, "value": manifest.env[name]} for name in sorted(manifest.env)]
    env.append({"name": ARTIFACT_ENV, "value": artifact_uri})
    if settings.s3_endpoint:
        env.append({"name": S3_ENDPOINT_ENV, "value": settings.s3_endpoint})
    if settings.s3_region:
        env.append({"name": S3_REGION_ENV, "value": settings.s3_region})
    return env


def _resources(manifest: FunctionManifest) -> dict[str, dict[str, str]]:
    r = manifest.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if r.threads is not None:
        # The runtime sizes its thread pools to `threads`; a pod gets that many cores, no more.
        requests["cpu"] = limits["cpu"] = str(r.threads)
    if r.memory is not None:
        # Locally `memory` is what a replica may allocate; the same quantity syntax is Kubernetes'.
        requests["memory"] = limits["memory"] = r.memory
    if r.gpu:
        limits[GPU_RESOURCE] = "1"  # extended resources are limits only
    resources = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _check_revision(function: str, revision: str) -> None:
    if not isinstance(revision, str) or not revision.startswith(f"{function}-"):
        raise KnativeTranslationError(f"revision {revision!r}: Knative needs a revision name that starts with "
                                      f"the service name ('{function}-')")
    if len(revision) > 63 or not _DNS1123_LABEL.match(revision):
        raise KnativeTranslationError(f"revision {revision!r}: must be a DNS-1123 label of at most 63 characters")


def _check_artifact_uri(function: str, revision: str, artifact_uri: str) -> None:
    try:
        check_remote_artifact_uri(artifact_uri, target="Knative", reached_by="the cluster")
    except ArtifactURIError as exc:
        raise KnativeTranslationError(f"revision '{revision}' of '{function}': {exc}") from None


def _number(value: float) -> str:
    """A number as Knative's annotations and ConfigMaps take it: '100', '0.5', '1e+20' (never 'nan')."""
    value = float(value)
    if not math.isfinite(value):
        raise KnativeTranslationError(f"{value} is not a finite number")
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


__all__ = [
    "API_VERSION", "ARTIFACT_ENV", "KIND", "KPA_CLASS", "KnativeService", "KnativeSettings", "KnativeTranslationError",
    "MANAGED_BY", "MANAGED_BY_LABEL", "READINESS_PATH", "cluster_artifact_uri", "cluster_wide_notes",
    "knative_service", "scaling_annotations", "service_traffic",
]
