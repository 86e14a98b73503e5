"""A Knative Serving cluster through the official `kubernetes` client (CustomObjectsApi), and nothing more.

`KnativeCluster` applies a Service (create, or replace on top of the stored one with conflict retry),
waits for Knative's `Ready` condition, patches `spec.traffic` alone (a traffic change must leave the
template exactly as it is: Knative refuses a template change without a new revision name), deletes,
and reads back what Knative reports: Ready, URL, tag URLs, latest ready/created revision, and each
Revision's desired and actual replicas.

Every failure is a `KnativeClusterError` whose message says what to do: no kubeconfig, an unreachable
API server, Knative Serving not installed, RBAC refusing a verb (naming it and the resource), a Service
refused by the API server or Knative's webhook (its own message), a revision Knative cannot make
ready (Knative's reason and message), a timeout. Writes use `fieldValidation=Strict`, so a field the
cluster's CRD does not know is an error instead of being dropped in silence.

Importing this module imports the kubernetes client (~0.5 s): only code that talks to a cluster does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from deploy.knative.service import MANAGED_BY, MANAGED_BY_LABEL

GROUP = "serving.knative.dev"
VERSION = "v1"
SERVICES = "services"
REVISIONS = "revisions"
SERVICE_LABEL = "serving.knative.dev/service"
NOT_INSTALLED = f"Knative Serving is not installed in this cluster: no {SERVICES}.{GROUP}"
DEFAULT_KUBECONFIG = Path("~/.kube/config")
# Connect, read: an API server that does not answer in seconds is not going to.
REQUEST_TIMEOUT = (5.0, 30.0)
CONFLICT_RETRIES = 5
# wait_ready polls quickly at first (a controller usually answers within tens of milliseconds), then
# backs off to this interval, so a deploy waits for Knative without hammering the API server.
FIRST_POLL = 0.02
POLL_INTERVAL = 0.25

T = TypeVar("T")


class KnativeClusterError(Exception):
    """Something the cluster did not do; the message names the resource and what to do."""


class KubeconfigError(KnativeClusterError):
    pass


class ApiUnreachableError(KnativeClusterError):
    pass


class KnativeNotInstalledError(KnativeClusterError):
    def __init__(self, detail: str = ""):
        super().__init__(NOT_INSTALLED + (f" ({detail})" if detail else ""))


class ForbiddenError(KnativeClusterError):
    def __init__(self, verb: str, resource: str, namespace: str, detail: str):
        self.verb, self.resource, self.namespace = verb, resource, namespace
        super().__init__(f"forbidden: may not {verb} {resource}.{GROUP} in namespace '{namespace}' ({detail}); "
                         "grant the platform's Kubernetes user the Role in docs/knative.md")


class ServiceNotFoundError(KnativeClusterError, LookupError):
    def __init__(self, name: str, namespace: str):
        self.name = name
        super().__init__(f"Knative Service '{name}' does not exist in namespace '{namespace}'")


class ServiceRejectedError(KnativeClusterError):
    """The API server (schema, 422) or Knative's webhook (400) refused a write; `message` is theirs."""

    def __init__(self, name: str, code: int, message: str):
        self.name, self.code, self.server_message = name, code, message
        super().__init__(f"the cluster refused Knative Service '{name}' ({code}): {message}")


class ConflictError(KnativeClusterError):
    pass


class ServiceFailedError(KnativeClusterError):
    """Knative reports the Service not Ready (False): `reason` and `message` are Knative's own."""

    def __init__(self, name: str, reason: str | None, message: str | None):
        self.name, self.reason, self.knative_message = name, reason, message
        super().__init__(f"Knative Service '{name}' is not ready: {reason or 'no reason given'}: "
                         f"{message or 'no message'}")


class ReadyTimeoutError(KnativeClusterError):
    def __init__(self, name: str, timeout: float, reason: str | None, message: str | None):
        self.name, self.reason, self.knative_message = name, reason, message
        super().__init__(f"Knative Service '{name}' was not ready after {timeout:g}s (last: "
                         f"{reason or 'no reason'}: {message or 'no message'})")


@dataclass(frozen=True)
class RevisionState:
    name: str
    ready: bool | None
    reason: str | None
    message: str | None
    desired_scale: int | None  # Revision status.desiredReplicas (the PodAutoscaler's desiredScale)
    actual_scale: int | None  # Revision status.actualReplicas


