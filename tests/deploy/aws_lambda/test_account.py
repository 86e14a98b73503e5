"""The Lambda target against moto's server over real HTTP: deploy, split, promote, rollback, rollout, delete.

Each step goes through the real mapping and LambdaAccount (boto3 over HTTP to the proxy in front of
moto), and the state is read back with a second boto3 client that records nothing: get_alias,
list_versions_by_function, get_function_url_config, get_policy.

Where moto is lenient, the platform's own checks carry the rule and the tests say so:
- moto accepts an alias with three versions (AWS refuses more than one additional version): the
  platform refuses the split itself, before any call, and the test shows nothing was written.
- moto publishes a new version of an unchanged $LATEST (AWS answers the last version): the platform
  never publishes a revision twice, whatever the server does.
- moto does not check an alias' versions share a role, nor that a URL's alias exists.
- function URLs, resource policies and provisioned concurrency per alias come from the proxy in front
  of moto (tests/deploy/aws_lambda/lambda_proxy.py says what moto gets wrong there).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from deploy.aws_lambda.account import LambdaAccount, LambdaCallError, LambdaError, PublishedVersion
from deploy.aws_lambda.mapping import LambdaMappingError, LambdaSettings, function_name, function_spec
from deploy.aws_lambda.routing import INVOKE_STATEMENT, URL_STATEMENT, LambdaRoute, lambda_route
from protocol.manifest import FunctionManifest, parse_manifest
from revisions.traffic import RolloutPlan, TrafficTarget, promote_tag, route_after_deploy
from tests.deploy.aws_lambda.conftest import IMAGE, REGION, CallRecorder, aws_client
from tests.deploy.aws_lambda.lambda_proxy import LambdaProxy

IN_PROGRESS = ("The operation cannot be performed at this time. An update is in progress for resource: "
               "arn:aws:lambda:us-east-1:123456789012:function:{name}")


def manifest(**keys: Any) -> FunctionManifest:
    return parse_manifest({"name": "iris", "model": "model.onnx", **keys})


def artifact(n: int) -> str:
    return f"s3://zs-artifacts/zeroserve@sha256:{n:064x}"


def publish(account: LambdaAccount, settings: LambdaSettings, revision: str, **keys: Any) -> PublishedVersion:
    return account.publish_revision(function_spec(manifest(**keys), revision, artifact(int(revision[-5:])), settings))


def set_route(account: LambdaAccount, settings: LambdaSettings, targets: list[TrafficTarget],
              **keys: Any) -> LambdaRoute:
    versions = account.published_versions(function_name("iris", settings))
    plan = lambda_route(manifest(**keys), targets, versions, settings)
    account.set_route(plan)
    return plan


@pytest.fixture
def aws(lambda_proxy: LambdaProxy) -> Any:
    """A boto3 client of its own (not recorded): how the tests read the state back."""
    return aws_client("lambda", lambda_proxy.url)


def alias(aws: Any, name: str, alias_name: str) -> tuple[str, dict[str, float]]:
    found = aws.get_alias(FunctionName=name, Name=alias_name)
    return found["FunctionVersion"], (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def statements(aws: Any, name: str, qualifier: str) -> dict[str, dict[str, Any]]:
    try:
        policy = json.loads(aws.get_policy(FunctionName=name, Qualifier=qualifier)["Policy"])
    except aws.exceptions.ResourceNotFoundException:
        return {}
    return {statement["Sid"]: statement for statement in policy["Statement"]}


def versions(aws: Any, name: str) -> dict[str, str]:
    listed = aws.list_versions_by_function(FunctionName=name)["Versions"]
    return {v["Version"]: v["Description"] for v in listed if v["Version"] != "$LATEST"}


def assert_public(aws: Any, name: str, qualifier: str) -> None:
    found = statements(aws, name, qualifier)
    assert set(found) == {URL_STATEMENT, INVOKE_STATEMENT}
    assert found[URL_STATEMENT]["Action"] == "lambda:InvokeFunctionUrl" and found[URL_STATEMENT]["Principal"] == "*"
    assert found[URL_STATEMENT]["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    assert found[INVOKE_STATEMENT]["Action"] == "lambda:InvokeFunction" and found[INVOKE_STATEMENT]["Principal"] == "*"
    # Public through the URL only: invoking the function itself still needs IAM.
    assert found[INVOKE_STATEMENT]["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
    assert all(s["Resource"].endswith(f":function:{name}:{qualifier}") for s in found.values())


def test_deploy_split_refusal_promote_rollback_rollout_and_delete(account: LambdaAccount, settings: LambdaSettings,
                                                                  aws: Any, recorder: CallRecorder,
                                                                  progress: list[str]) -> None:
    name = function_name("iris", settings)

    # 1. The first revision: an image function, version 1 described by the revision, `live` with a public URL.
    first = publish(account, settings, "iris-00001", env={"LOG_LEVEL": "info"}, timeout_seconds=60)
    assert first == PublishedVersion("iris-00001", "1", published=True)
    route = [TrafficTarget.to("iris-00001", 100)]
    set_route(account, settings, route)
    function = aws.get_function(FunctionName=name)
    configuration = function["Configuration"]
    assert configuration["PackageType"] == "Image" and function["Code"]["ImageUri"] == IMAGE
    assert (configuration["Timeout"], configuration["MemorySize"]) == (60, 1024)
    assert configuration["Environment"]["Variables"] == {"LOG_LEVEL": "info", "ZEROSERVE_ARTIFACT": artifact(1),
                                                         "ZEROSERVE_REVISION": "iris-00001"}
    assert function["Tags"]["managed-by"] == "zeroserve"
    assert versions(aws, name) == {"1": "iris-00001"}
    assert alias(aws, name, "live") == ("1", {})
    url = aws.get_function_url_config(FunctionName=name, Qualifier="live")
    assert url["AuthType"] == "NONE" and not url.get("Cors")
    assert url["FunctionUrl"].startswith("https://")
    assert_public(aws, name, "live")
    assert [p["Qualifier"] for p in recorder.of("CreateFunctionUrlConfig")] == ["live"]

    # 2. A second revision at 10 % with a tag: live = v1 + v2 at 0.1, alias canary = v2 with its own URL.
    second = publish(account, settings, "iris-00002")
    assert second.version == "2"
    route = route_after_deploy(route, "iris-00002", 10, "canary")
    set_route(account, settings, route)
    assert versions(aws, name) == {"1": "iris-00001", "2": "iris-00002"}
    assert aws.get_function_configuration(FunctionName=name, Qualifier="2")["Environment"]["Variables"][
        "ZEROSERVE_ARTIFACT"] == artifact(2)
    assert alias(aws, name, "live") == ("1", {"2": 0.1})
    assert alias(aws, name, "canary") == ("2", {})
    live_url = aws.get_function_url_config(FunctionName=name, Qualifier="live")
    canary_url = aws.get_function_url_config(FunctionName=name, Qualifier="canary")
    assert canary_url["FunctionUrl"] != live_url["FunctionUrl"] and canary_url["AuthType"] == "NONE"
    assert canary_url["FunctionArn"].endswith(f"{name}:canary")
    assert_public(aws, name, "canary")

    # A revision is never published twice: found again by its Description.
    recorder.clear()
    assert publish(account, settings, "iris-00002") == PublishedVersion("iris-00002", "2", published=False)
    assert recorder.writes() == []

    # 3. A three-way split is refused before any call (moto itself would take it): nothing changes.
    publish(account, settings, "iris-00003")
    recorder.clear()
    three_way = [TrafficTarget.to("iris-00001", 80), TrafficTarget.to("iris-00002", 10, "canary"),
                 TrafficTarget.to("iris-00003", 10)]
    with pytest.raises(LambdaMappingError, match=r"function 'iris': Lambda routes an alias to at most 2 versions"):
        set_route(account, settings, three_way)
    assert recorder.writes() == []
    assert alias(aws, name, "live") == ("1", {"2": 0.1}) and alias(aws, name, "canary") == ("2", {})

    # 4. Promote the tag: live -> v2 alone; the tag stays.
    before_promote = route
    route = promote_tag("iris", route, "canary")
    set_route(account, settings, route)
    assert alias(aws, name, "live") == ("2", {})
    assert alias(aws, name, "canary") == ("2", {})
    assert_public(aws, name, "live")

    # 5. Roll back to the route before: live -> v1 + v2 at 0.1 again.
    route = before_promote
    set_route(account, settings, route)
    assert alias(aws, name, "live") == ("1", {"2": 0.1})

    # ... and to the very first route: the tag alias and its URL go.
    route = [TrafficTarget.to("iris-00001", 100)]
    set_route(account, settings, route)
    assert alias(aws, name, "live") == ("1", {})
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.get_alias(FunctionName=name, Name="canary")
    assert [p["Qualifier"] for p in recorder.of("DeleteFunctionUrlConfig")] == ["canary"]
    assert aws.get_function_url_config(FunctionName=name, Qualifier="live")["FunctionUrl"] == live_url["FunctionUrl"]

    # 6. A gradual rollout of v3 to 100 % over 60 s: the alias weights at each step of the local schedule.
    plan = RolloutPlan(function="iris", revision="iris-00003", target_percent=100, tag=None,
                       base=tuple(route), started=1000.0, duration=60.0)
    seen = []
    for now in (1000.0, 1015.0, 1030.0, 1045.0, 1060.0):
        set_route(account, settings, plan.route_at(now))
        seen.append(alias(aws, name, "live"))
    assert seen == [("1", {"3": 0.01}), ("1", {"3": 0.25}), ("1", {"3": 0.5}), ("3", {"1": 0.25}), ("3", {})]

    # 7. Delete: the function, its aliases and URLs; a second delete has nothing to do.
    assert account.delete(name, function="iris") is True
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.get_function(FunctionName=name)
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.get_alias(FunctionName=name, Name="live")
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.get_function_url_config(FunctionName=name, Qualifier="live")
    assert "DeleteFunctionUrlConfig" in recorder.names and "DeleteAlias" in recorder.names
    assert account.delete(name) is False
    assert any("published iris-00002 as version 2" in line for line in progress)


def test_set_route_twice_writes_nothing_the_second_time(account: LambdaAccount, settings: LambdaSettings,
                                                        recorder: CallRecorder) -> None:
    publish(account, settings, "iris-00001")
    publish(account, settings, "iris-00002")
    targets = [TrafficTarget.to("iris-00001", 90), TrafficTarget.to("iris-00002", 10, "canary")]
    set_route(account, settings, targets, scaling={"min_scale": 1, "max_scale": 4})
    recorder.clear()
    set_route(account, settings, targets, scaling={"min_scale": 1, "max_scale": 4})
    assert recorder.writes() == []
    assert set(recorder.names) <= {"GetFunction", "ListAliases", "GetFunctionUrlConfig", "GetPolicy",
                                   "GetProvisionedConcurrencyConfig", "GetFunctionConcurrency",
                                   "ListVersionsByFunction"}


def test_auth_token_uses_iam_urls_and_switching_back_closes_public_access(account: LambdaAccount,
                                                                          settings: LambdaSettings, aws: Any) -> None:
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001", auth="token")
    targets = [TrafficTarget.to("iris-00001", 100)]
    set_route(account, settings, targets, auth="token")
    assert aws.get_function_url_config(FunctionName=name, Qualifier="live")["AuthType"] == "AWS_IAM"
    assert statements(aws, name, "live") == {}

    set_route(account, settings, targets, auth="none")
    assert aws.get_function_url_config(FunctionName=name, Qualifier="live")["AuthType"] == "NONE"
    assert_public(aws, name, "live")

    set_route(account, settings, targets, auth="token")  # public again -> private: both statements go
    assert aws.get_function_url_config(FunctionName=name, Qualifier="live")["AuthType"] == "AWS_IAM"
    assert statements(aws, name, "live") == {}


def test_min_and_max_scale_become_provisioned_and_reserved_concurrency(account: LambdaAccount,
                                                                       settings: LambdaSettings, aws: Any,
                                                                       lambda_proxy: LambdaProxy,
                                                                       lambda_client: Any) -> None:
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001")
    targets = [TrafficTarget.to("iris-00001", 100)]
    set_route(account, settings, targets, scaling={"min_scale": 2, "max_scale": 10})
    # moto has no provisioned concurrency: the proxy holds it (read through it, with Lambda's API).
    provisioned = lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert provisioned["RequestedProvisionedConcurrentExecutions"] == 2 and provisioned["Status"] == "READY"
    assert aws.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 10

    state = account.describe(name)
    assert state is not None
    assert state.provisioned_concurrency is not None and state.provisioned_concurrency["Status"] == "READY"
    assert state.reserved_concurrency == 10

    set_route(account, settings, targets)  # back to Knative's defaults: nothing provisioned, nothing reserved
    assert lambda_proxy.provisioned == {}
    assert "ReservedConcurrentExecutions" not in aws.get_function_concurrency(FunctionName=name)


def test_describe_reports_versions_alias_weights_urls_and_update_status(account: LambdaAccount,
                                                                        settings: LambdaSettings) -> None:
    name = function_name("iris", settings)
    assert account.describe(name) is None
    publish(account, settings, "iris-00001")
    publish(account, settings, "iris-00002")
    set_route(account, settings, [TrafficTarget.to("iris-00001", 90), TrafficTarget.to("iris-00002", 10, "canary")])
    state = account.describe(name)
    assert state is not None
    assert state.versions == {"1": "iris-00001", "2": "iris-00002"}
    assert (state.state, state.last_update_status) == ("Active", "Successful")
    by_name = {a.name: a for a in state.aliases}
    assert (by_name["live"].version, by_name["live"].revision, by_name["live"].weights) == ("1", "iris-00001",
                                                                                          {"2": 0.1})
    assert (by_name["canary"].version, by_name["canary"].revision) == ("2", "iris-00002")
    assert by_name["live"].url and by_name["live"].auth_type == "NONE"
    assert state.provisioned_concurrency is None and state.reserved_concurrency is None
    assert json.loads(json.dumps(state.to_dict()))["versions"] == {"1": "iris-00001", "2": "iris-00002"}


def test_an_update_in_progress_is_waited_out_and_retried(account: LambdaAccount, settings: LambdaSettings,
                                                         lambda_proxy: LambdaProxy, recorder: CallRecorder,
                                                         progress: list[str], aws: Any) -> None:
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001")
    lambda_proxy.fail("PUT", rf"/functions/{name}/configuration$", 409, "ResourceConflictException",
                      IN_PROGRESS.format(name=name), times=2)
    recorder.clear()
    assert publish(account, settings, "iris-00002").version == "2"
    assert lambda_proxy.faults_answered == 2
    calls = recorder.names
    assert calls.count("UpdateFunctionConfiguration") == 3
    # Between the refused attempts the function_updated_v2 waiter read LastUpdateStatus (GetFunction).
    first, second = [i for i, call in enumerate(calls) if call == "UpdateFunctionConfiguration"][:2]
    assert "GetFunction" in calls[first:second]
    assert sum("waits for an update in progress" in line for line in progress) == 2
    assert versions(aws, name) == {"1": "iris-00001", "2": "iris-00002"}


def test_an_update_that_never_finishes_fails_naming_the_call_and_code(lambda_client: Any, settings: LambdaSettings,
                                                                      lambda_proxy: LambdaProxy, aws: Any) -> None:
    account = LambdaAccount(REGION, client=lambda_client, conflict_attempts=3, backoff=0.01, waiter_delay=0.01)
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001")
    lambda_proxy.fail("PUT", rf"/functions/{name}/configuration$", 409, "ResourceConflictException",
                      IN_PROGRESS.format(name=name), times=100)
    with pytest.raises(LambdaCallError) as failed:
        publish(account, settings, "iris-00002")
    assert str(failed.value).startswith(f"Lambda UpdateFunctionConfiguration on '{name}' failed: "
                                        "ResourceConflictException: The operation cannot be performed at this time")
    assert lambda_proxy.faults_answered == 3
    assert versions(aws, name) == {"1": "iris-00001"}  # nothing published


def test_a_failed_update_is_reported_with_lambdas_reason(account: LambdaAccount, settings: LambdaSettings,
                                                        lambda_proxy: LambdaProxy, aws: Any) -> None:
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001")
    lambda_proxy.fail("PUT", rf"/functions/{name}/configuration$", 409, "ResourceConflictException",
                      IN_PROGRESS.format(name=name))
    lambda_proxy.answer("GET", rf"/functions/{name}$", {"Configuration": {
        "FunctionName": name, "State": "Active", "LastUpdateStatus": "Failed",
        "LastUpdateStatusReasonCode": "ImageAccessDenied",
        "LastUpdateStatusReason": "Lambda does not have permission to access the ECR image."}},
        skip=1)  # the first GetFunction is ensure_function's read; the second the waiter's
    with pytest.raises(LambdaCallError) as failed:
        publish(account, settings, "iris-00002")
    assert str(failed.value) == (f"Lambda GetFunction on '{name}' failed: ImageAccessDenied: waiting for "
                                 "function_updated_v2: status Failed: Lambda does not have permission to access the "
                                 "ECR image.")
    assert versions(aws, name) == {"1": "iris-00001"}


def test_a_concurrent_change_to_latest_publishes_nothing(account: LambdaAccount, settings: LambdaSettings,
                                                         lambda_proxy: LambdaProxy, aws: Any) -> None:
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001")
    # Another deploy configured $LATEST for its own revision between our update and our publish.
    lambda_proxy.answer("GET", rf"/functions/{name}/configuration$", {
        "FunctionName": name, "RevisionId": "someone-else", "State": "Active", "LastUpdateStatus": "Successful",
        "Environment": {"Variables": {"ZEROSERVE_ARTIFACT": artifact(9), "ZEROSERVE_REVISION": "iris-00009"}}})
    with pytest.raises(LambdaError, match=rf"Lambda function '{name}' changed while iris-00002 was being published"):
        publish(account, settings, "iris-00002")
    assert versions(aws, name) == {"1": "iris-00001"}


def test_access_denied_names_the_call_the_code_and_the_permission(account: LambdaAccount, settings: LambdaSettings,
                                                                  lambda_proxy: LambdaProxy, aws: Any) -> None:
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001")
    lambda_proxy.fail("POST", rf"/functions/{name}/aliases$", 403, "AccessDeniedException",
                      "User: arn:aws:iam::123456789012:user/zeroserve is not authorized to perform: "
                      "lambda:CreateAlias")
    with pytest.raises(LambdaCallError) as denied:
        set_route(account, settings, [TrafficTarget.to("iris-00001", 100)])
    assert (denied.value.call, denied.value.code) == ("CreateAlias", "AccessDeniedException")
    assert f"Lambda CreateAlias on '{name}' failed: AccessDeniedException: User:" in str(denied.value)
    assert "need lambda:CreateAlias" in str(denied.value)
    assert aws.list_aliases(FunctionName=name)["Aliases"] == []


def test_a_function_zeroserve_did_not_create_is_left_alone(account: LambdaAccount, settings: LambdaSettings,
                                                           aws: Any, role_arn: str) -> None:
    name = function_name("iris", settings)
    aws.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": IMAGE}, Role=role_arn)
    with pytest.raises(LambdaError, match=rf"Lambda function '{name}' exists but zeroserve did not create it"):
        publish(account, settings, "iris-00001")
    with pytest.raises(LambdaError, match="zeroserve did not create it"):
        account.delete(name)
    assert versions(aws, name) == {}
    assert aws.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


def test_a_version_holding_another_artifact_is_not_taken_for_the_revision(account: LambdaAccount,
                                                                          settings: LambdaSettings, aws: Any,
                                                                          recorder: CallRecorder) -> None:
    # A platform whose registry was reset numbers from iris-00001 again: the version of that description
    # runs another artifact, and routing to it would serve the wrong model.
    name = function_name("iris", settings)
    publish(account, settings, "iris-00001")
    recorder.clear()
    other = function_spec(manifest(), "iris-00001", artifact(99), settings)
    with pytest.raises(LambdaError, match=rf"Lambda function '{name}' has a version 1 described as iris-00001, but "
                                          rf"it runs {artifact(1)}, not {artifact(99)}"):
        account.publish_revision(other)
    assert recorder.writes() == []
    assert versions(aws, name) == {"1": "iris-00001"}


def test_plain_moto_without_provisioned_concurrency_still_takes_a_route(moto_endpoint: str, settings: LambdaSettings,
                                                                        progress: list[str]) -> None:
    # Straight to moto, no proxy: moto has no provisioned-concurrency API. With min_scale 0 there is nothing
    # to provision, so the route goes through; asking for some fails naming the call.
    account = LambdaAccount(REGION, client=aws_client("lambda", moto_endpoint), progress=progress.append,
                            waiter_delay=0.01)
    publish(account, settings, "iris-00001")
    set_route(account, settings, [TrafficTarget.to("iris-00001", 100)])
    assert any("no provisioned-concurrency API; skipped" in line for line in progress)
    with pytest.raises(LambdaCallError, match=r"Lambda GetProvisionedConcurrencyConfig on '.*' failed: HTTP 404"):
        set_route(account, settings, [TrafficTarget.to("iris-00001", 100)], scaling={"min_scale": 1})


def test_credentials_and_endpoint_come_from_boto3s_standard_chain(monkeypatch: pytest.MonkeyPatch,
                                                                  lambda_proxy: LambdaProxy,
                                                                  settings: LambdaSettings, aws: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", lambda_proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    account = LambdaAccount(REGION, waiter_delay=0.01)
    publish(account, settings, "iris-00001")
    set_route(account, settings, [TrafficTarget.to("iris-00001", 100)])
    assert alias(aws, function_name("iris", settings), "live") == ("1", {})


def test_an_unreachable_endpoint_is_reported_naming_the_call(monkeypatch: pytest.MonkeyPatch,
                                                             settings: LambdaSettings) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    import boto3
    from botocore.config import Config

    client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                          aws_access_key_id="testing", aws_secret_access_key="testing-secret",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    with pytest.raises(LambdaCallError) as failed:
        publish(LambdaAccount(REGION, client=client), settings, "iris-00001")
    assert failed.value.call == "ListVersionsByFunction"
    assert "EndpointConnectionError" in str(failed.value) and f"127.0.0.1:{port}" in str(failed.value)
