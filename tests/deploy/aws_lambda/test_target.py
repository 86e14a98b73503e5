"""The Lambda target's seam: settings (environment and `zeroserve up` flags) onto LambdaSettings, and what it
refuses before any AWS call. The deploy, route and delete paths run end to end in test_platform_lambda.py."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.aws_lambda.target import LambdaTarget
from deploy.targets import NewRevision, TargetRefused
from protocol.manifest import parse_manifest
from revisions.traffic import TrafficTarget
from tests.deploy.aws_lambda.conftest import IMAGE, REGION
from zeroserve.settings import Settings, SettingsError
from zeroserve.up import lambda_target

ROLE = "arn:aws:iam::123456789012:role/zeroserve-lambda"
DIGEST = "sha256:" + "ab" * 32


class NoCalls:
    """A boto3 client stand-in that fails the test on any use: these refusals must come before AWS is asked."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the Lambda client was used ({name}) for something refused before any call")


def target_of(settings: Settings) -> LambdaTarget:
    target = lambda_target(settings)
    assert isinstance(target, LambdaTarget)
    return target


def new_revision(**keys: Any) -> NewRevision:
    manifest = parse_manifest({"name": "iris", "model": "model.onnx", "targets": ["lambda"], **keys})
    return NewRevision("iris", "iris-00001", DIGEST, manifest, routed=False,
                       route=(TrafficTarget.to("iris-00001", 100),))


def test_environment_and_flags_become_the_lambda_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROSERVE_S3_ENDPOINT_URL", "http://minio.internal:9000")
    env = {"ZEROSERVE_AWS_REGION": "eu-west-1", "ZEROSERVE_LAMBDA_ROLE": ROLE, "ZEROSERVE_LAMBDA_PREFIX": "zs-",
           "ZEROSERVE_LAMBDA_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/zeroserve:0.1",
           "ZEROSERVE_ARTIFACTS": "s3://bucket/functions"}
    from_env = target_of(Settings.load(env=env))
    assert (from_env.settings.region, from_env.settings.role, from_env.settings.function_prefix) == (
        "eu-west-1", ROLE, "zs-")
    assert from_env.settings.image == env["ZEROSERVE_LAMBDA_IMAGE"] and from_env.store == "s3://bucket/functions"
    assert from_env.settings.s3_endpoint == "http://minio.internal:9000"  # where the functions reach the store
    # Flags (what `zeroserve up --aws-region --lambda-role --lambda-image --lambda-prefix` passes) win.
    flagged = target_of(Settings.load(env=env, aws_region=REGION, lambda_image=IMAGE, lambda_prefix=""))
    assert (flagged.settings.region, flagged.settings.image, flagged.settings.function_prefix) == (REGION, IMAGE, "")
    flagged.settings.check()


def test_the_region_defaults_to_boto3s_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert target_of(Settings.load(env={})).settings.region == "ap-south-1"


@pytest.mark.parametrize(("env", "expected"), [
    ({"ZEROSERVE_LAMBDA_PREFIX": "zs."}, "lambda_prefix (ZEROSERVE_LAMBDA_PREFIX): Value error, 'zs.' is not a "
                                         "Lambda function name prefix"),
    ({"ZEROSERVE_LAMBDA_ROLE": "arn with spaces"}, "lambda_role (ZEROSERVE_LAMBDA_ROLE): Value error, 'arn with "
                                                   "spaces' must be one word without spaces"),
])
def test_bad_lambda_settings_are_refused_at_start_naming_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.load(env=env)
    assert expected in str(refused.value)


@pytest.mark.parametrize(("env", "expected"), [
    ({"ZEROSERVE_AWS_REGION": REGION, "ZEROSERVE_LAMBDA_IMAGE": IMAGE},
     "lambda: settings: the Lambda execution role '' is not an IAM role ARN .*; set ZEROSERVE_LAMBDA_ROLE"),
    ({"ZEROSERVE_AWS_REGION": REGION, "ZEROSERVE_LAMBDA_ROLE": ROLE},
     "lambda: settings: the Lambda image '' is not an ECR image reference .*set ZEROSERVE_LAMBDA_IMAGE"),
    ({"ZEROSERVE_AWS_REGION": "eu-west-1", "ZEROSERVE_LAMBDA_ROLE": ROLE, "ZEROSERVE_LAMBDA_IMAGE": IMAGE},
     "the Lambda image is in region us-east-1, the functions in eu-west-1"),
])
def test_missing_settings_refuse_a_deploy_before_any_call(env: dict[str, str], expected: str) -> None:
    target = LambdaTarget(target_of(Settings.load(env={**env, "ZEROSERVE_ARTIFACTS": "s3://zs-bucket/p"})).settings,
                          store="s3://zs-bucket/p", client=NoCalls())
    with pytest.raises(TargetRefused, match=expected):
        target.check(new_revision())


def test_what_lambda_cannot_run_is_refused_before_any_call() -> None:
    settings = target_of(Settings.load(env={"ZEROSERVE_AWS_REGION": REGION, "ZEROSERVE_LAMBDA_ROLE": ROLE,
                                            "ZEROSERVE_LAMBDA_IMAGE": IMAGE})).settings
    local = LambdaTarget(settings, store=None, client=NoCalls())
    with pytest.raises(TargetRefused, match="needs an artifact store the functions can reach, not the local"):
        local.check(new_revision())
    target = LambdaTarget(settings, store="s3://zs-bucket/p", client=NoCalls())
    with pytest.raises(TargetRefused, match=r"timeout_seconds: 1200 is more than Lambda allows"):
        target.check(new_revision(timeout_seconds=1200))
    with pytest.raises(TargetRefused, match=r"env.AWS_REGION: Lambda sets AWS_REGION itself"):
        target.check(new_revision(env={"AWS_REGION": "x"}))
