"""function.yaml + revision -> Lambda function configuration: every rule of deploy/aws_lambda/mapping.py."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.aws_lambda.mapping import (
    DEFAULT_MEMORY_MB,
    HANDLER,
    LambdaMappingError,
    LambdaSettings,
    function_name,
    function_spec,
    lambda_artifact_uri,
    not_applicable_notes,
)
from protocol.manifest import FunctionManifest, parse_manifest

ROLE = "arn:aws:iam::123456789012:role/zeroserve-lambda"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/zeroserve:0.1.0"
DIGEST = "sha256:" + "ab" * 32
ARTIFACT = f"s3://models/zeroserve@{DIGEST}"
SETTINGS = LambdaSettings(region="eu-west-1", role=ROLE, image=IMAGE)


def manifest(**keys: Any) -> FunctionManifest:
    return parse_manifest({"name": "iris", "model": "model.onnx", **keys})


def test_a_revision_becomes_an_image_function_and_a_version_described_by_its_name() -> None:
    spec = function_spec(manifest(env={"LOG_LEVEL": "info"}, timeout_seconds=30, resources={"memory": "2Gi"}),
                         "iris-00002", ARTIFACT, SETTINGS)
    assert spec.create_parameters() == {
        "FunctionName": "iris",
        "PackageType": "Image",
        "Code": {"ImageUri": IMAGE},
        "ImageConfig": {"Command": [HANDLER]},
        "Role": ROLE,
        "Timeout": 30,
        "MemorySize": 2048,
        "Environment": {"Variables": {"LOG_LEVEL": "info", "ZEROSERVE_ARTIFACT": ARTIFACT,
                                      "ZEROSERVE_REVISION": "iris-00002"}},
        "Description": "zeroserve function iris",
        "Tags": {"managed-by": "zeroserve", "zeroserve-function": "iris"},
        "Publish": False,
    }
    assert spec.code_parameters() == {"FunctionName": "iris", "ImageUri": IMAGE}
    configuration = spec.configuration_parameters()
    assert configuration["Environment"] == spec.create_parameters()["Environment"]
    assert {k: configuration[k] for k in ("Timeout", "MemorySize", "Role")} == {"Timeout": 30, "MemorySize": 2048,
                                                                               "Role": ROLE}
    assert spec.publish_parameters() == {"FunctionName": "iris", "Description": "iris-00002"}
    assert HANDLER == "deploy.aws_lambda.handler.handler"  # the module the Dockerfile's lambda stage runs


@pytest.mark.parametrize(("prefix", "expected"), [("", "iris"), ("zs-", "zs-iris"), ("team_a-", "team_a-iris")])
def test_function_name_is_the_prefix_then_the_function(prefix: str, expected: str) -> None:
    settings = LambdaSettings(region="eu-west-1", role=ROLE, image=IMAGE, function_prefix=prefix)
    assert function_name("iris", settings) == expected
    assert function_spec(manifest(), "iris-00001", ARTIFACT, settings).name == expected


def test_a_function_name_over_64_characters_is_refused_naming_the_rule() -> None:
    settings = LambdaSettings(region="eu-west-1", role=ROLE, image=IMAGE, function_prefix="p" * 10)
    with pytest.raises(LambdaMappingError, match=r"is 66 characters; Lambda allows at most 64"):
        function_name("a" * 56, settings)


@pytest.mark.parametrize(("timeout", "ok"), [(1, True), (300, True), (900, True), (901, False), (3600, False)])
def test_timeout_is_at_most_900_seconds(timeout: int, ok: bool) -> None:
    if ok:
        assert function_spec(manifest(timeout_seconds=timeout), "iris-00001", ARTIFACT, SETTINGS).timeout == timeout
        return
    with pytest.raises(LambdaMappingError) as refused:
        function_spec(manifest(timeout_seconds=timeout), "iris-00001", ARTIFACT, SETTINGS)
    assert f"timeout_seconds: {timeout}" in str(refused.value)
    assert "Timeout is at most 900 seconds" in str(refused.value) and "'iris'" in str(refused.value)


@pytest.mark.parametrize(("memory", "megabytes"), [
    (None, DEFAULT_MEMORY_MB), ("128Mi", 128), ("512Mi", 512), ("1Gi", 1024), ("1.5Gi", 1536), ("1G", 954),
    ("10Gi", 10_240), ("134217728", 128),
])
def test_memory_becomes_memory_size_in_megabytes(memory: str | None, megabytes: int) -> None:
    resources = {} if memory is None else {"resources": {"memory": memory}}
    assert function_spec(manifest(**resources), "iris-00001", ARTIFACT, SETTINGS).memory_mb == megabytes


@pytest.mark.parametrize(("memory", "shown"), [("127Mi", "127 MB"), ("64Mi", "64 MB"), ("10241Mi", "10,241 MB"),
                                               ("11Gi", "11,264 MB"), ("1Ti", "1,048,576 MB")])
def test_memory_outside_128_to_10240_mb_is_refused_naming_the_rule(memory: str, shown: str) -> None:
    with pytest.raises(LambdaMappingError) as refused:
        function_spec(manifest(resources={"memory": memory}), "iris-00001", ARTIFACT, SETTINGS)
    assert f"resources.memory: {memory} is {shown}" in str(refused.value)
    assert "MemorySize must be between 128 and 10,240 MB" in str(refused.value)


def test_an_s3_endpoint_setting_reaches_the_runtime() -> None:
    settings = LambdaSettings(region="eu-west-1", role=ROLE, image=IMAGE, s3_endpoint="https://minio.example.com")
    environment = function_spec(manifest(), "iris-00001", ARTIFACT, settings).environment
    assert environment["ZEROSERVE_S3_ENDPOINT_URL"] == "https://minio.example.com"


@pytest.mark.parametrize(("name", "message"), [
    ("AWS_REGION", "Lambda sets AWS_REGION itself"),
    ("AWS_ACCESS_KEY_ID", "Lambda sets AWS_ACCESS_KEY_ID itself"),
    ("_HANDLER", "Lambda sets _HANDLER itself"),
    ("LAMBDA_TASK_ROOT", "Lambda sets LAMBDA_TASK_ROOT itself"),
    ("ZEROSERVE_ARTIFACT", "reserved for the zeroserve runtime"),
    ("ZEROSERVE_REVISION", "reserved for the zeroserve runtime"),
])
def test_reserved_environment_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(LambdaMappingError) as refused:
        function_spec(manifest(env={name: "x"}), "iris-00001", ARTIFACT, SETTINGS)
    assert f"env.{name}: {message}" in str(refused.value)


def test_more_than_4_kb_of_environment_is_refused() -> None:
    function_spec(manifest(env={"BIG": "x" * 3500}), "iris-00001", ARTIFACT, SETTINGS)  # fits with the runtime's
    with pytest.raises(LambdaMappingError, match=r"at most 4,096 bytes \(4 KB\) of environment variables"):
        function_spec(manifest(env={"BIG": "x" * 4000}), "iris-00001", ARTIFACT, SETTINGS)


@pytest.mark.parametrize(("changes", "message"), [
    ({"region": "Europe"}, "is not a region name"),
    ({"role": "zeroserve-lambda"}, "is not an IAM role ARN"),
    ({"role": "arn:aws:iam::123:role/x"}, "is not an IAM role ARN"),
    ({"image": "ghcr.io/acme/zeroserve:1"}, "Lambda runs images only from Amazon ECR"),
    ({"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/zeroserve"}, "is not an ECR image reference"),
    ({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/zeroserve:1"},
     "the Lambda image is in region us-east-1, the functions in eu-west-1"),
    ({"function_prefix": "zs."}, "may hold only letters, digits, '-' and '_'"),
])
def test_settings_are_checked_naming_the_setting(changes: dict[str, str], message: str) -> None:
    fields = {"region": "eu-west-1", "role": ROLE, "image": IMAGE, **changes}
    with pytest.raises(LambdaMappingError, match=message):
        function_spec(manifest(), "iris-00001", ARTIFACT, LambdaSettings(**fields))


def test_an_image_pinned_by_digest_is_accepted() -> None:
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/zeroserve@sha256:{'cd' * 32}"
    settings = LambdaSettings(region="eu-west-1", role=ROLE, image=image)
    assert function_spec(manifest(), "iris-00001", ARTIFACT, settings).image == image


@pytest.mark.parametrize(("store", "message"), [
    (None, "not the local artifact store"),
    ("file:///srv/artifacts", "not the artifact store 'file:///srv/artifacts'"),
])
def test_lambda_needs_an_s3_artifact_store(store: str | None, message: str) -> None:
    assert lambda_artifact_uri("s3://models/zeroserve", DIGEST) == ARTIFACT
    with pytest.raises(LambdaMappingError) as refused:
        lambda_artifact_uri(store, DIGEST)
    assert message in str(refused.value) and "ZEROSERVE_ARTIFACTS=s3://" in str(refused.value)


@pytest.mark.parametrize(("revision", "artifact", "message"), [
    ("other-00001", ARTIFACT, "not a revision of function 'iris'"),
    ("iris-00001", f"file:///srv/a@{DIGEST}", "in a store Lambda cannot reach"),
    ("iris-00001", "s3://models/zeroserve", "names no digest"),
])
def test_revision_and_artifact_are_checked(revision: str, artifact: str, message: str) -> None:
    with pytest.raises(LambdaMappingError, match=message):
        function_spec(manifest(), revision, artifact, SETTINGS)


@pytest.mark.parametrize(("keys", "expected"), [
    ({}, []),
    ({"scaling": {"window": "2m", "panic_window_percentage": 20}},
     ["scaling.window=2m", "scaling.panic_window_percentage=20"]),
    ({"scaling": {"metric": "rps", "target": 50, "max_scale_down_rate": 4, "scale_to_zero_grace_period": "1m"}},
     ["scaling.metric=rps", "scaling.target=50", "scaling.max_scale_down_rate=4",
      "scaling.scale_to_zero_grace_period=1m"]),
    ({"scaling": {"min_scale": 2, "max_scale": 10}}, []),  # they map: provisioned and reserved concurrency
    ({"concurrency": 4}, ["concurrency=4: an execution environment serves one request at a time"]),
    ({"batching": {"max_batch_size": 16}}, ["batching: an execution environment sees one request at a time"]),
    ({"resources": {"threads": 4}}, ["resources.threads=4: Lambda gives CPU in proportion to MemorySize"]),
    ({"resources": {"gpu": True}}, ["resources.gpu=true: Lambda has no GPUs"]),
    ({"targets": ["local"]}, []),
])
def test_keys_without_a_lambda_counterpart_are_noted(keys: dict[str, Any], expected: list[str]) -> None:
    notes = not_applicable_notes(manifest(**keys))
    text = "\n".join(notes)
    for fragment in expected:
        assert fragment in text
    assert all(note.startswith("not applicable on Lambda: ") for note in notes)
    assert bool(notes) == bool(expected)
    assert function_spec(manifest(**keys), "iris-00001", ARTIFACT, SETTINGS).notes == tuple(notes)


def test_other_targets_beside_lambda_are_noted() -> None:
    # `targets: [lambda]` is still refused by protocol/manifest.py until the target is wired in.
    both = manifest().model_copy(update={"targets": ["local", "lambda"]})
    assert not_applicable_notes(both) == ["not applicable on Lambda: targets=local, lambda: the other targets serve "
                                          "the same revisions; Lambda has no such setting"]
    assert not_applicable_notes(manifest().model_copy(update={"targets": ["lambda"]})) == []
