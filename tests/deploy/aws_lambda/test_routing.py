"""A route -> Lambda aliases, URLs, permissions and concurrency: every rule of deploy/aws_lambda/routing.py."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.aws_lambda.mapping import LambdaMappingError, LambdaSettings
from deploy.aws_lambda.routing import INVOKE_STATEMENT, URL_STATEMENT, lambda_route, route_parameters
from protocol.manifest import FunctionManifest, parse_manifest
from revisions.traffic import TrafficTarget, describe_split

SETTINGS = LambdaSettings(region="eu-west-1", role="arn:aws:iam::123456789012:role/zs",
                          image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/zeroserve:0.1.0")
VERSIONS = {"iris-00001": "1", "iris-00002": "2", "iris-00003": "3", "iris-00004": "12"}


def manifest(**keys: Any) -> FunctionManifest:
    return parse_manifest({"name": "iris", "model": "model.onnx", **keys})


def route(*targets: tuple[str, int] | tuple[str, int, str]) -> list[TrafficTarget]:
    return [TrafficTarget.to(*target) for target in targets]


def live_of(targets: list[TrafficTarget]) -> tuple[str, dict[str, float]]:
    live = lambda_route(manifest(), targets, VERSIONS, SETTINGS).live
    return live.version, live.weights


@pytest.mark.parametrize(("targets", "version", "weights"), [
    (route(("iris-00001", 100)), "1", {}),
    (route(("iris-00001", 90), ("iris-00002", 10)), "1", {"2": 0.1}),
    (route(("iris-00001", 10), ("iris-00002", 90)), "2", {"1": 0.1}),
    (route(("iris-00001", 1), ("iris-00002", 99)), "2", {"1": 0.01}),
    (route(("iris-00002", 50), ("iris-00001", 50)), "1", {"2": 0.5}),  # a tie: the older version is primary
    (route(("iris-00004", 50), ("iris-00003", 50)), "3", {"12": 0.5}),  # older by version number, not by text
    (route(("iris-00001", 70), ("iris-00002", 30, "canary")), "1", {"2": 0.3}),
    (route(("iris-00001", 100), ("iris-00002", 0, "canary")), "1", {}),  # a 0 % tag is not in `live`
    (route(("iris-00001", 60), ("iris-00001", 30, "stable"), ("iris-00002", 10)), "1", {"2": 0.1}),  # merged
    (route(("@latest", 100)), "3", {}),  # '@latest' is pinned to the latest ready revision
])
def test_live_is_the_largest_share_plus_the_other_as_a_weight(targets: list[TrafficTarget], version: str,
                                                               weights: dict[str, float]) -> None:
    result = lambda_route(manifest(), targets, VERSIONS, SETTINGS, latest_ready="iris-00003")
    assert (result.live.version, result.live.weights) == (version, weights)
    parameters = result.live.parameters(result.name)
    assert parameters == {"FunctionName": "iris", "Name": "live", "FunctionVersion": version,
                          "Description": result.live.description,
                          "RoutingConfig": {"AdditionalVersionWeights": weights}}
    assert parameters["Description"].startswith("zeroserve route: ")


@pytest.mark.parametrize("targets", [
    route(("iris-00001", 80), ("iris-00002", 10), ("iris-00003", 10)),
    route(("iris-00001", 40), ("iris-00002", 30, "canary"), ("iris-00003", 20), ("iris-00004", 10)),
])
def test_three_or_more_routed_revisions_are_refused_naming_lambdas_rule(targets: list[TrafficTarget]) -> None:
    with pytest.raises(LambdaMappingError) as refused:
        lambda_route(manifest(), targets, VERSIONS, SETTINGS)
    message = str(refused.value)
    assert message.startswith("function 'iris': Lambda routes an alias to at most 2 versions")
    assert "alias 'live': FunctionVersion plus one in RoutingConfig.AdditionalVersionWeights" in message
    assert "iris-00001=" in message and "iris-00003=" in message


def test_three_revisions_with_one_at_zero_percent_behind_a_tag_fit() -> None:
    result = lambda_route(manifest(), route(("iris-00001", 90), ("iris-00002", 10, "canary"),
                                            ("iris-00003", 0, "next")), VERSIONS, SETTINGS)
    assert (result.live.version, result.live.weights) == ("1", {"2": 0.1})
    assert [(tag.name, tag.version) for tag in result.tags] == [("canary", "2"), ("next", "3")]


def test_each_tag_is_an_alias_on_its_revision_with_a_url() -> None:
    result = lambda_route(manifest(), route(("iris-00001", 90), ("iris-00002", 10, "canary"),
                                            ("iris-00001", 0, "stable")), VERSIONS, SETTINGS)
    assert [alias.parameters("iris") for alias in result.tags] == [
        {"FunctionName": "iris", "Name": "canary", "FunctionVersion": "2", "Description": "zeroserve tag canary: "
         "iris-00002", "RoutingConfig": {"AdditionalVersionWeights": {}}},
        {"FunctionName": "iris", "Name": "stable", "FunctionVersion": "1", "Description": "zeroserve tag stable: "
         "iris-00001", "RoutingConfig": {"AdditionalVersionWeights": {}}},
    ]
    assert [url.parameters("iris") for url in result.urls] == [
        {"FunctionName": "iris", "Qualifier": name, "AuthType": "NONE", "InvokeMode": "BUFFERED"}
        for name in ("live", "canary", "stable")
    ]
    assert all("Cors" not in url.parameters("iris") for url in result.urls)  # CORS off


def test_auth_none_makes_public_urls_with_both_permissions_per_alias() -> None:
    result = lambda_route(manifest(auth="none"), route(("iris-00001", 90), ("iris-00002", 10, "canary")),
                          VERSIONS, SETTINGS)
    assert [permission.parameters("iris") for permission in result.permissions] == [
        {"FunctionName": "iris", "Qualifier": "live", "StatementId": URL_STATEMENT,
         "Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"},
        {"FunctionName": "iris", "Qualifier": "live", "StatementId": INVOKE_STATEMENT,
         "Action": "lambda:InvokeFunction", "Principal": "*", "InvokedViaFunctionUrl": True},
        {"FunctionName": "iris", "Qualifier": "canary", "StatementId": URL_STATEMENT,
         "Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"},
        {"FunctionName": "iris", "Qualifier": "canary", "StatementId": INVOKE_STATEMENT,
         "Action": "lambda:InvokeFunction", "Principal": "*", "InvokedViaFunctionUrl": True},
    ]


def test_auth_token_makes_iam_urls_and_no_public_permission() -> None:
    result = lambda_route(manifest(auth="token"), route(("iris-00001", 100, "stable")), VERSIONS, SETTINGS)
    assert {url.auth_type for url in result.urls} == {"AWS_IAM"}
    assert result.permissions == ()


@pytest.mark.parametrize(("scaling", "provisioned", "reserved"), [
    ({}, None, None),
    ({"min_scale": 2}, 2, None),
    ({"max_scale": 10}, None, 10),
    ({"min_scale": 3, "max_scale": 5}, 3, 5),
])
def test_min_scale_is_provisioned_concurrency_on_live_and_max_scale_reserved(scaling: dict[str, int],
                                                                            provisioned: int | None,
                                                                            reserved: int | None) -> None:
    result = lambda_route(manifest(scaling=scaling), route(("iris-00001", 100)), VERSIONS, SETTINGS)
    parameters = route_parameters(result)
    assert parameters["provisioned_concurrency"] == (
        None if provisioned is None else
        {"FunctionName": "iris", "Qualifier": "live", "ProvisionedConcurrentExecutions": provisioned})
    assert parameters["reserved_concurrency"] == (
        None if reserved is None else {"FunctionName": "iris", "ReservedConcurrentExecutions": reserved})


@pytest.mark.parametrize(("targets", "versions", "message"), [
    (route(("iris-00001", 100, "live")), VERSIONS, "tag 'live' is the alias the Lambda target gives the route"),
    (route(("iris-00009", 100)), VERSIONS, "revision 'iris-00009' is not published on Lambda"),
    (route(("iris-00001", 100)), {"iris-00001": "$LATEST"}, "$LATEST cannot be routed"),
    (route(("iris-00001", 90)), VERSIONS, "traffic percents sum to 90, not 100"),
    ([], VERSIONS, "the route has no targets"),
    (route(("iris-00001", 90, "canary"), ("iris-00002", 10, "canary")), VERSIONS,
     "tag 'canary' is used more than once"),
])
def test_routes_lambda_cannot_hold_are_refused(targets: list[TrafficTarget], versions: dict[str, str],
                                               message: str) -> None:
    with pytest.raises(LambdaMappingError) as refused:
        lambda_route(manifest(), targets, versions, SETTINGS)
    assert message in str(refused.value) and "function 'iris'" in str(refused.value)


def test_the_function_name_carries_the_prefix_and_notes_come_along() -> None:
    settings = LambdaSettings(region=SETTINGS.region, role=SETTINGS.role, image=SETTINGS.image, function_prefix="zs-")
    result = lambda_route(manifest(scaling={"window": "2m"}), route(("iris-00001", 100)), VERSIONS, settings)
    assert result.name == "zs-iris" and result.live.parameters(result.name)["FunctionName"] == "zs-iris"
    assert len(result.notes) == 1 and "scaling.window=2m" in result.notes[0]


def test_alias_descriptions_stay_within_lambdas_256_characters() -> None:
    targets = route(("iris-00001", 100), *((f"iris-0000{1 + n % 3}", 0, f"tag-{n}-" + "x" * 45) for n in range(5)))
    assert len(describe_split(targets)) > 256
    result = lambda_route(manifest(), targets, VERSIONS, SETTINGS)
    assert all(len(alias.description) <= 256 for alias in result.aliases)
    assert result.live.description.startswith("zeroserve route: iris-00001=100")