@dataclass(frozen=True)
class ServiceState:
    """What Knative reports about a Service."""

    name: str
    ready: bool | None  # the Ready condition: True, False, or None (Unknown / not reported yet)
    reason: str | None
    message: str | None
    url: str | None
    tag_urls: dict[str, str]
    latest_ready_revision: str | None
    latest_created_revision: str | None
    traffic: list[dict[str, Any]]  # status.traffic: the split Knative serves now
    generation: int
    observed_generation: int
    revisions: tuple[RevisionState, ...] = field(default_factory=tuple)

    @property
    def up_to_date(self) -> bool:
        """Knative has looked at the latest spec (its status describes what was last written)."""
        return self.observed_generation >= self.generation


def kubeconfig_path(config_file: str | os.PathLike[str] | None = None) -> Path | None:
    """The kubeconfig to read: the one given, else the first existing file in KUBECONFIG, else ~/.kube/config."""
    if config_file is not None:
        return Path(config_file).expanduser()
    candidates = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    for candidate in candidates or [str(DEFAULT_KUBECONFIG)]:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


def load_api_client(*, context: str | None = None, config_file: str | os.PathLike[str] | None = None) -> k8s.ApiClient:
    """An ApiClient from a kubeconfig (KUBECONFIG or ~/.kube/config), or in-cluster config inside a pod."""
    path = kubeconfig_path(config_file)
    if path is None or not path.is_file():
        if config_file is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.Configuration()
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except ConfigException as exc:
                raise KubeconfigError(f"in-cluster Kubernetes config: {exc}") from None
            return k8s.ApiClient(configuration)
        where = f"{path}" if config_file is not None else \
            f"KUBECONFIG ({os.environ['KUBECONFIG']})" if os.environ.get("KUBECONFIG") else str(DEFAULT_KUBECONFIG)
        raise KubeconfigError(f"no kubeconfig: {where} does not exist; point KUBECONFIG at the cluster's kubeconfig "
                              "(or run the platform in a pod with a service account)")
    try:
        return k8s_config.new_client_from_config(config_file=str(path), context=context)
    except ConfigException as exc:
        context_note = f" (context '{context}')" if context else ""
        raise KubeconfigError(f"kubeconfig {path}{context_note}: {exc}") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"kubeconfig {path}: cannot be read: {' '.join(str(exc).split())}") from None


