"""deploy.knative.cluster against the Kubernetes API test server: apply, wait, re-route, read, delete, and
the errors a user meets (no kubeconfig, unreachable API server, Knative missing, RBAC, refusals)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from deploy.knative.cluster import (
    NOT_INSTALLED,
    ApiUnreachableError,
    ForbiddenError,
    KnativeCluster,
    KnativeClusterError,
    KnativeNotInstalledError,
    KubeconfigError,
    ReadyTimeoutError,
    ServiceFailedError,
    ServiceRejectedError,
    load_api_client,
)
from deploy.knative.service import KnativeService, KnativeSettings, knative_service, service_traffic
from protocol.manifest import parse_manifest
from revisions.traffic import TrafficTarget
from tests.deploy.knative.apiserver import KnativeApiServer, running_apiserver

SETTINGS = KnativeSettings(image="registry.example/zeroserve-runtime:0.1", secret_name="zeroserve-store")
MANIFEST = parse_manifest({"name": "iris", "model": "model.onnx", "scaling": {"target": 10, "max_scale": 4}})


def uri(n: int) -> str:
    return f"s3://models/zeroserve@sha256:{n:064x}"


def iris(number: int, route: list[TrafficTarget]) -> KnativeService:
    return knative_service(MANIFEST, f"iris-{number:05d}", uri(number), route, SETTINGS)


def only(revision: str) -> list[TrafficTarget]:
    return [TrafficTarget.to(revision, 100)]


@pytest.fixture
def cluster(kubeconfig: Path) -> KnativeCluster:
    with KnativeCluster.connect(config_file=kubeconfig) as connected:
        yield connected


def test_apply_creates_then_updates_and_waits_for_ready(cluster: KnativeCluster, apiserver: KnativeApiServer) -> None:
    cluster.check_installed()
    first = cluster.apply(iris(1, only("iris-00001")).service)
    assert first["metadata"]["generation"] == 1
    state = cluster.wait_ready("iris", timeout=10, revision="iris-00001")
    assert (state.ready, state.url, state.latest_ready_revision) == (True, "http://iris.default.example.com",
                                                                      "iris-00001")
    # A second revision, with the route still on the first: the new one must become ready before it gets traffic.
    second = cluster.apply(iris(2, only("iris-00001")).service)
    assert second["metadata"]["generation"] == 2
    assert second["metadata"]["annotations"]["serving.knative.dev/creator"]  # Knative's own annotation kept
    state = cluster.wait_ready("iris", timeout=10, revision="iris-00002")
    assert state.latest_ready_revision == "iris-00002"
    assert [t["revisionName"] for t in state.traffic] == ["iris-00001"]
    # The same Service again is a no-op, not a refused template change.
    assert cluster.apply(iris(2, only("iris-00001")).service)["metadata"]["generation"] == 2


def test_apply_retries_conflicting_writes(cluster: KnativeCluster, apiserver: KnativeApiServer) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10)  # the controller's status writes are done: only ours conflict now
    apiserver.simulate_concurrent_writes(2)
    cluster.apply(iris(2, only("iris-00001")).service)
    updates = [r for r in apiserver.requests if r.method == "PUT"]
    assert [r.code for r in updates] == [409, 409, 200]
    assert apiserver.service("iris")["spec"]["template"]["metadata"]["name"] == "iris-00002"


def test_patch_traffic_changes_the_split_and_nothing_else(cluster: KnativeCluster,
                                                          apiserver: KnativeApiServer) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    cluster.apply(iris(2, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10, revision="iris-00002")
    template = apiserver.service("iris")["spec"]["template"]
    route = [TrafficTarget.to("iris-00001", 90), TrafficTarget.to("iris-00002", 10, tag="canary")]
    cluster.patch_traffic("iris", service_traffic("iris", route, latest_ready="iris-00002"))
    assert apiserver.requests[-1].content_type == "application/merge-patch+json"
    assert apiserver.service("iris")["spec"]["template"] == template
    state = cluster.wait_ready("iris", timeout=10)
    assert [(t["revisionName"], t["percent"]) for t in state.traffic] == [("iris-00001", 90), ("iris-00002", 10)]
    assert state.tag_urls == {"canary": "http://canary-iris.default.example.com"}


def test_apply_keeping_traffic_leaves_the_stored_split_even_one_written_meanwhile(
        cluster: KnativeCluster, apiserver: KnativeApiServer) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    cluster.apply(iris(2, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10, revision="iris-00002")
    split = [TrafficTarget.to("iris-00001", 50), TrafficTarget.to("iris-00002", 50)]
    cluster.patch_traffic("iris", service_traffic("iris", split, latest_ready="iris-00002"))
    apiserver.simulate_concurrent_writes(1)  # the first replace finds the Service changed since it was read
    stored = cluster.apply(iris(3, only("iris-00003")).service, keep_traffic=True)
    assert stored["spec"]["template"]["metadata"]["name"] == "iris-00003"
    assert [(t["revisionName"], t["percent"]) for t in stored["spec"]["traffic"]] == [("iris-00001", 50),
                                                                                    ("iris-00002", 50)]
    assert cluster.wait_ready("iris", timeout=10, revision="iris-00003").latest_ready_revision == "iris-00003"


def test_read_status_reports_revision_scales(cluster: KnativeCluster, apiserver: KnativeApiServer) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10)
    apiserver.set_scale("iris-00001", 4, 2)
    cluster.apply(iris(2, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10, revision="iris-00002")
    revisions = {r.name: (r.ready, r.desired_scale, r.actual_scale) for r in cluster.read_status("iris").revisions}
    assert revisions == {"iris-00001": (True, 4, 2), "iris-00002": (True, 1, 1)}


def test_a_revision_knative_cannot_make_ready_is_reported_and_leaves_traffic(cluster: KnativeCluster,
                                                                             apiserver: KnativeApiServer) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10)
    apiserver.fail_revision("iris-00002", "ContainerMissing", 'Unable to fetch image "registry.example/nope"')
    cluster.apply(iris(2, only("iris-00001")).service)
    progress: list[str] = []
    with pytest.raises(ServiceFailedError) as failed:
        cluster.wait_ready("iris", timeout=10, revision="iris-00002", on_progress=progress.append)
    assert failed.value.reason == "RevisionFailed"
    assert failed.value.knative_message == ('Revision "iris-00002" failed with message: Unable to fetch image '
                                            '"registry.example/nope".')
    assert "RevisionFailed" in str(failed.value)
    state = cluster.read_status("iris")
    assert [t["revisionName"] for t in state.traffic] == ["iris-00001"] and state.latest_ready_revision == "iris-00001"


def test_traffic_to_a_missing_revision_is_revision_missing(cluster: KnativeCluster) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10)
    cluster.patch_traffic("iris", [{"revisionName": "iris-00007", "percent": 100, "latestRevision": False}])
    with pytest.raises(ServiceFailedError) as failed:
        cluster.wait_ready("iris", timeout=10)
    assert failed.value.reason == "RevisionMissing"
    assert 'Revision "iris-00007" referenced in traffic not found.' in str(failed.value)


def test_wait_ready_times_out_with_the_last_condition(tmp_path: Path) -> None:
    with running_apiserver(ready_after=60) as slow:
        with KnativeCluster.connect(config_file=slow.write_kubeconfig(tmp_path / "kubeconfig")) as cluster:
            cluster.apply(iris(1, only("iris-00001")).service)
            with pytest.raises(ReadyTimeoutError) as timed_out:
                cluster.wait_ready("iris", timeout=0.5)
    assert timed_out.value.reason == "RevisionMissing"
    assert "was not ready after 0.5s" in str(timed_out.value) and "waiting for a Revision" in str(timed_out.value)


def test_delete_removes_the_service_and_its_revisions(cluster: KnativeCluster, apiserver: KnativeApiServer) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    cluster.wait_ready("iris", timeout=10)
    assert cluster.delete("iris") is True
    assert apiserver.service("iris") is None and apiserver.revision("iris-00001") is None
    assert cluster.delete("iris") is False


def test_refusals_carry_the_servers_message(cluster: KnativeCluster) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    changed = iris(1, only("iris-00001")).service
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/zeroserve-runtime:0.2"
    with pytest.raises(ServiceRejectedError) as rejected:
        cluster.apply(changed)
    assert rejected.value.code == 400
    assert "Saw the following changes without a name change" in str(rejected.value)
    typo = iris(2, only("iris-00001")).service
    typo["spec"]["template"]["spec"]["containerConcurency"] = 3  # Strict: never dropped in silence
    with pytest.raises(ServiceRejectedError, match='unknown field "spec.template.spec.containerConcurency"'):
        cluster.apply(typo)


def test_a_service_zeroserve_did_not_create_is_never_replaced(cluster: KnativeCluster,
                                                              apiserver: KnativeApiServer) -> None:
    foreign = iris(1, only("iris-00001")).service
    foreign["metadata"]["labels"] = {"app": "someone-elses"}
    cluster.apply(foreign)
    with pytest.raises(KnativeClusterError, match="exists and is not managed by zeroserve"):
        cluster.apply(iris(2, only("iris-00001")).service)
    assert apiserver.service("iris")["spec"]["template"]["metadata"]["name"] == "iris-00001"


def test_rbac_403_names_the_verb_and_resource(cluster: KnativeCluster, apiserver: KnativeApiServer) -> None:
    cluster.apply(iris(1, only("iris-00001")).service)
    apiserver.forbid("update")
    with pytest.raises(ForbiddenError) as forbidden:
        cluster.apply(iris(2, only("iris-00001")).service)
    assert (forbidden.value.verb, forbidden.value.resource) == ("update", "services")
    assert "may not update services.serving.knative.dev in namespace 'default'" in str(forbidden.value)
    apiserver.forbid("list", "revisions")
    with pytest.raises(ForbiddenError, match="may not list revisions.serving.knative.dev"):
        cluster.read_status("iris")


def test_knative_not_installed(cluster: KnativeCluster, apiserver: KnativeApiServer) -> None:
    apiserver.crd_installed = False
    for attempt in (cluster.check_installed, lambda: cluster.apply(iris(1, only("iris-00001")).service),
                    lambda: cluster.read_status("iris"), lambda: cluster.delete("iris")):
        with pytest.raises(KnativeNotInstalledError) as missing:
            attempt()
        assert str(missing.value) == NOT_INSTALLED
    assert NOT_INSTALLED == "Knative Serving is not installed in this cluster: no services.serving.knative.dev"


def test_no_kubeconfig_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    with pytest.raises(KubeconfigError, match=r"no kubeconfig: KUBECONFIG \(.*nowhere\) does not exist"):
        load_api_client()
    with pytest.raises(KubeconfigError, match="does not exist"):
        KnativeCluster.connect(config_file=tmp_path / "missing")
    (tmp_path / "garbage").write_text("not: [a kubeconfig")
    with pytest.raises(KubeconfigError, match="garbage"):
        load_api_client(config_file=tmp_path / "garbage")


def test_an_unknown_context_is_a_clear_error(kubeconfig: Path) -> None:
    with pytest.raises(KubeconfigError, match="context 'production'"):
        load_api_client(config_file=kubeconfig, context="production")


def test_kubeconfig_from_the_environment_and_context(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"/nonexistent/config:{kubeconfig}")
    with KnativeCluster.connect(context="zeroserve-test") as cluster:
        cluster.check_installed()


def test_an_unreachable_api_server_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with running_apiserver() as server:  # only for its kubeconfig writer
        config = server.write_kubeconfig(tmp_path / "kubeconfig", server=f"http://127.0.0.1:{port}")
    with KnativeCluster.connect(config_file=config) as cluster:
        with pytest.raises(ApiUnreachableError) as unreachable:
            cluster.read_status("iris")
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in str(unreachable.value)
