"""The Knative Serving target: deploy/targets.py's `Target` over the translation and the cluster client.

- `check`: the translation alone (pure): a function Knative cannot run (auth: token, reserved env, no
  runtime image, an artifact store the cluster cannot reach) is refused before anything changes.
- `apply_revision`: the Service with the new revision as its template, `spec.traffic` kept as stored
  (a first deploy: all traffic to the revision), then wait until Knative reports that revision ready.
  A revision Knative cannot make ready fails the deploy with Knative's reason and message, and the
  traffic Knative serves is the one it served before.
- `follow_route`: a merge patch of `spec.traffic` alone (the template stays as stored).
- `settle`: after the route change committed, wait until the Service is Ready again and log its URL.
- `delete`: the Service (Knative deletes its Revisions).
- `describe` / `status`: Knative's Ready condition, URL, tag URLs, latest ready revision; each
  Revision's desired and actual scale.
- `export`: the Service for the function's newest revision and current route, rendered as a deploy
  applies it (`zeroserve export knative FN`).

The cluster client (deploy/knative/cluster.py, which imports the kubernetes client) is imported and
connected on first use; a connection that failed for want of a kubeconfig or a reachable API server is
dropped, so the next call reads the kubeconfig again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from deploy.knative.render import render_yaml
from deploy.knative.service import (
    KnativeService,
    KnativeSettings,
    KnativeTranslationError,
    cluster_artifact_uri,
    knative_service,
    service_traffic,
)
from deploy.targets import Export, NewRevision, RoutedRevision, TargetError, TargetRefused
from protocol.manifest import FunctionManifest
from revisions.build_log import BuildLog
from revisions.registry.notices import RouteNotice
from revisions.traffic import TrafficTarget

if TYPE_CHECKING:
    from deploy.knative.cluster import KnativeCluster, ServiceState

NAME = "knative"
DEFAULT_READY_TIMEOUT = 300.0
YAML = "application/yaml"


class KnativeTarget:
    name = NAME

    def __init__(self, settings: KnativeSettings, *, store: str | None, context: str | None = None,
                 config_file: str | None = None, ready_timeout: float = DEFAULT_READY_TIMEOUT,
                 connect: Callable[[], KnativeCluster] | None = None):
        self.settings = settings
        self.store = store  # ZEROSERVE_ARTIFACTS: the pods fetch revisions from it
        self.context = context
        self.config_file = config_file
        self.ready_timeout = ready_timeout
        self._connect_with = connect
        self._cluster: KnativeCluster | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ deploy

    def check(self, new: NewRevision) -> list[str]:
        """The translation's refusals, then whether the cluster is there at all (kubeconfig, API server,
        Knative Serving installed): a deploy that cannot work fails before it changes anything."""
        notes = self._service(new.manifest, new.revision, new.digest, [TrafficTarget.to(new.revision, 100)],
                              new.revision).notes
        with self._connected() as cluster:
            cluster.check_installed()
        return list(notes)

    def apply_revision(self, log: BuildLog, new: NewRevision) -> None:
        service = self._service(new.manifest, new.revision, new.digest, [TrafficTarget.to(new.revision, 100)],
                                new.revision)
        with self._connected() as cluster:
            stored = cluster.apply(service.service, keep_traffic=new.routed)
            created = stored.get("metadata", {}).get("generation") == 1
            log.info(f"knative: {'created' if created else 'updated'} Service {new.function} (namespace "
                     f"{cluster.namespace}, {cluster.server}) with template {new.revision}"
                     + ("; its traffic stays as it is until the revision is ready" if new.routed and not created
                        else ""))
            try:
                cluster.wait_ready(new.function, self.ready_timeout, revision=new.revision, on_progress=log.info)
            except Exception:
                if created:
                    self._remove_created(cluster, new.function, log)
                raise

    def _remove_created(self, cluster: KnativeCluster, function: str, log: BuildLog) -> None:
        """A first deploy that failed leaves no Service behind: nothing served before, nothing should now."""
        from deploy.knative.cluster import KnativeClusterError

        try:
            cluster.delete(function)
            log.info(f"knative: deleted Service {function} again (this deploy created it)")
        except KnativeClusterError as exc:
            log.info(f"knative: could not delete Service {function} again: {exc}")

    def follow_route(self, notice: RouteNotice) -> None:
        try:
            traffic = service_traffic(notice.function, notice.targets, latest_ready=notice.latest_ready or "")
        except KnativeTranslationError as exc:
            raise TargetRefused(self.name, str(exc)) from None
        with self._connected() as cluster:
            cluster.patch_traffic(notice.function, traffic)

    def settle(self, function: str, log: BuildLog) -> None:
        with self._connected() as cluster:
            state = cluster.wait_ready(function, self.ready_timeout, on_progress=log.info)
        split = ", ".join(f"{t.get('revisionName')}={t.get('percent', 0)}" + (f" ({t['tag']})" if t.get("tag") else "")
                          for t in state.traffic)
        log.info(f"knative: {function} Ready at {state.url}; traffic {split or '(reported soon)'}")
        for tag, url in sorted(state.tag_urls.items()):
            log.info(f"knative: tag {tag}: {url}")

    def delete(self, function: str) -> bool:
        with self._connected() as cluster:
            return cluster.delete(function)

    # ------------------------------------------------------------------------------------------- views

    def describe(self, function: str) -> dict[str, Any]:
        with self._connected() as cluster:
            state = cluster.read_status(function, revisions=False)
            namespace = cluster.namespace
        return {"namespace": namespace, **_service_view(state)}

    def status(self, function: str) -> dict[str, Any]:
        with self._connected() as cluster:
            state = cluster.read_status(function)
        return {"revisions": [{"revision": r.name, "ready": r.ready, "reason": r.reason, "message": r.message,
                               "desired": r.desired_scale, "actual": r.actual_scale} for r in state.revisions]}

    def export(self, routed: RoutedRevision) -> Export:
        service = self._service(routed.manifest, routed.revision, routed.digest, routed.route, routed.latest_ready)
        return Export(render_yaml(service.service), YAML, service.notes)

    # ----------------------------------------------------------------------------------------- private

    def _service(self, manifest: FunctionManifest, revision: str, digest: str, route: Sequence[TrafficTarget],
                 latest_ready: str | None) -> KnativeService:
        """The translation (deploy/knative/service.py), its refusals as TargetRefused."""
        try:
            uri = cluster_artifact_uri(self.store, digest)
            return knative_service(manifest, revision, uri, route, self.settings, latest_ready=latest_ready)
        except KnativeTranslationError as exc:
            raise TargetRefused(self.name, str(exc)) from None

    @contextmanager
    def _connected(self) -> Iterator[KnativeCluster]:
        """The cluster, connected on first use; its errors as TargetError (message: what to do)."""
        from deploy.knative.cluster import ApiUnreachableError, KnativeClusterError, KubeconfigError

        try:
            yield self._connection()
        except KnativeClusterError as exc:
            if isinstance(exc, KubeconfigError | ApiUnreachableError):
                self._forget()  # read the kubeconfig again next time: it may have been fixed
            raise TargetError(self.name, str(exc)) from None

    def _connection(self) -> KnativeCluster:
        with self._lock:
            if self._cluster is None:
                if self._connect_with is not None:
                    self._cluster = self._connect_with()
                else:
                    from deploy.knative.cluster import KnativeCluster

                    self._cluster = KnativeCluster.connect(self.settings.namespace, context=self.context,
                                                           config_file=self.config_file)
            return self._cluster

    def _forget(self) -> None:
        with self._lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()


def _service_view(state: ServiceState) -> dict[str, Any]:
    return {
        "service": state.name, "ready": state.ready, "reason": state.reason, "message": state.message,
        "url": state.url, "tag_urls": dict(state.tag_urls), "latest_ready_revision": state.latest_ready_revision,
        "latest_created_revision": state.latest_created_revision,
        "traffic": [{"revision": t.get("revisionName"), "percent": t.get("percent", 0), "tag": t.get("tag"),
                     "url": t.get("url")} for t in state.traffic],
    }


__all__ = ["DEFAULT_READY_TIMEOUT", "NAME", "KnativeTarget"]