class KnativeCluster:
    """Knative Services in one namespace of one cluster."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str = "default", *,
                 request_timeout: tuple[float, float] = REQUEST_TIMEOUT, conflict_retries: int = CONFLICT_RETRIES):
        self.api_client = api_client
        self.namespace = namespace
        self.request_timeout = request_timeout
        self.conflict_retries = conflict_retries
        self._objects = k8s.CustomObjectsApi(api_client)

    @classmethod
    def connect(cls, namespace: str = "default", *, context: str | None = None,
                config_file: str | os.PathLike[str] | None = None, **options: Any) -> KnativeCluster:
        return cls(load_api_client(context=context, config_file=config_file), namespace, **options)

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> KnativeCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    # ----------------------------------------------------------------------------------------------- calls

    def check_installed(self) -> None:
        """KnativeNotInstalledError unless the API server serves services.serving.knative.dev/v1."""
        with self._errors("get", SERVICES, None):
            try:
                resources = self._objects.get_api_resources(GROUP, VERSION, _request_timeout=self.request_timeout)
            except ApiException as exc:
                if exc.status == 404:
                    raise KnativeNotInstalledError() from None
                raise
        names = {resource.name for resource in resources.resources}
        if SERVICES not in names:
            raise KnativeNotInstalledError(f"{GROUP}/{VERSION} serves {', '.join(sorted(names)) or 'nothing'}")

    def read(self, name: str) -> dict[str, Any]:
        with self._errors("get", SERVICES, name):
            return _as_dict(self._objects.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, SERVICES, name, _request_timeout=self.request_timeout))

    def apply(self, service: Mapping[str, Any], *, keep_traffic: bool = False) -> dict[str, Any]:
        """Create the Service, or replace the stored one with it; retried on conflicting writes.

        The stored Service's other labels and annotations (Knative's creator/lastModifier, an operator's)
        are kept; everything the platform writes is replaced. With `keep_traffic`, a stored Service keeps
        its `spec.traffic` as it is at the moment of the write (a new revision gets no traffic until it is
        ready; a traffic change that lands meanwhile is not undone). A Service of the same name that
        zeroserve did not create is never replaced. Returns the stored object.
        """
        name = str(service["metadata"]["name"])
        for _ in range(self.conflict_retries):
            try:
                current = self.read(name)
            except ServiceNotFoundError:
                try:
                    return self._create(service)
                except ConflictError:
                    continue  # created by someone else meanwhile: replace it
            _check_managed(name, self.namespace, current)
            try:
                return self._replace(name, _on_top_of(service, current, keep_traffic=keep_traffic))
            except ConflictError:
                continue  # modified since we read it (Knative's controller writes status too): read again
        raise ConflictError(f"Knative Service '{name}' kept changing while it was being applied "
                            f"({self.conflict_retries} conflicting writes); try again")

    def patch_traffic(self, name: str, traffic: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Replace `spec.traffic` and nothing else (a JSON merge patch replaces the list whole)."""
        body = {"spec": {"traffic": [dict(target) for target in traffic]}}
        with self._errors("patch", SERVICES, name):
            return _as_dict(self._objects.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, SERVICES, name, body, field_validation="Strict",
                _request_timeout=self.request_timeout))

    def delete(self, name: str) -> bool:
        """Delete the Service (Knative deletes its Revisions); False when there was none."""
        try:
            with self._errors("delete", SERVICES, name):
                self._objects.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, SERVICES, name,
                                                              _request_timeout=self.request_timeout)
        except ServiceNotFoundError:
            return False
        return True

    def read_status(self, name: str, *, revisions: bool = True) -> ServiceState:
        """Knative's view of the Service (and, with `revisions`, of each of its Revisions)."""
        service = self.read(name)
        states = tuple(self.revision_states(name)) if revisions else ()
        return service_state(service, states)

    def revision_states(self, name: str) -> list[RevisionState]:
        with self._errors("list", REVISIONS, None):
            listed = _as_dict(self._objects.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, REVISIONS, label_selector=f"{SERVICE_LABEL}={name}",
                _request_timeout=self.request_timeout))
        return sorted((revision_state(item) for item in listed.get("items", [])), key=lambda r: r.name)

    def wait_ready(self, name: str, timeout: float, *, revision: str | None = None,
                   on_progress: Callable[[str], None] | None = None,
                   poll_interval: float = POLL_INTERVAL) -> ServiceState:
        """Poll until Knative reports the latest spec Ready (and `revision`, if given, the latest ready one).

        Raises ServiceFailedError with Knative's reason and message once Ready is False for the latest
        spec, ReadyTimeoutError after `timeout` seconds. `on_progress` gets a line each time Knative's
        reason or message changes (for a build log).
        """
        deadline = time.monotonic() + timeout
        last_line = None
        interval = min(FIRST_POLL, poll_interval)
        while True:
            state = self.read_status(name, revisions=False)
            current = state.up_to_date and (revision is None or state.latest_created_revision == revision)
            if current and state.ready is True and (revision is None or state.latest_ready_revision == revision):
                return state
            if current and state.ready is False:
                raise ServiceFailedError(name, state.reason, state.message)
            line = (f"knative: {name}: Ready={_tristate(state.ready)}"
                    + (f" {state.reason}" if state.reason else "") + (f": {state.message}" if state.message else ""))
            if on_progress is not None and line != last_line:
                on_progress(line)
            last_line = line
            if time.monotonic() >= deadline:
                raise ReadyTimeoutError(name, timeout, state.reason, state.message)
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, poll_interval)

    # -------------------------------------------------------------------------------------------- private

    def _create(self, service: Mapping[str, Any]) -> dict[str, Any]:
        name = str(service["metadata"]["name"])
        with self._errors("create", SERVICES, name):
            return _as_dict(self._objects.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, SERVICES, dict(service), field_validation="Strict",
                _request_timeout=self.request_timeout))

    def _replace(self, name: str, service: Mapping[str, Any]) -> dict[str, Any]:
        with self._errors("update", SERVICES, name):
            return _as_dict(self._objects.replace_namespaced_custom_object(
                GROUP, VERSION, self.namespace, SERVICES, name, dict(service), field_validation="Strict",
                _request_timeout=self.request_timeout))

    @contextmanager
    def _errors(self, verb: str, resource: str, name: str | None) -> Iterator[None]:
        """The client's exceptions as KnativeClusterErrors that say what went wrong and what to do."""
        try:
            yield
        except ApiException as exc:
            raise self._translate(exc, verb, resource, name) from None
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ApiUnreachableError(f"cannot reach the Kubernetes API server at {self.server}: {reason}") from None
        except OSError as exc:
            raise ApiUnreachableError(f"cannot reach the Kubernetes API server at {self.server}: {exc}") from None

    def _translate(self, exc: ApiException, verb: str, resource: str, name: str | None) -> KnativeClusterError:
        status = _status_body(exc)
        message = str(status.get("message") or exc.reason or "no message")
        code = int(exc.status or 0)
        if code == 401:
            return KnativeClusterError(f"the Kubernetes API server at {self.server} refused the credentials "
                                       f"(401 Unauthorized): check the kubeconfig's user")
        if code == 403:
            return ForbiddenError(verb, resource, self.namespace, message)
        if code == 404:
            details = status.get("details") or {}
            if name is not None and details.get("name") == name:
                return ServiceNotFoundError(name, self.namespace)
            return KnativeNotInstalledError()
        if code == 409:
            return ConflictError(f"Knative Service '{name}': {message}")
        if code in (400, 422):
            return ServiceRejectedError(name or "?", code, message)
        return KnativeClusterError(f"the Kubernetes API server answered {code} {exc.reason or ''} to {verb} "
                                   f"{resource}.{GROUP} '{name or ''}': {message}")


