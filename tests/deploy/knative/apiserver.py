"""A Kubernetes API server for Knative Services, real HTTP on 127.0.0.1, for the official `kubernetes` client.

It speaks the REST paths `CustomObjectsApi` (and the dynamic client's discovery) uses:

    GET  /api  /apis  /apis/serving.knative.dev  /apis/serving.knative.dev/v1      discovery
    GET|POST              /apis/serving.knative.dev/v1/namespaces/{ns}/services
    GET|PUT|PATCH|DELETE  /apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}
    GET                   /apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}/status
    GET (list, ?labelSelector=k=v) | GET | DELETE  .../namespaces/{ns}/revisions[/{name}]

and answers the way a cluster with Knative Serving does:
- bearer-token authentication (401 without a known token) and RBAC: `forbid(verb, resource)` makes
  that verb a 403 Forbidden naming user, verb, resource, group and namespace;
- `crd_installed = False`: the group is not served at all (404 on everything under it, absent from
  discovery), as on a cluster without Knative Serving;
- writes: the body's undeclared fields are pruned (a `Warning` header each) or, with
  `fieldValidation=Strict`, refused (400); the CRD's openAPIV3Schema is enforced (422 Invalid naming
  the field, in the Status format); then Knative's webhook defaults and validates (400, see webhook.py);
- `resourceVersion` and `generation` kept: a PUT without one is 422, a stale one 409 Conflict (PATCH
  too, when the patch names one); POST of an existing name is 409 AlreadyExists;
- PATCH takes `application/merge-patch+json` (RFC 7386), `application/json-patch+json` (RFC 6902) and
  `application/apply-patch+yaml` (server-side apply, needs `fieldManager`; approximated as a merge of
  the applied configuration in which lists are replaced, without managed-field conflicts);
  `application/strategic-merge-patch+json` is 415, as for every custom resource;
- `status` is a subresource: writes to the main resource keep the stored status; the reconciler
  (reconciler.py, a thread) is the only writer of status, and deleting a Service deletes its Revisions.

`write_kubeconfig()` writes a kubeconfig for it, so the client connects with
`kubernetes.config.load_kube_config(config_file=...)` like it would to a cluster.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.deploy.knative import webhook
from tests.deploy.knative.reconciler import SERVICE_LABEL, Reconciler, RevisionFailure
from tests.deploy.knative.schema import SERVICE_CRD, load_crd_schema, prune, schema_problems

GROUP = "serving.knative.dev"
VERSION = "v1"
DEFAULT_TOKEN = "zeroserve-test-token"
DEFAULT_USER = "system:serviceaccount:zeroserve:deployer"
KINDS = {"services": "Service", "revisions": "Revision"}
_RESOURCE_PATH = re.compile(
    rf"^/apis/{re.escape(GROUP)}/{VERSION}/namespaces/(?P<namespace>[^/]+)/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+)(?P<subresource>/status)?)?/?$")
PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml")


class ApiError(Exception):
    """An answer in the API server's Status format."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f"{plural}.{GROUP} \"{name}\" not found",
                    {"name": name, "group": GROUP, "kind": plural})


def group_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    verb: str | None
    code: int = 0


@dataclass
class ClusterState:
    """The stored objects; every access holds `lock`."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    revisions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    resource_version: int = 1000

    def next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def service_keys(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.services)

    def with_service(self, namespace: str, name: str,
                     change: Callable[[dict[str, Any], Callable[[], dict[str, dict[str, Any]]]], None]) -> None:
        """Let the reconciler change a Service's status (and its revisions), bumping resourceVersion on change."""
        with self.lock:
            service = self.services.get((namespace, name))
            if service is None:
                return
            before = _timeless(service.get("status")), {k: _timeless(r["status"]) for k, r in self.revisions.items()}

            def revisions() -> dict[str, dict[str, Any]]:
                return {r["metadata"]["name"]: r for (ns, _), r in self.revisions.items()
                        if ns == namespace and r["metadata"]["labels"].get(SERVICE_LABEL) == name}

            change(service, revisions)
            if _timeless(service.get("status")) != before[0]:
                service["metadata"]["resourceVersion"] = self.next_version()
            for key, revision in self.revisions.items():
                if _timeless(revision["status"]) != before[1].get(key):
                    revision["metadata"]["resourceVersion"] = self.next_version()

    def create_revision(self, namespace: str, revision: dict[str, Any]) -> None:
        with self.lock:
            metadata = revision["metadata"]
            metadata.update(uid=str(uuid.uuid4()), resourceVersion=self.next_version(),
                            creationTimestamp=_now())
            self.revisions[(namespace, metadata["name"])] = revision


