"""The AWS Lambda target: deploy/targets.py's `Target` over the mapping (mapping.py, routing.py) and the account.

- `check`: the mapping alone refuses what Lambda cannot run (settings, a store Lambda cannot reach, Timeout,
  MemorySize, environment, names), then the route the deploy will make is mapped with the new revision
  given a placeholder version: a route over three revisions is refused before anything is published. One
  read (the function's published versions) also checks the credentials and that the Lambda function, if
  it exists, is this function's.
- `apply_revision`: $LATEST takes the revision's configuration and is published once as a version whose
  Description is the revision name; the aliases are not touched (the route moves when the registry records).
- `follow_route`: the aliases, function URLs, URL permissions and concurrency for the route, as
  routing.lambda_route maps it (a route Lambda cannot hold is refused, and nothing is called).
- `settle`: what Lambda now serves, read back into the build log (alias `live`, its URL, tag aliases).
- `delete`: the function, its aliases and URLs.
- `describe` / `status`: versions, alias weights, URLs, the function's State and LastUpdateStatus,
  provisioned and reserved concurrency, as Lambda reports them.

boto3 is imported and its client made on first use: a platform with no function on Lambda never pays for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from deploy.aws_lambda.account import LambdaAccount, LambdaError, lambda_client  # boto3: once a client is made
from deploy.aws_lambda.mapping import (
    FunctionSpec,
    LambdaMappingError,
    LambdaSettings,
    function_name,
    function_spec,
    lambda_artifact_uri,
)
from deploy.aws_lambda.routing import LIVE_ALIAS, LambdaRoute, lambda_route
from deploy.targets import Export, NewRevision, RoutedRevision, TargetError, TargetRefused
from protocol.manifest import FunctionManifest
from revisions.build_log import BuildLog
from revisions.registry.notices import RouteNotice
from revisions.traffic import TrafficTarget

if TYPE_CHECKING:
    from deploy.aws_lambda.account import AliasState, LambdaState

NAME = "lambda"
# The version the new revision is given while its route is checked, before it is published: larger than
# any real version, so it sorts as the newest.
PLACEHOLDER_VERSION = str(10**9)

logger = logging.getLogger("zeroserve.targets.lambda")


class LambdaTarget:
    name = NAME

    def __init__(self, settings: LambdaSettings, *, store: str | None, client: Any = None,
                 account_options: dict[str, Any] | None = None):
        self.settings = settings
        self.store = store  # ZEROSERVE_ARTIFACTS: the functions fetch revisions from it at init
        self._client = client  # a boto3 Lambda client; made on first use when None
        self._account_options = dict(account_options or {})  # LambdaAccount's waits and backoff (tests)
        self._lock = threading.Lock()
        # A deploy's build log, from apply_revision to the route change it causes, so the alias and URL
        # lines of a deploy are in its log (follow_route itself is told only of the route).
        self._deploy_logs: dict[str, BuildLog] = {}

    # ------------------------------------------------------------------------------------------ deploy

    def check(self, new: NewRevision) -> list[str]:
        spec = self._spec(new.manifest, new.revision, new.digest)
        route = list(new.route) or [TrafficTarget.to(new.revision, 100)]
        with self._account() as account:
            account.owned(spec.name, new.function)
            versions = account.published_versions(spec.name)
        self._route(new.manifest, route, {**versions, new.revision: PLACEHOLDER_VERSION}, new.revision)
        return list(spec.notes)

    def apply_revision(self, log: BuildLog, new: NewRevision) -> None:
        spec = self._spec(new.manifest, new.revision, new.digest)
        with self._account(log.info) as account:
            account.publish_revision(spec)
        with self._lock:
            self._deploy_logs[new.function] = log

    def follow_route(self, notice: RouteNotice) -> None:
        log = self._take_log(notice.function) if notice.reason == "deploy" else None
        try:
            manifest = FunctionManifest.model_validate(notice.manifest)
        except ValueError as exc:
            raise TargetRefused(self.name, f"function '{notice.function}': its newest function.yaml cannot be "
                                           f"read back: {exc}") from None
        with self._account(log.info if log is not None else _log_progress) as account:
            versions = account.published_versions(function_name(notice.function, self.settings))
            route = self._route(manifest, notice.targets, versions, notice.latest_ready)
            before = account.aliases(route.name)
            try:
                account.set_route(route)
            except LambdaError:
                # The registry rolls the change back: the aliases go back too, so Lambda keeps serving the
                # route the registry keeps (what a failed call left of URLs converges at the next change).
                self._restore(account, route.name, before)
                raise

    @staticmethod
    def _restore(account: LambdaAccount, name: str, before: dict[str, dict[str, Any]]) -> None:
        try:
            account.restore_aliases(name, before)
        except LambdaError as exc:
            logger.warning("lambda: %s: the aliases could not be restored after a failed route change: %s", name, exc)

    def settle(self, function: str, log: BuildLog) -> None:
        self._take_log(function)
        name = self._name(function)
        with self._account(log.info) as account:
            state = account.describe(name)
        if state is None:
            raise TargetError(self.name, f"Lambda function '{name}' is not there (deleted meanwhile?)")
        for line in settled_lines(state):
            log.info(line)

    def delete(self, function: str) -> bool:
        with self._account() as account:
            return account.delete(self._name(function), function=function)

    # ------------------------------------------------------------------------------------------- views

    def describe(self, function: str) -> dict[str, Any]:
        name = self._name(function)
        with self._account() as account:
            state = account.describe(name)
        if state is None:
            return {"service": name, "region": self.settings.region, "ready": False, "reason": "NotFound",
                    "message": f"no Lambda function {name} in {self.settings.region}"}
        return {"region": self.settings.region, **describe_view(state)}

    def status(self, function: str) -> dict[str, Any]:
        name = self._name(function)
        with self._account() as account:
            state = account.describe(name)
        if state is None:
            return {"service": name, "state": None, "revisions": []}
        return status_view(state)

    def export(self, routed: RoutedRevision) -> Export:
        raise TargetRefused(self.name, "a Lambda function is not one document to apply but a series of API calls; "
                                       f"`zeroserve describe {routed.function}` shows its versions, aliases and URLs "
                                       "(docs/lambda.md lists the calls)")

    # ----------------------------------------------------------------------------------------- private

    def _spec(self, manifest: FunctionManifest, revision: str, digest: str) -> FunctionSpec:
        try:
            return function_spec(manifest, revision, lambda_artifact_uri(self.store, digest), self.settings)
        except LambdaMappingError as exc:
            raise TargetRefused(self.name, str(exc)) from None

    def _route(self, manifest: FunctionManifest, route: Any, versions: dict[str, str],
               latest_ready: str | None) -> LambdaRoute:
        try:
            return lambda_route(manifest, route, versions, self.settings, latest_ready=latest_ready)
        except LambdaMappingError as exc:
            raise TargetRefused(self.name, str(exc)) from None

    def _name(self, function: str) -> str:
        try:
            self.settings.check()
            return function_name(function, self.settings)
        except LambdaMappingError as exc:
            raise TargetRefused(self.name, str(exc)) from None

    def _take_log(self, function: str) -> BuildLog | None:
        with self._lock:
            return self._deploy_logs.pop(function, None)

    @contextmanager
    def _account(self, progress: Callable[[str], None] = lambda _line: None) -> Iterator[LambdaAccount]:
        """The account (one boto3 client, made on first use), its errors as TargetError."""
        try:
            self.settings.check()
        except LambdaMappingError as exc:
            raise TargetRefused(self.name, str(exc)) from None
        try:
            yield LambdaAccount(self.settings.region, client=self._connection(), progress=progress,
                                **self._account_options)
        except LambdaError as exc:
            raise TargetError(self.name, str(exc)) from None

    def _connection(self) -> Any:
        with self._lock:  # creating a boto3 client is not thread-safe; using one is
            if self._client is None:
                self._client = lambda_client(self.settings.region)
            return self._client


def _log_progress(line: str) -> None:
    logger.info("%s", line)


# -------------------------------------------------------------------------------------------- views


def live_split(state: LambdaState) -> list[tuple[str | None, str, int]]:
    """(revision, version, percent) that alias `live` serves, its FunctionVersion first."""
    live = _alias(state, LIVE_ALIAS)
    if live is None:
        return []
    extra = [(state.versions.get(version), version, round(weight * 100)) for version, weight in live.weights.items()]
    return [(live.revision, live.version, 100 - sum(p for _, _, p in extra)), *extra]


def describe_view(state: LambdaState) -> dict[str, Any]:
    """A Lambda function as deploy/targets.py's `describe` reports it (zeroserve/api/schemas.py: TargetState)."""
    live = _alias(state, LIVE_ALIAS)
    ready = None if state.state is None else (state.state == "Active" and state.last_update_status != "Failed")
    return {
        "service": state.name, "ready": ready,
        "reason": None if ready else (state.state if state.state != "Active" else state.last_update_status),
        "message": state.last_update_reason, "url": live.url if live is not None else None,
        "tag_urls": {a.name: a.url for a in state.aliases if a.name != LIVE_ALIAS and a.url},
        "traffic": [{"revision": revision, "percent": percent, "tag": None, "url": None}
                    for revision, _version, percent in live_split(state)],
        "state": state.state, "last_update_status": state.last_update_status, "versions": dict(state.versions),
        "aliases": [{"name": a.name, "version": a.version, "revision": a.revision, "weights": dict(a.weights),
                     "url": a.url, "auth_type": a.auth_type} for a in state.aliases],
        "provisioned_concurrency": state.provisioned_concurrency, "reserved_concurrency": state.reserved_concurrency,
        "image": state.image,
    }


