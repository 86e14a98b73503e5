"""A route -> Lambda aliases, function URLs, URL permissions and concurrency: one pure function, no I/O.

The contract (docs/lambda.md):

- alias `live` = the route: `FunctionVersion` is the revision with the largest share (on a tie, the
  older one), `RoutingConfig.AdditionalVersionWeights` carries the other with weight = percent / 100.
  Lambda routes an alias to at most two versions, so a route that sends traffic to three or more
  revisions is refused, naming Lambda's rule and the function, before anything is called.
- every tag = an alias named after the tag, pointing at its revision (0 % tags included: that is
  how a pinned revision stays reachable). `live` is therefore not a valid tag on Lambda.
- a function URL on `live` and on each tag alias, CORS off: `auth: none` -> AuthType NONE with the two
  resource-policy statements a public URL needs since October 2025 (`lambda:InvokeFunctionUrl` with
  FunctionUrlAuthType NONE, and `lambda:InvokeFunction` only when invoked via the function URL);
  `auth: token` -> AuthType AWS_IAM (callers sign requests with SigV4) and no public statement.
- `scaling.min_scale` > 0 -> provisioned concurrency on `live`; `scaling.max_scale` > 0 -> the
  function's reserved concurrency (0 = unlimited: none reserved).

Versions come in as a map revision name -> published version number (account.published_versions),
so this stays pure and a test can state the whole mapping as a table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from deploy.aws_lambda.mapping import LambdaMappingError, LambdaSettings, function_name, not_applicable_notes
from protocol.manifest import FunctionManifest, clip
from revisions.traffic import TrafficTarget, describe_split, freeze_latest

LIVE_ALIAS = "live"
# Lambda's rule: an alias points at one version plus at most one more in AdditionalVersionWeights.
MAX_ALIAS_VERSIONS = 2
# Aliases, URLs and statements the platform owns carry this, so it never touches ones a person made.
MANAGED_PREFIX = "zeroserve"
URL_STATEMENT = "zeroserve-function-url"
INVOKE_STATEMENT = "zeroserve-function-url-invoke"
MAX_DESCRIPTION = 256  # Lambda's limit on an alias' Description
_ALIAS = re.compile(r"^(?!\d+$)[A-Za-z0-9_-]{1,128}$")

AuthType = Literal["NONE", "AWS_IAM"]


@dataclass(frozen=True)
class AliasSpec:
    """One alias: its primary version and, for `live` during a split, the second one and its weight."""

    name: str
    revision: str
    version: str
    additional: tuple[tuple[str, str, float], ...] = ()  # (revision, version, weight 0..1)
    description: str = ""

    @property
    def weights(self) -> dict[str, float]:
        """AdditionalVersionWeights as Lambda takes and answers it: version -> weight."""
        return {version: weight for _, version, weight in self.additional}

    def parameters(self, lambda_name: str) -> dict[str, Any]:
        """create_alias / update_alias (an empty weight map clears a previous split)."""
        return {"FunctionName": lambda_name, "Name": self.name, "FunctionVersion": self.version,
                "Description": self.description, "RoutingConfig": {"AdditionalVersionWeights": self.weights}}


@dataclass(frozen=True)
class UrlSpec:
    """A function URL on one alias."""

    qualifier: str
    auth_type: AuthType

    def parameters(self, lambda_name: str) -> dict[str, Any]:
        # No Cors key: CORS stays off unless someone adds it on purpose; BUFFERED is what mangum answers.
        return {"FunctionName": lambda_name, "Qualifier": self.qualifier, "AuthType": self.auth_type,
                "InvokeMode": "BUFFERED"}


@dataclass(frozen=True)
class PermissionSpec:
    """One statement of an alias' resource policy that a public (AuthType NONE) URL needs."""

    qualifier: str
    statement_id: str
    action: str

    def parameters(self, lambda_name: str) -> dict[str, Any]:
        parameters: dict[str, Any] = {"FunctionName": lambda_name, "Qualifier": self.qualifier,
                                      "StatementId": self.statement_id, "Action": self.action, "Principal": "*"}
        if self.action == "lambda:InvokeFunctionUrl":
            parameters["FunctionUrlAuthType"] = "NONE"
        else:  # lambda:InvokeFunction, but only through the URL: the Invoke API itself stays private
            parameters["InvokedViaFunctionUrl"] = True
        return parameters


@dataclass(frozen=True)
class LambdaRoute:
    """Everything `set_route` makes true on Lambda for one function."""

    function: str
    name: str  # the Lambda function name
    live: AliasSpec
    tags: tuple[AliasSpec, ...]
    auth_type: AuthType
    provisioned_concurrency: int  # on `live`; 0 = none
    reserved_concurrency: int | None  # the function's; None = unreserved
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def aliases(self) -> tuple[AliasSpec, ...]:
        return (self.live, *self.tags)

    @property
    def urls(self) -> tuple[UrlSpec, ...]:
        return tuple(UrlSpec(alias.name, self.auth_type) for alias in self.aliases)

    @property
    def permissions(self) -> tuple[PermissionSpec, ...]:
        """The statements to hold on each alias: both public-URL ones for NONE, none for AWS_IAM."""
        if self.auth_type != "NONE":
            return ()
        return tuple(spec for alias in self.aliases for spec in (
            PermissionSpec(alias.name, URL_STATEMENT, "lambda:InvokeFunctionUrl"),
            PermissionSpec(alias.name, INVOKE_STATEMENT, "lambda:InvokeFunction")))


