"""A small Knative controller: what Serving writes back into a Service's status, and its Revisions.

For every Service written it (in a thread, like the real controller, so clients must wait and poll):
- creates the Revision its template names (`spec.template.metadata.name`, or `<service>-<generation>`),
  labelled `serving.knative.dev/service` and `serving.knative.dev/configuration`, with the template's
  annotations and spec; a Revision becomes Ready after `ready_after` seconds, or fails for good when the
  test asked for it (`fail_revision`: reason ContainerMissing, ... and a message), and carries
  `status.desiredReplicas` / `status.actualReplicas` (Revision's own field names in the CRD; the
  PodAutoscaler calls them desiredScale/actualScale), from `initial-scale` or what the test set;
- sets the Service's `status`: `observedGeneration`, conditions `Ready`, `ConfigurationsReady` and
  `RoutesReady` (a traffic target naming no Revision: RoutesReady/Ready False, reason
  RevisionMissing; a failed latest Revision: ConfigurationsReady/Ready False, reason RevisionFailed),
  `url`, `address`, `latestCreatedRevisionName`, `latestReadyRevisionName`, and `traffic` resolved
  with each tag's URL. Like Knative's Route, `status.traffic` changes only once the new split can be
  served: a revision that never becomes ready leaves the previous traffic as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.deploy.knative.apiserver import ClusterState

SERVICE_LABEL = "serving.knative.dev/service"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"


@dataclass
class RevisionFailure:
    reason: str
    message: str


def condition(kind: str, status: str, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "status": status,
                             "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return entry


class Reconciler:
    def __init__(self, state: ClusterState, *, domain: str, ready_after: float = 0.0):
        self.state = state
        self.domain = domain
        self.ready_after = ready_after
        self.failures: dict[str, RevisionFailure] = {}
        self.scales: dict[str, tuple[int, int]] = {}
        self._pending: set[tuple[str, str]] = set()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="knative-reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(timeout=5)

    def enqueue(self, namespace: str, name: str) -> None:
        with self._wake:
            self._pending.add((namespace, name))
            self._wake.notify_all()

    def enqueue_all(self) -> None:
        for namespace, name in self.state.service_keys():
            self.enqueue(namespace, name)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopped:
                    # Revisions waiting for `ready_after` need another look without a write.
                    self._wake.wait(timeout=0.05 if self.ready_after else 1.0)
                    if self.ready_after:
                        break
                if self._stopped:
                    return
                pending, self._pending = self._pending, set()
            for key in pending or self.state.service_keys():
                self._reconcile(*key)

    # -------------------------------------------------------------------------------------------------

    def _reconcile(self, namespace: str, name: str) -> None:
        def update(service: dict[str, Any], revisions: Callable[[], dict[str, dict[str, Any]]]) -> None:
            self._update(namespace, name, service, revisions)

        self.state.with_service(namespace, name, update)

    def _update(self, namespace: str, name: str, service: dict[str, Any],
                revisions: Callable[[], dict[str, dict[str, Any]]]) -> None:
        generation = service["metadata"].get("generation", 1)
        template = service["spec"]["template"]
        revision_name = template.get("metadata", {}).get("name") or f"{name}-{generation:05d}"
        known = revisions()
        if revision_name not in known:
            self.state.create_revision(namespace, self._new_revision(namespace, name, revision_name, template,
                                                                     generation))
            known = revisions()
        now = time.monotonic()
        for revision in known.values():
            self._update_revision(revision, now)
        ready = {n: r for n, r in known.items() if _is_ready(r)}
        latest_ready = max(ready, key=lambda n: int(ready[n]["metadata"]["labels"][GENERATION_LABEL]), default=None)
        status = service.setdefault("status", {})
        status["observedGeneration"] = generation
        status["latestCreatedRevisionName"] = revision_name
        if latest_ready:
            status["latestReadyRevisionName"] = latest_ready
        else:
            status.pop("latestReadyRevisionName", None)
        status["url"] = f"http://{name}.{namespace}.{self.domain}"
        status["address"] = {"url": f"http://{name}.{namespace}.svc.cluster.local"}

        latest = known[revision_name]
        failure = _failed(latest)
        if failure:
            configurations = condition("ConfigurationsReady", "False", "RevisionFailed",
                                       f"Revision \"{revision_name}\" failed with message: {failure['message']}.")
        elif revision_name in ready:
            configurations = condition("ConfigurationsReady", "True")
        else:
            configurations = condition("ConfigurationsReady", "Unknown", "RevisionMissing",
                                       f"Configuration \"{name}\" is waiting for a Revision to become ready.")
        routes, resolved = self._route(name, namespace, service["spec"].get("traffic") or [], known, latest_ready)
        if routes["status"] == "True":
            status["traffic"] = resolved
        deciding = next((c for c in (configurations, routes) if c["status"] == "False"), None) or \
            next((c for c in (configurations, routes) if c["status"] == "Unknown"), None)
        if deciding is None:
            ready_condition = condition("Ready", "True")
        else:
            ready_condition = condition("Ready", deciding["status"], deciding.get("reason"), deciding.get("message"))
        status["conditions"] = [configurations, ready_condition, routes]

    def _route(self, name: str, namespace: str, traffic: list[dict[str, Any]], known: dict[str, dict[str, Any]],
               latest_ready: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        resolved = []
        for target in traffic:
            revision = latest_ready if target.get("latestRevision") else target.get("revisionName")
            if revision is None:
                return condition("RoutesReady", "Unknown", "RevisionMissing",
                                 f"Configuration \"{name}\" is waiting for a Revision to become ready."), []
            if revision not in known:
                return condition("RoutesReady", "False", "RevisionMissing",
                                 f"Revision \"{revision}\" referenced in traffic not found."), []
            if _failed(known[revision]):
                return condition("RoutesReady", "False", "RevisionMissing",
                                 f"Revision \"{revision}\" failed to become ready."), []
            if not _is_ready(known[revision]):
                return condition("RoutesReady", "Unknown", "RevisionMissing",
                                 f"Revision \"{revision}\" is not yet ready."), []
            entry = {"revisionName": revision, "percent": target.get("percent", 0),
                     "latestRevision": bool(target.get("latestRevision"))}
            if target.get("tag"):
                entry["tag"] = target["tag"]
                entry["url"] = f"http://{target['tag']}-{name}.{namespace}.{self.domain}"
            resolved.append(entry)
        return condition("RoutesReady", "True"), resolved

    def _new_revision(self, namespace: str, service: str, name: str, template: dict[str, Any],
                      generation: int) -> dict[str, Any]:
        metadata = template.get("metadata", {})
        return {
            "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
            "metadata": {
                "name": name, "namespace": namespace,
                "labels": {**(metadata.get("labels") or {}), SERVICE_LABEL: service, CONFIGURATION_LABEL: service,
                           GENERATION_LABEL: str(generation)},
                "annotations": dict(metadata.get("annotations") or {}),
                "generation": 1,
            },
            "spec": dict(template.get("spec", {})),
            "status": {"observedGeneration": 1,
                       "conditions": [condition("Ready", "Unknown", "Deploying")]},
            "_created": time.monotonic(),
        }

    def _update_revision(self, revision: dict[str, Any], now: float) -> None:
        name = revision["metadata"]["name"]
        status = revision["status"]
        failure = self.failures.get(name)
        if failure:
            status["conditions"] = [condition("Ready", "False", failure.reason, failure.message),
                                    condition("ContainerHealthy", "False", failure.reason, failure.message)]
            status["desiredReplicas"] = status["actualReplicas"] = 0
            return
        if now - revision.get("_created", now) < self.ready_after:
            return
        annotations = revision["metadata"].get("annotations", {})
        initial = int(annotations.get("autoscaling.knative.dev/initial-scale", "1"))
        low = int(annotations.get("autoscaling.knative.dev/min-scale", "0"))
        desired, actual = self.scales.get(name, (max(initial, low), max(initial, low)))
        status["conditions"] = [condition("Ready", "True"), condition("ContainerHealthy", "True"),
                                condition("ResourcesAvailable", "True")]
        status["desiredReplicas"], status["actualReplicas"] = desired, actual


def _is_ready(revision: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in revision["status"].get("conditions", []))


def _failed(revision: dict[str, Any]) -> dict[str, Any] | None:
    conditions = revision["status"].get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready" and c["status"] == "False"), None)
