"""Applying the mapping to an AWS account with boto3: functions, versions, aliases, URLs, permissions.

Every change is read-compare-write, so calling the same thing twice changes nothing the second time
(a retried deploy, a restarted platform). The platform only touches what it made: functions tagged
`managed-by: zeroserve`, aliases and statements whose description or id starts with `zeroserve`.

- `publish_revision` never publishes a revision twice: a version whose Description is the revision's
  name is the revision, found again with list_versions_by_function.
- While Lambda applies an update, the next change to the function is refused with
  ResourceConflictException; such a call is retried with backoff once the `function_updated_v2`
  waiter has seen LastUpdateStatus Successful (a Failed update is reported with Lambda's reason).
- Errors name the AWS call (its API name: UpdateAlias, not update_alias), the function and AWS's
  error code (AccessDeniedException, ...), never a traceback.

Credentials, region defaults and AWS_ENDPOINT_URL come from boto3's standard chain, so the same code
talks to AWS and, in tests, to moto's server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from deploy.aws_lambda.mapping import ARTIFACT_ENV, FUNCTION_TAG, MANAGED_BY, MANAGED_BY_TAG, FunctionSpec
from deploy.aws_lambda.routing import (
    INVOKE_STATEMENT,
    LIVE_ALIAS,
    MANAGED_PREFIX,
    URL_STATEMENT,
    AliasSpec,
    LambdaRoute,
    UrlSpec,
)

# Lambda's answers to a read of something that is not there (the last ones: provisioned concurrency).
_ABSENT = frozenset({"ResourceNotFoundException", "ProvisionedConcurrencyConfigNotFoundException"})
_OWN_STATEMENTS = (URL_STATEMENT, INVOKE_STATEMENT)
# How _error reports a 404 that carries no Lambda error code (not Lambda's API, or an emulator lacking a call).
_NOT_LAMBDA_404 = "HTTP 404"
_WEIGHT_TOLERANCE = 1e-9
# What each denied call needs in the platform's IAM policy (docs/lambda.md lists the whole policy).
_POLICY_HINT = "the platform's credentials need lambda:{action} (docs/lambda.md lists the policy to attach)"


class LambdaError(RuntimeError):
    """Something on Lambda that the platform cannot do or change; the message says what and why."""


class LambdaCallError(LambdaError):
    """An AWS call that failed: `call` is its API name, `code` AWS's error code."""

    def __init__(self, call: str, target: str, code: str, message: str):
        self.call, self.target, self.code = call, target, code
        hint = ""
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            hint = f" ({_POLICY_HINT.format(action=call)})"
        super().__init__(f"Lambda {call} on '{target}' failed: {code}: {message.strip() or 'no message'}{hint}")


@dataclass(frozen=True)
class PublishedVersion:
    revision: str
    version: str
    published: bool  # False: it was already there (a revision is never published twice)


@dataclass(frozen=True)
class AliasState:
    name: str
    version: str
    revision: str | None
    weights: dict[str, float]  # other version -> weight (RoutingConfig.AdditionalVersionWeights)
    url: str | None
    auth_type: str | None