def _timeless(value: Any) -> Any:
    """A status without condition timestamps: a status write that changes only those is no change."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


class KnativeApiServer:
    """The server; use as a context manager. Knobs are plain attributes and methods, safe to change live."""

    def __init__(self, *, token: str = DEFAULT_TOKEN, user: str = DEFAULT_USER, domain: str = "example.com",
                 ready_after: float = 0.0, crd_path: Path = SERVICE_CRD,
                 webhook_config: webhook.WebhookConfig | None = None):
        self.tokens = {token: user}
        self.token = token
        self.crd_installed = True
        self.forbidden: set[tuple[str, str]] = set()
        self.webhook_config = webhook_config or webhook.WebhookConfig()
        self.schema = load_crd_schema(crd_path)
        self.state = ClusterState()
        self.reconciler = Reconciler(self.state, domain=domain, ready_after=ready_after)
        self.requests: list[RecordedRequest] = []
        self.concurrent_writes = 0  # see simulate_concurrent_writes
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> KnativeApiServer:
        server = self

        class Handler(_Handler):
            api = server

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="knative-apiserver", daemon=True)
        self._thread.start()
        self.reconciler.start()
        return self

    def stop(self) -> None:
        self.reconciler.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KnativeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._http is not None, "start() the server first"
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"  # an AF_INET server: host is a str

    def write_kubeconfig(self, path: Path, *, token: str | None = None, namespace: str = "default",
                         context: str = "zeroserve-test", server: str | None = None) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": server or self.url}}],
            "users": [{"name": context, "user": {"token": token or self.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                       "namespace": namespace}}],
            "current-context": context,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------------------------------ test knobs

    def forbid(self, verb: str, resource: str = "services") -> None:
        """RBAC: `verb` (get, list, create, update, patch, delete) on `resource` is now 403 Forbidden."""
        self.forbidden.add((verb, resource))

    def fail_revision(self, revision: str, reason: str = "ContainerMissing",
                      message: str = "Unable to fetch image \"registry.example/zeroserve-runtime:missing\": failed "
                                     "to resolve image to digest: GET https://registry.example/v2/: 404 Not Found"
                      ) -> None:
        """The named Revision never becomes ready (now or when it is created): Ready False, reason, message."""
        self.reconciler.failures[revision] = RevisionFailure(reason, message)
        self.reconciler.enqueue_all()

    def simulate_concurrent_writes(self, count: int) -> None:
        """The next `count` updates find the Service modified since it was read (as if another writer
        won the race), so they answer 409 Conflict."""
        self.concurrent_writes = count

    def set_scale(self, revision: str, desired: int, actual: int) -> None:
        self.reconciler.scales[revision] = (desired, actual)
        self.reconciler.enqueue_all()

    def service(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self.state.lock:
            stored = self.state.services.get((namespace, name))
            return _public(stored) if stored else None

    def revision(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self.state.lock:
            stored = self.state.revisions.get((namespace, name))
            return _public(stored) if stored else None

    # ----------------------------------------------------------------------------------------- the API

    def authenticate(self, header: str | None) -> str:
        scheme, _, token = (header or "").partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user

    def authorize(self, user: str, verb: str, plural: str, namespace: str, name: str | None) -> None:
        if (verb, plural) in self.forbidden:
            subject = f"{plural}.{GROUP} \"{name}\"" if name else f"{plural}.{GROUP}"
            raise ApiError(403, "Forbidden",
                           f"{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{plural}\" in API group "
                           f"\"{GROUP}\" in the namespace \"{namespace}\"",
                           {"name": name or "", "group": GROUP, "kind": plural})

    def discovery(self, path: str) -> dict[str, Any]:
        if path in ("/api", "/api/"):
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if path == "/version":
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}
        group = {"name": GROUP, "versions": [{"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}],
                 "preferredVersion": {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}}
        if path in ("/apis", "/apis/"):
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group] if self.crd_installed else []}
        if not self.crd_installed:
            raise group_not_found()
        if path.rstrip("/") == f"/apis/{GROUP}":
            return {"kind": "APIGroup", "apiVersion": "v1", **group}
        if path.rstrip("/") == f"/apis/{GROUP}/{VERSION}":
            verbs = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}", "resources": [
                {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service", "verbs": verbs,
                 "shortNames": ["kservice", "ksvc"], "categories": ["all", "knative", "serving"]},
                {"name": "services/status", "singularName": "", "namespaced": True, "kind": "Service",
                 "verbs": ["get", "patch", "update"]},
                {"name": "revisions", "singularName": "revision", "namespaced": True, "kind": "Revision",
                 "verbs": verbs, "shortNames": ["rev"], "categories": ["all", "knative", "serving"]},
                {"name": "revisions/status", "singularName": "", "namespaced": True, "kind": "Revision",
                 "verbs": ["get", "patch", "update"]},
            ]}
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    def handle(self, method: str, path: str, query: dict[str, list[str]], content_type: str | None, body: bytes,
               user: str, warnings: list[str]) -> tuple[int, dict[str, Any]]:
        if not path.startswith(f"/apis/{GROUP}/"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if not self.crd_installed:
            raise group_not_found()
        match = _RESOURCE_PATH.match(path)
        if match is None or match["plural"] not in KINDS:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        namespace, plural, name, subresource = match["namespace"], match["plural"], match["name"], match["subresource"]
        verb = _verb(method, name, query)
        self.authorize(user, verb, plural, namespace, name)
        if verb == "watch":
            raise ApiError(405, "MethodNotAllowed", "watch is not served by this test server; poll with get")
        if subresource and method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} on {plural}/status is not served by this test server")
        if plural == "revisions" and method not in ("GET", "DELETE"):
            raise ApiError(405, "MethodNotAllowed", f"revisions are created by Knative's controller, not by {method}")
        with self.state.lock:
            table = self.state.services if plural == "services" else self.state.revisions
            if verb == "list":
                return 200, self._list(table, plural, namespace, query)
            if verb == "get":
                stored = table.get((namespace, name))
                if stored is None:
                    raise not_found(plural, name)
                return 200, _public(stored)
            if verb == "delete":
                return 200, self._delete(table, plural, namespace, name)
            if verb == "create":
                return 201, self._create(namespace, _json_body(body), query, user, warnings)
            if verb == "update":
                return 200, self._update(namespace, name, _json_body(body), query, user, warnings)
            if verb == "patch":
                return self._patch(namespace, name, content_type, body, query, user, warnings)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")

    def _list(self, table: dict[tuple[str, str], dict[str, Any]], plural: str, namespace: str,
              query: dict[str, list[str]]) -> dict[str, Any]:
        selector = dict(part.split("=", 1) for part in (query.get("labelSelector", [""])[0]).split(",") if "=" in part)
        items = [_public(obj) for (ns, _), obj in sorted(table.items()) if ns == namespace
                 and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": f"{KINDS[plural]}List", "items": items,
                "metadata": {"resourceVersion": str(self.state.resource_version)}}

    def _delete(self, table: dict[tuple[str, str], dict[str, Any]], plural: str, namespace: str,
                name: str) -> dict[str, Any]:
        stored = table.pop((namespace, name), None)
        if stored is None:
            raise not_found(plural, name)
        if plural == "services":  # Knative's owner references: the Revisions go with their Service
            for key in [k for k, r in self.state.revisions.items()
                        if k[0] == namespace and r["metadata"]["labels"].get(SERVICE_LABEL) == name]:
                del self.state.revisions[key]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": GROUP, "kind": plural, "uid": stored["metadata"]["uid"]}}

    def _create(self, namespace: str, obj: Any, query: dict[str, list[str]], user: str,
                warnings: list[str]) -> dict[str, Any]:
        obj = self._admit(namespace, None, obj, None, query, user, warnings)
        name = obj["metadata"]["name"]
        if (namespace, name) in self.state.services:
            raise ApiError(409, "AlreadyExists", f"services.{GROUP} \"{name}\" already exists",
                           {"name": name, "group": GROUP, "kind": "services"})
        obj["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=self.state.next_version(), generation=1,
                               creationTimestamp=_now())
        obj["metadata"].setdefault("annotations", {}).update({"serving.knative.dev/creator": user,
                                                              "serving.knative.dev/lastModifier": user})
        obj["status"] = {}
        self.state.services[(namespace, name)] = obj
        self.reconciler.enqueue(namespace, name)
        return _public(obj)

    def _update(self, namespace: str, name: str, obj: Any, query: dict[str, list[str]], user: str,
                warnings: list[str]) -> dict[str, Any]:
        current = self.state.services.get((namespace, name))
        if current is None:
            raise not_found("services", name)
        version = obj.get("metadata", {}).get("resourceVersion") if isinstance(obj, dict) else None
        if not version:
            raise _invalid(name, [("metadata.resourceVersion", "FieldValueInvalid",
                                   "Invalid value: 0x0: must be specified for an update")])
        self._check_version(name, current, version)
        return self._store(namespace, name, current, obj, query, user, warnings)

    def _patch(self, namespace: str, name: str, content_type: str | None, body: bytes, query: dict[str, list[str]],
               user: str, warnings: list[str]) -> tuple[int, dict[str, Any]]:
        kind = (content_type or "").split(";")[0].strip()
        if kind not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media types include: "
                           f"{', '.join(PATCH_TYPES)}")
        current = self.state.services.get((namespace, name))
        if kind == "application/apply-patch+yaml":
            if not query.get("fieldManager"):
                raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required "
                                               "value: is required for apply patch",
                               {"group": "meta.k8s.io", "kind": "PatchOptions",
                                "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required "
                                            "for apply patch", "field": "fieldManager"}]})
            try:
                applied = yaml.safe_load(body.decode("utf-8"))
            except (UnicodeDecodeError, yaml.YAMLError) as exc:
                raise ApiError(400, "BadRequest", f"error decoding YAML: {exc}") from None
            if current is None:
                return 201, self._create(namespace, applied, query, user, warnings)
            patched = _apply_merge(_public(current), applied)
        else:
            if current is None:
                raise not_found("services", name)
            patch = _json_body(body)
            if kind == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
                patched = _merge_patch(_public(current), patch)
            else:
                patched = _json_patch(_public(current), patch, name)
        version = patched.get("metadata", {}).get("resourceVersion") if isinstance(patched, dict) else None
        if version:
            self._check_version(name, current, version)
        return 200, self._store(namespace, name, current, patched, query, user, warnings)

    def _store(self, namespace: str, name: str, current: dict[str, Any], obj: Any, query: dict[str, list[str]],
               user: str, warnings: list[str]) -> dict[str, Any]:
        obj = self._admit(namespace, name, obj, current, query, user, warnings)
        metadata = obj["metadata"]
        for key in ("uid", "creationTimestamp", "generation"):
            metadata[key] = current["metadata"][key]
        metadata.setdefault("annotations", {})["serving.knative.dev/creator"] = \
            current["metadata"].get("annotations", {}).get("serving.knative.dev/creator", user)
        metadata["annotations"]["serving.knative.dev/lastModifier"] = user
        if obj.get("spec") != current.get("spec"):
            metadata["generation"] = current["metadata"]["generation"] + 1
        obj["status"] = current.get("status", {})  # the status subresource: not writable here
        if obj == current:
            return _public(current)  # a no-op write keeps its resourceVersion, as the API server does
        metadata["resourceVersion"] = self.state.next_version()
        self.state.services[(namespace, name)] = obj
        self.reconciler.enqueue(namespace, name)
        return _public(obj)

    def _check_version(self, name: str, current: dict[str, Any], version: str) -> None:
        if self.concurrent_writes > 0:
            self.concurrent_writes -= 1
            current["metadata"]["resourceVersion"] = self.state.next_version()
        if str(version) != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on services.{GROUP} \"{name}\": the object "
                                            "has been modified; please apply your changes to the latest version and "
                                            "try again", {"name": name, "group": GROUP, "kind": "services"})

    def _admit(self, namespace: str, name: str | None, obj: Any, current: dict[str, Any] | None,
               query: dict[str, list[str]], user: str, warnings: list[str]) -> dict[str, Any]:
        """Decode, prune, validate against the CRD schema, then Knative's webhook: the stored object."""
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "Object 'Kind' is missing in the request body: not a JSON object")
        if obj.get("apiVersion") != f"{GROUP}/{VERSION}" or obj.get("kind") != "Service":
            raise ApiError(400, "BadRequest", f"the API version in the data ({obj.get('apiVersion')}) and kind "
                                              f"({obj.get('kind')}) do not match serving.knative.dev/v1 Service")
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("name"):
            raise _invalid(name or "", [("metadata.name", "FieldValueRequired", "Required value: name or "
                                                                                  "generateName is required")])
        if name is not None and metadata["name"] != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({metadata['name']}) does not match the name "
                                              f"on the URL ({name})")
        if metadata.setdefault("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                              "sent on the request")
        obj = {k: v for k, v in obj.items() if k != "status"}
        pruned, unknown = prune(obj, self.schema)
        validation = (query.get("fieldValidation") or ["Warn"])[0]
        if unknown and validation == "Strict":
            raise ApiError(400, "BadRequest", "strict decoding error: " +
                           ", ".join(f"unknown field \"{path}\"" for path in unknown))
        if validation == "Warn":
            warnings += [f"unknown field \"{path}\"" for path in unknown]
        problems = schema_problems(pruned, self.schema)
        if problems:
            raise _invalid(metadata["name"], [(p.field, p.reason, p.message) for p in problems])
        webhook.apply_defaults(pruned)
        denied = webhook.validate(pruned, self.webhook_config)
        if current is not None:
            denied += webhook.update_problems(current, pruned)
        if denied:
            raise ApiError(400, "BadRequest", webhook.denial(denied))
        return pruned


def _invalid(name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    message = f"Service.{GROUP} \"{name}\" is invalid: " + ", ".join(f"{f}: {m}" for f, _, m in causes)
    if len(causes) > 1:
        message = f"Service.{GROUP} \"{name}\" is invalid: [" + ", ".join(f"{f}: {m}" for f, _, m in causes) + "]"
    return ApiError(422, "Invalid", message, {"name": name, "group": GROUP, "kind": "Service", "causes": [
        {"reason": reason, "message": cause, "field": field_name} for field_name, reason, cause in causes]})


def _verb(method: str, name: str | None, query: dict[str, list[str]]) -> str:
    if method == "GET":
        if name is None:
            return "watch" if query.get("watch", ["false"])[0] in ("true", "1") else "list"
        return "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "BadRequest", f"couldn't get version/kind; json parse error: {exc}") from None


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _apply_merge(target: Any, applied: Any) -> Any:
    """Server-side apply, approximated: the applied configuration's fields win, lists are replaced whole."""
    if isinstance(target, dict) and isinstance(applied, dict):
        result = dict(target)
        for key, value in applied.items():
            result[key] = _apply_merge(target.get(key), value)
        return result
    return copy.deepcopy(applied)


def _json_patch(document: Any, operations: Any, name: str) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    document = copy.deepcopy(document)
    for operation in operations:
        try:
            op, path = operation["op"], operation["path"]
            if op == "test":
                if _pointer_get(document, path) != operation["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                                   f"testing value {path} failed", {"name": name, "kind": "services"})
            elif op == "remove":
                _pointer_remove(document, path)
            elif op in ("add", "replace"):
                if op == "replace":
                    _pointer_get(document, path)
                document = _pointer_set(document, path, copy.deepcopy(operation["value"]), insert=op == "add")
            elif op in ("move", "copy"):
                value = copy.deepcopy(_pointer_get(document, operation["from"]))
                if op == "move":
                    _pointer_remove(document, operation["from"])
                document = _pointer_set(document, path, value, insert=True)
            else:
                raise ApiError(400, "BadRequest", f"unexpected JSON patch operation {op!r}")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                           f"{operation}: {exc}", {"name": name, "kind": "services"}) from None
    return document


def _pointer_parts(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _pointer_get(document: Any, path: str) -> Any:
    for part in _pointer_parts(path):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def _pointer_set(document: Any, path: str, value: Any, *, insert: bool) -> Any:
    parts = _pointer_parts(path)
    if not parts:
        return value
    parent = _pointer_get(document, "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts[:-1])) \
        if len(parts) > 1 else document
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if insert:
            parent.insert(index, value)
        else:
            parent[index] = value
    else:
        parent[last] = value
    return document


def _pointer_remove(document: Any, path: str) -> None:
    parts = _pointer_parts(path)
    parent = _pointer_get(document, "/" + "/".join(parts[:-1])) if len(parts) > 1 else document
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]


class _Handler(BaseHTTPRequestHandler):
    api: KnativeApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass  # quiet: the test output is for the test

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type")
        record = RecordedRequest(self.command, split.path, query, content_type, None)
        self.api.requests.append(record)
        warnings: list[str] = []
        try:
            user = self.api.authenticate(self.headers.get("Authorization"))
            if not split.path.startswith(f"/apis/{GROUP}/{VERSION}/namespaces/"):
                if self.command != "GET":
                    raise ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed on {split.path}")
                code, payload = 200, self.api.discovery(split.path)
            else:
                match = _RESOURCE_PATH.match(split.path)
                record.verb = _verb(self.command, match["name"] if match else None, query)
                code, payload = self.api.handle(self.command, split.path, query, content_type, body, user, warnings)
        except ApiError as error:
            code, payload = error.code, error.status()
        record.code = code
        data = json.dumps(payload).encode()
        self.send_response(code, HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else None)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for warning in warnings:
            self.send_header("Warning", f"299 - \"{warning}\"")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@contextmanager
def running_apiserver(**options: Any) -> Iterator[KnativeApiServer]:
    server = KnativeApiServer(**options).start()
    try:
        yield server
    finally:
        server.stop()