def status_view(state: LambdaState) -> dict[str, Any]:
    """What `zeroserve status` shows for Lambda instead of replica counts: the function's State and
    LastUpdateStatus, provisioned concurrency on `live` (Lambda's Status and counts), reserved concurrency,
    and each published version with its share of `live`."""
    shares = {version: percent for _revision, version, percent in live_split(state)}
    tags: dict[str, list[str]] = {}
    for alias in state.aliases:
        if alias.name != LIVE_ALIAS:
            tags.setdefault(alias.version, []).append(alias.name)
    return {
        "service": state.name, "state": state.state, "last_update_status": state.last_update_status,
        "last_update_reason": state.last_update_reason, "provisioned_concurrency": state.provisioned_concurrency,
        "reserved_concurrency": state.reserved_concurrency, "notes": list(state.notes),
        "revisions": [{"revision": revision, "version": version, "percent": shares.get(version, 0),
                       "tags": sorted(tags.get(version, [])), "ready": None, "reason": None, "message": None,
                       "desired": None, "actual": None}
                      for version, revision in state.versions.items()],
    }


def settled_lines(state: LambdaState) -> list[str]:
    """The build log's last lines of a deploy: what alias `live` and the tags serve now, at which URLs."""
    split = ", ".join(f"{revision} (version {version}) {percent}%" for revision, version, percent in live_split(state))
    live = _alias(state, LIVE_ALIAS)
    lines = [f"lambda: {state.name} {LIVE_ALIAS}: {split or '(no alias yet)'}"
             + (f" at {live.url} ({live.auth_type})" if live is not None and live.url else "")]
    for alias in state.aliases:
        if alias.name != LIVE_ALIAS:
            lines.append(f"lambda: tag {alias.name}: {alias.revision} (version {alias.version}) at {alias.url or '-'}")
    provisioned = state.provisioned_concurrency
    if provisioned:
        lines.append(f"lambda: provisioned concurrency on {LIVE_ALIAS}: {provisioned.get('Status')} "
                     f"({provisioned.get('AllocatedProvisionedConcurrentExecutions', 0)} of "
                     f"{provisioned.get('RequestedProvisionedConcurrentExecutions', 0)} allocated)")
    return lines


def _alias(state: LambdaState, name: str) -> AliasState | None:
    return next((alias for alias in state.aliases if alias.name == name), None)


__all__ = ["NAME", "PLACEHOLDER_VERSION", "LambdaTarget", "describe_view", "live_split", "settled_lines",
           "status_view"]
