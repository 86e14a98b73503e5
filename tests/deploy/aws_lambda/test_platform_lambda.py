"""The Lambda target end to end: a real `zeroserve up` and the real CLI, with AWS_ENDPOINT_URL pointing at the
proxy in front of moto's server (tests/deploy/aws_lambda/lambda_proxy.py) and the artifact store on moto's S3.

After every step the AWS state is read back with boto3 (get_alias, list_versions_by_function,
get_function_url_config, get_policy) and the registry's route with the CLI's client, so what passes here is
what an account would hold. Where moto is lenient the platform checks the rule itself, and this test shows
that nothing reached AWS:
- moto would accept a three-way split on alias `live` (AWS allows one additional version): the platform
  refuses it, for a deploy before the revision is published (no version, no revision number spent) and for a
  traffic change before the registry commits (route unchanged here and on Lambda);
- moto keeps one function URL per function and an alias' policy on its version, and has no provisioned
  concurrency: the proxy answers those per alias with Lambda's shapes (what it holds is asserted through it).
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.aws_lambda.routing import INVOKE_STATEMENT, URL_STATEMENT
from tests.deploy.aws_lambda.conftest import CREDENTIALS, IMAGE, REGION, aws_client
from tests.deploy.aws_lambda.lambda_proxy import LambdaProxy
from tests.deploy.knative.test_platform_knative import checked_answer
from tests.polling import wait_for
from tests.zeroserve.control.harness import PlatformProcess, change_model, function_dir, run_cli


@pytest.fixture(scope="module")
def proxy(moto_endpoint: str) -> Iterator[LambdaProxy]:
    running = LambdaProxy(moto_endpoint).start()
    try:
        yield running
    finally:
        running.stop()


def platform_env(proxy: LambdaProxy, moto_endpoint: str, role_arn: str, prefix: str, *, store: str | None,
                 **more: str) -> dict[str, str]:
    """Lambda through the proxy (boto3's standard chain: AWS_ENDPOINT_URL), the store on moto's S3."""
    env = {"AWS_ENDPOINT_URL": proxy.url, "ZEROSERVE_S3_ENDPOINT_URL": moto_endpoint,
           "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"], "AWS_DEFAULT_REGION": REGION,
           "ZEROSERVE_AWS_REGION": REGION, "ZEROSERVE_LAMBDA_ROLE": role_arn, "ZEROSERVE_LAMBDA_IMAGE": IMAGE,
           "ZEROSERVE_LAMBDA_PREFIX": prefix, **more}
    if store is not None:
        env["ZEROSERVE_ARTIFACTS"] = store
    return env


def new_bucket(endpoint: str) -> str:
    bucket = f"zs-lambda-{uuid.uuid4().hex[:10]}"
    aws_client("s3", endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/functions"


@pytest.fixture(scope="module")
def lambda_platform(proxy: LambdaProxy, moto_endpoint: str, role_arn: str,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformProcess, str, str]]:
    work = tmp_path_factory.mktemp("lambda-platform")
    store = new_bucket(moto_endpoint)
    prefix = f"e2e{uuid.uuid4().hex[:6]}-"  # moto keeps functions for the whole session
    platform = PlatformProcess(work / "data", platform_env(proxy, moto_endpoint, role_arn, prefix,
                                                           store=store)).start()
    try:
        yield platform, store, prefix
    finally:
        platform.stop()


@pytest.fixture
def aws(proxy: LambdaProxy) -> Any:
    return aws_client("lambda", proxy.url)


def cli(platform: PlatformProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(platform, *args)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def alias(aws: Any, name: str, alias_name: str) -> tuple[str, dict[str, float]]:
    found = aws.get_alias(FunctionName=name, Name=alias_name)
    return found["FunctionVersion"], (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def aliases(aws: Any, name: str) -> dict[str, tuple[str, dict[str, float]]]:
    return {a["Name"]: (a["FunctionVersion"], (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})
            for a in aws.list_aliases(FunctionName=name)["Aliases"]}


def versions(aws: Any, name: str) -> dict[str, str]:
    listed = aws.list_versions_by_function(FunctionName=name)["Versions"]
    return {v["Version"]: v["Description"] for v in listed if v["Version"] != "$LATEST"}


def public_statements(aws: Any, name: str, qualifier: str) -> dict[str, str]:
    policy = json.loads(aws.get_policy(FunctionName=name, Qualifier=qualifier)["Policy"])
    return {s["Sid"]: s["Action"] for s in policy["Statement"]}


def route(platform: PlatformProcess, function: str) -> list[tuple[str, int, str | None]]:
    with platform.client() as client:
        return [(t["revision"], t["percent"], t["tag"]) for t in client.traffic(function)["traffic"]["targets"]]


def write_manifest(source: Path, **changes: Any) -> None:
    manifest = yaml.safe_load((source / "function.yaml").read_text())
    manifest.update(changes)
    (source / "function.yaml").write_text(yaml.safe_dump(manifest))


def test_deploy_split_refusals_promote_rollback_rollout_and_delete(lambda_platform, aws: Any, proxy: LambdaProxy,
                                                                   tmp_path: Path) -> None:
    platform, store, prefix = lambda_platform
    name = f"{prefix}iris"
    source = function_dir(tmp_path, "iris", targets=["lambda"], env={"LOG_LEVEL": "info"}, timeout_seconds=60,
                          resources={"memory": "512Mi"}, scaling={"target": 10, "min_scale": 2, "max_scale": 10})

    # 1. The first deploy: built once, published as version 1, alias live with a public URL; the log says so.
    out = ok(cli(platform, "deploy", str(source)))
    assert "lambda: note: not applicable on Lambda: scaling.target=10" in out, out
    assert f"lambda: creating function {name} (image {IMAGE})" in out, out
    assert f"lambda: published iris-00001 as version 1 of {name}" in out and "lambda ok" in out, out
    assert f"lambda: {name}: alias live -> version 1 (iris-00001)" in out, out
    assert f"lambda: {name} live: iris-00001 (version 1) 100% at https://" in out, out
    assert "lambda: provisioned concurrency on live: READY (2 of 2 allocated)" in out, out
    with platform.client() as client:
        digest = client.describe("iris")["revisions"][0]["digest"]
    function = aws.get_function(FunctionName=name)
    configuration = function["Configuration"]
    assert (configuration["PackageType"], function["Code"]["ImageUri"]) == ("Image", IMAGE)
    assert configuration["Environment"]["Variables"] == {
        "LOG_LEVEL": "info", "ZEROSERVE_ARTIFACT": f"{store}@{digest}", "ZEROSERVE_REVISION": "iris-00001",
        "ZEROSERVE_S3_ENDPOINT_URL": platform.extra_env["ZEROSERVE_S3_ENDPOINT_URL"]}
    assert not any(k.startswith("AWS_") for k in configuration["Environment"]["Variables"])  # no credentials
    assert (configuration["Timeout"], configuration["MemorySize"]) == (60, 512)
    assert function["Tags"] == {"managed-by": "zeroserve", "zeroserve-function": "iris"}
    assert versions(aws, name) == {"1": "iris-00001"}
    assert alias(aws, name, "live") == ("1", {})
    live_url = aws.get_function_url_config(FunctionName=name, Qualifier="live")
    assert live_url["AuthType"] == "NONE" and "Cors" not in live_url
    assert public_statements(aws, name, "live") == {URL_STATEMENT: "lambda:InvokeFunctionUrl",
                                                     INVOKE_STATEMENT: "lambda:InvokeFunction"}
    assert proxy.provisioned == {(name, "live"): 2}  # min_scale (moto has no provisioned concurrency)
    assert aws.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 10  # max_scale
    # targets: [lambda] alone: this platform does not serve it.
    with platform.client() as client:
        assert client.describe("iris")["targets"] == ["lambda"]
    assert route(platform, "iris") == [("iris-00001", 100, None)]

    # 2. A second revision at 10 % with a tag: live = v1 + v2 at 0.1; alias canary = v2 with its own URL.
    change_model(source, "second")
    write_manifest(source, traffic={"percent": 10, "tag": "canary"})
    out = ok(cli(platform, "deploy", str(source)))
    assert f"lambda: {name} live: iris-00001 (version 1) 90%, iris-00002 (version 2) 10%" in out, out
    assert "lambda: tag canary: iris-00002 (version 2) at https://" in out, out
    split = [("iris-00001", 90, None), ("iris-00002", 10, "canary")]
    assert route(platform, "iris") == split
    assert versions(aws, name) == {"1": "iris-00001", "2": "iris-00002"}
    assert aws.get_function_configuration(FunctionName=name, Qualifier="1")["Environment"]["Variables"][
        "ZEROSERVE_REVISION"] == "iris-00001"  # a version keeps its revision's configuration
    assert aliases(aws, name) == {"live": ("1", {"2": 0.1}), "canary": ("2", {})}
    canary_url = aws.get_function_url_config(FunctionName=name, Qualifier="canary")
    assert canary_url["FunctionUrl"] != live_url["FunctionUrl"] and canary_url["AuthType"] == "NONE"
    assert set(public_statements(aws, name, "canary")) == {URL_STATEMENT, INVOKE_STATEMENT}

    # 3. describe and status: what Lambda reports, with the API's answers checked against its OpenAPI schema.
    described = ok(cli(platform, "describe", "iris"))
    assert "targets:  lambda" in described, described
    assert f"lambda: State Active, last update Successful  function {name} in {REGION}" in described, described
    assert f"url:      {live_url['FunctionUrl']} (NONE)" in described
    assert "serving:  iris-00001=90, iris-00002=10" in described
    assert "versions: 1=iris-00001, 2=iris-00002" in described
    assert "alias live: version 1 (iris-00001), version 2 at 10%" in described
    assert f"tag canary: version 2 (iris-00002)  {canary_url['FunctionUrl']}" in described
    detail = checked_answer(platform, "/api/v1/functions/{function}", function="iris")
    [state] = detail["target_states"]
    assert (state["target"], state["service"], state["ready"], state["url"]) == (
        "lambda", name, True, live_url["FunctionUrl"])
    assert state["tag_urls"] == {"canary": canary_url["FunctionUrl"]}
    assert state["versions"] == {"1": "iris-00001", "2": "iris-00002"}
    exported = cli(platform, "export", "lambda", "iris")  # no document to apply: said so, as a 400
    assert exported.returncode == 1 and "lambda: a Lambda function is not one document to apply" in exported.stderr, \
        exported.stderr
    status = ok(cli(platform, "status", "iris"))
    assert f"lambda: function {name}: State Active, last update Successful" in status, status
    assert "provisioned concurrency on live: READY (2 requested, 2 allocated, 2 available)" in status, status
    assert "reserved concurrency: 10" in status
    scale = checked_answer(platform, "/api/v1/functions/{function}/status", function="iris")
    [target] = scale["targets"]
    assert (target["target"], target["state"], target["last_update_status"]) == ("lambda", "Active", "Successful")
    assert target["provisioned_concurrency"]["Status"] == "READY"
    assert [(r["revision"], r["version"], r["percent"], r["tags"]) for r in target["revisions"]] == [
        ("iris-00001", "1", 90, []), ("iris-00002", "2", 10, ["canary"])]

    # 4. A deploy whose route would split three ways is refused before anything is published or numbered.
    change_model(source, "third")
    write_manifest(source, traffic={"percent": 10})
    refused = cli(platform, "deploy", str(source))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Lambda routes an alias to at most 2 versions" in refused.stderr, refused.stderr
    assert "sends traffic to 3 revisions" in refused.stderr
    assert versions(aws, name) == {"1": "iris-00001", "2": "iris-00002"}
    assert aliases(aws, name) == {"live": ("1", {"2": 0.1}), "canary": ("2", {})}
    assert route(platform, "iris") == split
    # ... deployed pinned at 0 % with a tag instead, it is published as version 3 (the number was not spent).
    write_manifest(source, traffic={"percent": 0, "tag": "next"})
    out = ok(cli(platform, "deploy", str(source)))
    assert "created iris-00003" in out, out
    with_next = [*split, ("iris-00003", 0, "next")]
    assert route(platform, "iris") == with_next
    assert aliases(aws, name) == {"live": ("1", {"2": 0.1}), "canary": ("2", {}), "next": ("3", {})}

    # 5. A traffic change Lambda cannot hold is refused naming the rule; neither the registry nor AWS change.
    three = cli(platform, "traffic", "iris", "iris-00001=80", "iris-00002=10", "iris-00003=10")
    assert three.returncode == 1, three.stdout
    assert "lambda: function 'iris': Lambda routes an alias to at most 2 versions" in three.stderr, three.stderr
    assert route(platform, "iris") == with_next
    assert aliases(aws, name) == {"live": ("1", {"2": 0.1}), "canary": ("2", {}), "next": ("3", {})}

    # 6. promote and rollback move live.
    ok(cli(platform, "promote", "iris", "canary"))
    assert route(platform, "iris") == [("iris-00002", 100, "canary"), ("iris-00003", 0, "next")]
    assert aliases(aws, name) == {"live": ("2", {}), "canary": ("2", {}), "next": ("3", {})}
    ok(cli(platform, "rollback", "iris"))
    assert route(platform, "iris") == with_next
    assert aliases(aws, name) == {"live": ("1", {"2": 0.1}), "canary": ("2", {}), "next": ("3", {})}

    # 7. A gradual rollout of a fourth revision: each step of the local schedule moves live's weights.
    ok(cli(platform, "traffic", "iris", "iris-00003=100", "--untag", "canary", "--untag", "next"))
    assert aliases(aws, name) == {"live": ("3", {})}  # the tag aliases and their URLs went
    assert not any(key[0] == name and key[1] != "live" for key in proxy.urls)
    seen: list[int] = []
    stop = threading.Event()
    watch_client = aws_client("lambda", proxy.url)

    def watch() -> None:
        while not stop.is_set():
            version, weights = alias(watch_client, name, "live")
            share = 100 - round(sum(weights.values()) * 100) if version == "4" else round(weights.get("4", 0) * 100)
            if not seen or seen[-1] != share:
                seen.append(share)
            stop.wait(0.05)  # the sampling period; returns at once when the test stops watching

    change_model(source, "fourth")
    write_manifest(source, traffic={"rollout_duration": "4s"})
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = ok(cli(platform, "deploy", str(source)))
        assert "created iris-00004; rolling out to 100% over 4s" in out, out
        wait_for(lambda: seen and seen[-1] == 100, "the rollout reaching 100 % on alias live", timeout=30)
    finally:
        stop.set()
        watcher.join(timeout=5)
    steps = [share for share in seen if share]
    assert steps[0] == 1 and steps == sorted(steps) and len(steps) >= 3, seen  # 1 %, equal steps, 100 %
    assert alias(aws, name, "live") == ("4", {})
    # The registry commits a step once every target has it: Lambda shows 100 % a moment before the route does.
    wait_for(lambda: route(platform, "iris") == [("iris-00004", 100, None)], "the route at 100 % too", timeout=10)

    # 8. delete: the function, every version, its aliases and URLs.
    ok(cli(platform, "delete", "iris"))
    for read in (lambda: aws.get_function(FunctionName=name), lambda: aws.get_alias(FunctionName=name, Name="live"),
                 lambda: aws.get_function_url_config(FunctionName=name, Qualifier="live")):
        with pytest.raises(aws.exceptions.ResourceNotFoundException):
            read()
    assert not any(key[0] == name for key in [*proxy.urls, *proxy.policies, *proxy.provisioned])
    with platform.client() as client:
        assert "iris" not in [f["name"] for f in client.list_functions()]


def test_aws_refusals_are_clear_deploy_failures_that_change_nothing(lambda_platform, aws: Any, proxy: LambdaProxy,
                                                                    tmp_path: Path) -> None:
    platform, _store, prefix = lambda_platform
    source = function_dir(tmp_path, "denied", targets=["lambda"])
    name = f"{prefix}denied"

    # The platform's credentials may not list versions: the deploy names the call, AWS's code and the permission.
    proxy.fail("GET", rf"/functions/{prefix}denied/versions$", 403, "AccessDeniedException",
               "User: arn:aws:iam::123456789012:user/zeroserve is not authorized to perform: "
               "lambda:ListVersionsByFunction")
    denied = cli(platform, "deploy", str(source))
    assert denied.returncode == 1, denied.stdout
    assert (f"Lambda ListVersionsByFunction on '{prefix}denied' failed: AccessDeniedException" in denied.stderr
            and "the platform's credentials need lambda:ListVersionsByFunction" in denied.stderr), denied.stderr
    with platform.client() as client:
        assert "denied" not in [f["name"] for f in client.list_functions()]
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.get_function(FunctionName=f"{prefix}denied")

    # A Lambda function of that name that zeroserve did not create is left alone.
    aws.create_function(FunctionName=f"{prefix}denied", PackageType="Image", Code={"ImageUri": IMAGE},
                        Role=platform.extra_env["ZEROSERVE_LAMBDA_ROLE"])
    try:
        foreign = cli(platform, "deploy", str(source))
        assert foreign.returncode == 1
        assert f"Lambda function '{prefix}denied' exists but zeroserve did not create it" in foreign.stderr, \
            foreign.stderr
        assert versions(aws, f"{prefix}denied") == {}
    finally:
        aws.delete_function(FunctionName=f"{prefix}denied")

    # Neither refusal spent a revision number. Two revisions, live on the second:
    assert "created denied-00001" in ok(cli(platform, "deploy", str(source)))
    change_model(source, "second")
    assert "created denied-00002" in ok(cli(platform, "deploy", str(source)))
    assert aliases(aws, name) == {"live": ("2", {})}
    # A route change that fails halfway (live already moved and alias beta made when CreateFunctionUrlConfig
    # is denied): the registry keeps its route, and the aliases go back to it.
    proxy.fail("POST", rf"/functions/{name}/url$", 403, "AccessDeniedException",
               "User: arn:aws:iam::123456789012:user/zeroserve is not authorized to perform: "
               "lambda:CreateFunctionUrlConfig")
    change = ("traffic", "denied", "denied-00001=50", "denied-00002=50", "--tag", "beta=denied-00001")
    halfway = cli(platform, *change)
    assert halfway.returncode == 1, halfway.stdout
    assert f"Lambda CreateFunctionUrlConfig on '{name}' failed: AccessDeniedException" in halfway.stderr, \
        halfway.stderr
    assert "nothing was changed" in halfway.stderr
    assert route(platform, "denied") == [("denied-00002", 100, None)]
    assert aliases(aws, name) == {"live": ("2", {})}
    # The same change once allowed: every alias and URL is there (read-compare-write converges).
    ok(cli(platform, *change))
    assert aliases(aws, name) == {"live": ("1", {"2": 0.5}), "beta": ("1", {})}
    assert aws.get_function_url_config(FunctionName=name, Qualifier="beta")["AuthType"] == "NONE"
    ok(cli(platform, "delete", "denied"))


def test_the_lambda_target_needs_a_store_lambda_can_reach(proxy: LambdaProxy, moto_endpoint: str, role_arn: str,
                                                          tmp_path: Path) -> None:
    env = platform_env(proxy, moto_endpoint, role_arn, "nostore-", store=None)
    platform = PlatformProcess(tmp_path / "data", env).start()
    try:
        result = cli(platform, "deploy", str(function_dir(tmp_path, "nostore", targets=["lambda"])))
        assert result.returncode == 1
        assert "the Lambda target needs an artifact store the functions can reach, not the local artifact store" \
            in result.stderr, result.stderr
        assert "ZEROSERVE_ARTIFACTS=s3://bucket/prefix" in result.stderr
        with platform.client() as client:
            assert client.list_functions() == []
    finally:
        platform.stop()
