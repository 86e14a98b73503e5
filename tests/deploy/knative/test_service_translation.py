"""The Knative translation: function.yaml + revision + route -> a serving.knative.dev/v1 Service.

A table covers every scaling key; the rest of the contract (names, labels, container, resources, env,
credentials by reference, probe, traffic) and its refusals follow. Every Service produced, for every
example and for hypothesis-generated manifests and routes, is validated against Knative's official CRD
schema (../shared/knative/service.yaml; skipped, saying so, where that directory is absent) with
unknown fields counted as errors, and against Knative's webhook rules on a cluster configured as the
translation's notes say.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from deploy.knative.render import render_yaml
from deploy.knative.service import (
    KnativeSettings,
    KnativeTranslationError,
    cluster_artifact_uri,
    knative_service,
    scaling_annotations,
)
from protocol.manifest import FunctionManifest, ManifestError, load_manifest, parse_manifest
from revisions.traffic import TrafficTarget
from tests.deploy.knative import webhook
from tests.deploy.knative.schema import SERVICE_CRD, load_crd_schema, strict_problems

REPO = Path(__file__).resolve().parents[3]
SHARED_CRD = REPO.parent / "shared" / "knative" / "service.yaml"
EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/function.yaml"))
DIGEST = "sha256:" + hashlib.sha256(b"iris").hexdigest()
URI = f"s3://models/zeroserve@{DIGEST}"
SETTINGS = KnativeSettings(image="registry.example/zeroserve-runtime:0.1", namespace="ml",
                           secret_name="zeroserve-store")
A = "autoscaling.knative.dev/"


def manifest(**fields: Any) -> FunctionManifest:
    return parse_manifest({"name": "iris", "model": "model.onnx", **fields})


def translate(m: FunctionManifest | None = None, revision: str = "iris-00001", route: list[TrafficTarget] | None = None,
              settings: KnativeSettings = SETTINGS, **kwargs: Any):
    m = m or manifest()
    return knative_service(m, revision, URI, route or [TrafficTarget.to(revision, 100)], settings, **kwargs)


# ------------------------------------------------------------------------------------------- scaling keys

DEFAULT_ANNOTATIONS = {
    A + "class": "kpa.autoscaling.knative.dev", A + "metric": "concurrency", A + "target": "100",
    A + "target-utilization-percentage": "70", A + "min-scale": "0", A + "max-scale": "0", A + "initial-scale": "1",
    A + "window": "1m", A + "panic-window-percentage": "10", A + "panic-threshold-percentage": "200",
    A + "scale-down-delay": "0s", A + "scale-to-zero-pod-retention-period": "0s", A + "target-burst-capacity": "211",
}

# (function.yaml fields, annotation, its value: None = absent). One row at least per scaling key.
SCALING_TABLE = [
    ({"scaling": {"metric": "rps"}}, "metric", "rps"),
    ({"scaling": {"metric": "rps"}}, "target", "200"),  # Knative's rps default, written out
    ({"scaling": {"target": 25}}, "target", "25"),
    ({"scaling": {"target": 0.5}}, "target", "0.5"),
    ({"concurrency": 8}, "target", "8"),  # no target: containerConcurrency, as Knative resolves it
    ({"concurrency": 8, "scaling": {"target": 50}}, "target", "8"),  # capped by containerConcurrency
    ({"scaling": {"target_utilization": 85}}, "target-utilization-percentage", "85"),
    ({"scaling": {"target_utilization": 72.5}}, "target-utilization-percentage", "72.5"),
    ({"scaling": {"min_scale": 2}}, "min-scale", "2"),
    ({"scaling": {"max_scale": 10}}, "max-scale", "10"),
    ({"scaling": {"initial_scale": 3}}, "initial-scale", "3"),
    ({"scaling": {"initial_scale": 0}}, "initial-scale", "0"),
    ({"scaling": {"activation_scale": 3}}, "activation-scale", "3"),
    ({"scaling": {"activation_scale": 1}}, "activation-scale", None),  # Knative refuses an explicit 1
    ({"scaling": {"activation_scale": 2, "min_scale": 3}}, "activation-scale", None),  # moot below min-scale
    ({"scaling": {"window": "90s"}}, "window", "90s"),
    ({"scaling": {"window": "2m"}}, "window", "2m"),
    ({"scaling": {"panic_window_percentage": 20}}, "panic-window-percentage", "20"),
    ({"scaling": {"panic_threshold_percentage": 150.5}}, "panic-threshold-percentage", "150.5"),
    ({"scaling": {"scale_down_delay": "30s"}}, "scale-down-delay", "30s"),
    ({"scaling": {"scale_to_zero_retention": "1m"}}, "scale-to-zero-pod-retention-period", "1m"),
    ({"scaling": {"scale_to_zero_retention": "1500ms"}}, "scale-to-zero-pod-retention-period", "1500ms"),
    ({"scaling": {"target_burst_capacity": -1}}, "target-burst-capacity", "-1"),
    ({"scaling": {"target_burst_capacity": 0}}, "target-burst-capacity", "0"),
    ({"scaling": {"max_scale_up_rate": 10}}, "max-scale-up-rate", None),  # cluster-wide only: a note instead
    ({"scaling": {"max_scale_down_rate": 4}}, "max-scale-down-rate", None),
    ({"scaling": {"scale_to_zero_grace_period": "45s"}}, "scale-to-zero-grace-period", None),
]


def test_the_table_covers_every_scaling_key() -> None:
    from protocol.manifest import Scaling

    covered = {key for fields, _, _ in SCALING_TABLE for key in fields.get("scaling", {})}
    assert covered == set(Scaling.model_fields)


@pytest.mark.parametrize(("fields", "annotation", "value"), SCALING_TABLE,
                         ids=[f"{a}={v}" for _, a, v in SCALING_TABLE])
def test_scaling_key_becomes_its_annotation(fields: dict[str, Any], annotation: str, value: str | None) -> None:
    annotations = translate(manifest(**fields)).service["spec"]["template"]["metadata"]["annotations"]
    assert annotations.get(A + annotation) == value
    assert annotations[A + "class"] == "kpa.autoscaling.knative.dev"
    assert scaling_annotations(manifest(**fields)) == annotations


def test_defaults_are_written_out_in_full() -> None:
    assert translate().service["spec"]["template"]["metadata"]["annotations"] == DEFAULT_ANNOTATIONS
    assert translate().notes == ()


@pytest.mark.parametrize(("fields", "expected"), [
    ({"scaling": {"max_scale_up_rate": 10}}, 'set max-scale-up-rate: "10" in ConfigMap config-autoscaler'),
    ({"scaling": {"max_scale_down_rate": 4}}, 'set max-scale-down-rate: "4" in ConfigMap config-autoscaler'),
    ({"scaling": {"scale_to_zero_grace_period": "45s"}},
     'set scale-to-zero-grace-period: "45s" in ConfigMap config-autoscaler'),
    ({"scaling": {"scale_to_zero_grace_period": "2s"}}, "Knative's minimum there is 6s"),
    ({"scaling": {"initial_scale": 0}}, 'allow-zero-initial-scale: "true"'),
    ({"timeout_seconds": 900}, 'max-revision-timeout-seconds: "900" in ConfigMap config-defaults'),
])
def test_keys_knative_takes_only_cluster_wide_are_notes(fields: dict[str, Any], expected: str) -> None:
    (note,) = translate(manifest(**fields)).notes
    assert expected in note and "namespace knative-serving" in note


# --------------------------------------------------------------------------------------- the rest

def test_the_service_contract() -> None:
    m = manifest(concurrency=4, timeout_seconds=120, env={"LOG_LEVEL": "debug", "A_FIRST": "1"},
                 resources={"gpu": True, "threads": 2, "memory": "1Gi"})
    route = [TrafficTarget.to("iris-00001", 90), TrafficTarget.to("iris-00002", 10, tag="canary"),
             TrafficTarget.to("iris-00001", 0, tag="stable")]
    service = translate(m, "iris-00002", route).service
    assert service["apiVersion"] == "serving.knative.dev/v1" and service["kind"] == "Service"
    assert service["metadata"] == {"name": "iris", "namespace": "ml",
                                   "labels": {"app.kubernetes.io/managed-by": "zeroserve"}}
    template = service["spec"]["template"]
    assert template["metadata"]["name"] == "iris-00002"
    assert template["spec"]["containerConcurrency"] == 4 and template["spec"]["timeoutSeconds"] == 120
    (container,) = template["spec"]["containers"]
    assert container["image"] == "registry.example/zeroserve-runtime:0.1"
    assert container["env"] == [{"name": "A_FIRST", "value": "1"}, {"name": "LOG_LEVEL", "value": "debug"},
                                {"name": "ZEROSERVE_ARTIFACT", "value": URI}]
    assert container["envFrom"] == [{"secretRef": {"name": "zeroserve-store"}}]  # credentials by reference only
    assert container["readinessProbe"] == {"httpGet": {"path": "/v2/health/ready"}}
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}}
    assert service["spec"]["traffic"] == [
        {"revisionName": "iris-00001", "percent": 90, "latestRevision": False},
        {"revisionName": "iris-00002", "percent": 10, "latestRevision": False, "tag": "canary"},
        {"revisionName": "iris-00001", "percent": 0, "latestRevision": False, "tag": "stable"},
    ]


def test_latest_is_pinned_and_settings_reach_the_pod() -> None:
    settings = KnativeSettings(image="img:1", service_account="zeroserve-runtime", s3_endpoint="http://minio:9000",
                               s3_region="eu-west-1")
    service = translate(revision="iris-00003", route=[TrafficTarget.to("@latest", 100)], settings=settings,
                        latest_ready="iris-00002").service
    assert service["spec"]["traffic"] == [{"revisionName": "iris-00002", "percent": 100, "latestRevision": False}]
    spec = service["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "zeroserve-runtime"
    (container,) = spec["containers"]
    assert "envFrom" not in container and "resources" not in container
    assert container["env"][-2:] == [{"name": "ZEROSERVE_S3_ENDPOINT_URL", "value": "http://minio:9000"},
                                     {"name": "AWS_REGION", "value": "eu-west-1"}]
    assert service["metadata"]["namespace"] == "default"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: translate(revision="echo-00001"), "starts with the service name ('iris-')"),
    (lambda: knative_service(manifest(), "iris-00001", f"file:///srv/artifacts@{DIGEST}", [TrafficTarget.to(
        "iris-00001", 100)], SETTINGS), "needs ZEROSERVE_ARTIFACTS=s3://bucket/prefix"),
    (lambda: knative_service(manifest(), "iris-00001", "s3://models", [TrafficTarget.to("iris-00001", 100)],
                             SETTINGS), "names no digest"),
    (lambda: translate(manifest(auth="token")), "auth: token is not enforced on Knative"),
    (lambda: translate(manifest(env={"PORT": "9000"})), "env.PORT: Knative sets PORT itself"),
    (lambda: translate(manifest(env={"ZEROSERVE_ARTIFACT": "x"})), "env.ZEROSERVE_ARTIFACT: reserved"),
    (lambda: translate(settings=KnativeSettings(image="")), "set ZEROSERVE_RUNTIME_IMAGE"),
    (lambda: translate(settings=KnativeSettings(image="img", namespace="Prod")), "namespace 'Prod'"),
    (lambda: translate(route=[TrafficTarget.to("iris-00001", 60)]), "traffic percents sum to 60, not 100"),
    (lambda: cluster_artifact_uri(None, DIGEST), "not the local artifact store: start the platform with "
                                                 "ZEROSERVE_ARTIFACTS=s3://bucket/prefix"),
    (lambda: cluster_artifact_uri("/srv/artifacts", DIGEST), "not the artifact store '/srv/artifacts'"),
])
def test_what_cannot_become_a_service_is_refused_by_name(call: Any, message: str) -> None:
    with pytest.raises(KnativeTranslationError) as refused:
        call()
    assert message in str(refused.value)


def test_cluster_artifact_uri_for_an_s3_store() -> None:
    assert cluster_artifact_uri("s3://models/zeroserve/", DIGEST) == URI


# ------------------------------------------------------------------------------------------- export YAML

def test_render_yaml_is_deterministic_and_round_trips() -> None:
    service = translate(manifest(env={"FLAG": "true", "COUNT": "100"})).service
    text = render_yaml(service)
    reordered = dict(reversed(list(service.items())))
    assert render_yaml(reordered) == text == render_yaml(yaml.safe_load(text))
    assert yaml.safe_load(text) == service
    assert "value: 'true'" in text and "value: '100'" in text  # strings stay strings for kubectl
    assert text.startswith("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n")


# ------------------------------------------------------------------------------ the official CRD schema

def official_schema() -> dict[str, Any]:
    if not SHARED_CRD.is_file():
        pytest.skip(f"Knative's official CRD is not here ({SHARED_CRD} is absent): nothing to validate against")
    return load_crd_schema(SHARED_CRD)


def check_against_knative(service: dict[str, Any], notes: tuple[str, ...], m: FunctionManifest) -> None:
    assert strict_problems(service, official_schema()) == []
    # Knative's webhook, on a cluster configured as the notes say.
    config = webhook.WebhookConfig(allow_zero_initial_scale=m.scaling.initial_scale == 0,
                                   max_revision_timeout_seconds=max(600, m.timeout_seconds))
    defaulted = yaml.safe_load(render_yaml(service))
    webhook.apply_defaults(defaulted)
    assert webhook.validate(defaulted, config) == []
    if m.scaling.initial_scale == 0 or m.timeout_seconds > 600:  # what the cluster needed is in the notes
        assert notes


def test_the_vendored_crd_is_the_official_one() -> None:
    official = official_schema()
    assert load_crd_schema(SERVICE_CRD) == official


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates_against_the_official_crd(example: Path) -> None:
    m = load_manifest(example)
    revision = f"{m.name}-00001"
    result = knative_service(m, revision, URI, [TrafficTarget.to(revision, 100)], SETTINGS)
    check_against_knative(result.service, result.notes, m)


def test_a_mistyped_service_fails_the_schema_check() -> None:
    """The check above can fail: a wrong type and an unknown field are both reported."""
    service = translate().service
    service["spec"]["template"]["spec"]["containerConcurrency"] = "4"
    service["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    problems = strict_problems(service, official_schema())
    assert any("containerConcurrency" in p and "must be of type integer" in p for p in problems)
    assert "spec.template.spec.containers[0].readinesProbe: unknown field" in problems


durations = st.sampled_from(["0s", "1s", "6s", "45s", "90s", "2m", "1h", "1500ms"])
labels = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)


@st.composite
def manifests(draw: st.DrawFn) -> FunctionManifest:
    scaling: dict[str, Any] = {
        "metric": draw(st.sampled_from(["concurrency", "rps"])),
        "target": draw(st.none() | st.floats(0.01, 1e6, allow_nan=False)),
        "target_utilization": draw(st.floats(1, 100)),
        "min_scale": draw(st.integers(0, 5)), "max_scale": draw(st.integers(0, 50)),
        "initial_scale": draw(st.integers(0, 5)), "activation_scale": draw(st.sampled_from([1, 2, 3])),
        "window": draw(st.sampled_from(["6s", "30s", "60s", "2m", "1h"])),
        "panic_window_percentage": draw(st.floats(1, 100)), "panic_threshold_percentage": draw(st.floats(110, 1000)),
        "max_scale_up_rate": draw(st.floats(1.5, 5000)), "max_scale_down_rate": draw(st.floats(1.5, 100)),
        "scale_down_delay": draw(st.sampled_from(["0s", "5s", "1m"])),
        "scale_to_zero_grace_period": draw(durations.filter(lambda d: d != "0s")),
        "scale_to_zero_retention": draw(durations),
        "target_burst_capacity": draw(st.sampled_from([-1, 0, 10.5, 211, 1000])),
    }
    fields = {
        "name": draw(labels), "model": "model.onnx", "scaling": scaling,
        "concurrency": draw(st.integers(0, 1000)), "timeout_seconds": draw(st.integers(1, 3600)),
        "resources": {"gpu": draw(st.booleans()), "threads": draw(st.none() | st.integers(1, 64)),
                      "memory": draw(st.none() | st.sampled_from(["512Mi", "2Gi", "1.5G", "100000"]))},
        "env": draw(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True).filter(
            lambda n: not n.startswith(("ZEROSERVE_", "K_")) and n != "PORT"), st.text(max_size=20), max_size=4)),
    }
    try:
        return parse_manifest(fields)
    except ManifestError:
        assume(False)
        raise


@st.composite
def routes(draw: st.DrawFn, function: str) -> tuple[str, list[TrafficTarget]]:
    count = draw(st.integers(1, 3))
    numbers = draw(st.lists(st.integers(1, 99999), min_size=count, max_size=count, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1)))
    percents = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    tags = draw(st.lists(st.none() | labels, min_size=count, max_size=count).filter(
        lambda ts: len([t for t in ts if t]) == len({t for t in ts if t})))
    targets = [TrafficTarget.to(f"{function}-{n:05d}", percent, tag)
               for n, percent, tag in zip(numbers, percents, tags, strict=True)]
    return f"{function}-{max(numbers) + 1:05d}", targets


@given(data=st.data())
def test_generated_manifests_and_routes_validate_against_the_official_crd(data: st.DataObject) -> None:
    m = data.draw(manifests())
    revision, route = data.draw(routes(m.name))
    result = knative_service(m, revision, URI, route, SETTINGS)
    check_against_knative(result.service, result.notes, m)
    assert render_yaml(result.service) == render_yaml(knative_service(m, revision, URI, route, SETTINGS).service)