@dataclass(frozen=True)
class LambdaState:
    """What Lambda reports about one function (for `zeroserve describe` and `zeroserve status`)."""

    name: str
    state: str | None
    last_update_status: str | None
    last_update_reason: str | None
    image: str | None
    versions: dict[str, str]  # version -> revision (its Description)
    aliases: tuple[AliasState, ...]
    provisioned_concurrency: dict[str, Any] | None  # on `live`: Requested/Allocated/Available, Status
    reserved_concurrency: int | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LambdaAccount:
    """One AWS account and region, through one boto3 Lambda client."""

    def __init__(self, region: str, *, client: Any = None, endpoint_url: str | None = None,
                 progress: Callable[[str], None] | None = None, conflict_attempts: int = 8,
                 backoff: float = 1.0, max_backoff: float = 20.0, waiter_delay: float = 1.0,
                 waiter_attempts: int = 300, sleep: Callable[[float], None] = time.sleep):
        self._client = client if client is not None else lambda_client(region, endpoint_url)
        self._progress = progress or (lambda line: None)
        self._conflict_attempts = max(1, conflict_attempts)
        self._backoff, self._max_backoff = backoff, max_backoff
        self._waiter_config = {"Delay": waiter_delay, "MaxAttempts": waiter_attempts}
        self._sleep = sleep

    # ------------------------------------------------------------------------------------------ functions

    def ensure_function(self, spec: FunctionSpec) -> dict[str, Any]:
        """$LATEST holds `spec` (created, or code and configuration updated); returns its configuration."""
        current = self._get_function(spec.name)
        if current is None:
            self._progress(f"lambda: creating function {spec.name} (image {spec.image})")
            configuration = self._call("create_function", spec.name, **spec.create_parameters())
            self._wait("function_active_v2", spec.name)
            return dict(configuration)
        self._check_managed(spec.name, current, function=spec.function)
        configuration = dict(current["Configuration"])
        if current.get("Code", {}).get("ImageUri") != spec.image:
            self._progress(f"lambda: {spec.name}: image -> {spec.image}")
            configuration = dict(self._call("update_function_code", spec.name, **spec.code_parameters()))
            self._wait("function_updated_v2", spec.name)
        if _configuration_differs(configuration, spec):
            self._progress(f"lambda: {spec.name}: configuration for {spec.revision} (timeout {spec.timeout} s, "
                           f"memory {spec.memory_mb} MB)")
            configuration = dict(self._call("update_function_configuration", spec.name,
                                            **spec.configuration_parameters()))
            self._wait("function_updated_v2", spec.name)
        return configuration

    def publish_revision(self, spec: FunctionSpec) -> PublishedVersion:
        """The version holding `spec.revision`: found by its Description, else published once."""
        existing = self.find_version(spec.name, spec.revision)
        if existing is not None:
            self._check_same_artifact(spec, existing)
            self._progress(f"lambda: {spec.revision} is version {existing} of {spec.name} already")
            return PublishedVersion(spec.revision, existing, published=False)
        self.ensure_function(spec)
        # Read $LATEST once the update has settled (its RevisionId changes when it does) and publish exactly
        # that: if anything changes $LATEST in between, Lambda refuses the RevisionId (PreconditionFailed).
        latest = self._call("get_function_configuration", spec.name, FunctionName=spec.name)
        if ((latest.get("Environment") or {}).get("Variables") or {}) != spec.environment:
            raise LambdaError(f"Lambda function '{spec.name}' changed while {spec.revision} was being published "
                              "(another deploy of the same function?); nothing was published, try again")
        parameters = spec.publish_parameters()
        if latest.get("RevisionId"):
            parameters["RevisionId"] = latest["RevisionId"]
        response = self._call("publish_version", spec.name, **parameters)
        version = str(response["Version"])
        if response.get("Description") != spec.revision:
            # Lambda answers the last version instead of publishing when $LATEST has not changed since.
            raise LambdaError(f"Lambda PublishVersion on '{spec.name}' answered version {version} "
                              f"('{response.get('Description')}') instead of publishing {spec.revision}: $LATEST "
                              "matches a version published outside zeroserve")
        self._wait("published_version_active", spec.name, Qualifier=version)
        self._progress(f"lambda: published {spec.revision} as version {version} of {spec.name}")
        return PublishedVersion(spec.revision, version, published=True)

    def _check_same_artifact(self, spec: FunctionSpec, version: str) -> None:
        """A version found by its description must hold this revision's artifact: a platform that lost its
        registry numbers revisions from 1 again, and must not route to another platform's iris-00001."""
        found = self._call("get_function_configuration", spec.name, FunctionName=spec.name, Qualifier=version)
        held = ((found.get("Environment") or {}).get("Variables") or {}).get(ARTIFACT_ENV)
        if held != spec.environment.get(ARTIFACT_ENV):
            raise LambdaError(
                f"Lambda function '{spec.name}' has a version {version} described as {spec.revision}, but it runs "
                f"{held or 'no zeroserve artifact'}, not {spec.environment.get(ARTIFACT_ENV)} (a platform whose "
                "registry was reset?); delete that Lambda function or set a function prefix")

    def owned(self, name: str, function: str) -> bool:
        """Whether the Lambda function exists; LambdaError when it exists but is not this zeroserve function's."""
        current = self._get_function(name)
        if current is None:
            return False
        self._check_managed(name, current, function=function)
        return True

    def find_version(self, name: str, revision: str) -> str | None:
        """The version whose Description is `revision` (the lowest, if several were published by hand)."""
        return self.published_versions(name).get(revision)

    def published_versions(self, name: str) -> dict[str, str]:
        """revision -> version for every published version of the function (empty if there is none)."""
        revisions: dict[str, str] = {}
        try:
            for version in self._paginate("list_versions_by_function", name, "Versions", FunctionName=name):
                number, description = str(version["Version"]), version.get("Description") or ""
                if number.isdigit() and description:
                    if description not in revisions or int(number) < int(revisions[description]):
                        revisions[description] = number
        except LambdaCallError as exc:
            if exc.code in _ABSENT:
                return {}
            raise
        return revisions

    # -------------------------------------------------------------------------------------------- routes

    def set_route(self, route: LambdaRoute) -> None:
        """Aliases, URLs, URL permissions and concurrency as `route` says; writes only what differs."""
        current = self._get_function(route.name)
        if current is None:
            raise LambdaError(f"Lambda function '{route.name}' does not exist: publish a revision first")
        self._check_managed(route.name, current, function=route.function)
        aliases = {alias["Name"]: alias for alias in self._paginate("list_aliases", route.name, "Aliases",
                                                                     FunctionName=route.name)}
        wanted = {alias.name for alias in route.aliases}
        for spec in route.aliases:
            existing = aliases.get(spec.name)
            if existing is not None and not str(existing.get("Description", "")).startswith(MANAGED_PREFIX):
                raise LambdaError(f"Lambda function '{route.name}' has an alias '{spec.name}' that zeroserve did "
                                  "not create; delete or rename it, or rename the tag")
        for name, alias in sorted(aliases.items()):  # tags that went away: URL first, then the alias
            if name not in wanted and str(alias.get("Description", "")).startswith(MANAGED_PREFIX):
                self._progress(f"lambda: {route.name}: removing alias {name}")
                self._delete("delete_function_url_config", route.name, FunctionName=route.name, Qualifier=name)
                self._delete("delete_alias", route.name, FunctionName=route.name, Name=name)
        for spec in route.aliases:
            self._ensure_alias(route.name, spec, aliases.get(spec.name))
        for url in route.urls:
            self._ensure_url(route.name, url)
        for spec in route.aliases:
            self._ensure_permissions(route, spec.name)
        self._ensure_provisioned_concurrency(route)
        self._ensure_reserved_concurrency(route)

    def aliases(self, name: str) -> dict[str, dict[str, Any]]:
        """The function's aliases by name, as ListAliases answers them (a snapshot for `restore_aliases`)."""
        return {alias["Name"]: alias for alias in self._paginate("list_aliases", name, "Aliases", FunctionName=name)}

    def restore_aliases(self, name: str, before: dict[str, dict[str, Any]]) -> None:
        """The platform's aliases back as `before` had them, after a route change that failed halfway (Lambda
        has no transaction over several aliases). Their URLs and permissions follow at the next route change."""
        now = self.aliases(name)
        for alias_name, alias in sorted(now.items()):
            if alias_name not in before and str(alias.get("Description", "")).startswith(MANAGED_PREFIX):
                self._delete("delete_function_url_config", name, FunctionName=name, Qualifier=alias_name)
                self._delete("delete_alias", name, FunctionName=name, Name=alias_name)
        for alias_name, alias in sorted(before.items()):
            if not str(alias.get("Description", "")).startswith(MANAGED_PREFIX):
                continue
            parameters = {"FunctionName": name, "Name": alias_name, "FunctionVersion": str(alias["FunctionVersion"]),
                          "Description": alias.get("Description", ""),
                          "RoutingConfig": {"AdditionalVersionWeights": dict(
                              (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})}}
            current = now.get(alias_name)
            if current is None:
                self._call("create_alias", name, **parameters)
            elif _alias_fields(current) != _alias_fields(alias):
                self._call("update_alias", name, **parameters)
        self._progress(f"lambda: {name}: aliases restored as they were before the failed change")

    def _ensure_alias(self, name: str, spec: AliasSpec, existing: dict[str, Any] | None) -> None:
        parameters = spec.parameters(name)
        if existing is None:
            self._progress(f"lambda: {name}: alias {spec.name} -> {_describe_alias(spec)}")
            self._call("create_alias", name, **parameters)
            return
        weights = (existing.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        if (str(existing.get("FunctionVersion")) == spec.version and _same_weights(weights, spec.weights)
                and existing.get("Description", "") == spec.description):
            return
        self._progress(f"lambda: {name}: alias {spec.name} -> {_describe_alias(spec)}")
        self._call("update_alias", name, **parameters)

    def _ensure_url(self, name: str, url: UrlSpec) -> None:
        existing = self._read("get_function_url_config", name, FunctionName=name, Qualifier=url.qualifier)
        if existing is None:
            created = self._call("create_function_url_config", name, **url.parameters(name))
            self._progress(f"lambda: {name}: function URL on {url.qualifier} ({url.auth_type}): "
                           f"{created.get('FunctionUrl')}")
        elif existing.get("AuthType") != url.auth_type:
            self._progress(f"lambda: {name}: function URL on {url.qualifier}: AuthType {existing.get('AuthType')} "
                           f"-> {url.auth_type}")
            self._call("update_function_url_config", name, FunctionName=name, Qualifier=url.qualifier,
                       AuthType=url.auth_type)

    def _ensure_permissions(self, route: LambdaRoute, alias: str) -> None:
        wanted = [spec for spec in route.permissions if spec.qualifier == alias]
        present = self._statement_ids(route.name, alias)
        for spec in wanted:
            if spec.statement_id in present:
                continue
            try:
                self._call("add_permission", route.name, **spec.parameters(route.name))
            except LambdaCallError as exc:  # added since the read: what we wanted is there
                if exc.code != "ResourceConflictException":
                    raise
        for statement_id in _OWN_STATEMENTS:
            if statement_id in present and not any(spec.statement_id == statement_id for spec in wanted):
                self._progress(f"lambda: {route.name}: {alias} is no longer public: removing {statement_id}")
                self._delete("remove_permission", route.name, FunctionName=route.name, Qualifier=alias,
                             StatementId=statement_id)

    def _ensure_provisioned_concurrency(self, route: LambdaRoute) -> None:
        wanted = route.provisioned_concurrency
        try:
            existing = self._read("get_provisioned_concurrency_config", route.name, FunctionName=route.name,
                                  Qualifier=LIVE_ALIAS)
        except LambdaCallError as exc:
            if wanted or exc.code != _NOT_LAMBDA_404:
                raise
            # An emulator without this API (moto): nothing can be provisioned there, so nothing to remove.
            self._progress(f"lambda: {route.name}: the endpoint has no provisioned-concurrency API; skipped")
            return
        requested = existing.get("RequestedProvisionedConcurrentExecutions") if existing else None
        if wanted and requested != wanted:
            self._progress(f"lambda: {route.name}: provisioned concurrency on {LIVE_ALIAS} -> {wanted}")
            self._call("put_provisioned_concurrency_config", route.name, FunctionName=route.name,
                       Qualifier=LIVE_ALIAS, ProvisionedConcurrentExecutions=wanted)
        elif not wanted and existing is not None:
            self._progress(f"lambda: {route.name}: provisioned concurrency on {LIVE_ALIAS} removed")
            self._delete("delete_provisioned_concurrency_config", route.name, FunctionName=route.name,
                         Qualifier=LIVE_ALIAS)

    def _ensure_reserved_concurrency(self, route: LambdaRoute) -> None:
        existing = self._call("get_function_concurrency", route.name, FunctionName=route.name)
        reserved = existing.get("ReservedConcurrentExecutions")
        if route.reserved_concurrency and reserved != route.reserved_concurrency:
            self._progress(f"lambda: {route.name}: reserved concurrency -> {route.reserved_concurrency}")
            self._call("put_function_concurrency", route.name, FunctionName=route.name,
                       ReservedConcurrentExecutions=route.reserved_concurrency)
        elif not route.reserved_concurrency and reserved is not None:
            self._progress(f"lambda: {route.name}: reserved concurrency removed")
            self._call("delete_function_concurrency", route.name, FunctionName=route.name)

    # ------------------------------------------------------------------------------------ delete, describe

    def delete(self, name: str, *, function: str | None = None) -> bool:
        """Remove the function, its aliases and their URLs; False when there was nothing to remove."""
        current = self._get_function(name)
        if current is None:
            return False
        self._check_managed(name, current, function=function)
        for alias in self._paginate("list_aliases", name, "Aliases", FunctionName=name):
            self._delete("delete_function_url_config", name, FunctionName=name, Qualifier=alias["Name"])
            self._delete("delete_alias", name, FunctionName=name, Name=alias["Name"])
        self._delete("delete_function_url_config", name, FunctionName=name)
        self._progress(f"lambda: deleting function {name} (every version)")
        self._delete("delete_function", name, FunctionName=name)
        return True

    def describe(self, name: str) -> LambdaState | None:
        """Versions, alias weights, URLs, provisioned concurrency and update status; None if absent."""
        current = self._get_function(name)
        if current is None:
            return None
        configuration = current.get("Configuration", {})
        versions = {version: revision for revision, version in self.published_versions(name).items()}
        aliases = []
        for alias in self._paginate("list_aliases", name, "Aliases", FunctionName=name):
            url = self._read("get_function_url_config", name, FunctionName=name, Qualifier=alias["Name"])
            weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            aliases.append(AliasState(
                name=alias["Name"], version=str(alias["FunctionVersion"]),
                revision=versions.get(str(alias["FunctionVersion"])),
                weights={str(k): float(v) for k, v in weights.items()},
                url=url.get("FunctionUrl") if url else None, auth_type=url.get("AuthType") if url else None))
        notes: list[str] = []
        provisioned = None
        try:
            found = self._read("get_provisioned_concurrency_config", name, FunctionName=name, Qualifier=LIVE_ALIAS)
            if found:
                provisioned = {key: value for key, value in found.items() if key != "ResponseMetadata"}
        except LambdaCallError as exc:  # reported, not fatal: the rest of the state is still worth showing
            notes.append(f"provisioned concurrency unknown: {exc}")
        reserved = self._call("get_function_concurrency", name, FunctionName=name).get("ReservedConcurrentExecutions")
        return LambdaState(
            name=name, state=configuration.get("State"), last_update_status=configuration.get("LastUpdateStatus"),
            last_update_reason=configuration.get("LastUpdateStatusReason"),
            image=current.get("Code", {}).get("ResolvedImageUri") or current.get("Code", {}).get("ImageUri"),
            versions=dict(sorted(versions.items(), key=lambda item: int(item[0]))),
            aliases=tuple(aliases), provisioned_concurrency=provisioned, reserved_concurrency=reserved,
            notes=tuple(notes))

    # ---------------------------------------------------------------------------------------- the calls

    def _call(self, method: str, target: str, **parameters: Any) -> dict[str, Any]:
        """One AWS call; ResourceConflictException while an update is in progress is waited out and retried."""
        from botocore.exceptions import BotoCoreError, ClientError

        delay = self._backoff
        attempt = 1
        while True:
            try:
                response: dict[str, Any] = getattr(self._client, method)(**parameters)
                return response
            except ClientError as exc:
                code, message = _error(exc)
                if code == "ResourceConflictException" and _update_in_progress(message) \
                        and attempt < self._conflict_attempts:
                    self._progress(f"lambda: {target}: {self._api(method)} waits for an update in progress "
                                   f"(attempt {attempt} of {self._conflict_attempts})")
                    self._wait("function_updated_v2", str(parameters.get("FunctionName", target)))
                    self._sleep(delay)
                    delay = min(delay * 2, self._max_backoff)
                    attempt += 1
                    continue
                raise LambdaCallError(self._api(method), target, code, message) from None
            except BotoCoreError as exc:  # no credentials, endpoint unreachable, timeouts
                raise LambdaCallError(self._api(method), target, type(exc).__name__, str(exc)) from None

    def _read(self, method: str, target: str, **parameters: Any) -> dict[str, Any] | None:
        """A Get*: None when Lambda says there is no such thing."""
        try:
            return self._call(method, target, **parameters)
        except LambdaCallError as exc:
            if exc.code in _ABSENT:
                return None
            raise

    def _delete(self, method: str, target: str, **parameters: Any) -> None:
        """A Delete*/Remove*: already gone is done (a retried delete, or a URL deleted with its alias)."""
        try:
            self._call(method, target, **parameters)
        except LambdaCallError as exc:
            if exc.code not in _ABSENT:
                raise

    def _wait(self, waiter: str, name: str, **parameters: Any) -> None:
        from botocore.exceptions import WaiterError

        polling = self._client.get_waiter(waiter)
        try:
            polling.wait(FunctionName=name, WaiterConfig=self._waiter_config, **parameters)
        except WaiterError as exc:
            last: dict[str, Any] = dict(exc.last_response or {})
            configuration: dict[str, Any] = last.get("Configuration") or last
            reason = configuration.get("LastUpdateStatusReason") or configuration.get("StateReason")
            code = (configuration.get("LastUpdateStatusReasonCode") or configuration.get("StateReasonCode")
                    or _error_from_response(last)[0] or "WaiterError")
            status = configuration.get("LastUpdateStatus") or configuration.get("State")
            call = str(getattr(getattr(polling, "config", None), "operation", "GetFunction"))
            raise LambdaCallError(call, name, str(code),
                                  f"waiting for {waiter}: status {status}: {reason or exc}") from None

    def _paginate(self, method: str, target: str, key: str, **parameters: Any) -> Iterator[dict[str, Any]]:
        marker: str | None = None
        while True:
            page = self._call(method, target, **parameters, **({"Marker": marker} if marker else {}))
            yield from page.get(key, [])
            marker = page.get("NextMarker")
            if not marker:
                return

    def _get_function(self, name: str) -> dict[str, Any] | None:
        return self._read("get_function", name, FunctionName=name)

    def _check_managed(self, name: str, current: dict[str, Any], *, function: str | None) -> None:
        tags = current.get("Tags") or {}
        if tags.get(MANAGED_BY_TAG) != MANAGED_BY:
            raise LambdaError(f"Lambda function '{name}' exists but zeroserve did not create it (no tag "
                              f"{MANAGED_BY_TAG}={MANAGED_BY}); it is left alone: delete it, or set a function "
                              "prefix so zeroserve's functions get other names")
        if function is not None and tags.get(FUNCTION_TAG) not in (None, function):
            raise LambdaError(f"Lambda function '{name}' belongs to zeroserve function '{tags.get(FUNCTION_TAG)}', "
                              f"not '{function}'; set a function prefix so the names differ")

    def _statement_ids(self, name: str, qualifier: str) -> set[str]:
        import json

        policy = self._read("get_policy", name, FunctionName=name, Qualifier=qualifier)
        if not policy:
            return set()
        document = json.loads(policy.get("Policy") or "{}")
        return {str(statement.get("Sid")) for statement in document.get("Statement", [])}

    def _api(self, method: str) -> str:
        """The API's name of a boto3 method (update_alias -> UpdateAlias), as IAM and AWS's docs say it."""
        mapping: dict[str, str] = getattr(getattr(self._client, "meta", None), "method_to_api_mapping", {}) or {}
        return mapping.get(method) or "".join(part.capitalize() for part in method.split("_"))


def lambda_client(region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 Lambda client: credentials and AWS_ENDPOINT_URL from boto3's standard chain; thread-safe, so one
    client serves every call of a platform."""
    import boto3  # ~0.2 s: paid only by a platform with a Lambda target
    from botocore.config import Config

    return boto3.client("lambda", region_name=region, endpoint_url=endpoint_url, config=Config(
        connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 5}))


def _configuration_differs(configuration: dict[str, Any], spec: FunctionSpec) -> bool:
    environment = (configuration.get("Environment") or {}).get("Variables") or {}
    command = ((configuration.get("ImageConfigResponse") or {}).get("ImageConfig") or {}).get("Command")
    wanted = spec.configuration_parameters()
    return (environment != spec.environment or configuration.get("Timeout") != spec.timeout
            or configuration.get("MemorySize") != spec.memory_mb or configuration.get("Role") != spec.role
            or configuration.get("Description") != spec.description
            or (command is not None and command != wanted["ImageConfig"]["Command"]))


def _alias_fields(alias: dict[str, Any]) -> tuple[str, dict[str, float], str]:
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return (str(alias.get("FunctionVersion")), {str(k): float(v) for k, v in weights.items()},
            str(alias.get("Description", "")))


def _same_weights(current: dict[str, Any], wanted: dict[str, float]) -> bool:
    if {str(k) for k in current} != set(wanted):
        return False
    return all(math.isclose(float(current[k]), wanted[str(k)], abs_tol=_WEIGHT_TOLERANCE) for k in current)


def _describe_alias(spec: AliasSpec) -> str:
    if not spec.additional:
        return f"version {spec.version} ({spec.revision})"
    others = ", ".join(f"version {version} ({revision}) at {weight:.0%}" for revision, version, weight
                       in spec.additional)
    return f"version {spec.version} ({spec.revision}), {others}"


def _error(exc: Any) -> tuple[str, str]:
    code, message = _error_from_response(exc.response)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if not code or code == str(status):
        # Something that is not Lambda answered (a proxy's HTML page, or an emulator lacking the operation).
        return f"HTTP {status}", ("the endpoint answered without a Lambda error code; is AWS_ENDPOINT_URL "
                                  "Lambda's API?")
    return code, message


def _error_from_response(response: dict[str, Any]) -> tuple[str, str]:
    error = response.get("Error") or {}
    return str(error.get("Code") or ""), str(error.get("Message") or "")


def _update_in_progress(message: str) -> bool:
    text = message.lower()
    return "in progress" in text or "cannot be performed at this time" in text


__all__ = ["AliasState", "LambdaAccount", "LambdaCallError", "LambdaError", "LambdaState", "PublishedVersion",
           "lambda_client"]
