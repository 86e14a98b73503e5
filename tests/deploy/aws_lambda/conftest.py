"""Fixtures for the Lambda target: moto's server over real HTTP on 127.0.0.1 (IAM, S3, Lambda), the proxy
in front of it (tests/deploy/aws_lambda/lambda_proxy.py), an execution role, settings, and a recorder of the
AWS calls a client makes (botocore's own event hook: the calls still go over HTTP).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from deploy.aws_lambda.account import LambdaAccount
from deploy.aws_lambda.mapping import LambdaSettings
from tests.deploy.aws_lambda.lambda_proxy import LambdaProxy
from tests.revisions import conftest as revisions_conftest

moto_endpoint = revisions_conftest.moto_endpoint  # the session fixture: moto's server on 127.0.0.1
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret"}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/zeroserve:0.1.0"
ASSUME_ROLE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def aws_client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)


@pytest.fixture(scope="session")
def role_arn(moto_endpoint: str) -> str:
    """An execution role in moto's IAM: moto's create_function refuses a role that does not exist."""
    iam = aws_client("iam", moto_endpoint)
    name = f"zeroserve-lambda-{uuid.uuid4().hex[:8]}"
    return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ASSUME_ROLE))["Role"]["Arn"])


@pytest.fixture
def settings(role_arn: str) -> LambdaSettings:
    # A prefix per test: moto keeps every function for the whole session.
    return LambdaSettings(region=REGION, role=role_arn, image=IMAGE, function_prefix=f"t{uuid.uuid4().hex[:6]}-")


@pytest.fixture
def lambda_proxy(moto_endpoint: str) -> Iterator[LambdaProxy]:
    proxy = LambdaProxy(moto_endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@dataclass
class CallRecorder:
    """Every Lambda operation a client sends (name and parameters), in order."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def writes(self) -> list[str]:
        return [name for name in self.names if not name.startswith(("Get", "List"))]

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def recorder() -> CallRecorder:
    return CallRecorder()


@pytest.fixture
def lambda_client(lambda_proxy: LambdaProxy, recorder: CallRecorder) -> Any:
    client = aws_client("lambda", lambda_proxy.url)
    client.meta.events.register("provide-client-params.lambda.*", recorder)
    return client


@pytest.fixture
def progress() -> list[str]:
    return []


@pytest.fixture
def account(lambda_client: Any, progress: list[str]) -> LambdaAccount:
    # Short waits: moto applies every update at once, and the conflict tests inject their own.
    return LambdaAccount(REGION, client=lambda_client, progress=progress.append, backoff=0.01, max_backoff=0.05,
                         waiter_delay=0.01, waiter_attempts=50)