def lambda_route(manifest: FunctionManifest, route: Sequence[TrafficTarget], versions: Mapping[str, str],
                 settings: LambdaSettings, *, latest_ready: str | None = None) -> LambdaRoute:
    """The aliases, URLs and concurrency for `route`; `manifest` is the function's current function.yaml
    (its `auth` and `scaling.min_scale`/`max_scale` are function-wide on Lambda).

    `versions` maps each published revision to its Lambda version; '@latest' targets are pinned to
    `latest_ready`. Raises LambdaMappingError naming the rule, the function and the revisions.
    """
    settings.check()
    function = manifest.name
    name = function_name(function, settings)
    targets = freeze_latest(route, latest_ready)
    if not targets:
        raise LambdaMappingError(f"function '{function}': the route has no targets")
    total = sum(t.percent for t in targets)
    if total != 100:
        raise LambdaMappingError(f"function '{function}': traffic percents sum to {total}, not 100 "
                                 f"({describe_split(targets)})")
    shares: dict[str, int] = {}
    for target in targets:
        revision = str(target.revision)
        shares[revision] = shares.get(revision, 0) + target.percent
    for revision in shares:
        _version_of(function, revision, versions)
    routed = [revision for revision, share in shares.items() if share > 0]
    if len(routed) > MAX_ALIAS_VERSIONS:
        split = ", ".join(f"{revision}={shares[revision]}" for revision in sorted(routed))
        raise LambdaMappingError(
            f"function '{function}': Lambda routes an alias to at most {MAX_ALIAS_VERSIONS} versions (alias "
            f"'{LIVE_ALIAS}': FunctionVersion plus one in RoutingConfig.AdditionalVersionWeights), but this route "
            f"sends traffic to {len(routed)} revisions ({split}); give all but two of them 0 % (a tag keeps a "
            "revision reachable) and try again")
    # The largest share is the alias' FunctionVersion; on a tie the older revision (lower version) is.
    routed.sort(key=lambda revision: (-shares[revision], int(versions[revision])))
    primary, others = routed[0], routed[1:]
    live = AliasSpec(
        name=LIVE_ALIAS, revision=primary, version=versions[primary],
        additional=tuple((revision, versions[revision], shares[revision] / 100) for revision in others),
        description=clip(f"{MANAGED_PREFIX} route: {describe_split(targets)}", MAX_DESCRIPTION))
    tags: list[AliasSpec] = []
    for target in sorted((t for t in targets if t.tag), key=lambda t: str(t.tag)):
        tag, revision = str(target.tag), str(target.revision)
        if tag == LIVE_ALIAS:
            raise LambdaMappingError(f"function '{function}': tag '{LIVE_ALIAS}' is the alias the Lambda target "
                                     "gives the route itself; name the tag something else")
        if not _ALIAS.match(tag):
            raise LambdaMappingError(f"function '{function}': tag '{tag}' is not a Lambda alias name "
                                     "(1-128 letters, digits, '-' or '_', not only digits)")
        if any(existing.name == tag for existing in tags):
            raise LambdaMappingError(f"function '{function}': tag '{tag}' is used more than once; tags must be unique")
        tags.append(AliasSpec(name=tag, revision=revision, version=versions[revision],
                              description=clip(f"{MANAGED_PREFIX} tag {tag}: {revision}", MAX_DESCRIPTION)))
    return LambdaRoute(
        function=function, name=name, live=live, tags=tuple(tags),
        auth_type="AWS_IAM" if manifest.auth == "token" else "NONE",
        provisioned_concurrency=manifest.scaling.min_scale,
        reserved_concurrency=manifest.scaling.max_scale or None,
        notes=tuple(not_applicable_notes(manifest)),
    )


def _version_of(function: str, revision: str, versions: Mapping[str, str]) -> str:
    version = versions.get(revision)
    if version is None:
        raise LambdaMappingError(f"function '{function}': revision '{revision}' is not published on Lambda "
                                 "(no version has it as its description); deploy it to the lambda target first")
    if not version.isdigit():
        raise LambdaMappingError(f"function '{function}': revision '{revision}' maps to {version!r}, not a "
                                 "published version number ($LATEST cannot be routed)")
    return version


def route_parameters(route: LambdaRoute) -> dict[str, Any]:
    """The whole route as the parameters of its calls (what tests and `describe` compare against)."""
    return {
        "aliases": [alias.parameters(route.name) for alias in route.aliases],
        "urls": [url.parameters(route.name) for url in route.urls],
        "permissions": [permission.parameters(route.name) for permission in route.permissions],
        "provisioned_concurrency": ({"FunctionName": route.name, "Qualifier": LIVE_ALIAS,
                                     "ProvisionedConcurrentExecutions": route.provisioned_concurrency}
                                    if route.provisioned_concurrency else None),
        "reserved_concurrency": ({"FunctionName": route.name,
                                  "ReservedConcurrentExecutions": route.reserved_concurrency}
                                 if route.reserved_concurrency else None),
    }


__all__ = [
    "AliasSpec", "INVOKE_STATEMENT", "LIVE_ALIAS", "LambdaRoute", "MANAGED_PREFIX", "MAX_ALIAS_VERSIONS",
    "PermissionSpec", "URL_STATEMENT", "UrlSpec", "lambda_route", "route_parameters",
]