def service_state(service: Mapping[str, Any], revisions: tuple[RevisionState, ...] = ()) -> ServiceState:
    """ServiceState from a stored Service (pure: the CLI can use it on an object it already has)."""
    metadata = service.get("metadata", {})
    status = service.get("status") or {}
    ready = _condition(status, "Ready")
    traffic = list(status.get("traffic") or [])
    return ServiceState(
        name=str(metadata.get("name", "")),
        ready=_status_value(ready), reason=ready.get("reason"), message=ready.get("message"),
        url=status.get("url"),
        tag_urls={t["tag"]: t["url"] for t in traffic if t.get("tag") and t.get("url")},
        latest_ready_revision=status.get("latestReadyRevisionName"),
        latest_created_revision=status.get("latestCreatedRevisionName"),
        traffic=traffic,
        generation=int(metadata.get("generation", 0)),
        observed_generation=int(status.get("observedGeneration", 0)),
        revisions=revisions,
    )


def revision_state(revision: Mapping[str, Any]) -> RevisionState:
    status = revision.get("status") or {}
    ready = _condition(status, "Ready")
    return RevisionState(
        name=str(revision.get("metadata", {}).get("name", "")),
        ready=_status_value(ready), reason=ready.get("reason"), message=ready.get("message"),
        desired_scale=status.get("desiredReplicas"), actual_scale=status.get("actualReplicas"),
    )


def _check_managed(name: str, namespace: str, current: Mapping[str, Any]) -> None:
    """Never replace a Service someone else deployed under the same name."""
    labels = current.get("metadata", {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        raise KnativeClusterError(
            f"Knative Service '{name}' in namespace '{namespace}' exists and is not managed by zeroserve (no label "
            f"{MANAGED_BY_LABEL}: {MANAGED_BY}); delete or rename it, or deploy to another namespace")


def _on_top_of(desired: Mapping[str, Any], current: Mapping[str, Any], *, keep_traffic: bool = False
               ) -> dict[str, Any]:
    """`desired` as a replacement for `current`: its resourceVersion, and the labels/annotations others set."""
    body = json.loads(json.dumps(desired))  # a deep copy of plain data
    stored_traffic = (current.get("spec") or {}).get("traffic")
    if keep_traffic and stored_traffic:
        body.setdefault("spec", {})["traffic"] = json.loads(json.dumps(stored_traffic))
    metadata = body.setdefault("metadata", {})
    stored = current.get("metadata", {})
    metadata["resourceVersion"] = stored.get("resourceVersion")
    for key in ("labels", "annotations"):
        merged = {**(stored.get(key) or {}), **(metadata.get(key) or {})}
        if merged:
            metadata[key] = merged
    return body


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KnativeClusterError(f"the Kubernetes API server answered with {type(value).__name__}, not an object")
    return value


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {"message": str(exc.body)[:500] if exc.body else None}
    return body if isinstance(body, dict) else {}


def _condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _status_value(condition: Mapping[str, Any]) -> bool | None:
    return {"True": True, "False": False}.get(str(condition.get("status")))


def _tristate(value: bool | None) -> str:
    return "Unknown" if value is None else str(value)


__all__ = [
    "ApiUnreachableError", "ConflictError", "ForbiddenError", "KnativeCluster", "KnativeClusterError",
    "KnativeNotInstalledError", "KubeconfigError", "NOT_INSTALLED", "ReadyTimeoutError", "RevisionState",
    "ServiceFailedError", "ServiceNotFoundError", "ServiceRejectedError", "ServiceState", "kubeconfig_path",
    "load_api_client", "revision_state", "service_state",
]
