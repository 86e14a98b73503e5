"""The Knative target end to end: a real `zeroserve up` and the real CLI (and git), with KUBECONFIG pointing at
the Kubernetes API test server (tests/deploy/knative/apiserver.py) and the artifact store on moto's S3 server.

After every step the Service is read back from the API server: its template, its `spec.traffic`, and what the
reconciler reports in `status`, so what passes here is what a cluster would hold.
"""

from __future__ import annotations

import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from deploy.knative.cluster import KnativeCluster
from tests.deploy.git.gitrepo import WorkRepo, remote_url
from tests.deploy.knative.apiserver import KnativeApiServer, running_apiserver
from tests.polling import wait_for
from tests.revisions.conftest import FAKE_CREDENTIALS, REGION, moto_endpoint, s3_client  # noqa: F401  (fixture)
from tests.zeroserve.control.harness import PlatformProcess, change_model, function_dir, run_cli
from tests.zeroserve.control.test_openapi import closed, success_schemas

NAMESPACE = "ml"
IMAGE = "registry.example/zeroserve-runtime:0.1"
SECRET = "zeroserve-store"
IRIS_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def platform_env(kubeconfig: Path, store: str | None, endpoint: str, **more: str) -> dict[str, str]:
    env = {"KUBECONFIG": str(kubeconfig), "ZEROSERVE_RUNTIME_IMAGE": IMAGE, "ZEROSERVE_KUBE_NAMESPACE": NAMESPACE,
           "ZEROSERVE_KUBE_STORE_SECRET": SECRET, "ZEROSERVE_S3_ENDPOINT_URL": endpoint,
           "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"], "AWS_DEFAULT_REGION": REGION, **more}
    if store is not None:
        env["ZEROSERVE_ARTIFACTS"] = store
    return env


def new_bucket(endpoint: str) -> str:
    bucket = f"zs-knative-{uuid.uuid4().hex[:10]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/functions"


@pytest.fixture(scope="module")
def cluster_api() -> Iterator[KnativeApiServer]:
    with running_apiserver() as server:
        yield server


@pytest.fixture(scope="module")
def knative_platform(cluster_api: KnativeApiServer, moto_endpoint: str,  # noqa: F811
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformProcess, str]]:
    work = tmp_path_factory.mktemp("knative-platform")
    kubeconfig = cluster_api.write_kubeconfig(work / "kubeconfig", namespace=NAMESPACE)
    store = new_bucket(moto_endpoint)
    platform = PlatformProcess(work / "data", platform_env(kubeconfig, store, moto_endpoint)).start()
    try:
        yield platform, store
    finally:
        platform.stop()


def service(api: KnativeApiServer, name: str) -> dict[str, Any]:
    stored = api.service(name, NAMESPACE)
    assert stored is not None, f"no Knative Service {name} in {NAMESPACE}"
    return stored


def spec_split(api: KnativeApiServer, name: str) -> list[tuple[str, int, str | None]]:
    return [(t["revisionName"], t["percent"], t.get("tag")) for t in service(api, name)["spec"]["traffic"]]


def served_split(api: KnativeApiServer, name: str) -> list[tuple[str, int, str | None]]:
    """What Knative reports serving (status.traffic), once it has caught up with the latest spec."""
    stored = service(api, name)
    status = stored.get("status") or {}
    if status.get("observedGeneration") != stored["metadata"]["generation"]:
        return []
    return [(t["revisionName"], t["percent"], t.get("tag")) for t in status.get("traffic") or []]


def cli(platform: PlatformProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(platform, *args)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_deploy_split_promote_rollback_failed_revision_and_delete(knative_platform, cluster_api: KnativeApiServer,
                                                                  tmp_path: Path) -> None:
    platform, store = knative_platform
    api = cluster_api
    source = function_dir(tmp_path, "iris", targets=["local", "knative"])

    # 1. The first deploy: built once, the Service applied and ready, the build log says so.
    out = ok(cli(platform, "deploy", str(source)))
    assert "knative: created Service iris (namespace ml" in out and "knative ok" in out, out
    assert "knative: iris Ready at http://iris.ml.example.com" in out, out
    with platform.client() as client:
        first = client.describe("iris")
    digest = first["revisions"][0]["digest"]
    stored = service(api, "iris")
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "zeroserve"
    template = stored["spec"]["template"]
    assert template["metadata"]["name"] == "iris-00001"
    container = template["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert {"name": "ZEROSERVE_ARTIFACT", "value": f"{store}@{digest}"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": SECRET}}]
    assert not any(e["name"].startswith("AWS_SECRET") for e in container["env"])  # credentials only by reference
    assert spec_split(api, "iris") == [("iris-00001", 100, None)]
    assert (stored["status"]["latestReadyRevisionName"], stored["status"]["url"]) == ("iris-00001",
                                                                                      "http://iris.ml.example.com")
    # targets: [local, knative] serves both: the local function URL answers too.
    local = httpx.post(f"{platform.url}/fn/iris/v2/models/iris/infer", json=IRIS_BODY, timeout=120)
    assert local.status_code == 200, local.text

    # 2. A second revision takes all traffic (the manifest's policy), on the cluster too.
    change_model(source, "second")
    ok(cli(platform, "deploy", str(source)))
    assert service(api, "iris")["spec"]["template"]["metadata"]["name"] == "iris-00002"
    assert spec_split(api, "iris") == [("iris-00002", 100, None)]

    # 3. A 90/10 split with a tag: spec.traffic is the route, and Knative serves it with the tag's URL.
    ok(cli(platform, "traffic", "iris", "iris-00001=90", "iris-00002=10", "--tag", "canary=iris-00002"))
    split = [("iris-00001", 90, None), ("iris-00002", 10, "canary")]
    assert spec_split(api, "iris") == split
    wait_for(lambda: served_split(api, "iris") == split, "Knative serving the 90/10 split", timeout=10)
    assert service(api, "iris")["spec"]["template"]["metadata"]["name"] == "iris-00002"  # template untouched

    # 4. describe: Knative's Ready condition, URL, tag URL, latest ready revision.
    described = ok(cli(platform, "describe", "iris"))
    assert "targets:  local, knative" in described, described
    assert "knative: Ready  Service iris in namespace ml" in described, described
    assert "url:                   http://iris.ml.example.com" in described
    assert "latest ready revision: iris-00002" in described
    assert "tag canary: http://canary-iris.ml.example.com" in described
    detail = checked_answer(platform, "/api/v1/functions/{function}", function="iris")
    assert detail["targets"] == ["local", "knative"]
    [knative] = detail["target_states"]
    assert (knative["target"], knative["ready"], knative["tag_urls"]) == (
        "knative", True, {"canary": "http://canary-iris.ml.example.com"})

    # 5. status: each Revision's desired and actual scale, as Knative reports them.
    api.set_scale("iris-00002", desired=3, actual=2)
    row = re.compile(r"iris-00002\s*│\s*yes\s*│\s*3\s*│\s*2\s*│")
    wait_for(lambda: row.search(ok(cli(platform, "status", "iris"))), "status showing Knative's scale of iris-00002",
             timeout=20)
    scale = checked_answer(platform, "/api/v1/functions/{function}/status", function="iris")
    [target] = scale["targets"]
    assert {(r["revision"], r["desired"], r["actual"]) for r in target["revisions"]} >= {("iris-00002", 3, 2)}

    # 6. export: the Service a deploy applies, byte for byte: applying it again changes nothing.
    exported = ok(cli(platform, "export", "knative", "iris"))
    document = yaml.safe_load(exported)
    assert document["spec"]["traffic"] == [
        {"revisionName": "iris-00001", "percent": 90, "latestRevision": False},
        {"revisionName": "iris-00002", "percent": 10, "latestRevision": False, "tag": "canary"}]
    before = service(api, "iris")["metadata"]
    with KnativeCluster.connect(NAMESPACE, config_file=platform_kubeconfig(platform)) as cluster:
        after = cluster.apply(document)["metadata"]
    assert (after["resourceVersion"], after["generation"]) == (before["resourceVersion"], before["generation"])
    answer = checked_answer(platform, "/api/v1/functions/{function}/export/{target}", function="iris", target="knative")
    assert (answer["revision"], answer["media_type"], answer["content"]) == ("iris-00002", "application/yaml", exported)

    # 7. promote and rollback follow on the cluster.
    ok(cli(platform, "promote", "iris", "canary"))
    assert spec_split(api, "iris") == [("iris-00002", 100, "canary")]
    ok(cli(platform, "rollback", "iris"))
    assert spec_split(api, "iris") == split
    wait_for(lambda: served_split(api, "iris") == split, "Knative serving the rolled-back split", timeout=10)

    # 8. A revision Knative cannot make ready: the deploy fails with Knative's reason, nothing moves.
    api.fail_revision("iris-00003")
    change_model(source, "third")
    failed = cli(platform, "deploy", str(source))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "RevisionFailed" in failed.stderr and "Unable to fetch image" in failed.stderr, failed.stderr
    assert "traffic unchanged: iris-00001=90, iris-00002=10 (canary)" in failed.stderr, failed.stderr
    assert spec_split(api, "iris") == split
    assert served_split(api, "iris") == split
    with platform.client() as client:
        assert [(t["revision"], t["percent"]) for t in client.traffic("iris")["traffic"]["targets"]] == \
            [("iris-00001", 90), ("iris-00002", 10)]
        assert [r["name"] for r in client.revisions("iris")] == ["iris-00001", "iris-00002"]
        failures = [e for e in client.events("iris") if e["kind"] == "build-failed"]
        assert failures and "RevisionFailed" in failures[-1]["message"]
    # The number is spent (a Knative Revision has it): the next deploy is iris-00004.
    change_model(source, "fourth")
    ok(cli(platform, "deploy", str(source)))
    assert service(api, "iris")["spec"]["template"]["metadata"]["name"] == "iris-00004"
    after_deploy = [("iris-00002", 0, "canary"), ("iris-00004", 100, None)]  # the tag stays, pinned at 0 %
    assert spec_split(api, "iris") == after_deploy
    wait_for(lambda: served_split(api, "iris") == after_deploy, "Knative serving iris-00004", timeout=10)

    # 9. A traffic change the cluster refuses (RBAC) is a clear error and changes nothing anywhere.
    api.forbid("patch")
    try:
        refused = cli(platform, "traffic", "iris", "iris-00004=50", "iris-00002=50")
    finally:
        api.forbidden.discard(("patch", "services"))
    assert refused.returncode == 1
    assert "forbidden: may not patch services.serving.knative.dev in namespace 'ml'" in refused.stderr, refused.stderr
    assert "nothing was changed" in refused.stderr
    assert spec_split(api, "iris") == after_deploy
    with platform.client() as client:
        assert [(t["revision"], t["percent"], t["tag"]) for t in client.traffic("iris")["traffic"]["targets"]] == \
            after_deploy

    # 10. delete removes the Service (and with it Knative's Revisions).
    ok(cli(platform, "delete", "iris"))
    assert api.service("iris", NAMESPACE) is None
    assert api.revision("iris-00001", NAMESPACE) is None and api.revision("iris-00004", NAMESPACE) is None


def checked_answer(platform: PlatformProcess, template: str, **params: str) -> Any:
    """GET `template` on the platform: 200, with JSON its OpenAPI schema accepts
    (tests/zeroserve/control/test_openapi.py leaves the export answer to this test: its platform has no cluster)."""
    spec = httpx.get(f"{platform.url}/api/v1/openapi.json", timeout=30).json()
    schema = success_schemas(spec)[("GET", template, 200)]
    response = httpx.get(platform.url + template.format(**params), timeout=30,
                         headers={"Authorization": f"Bearer {platform.token}"})
    assert response.status_code == 200, response.text
    jsonschema.validate(response.json(), {**schema, "components": closed(spec["components"])},
                        cls=jsonschema.Draft202012Validator)
    return response.json()


def platform_kubeconfig(platform: PlatformProcess) -> str:
    return platform.extra_env["KUBECONFIG"]


def test_a_git_push_deploys_a_knative_only_function_and_a_rollout_advances_on_the_cluster(
        knative_platform, cluster_api: KnativeApiServer, tmp_path: Path) -> None:
    platform, _store = knative_platform
    api = cluster_api
    repo = WorkRepo.from_dir(function_dir(tmp_path, "pushed", targets=["knative"]), tmp_path / "pushed")
    url = remote_url(platform, "pushed")
    first = repo.push(url)
    assert first.returncode == 0, first.stderr
    assert "remote: " in first.stderr and "knative: created Service pushed (namespace ml" in first.stderr, first.stderr
    assert "revision pushed-00001 created" in first.stderr
    assert spec_split(api, "pushed") == [("pushed-00001", 100, None)]
    # targets: [knative] alone: this platform does not serve it.
    assert httpx.post(f"{platform.url}/fn/pushed/v2/models/pushed/infer", json=IRIS_BODY, timeout=30).status_code == 404

    # A gradual rollout: every step the registry takes is patched into spec.traffic on the same schedule.
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            stored = api.service("pushed", NAMESPACE)
            share = next((t["percent"] for t in (stored or {}).get("spec", {}).get("traffic", [])
                          if t.get("revisionName") == "pushed-00002"), None)
            if share is not None and (not seen or seen[-1] != share):
                seen.append(share)
            stop.wait(0.02)  # the sampling period; returns at once when the test stops watching

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        change_model(repo.path, "second")
        repo.commit("retrained")
        second = repo.push(url, "-o", "rollout=4s")
        assert second.returncode == 0, second.stderr
        assert "rollout: pushed-00002 to 100% over 4 s" in second.stderr, second.stderr
        wait_for(lambda: seen and seen[-1] == 100, "the rollout reaching 100 % on the cluster", timeout=20)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert seen[0] == 1 and seen == sorted(seen) and len(seen) >= 3, seen  # 1 %, steps, 100 %
    assert spec_split(api, "pushed") == [("pushed-00002", 100, None)]

    # Dropping knative from targets takes the function off the cluster; it is served here instead.
    manifest_file = repo.path / "function.yaml"
    manifest_file.write_text(manifest_file.read_text().replace("- knative", "- local"))
    repo.commit("back to one machine")
    third = repo.push(url)
    assert third.returncode == 0, third.stderr
    assert "knative: pushed removed (targets no longer list knative)" in third.stderr, third.stderr
    assert api.service("pushed", NAMESPACE) is None
    local = httpx.post(f"{platform.url}/fn/pushed/v2/models/pushed/infer", json=IRIS_BODY, timeout=120)
    assert local.status_code == 200 and local.headers["zeroserve-revision"] == "pushed-00003", local.text
    ok(cli(platform, "delete", "pushed"))


def test_cluster_problems_are_clear_deploy_failures_that_change_nothing(tmp_path: Path, moto_endpoint: str  # noqa: F811
                                                                        ) -> None:
    kubeconfig = tmp_path / "kube" / "config"  # not there yet
    store = new_bucket(moto_endpoint)
    with running_apiserver() as api:
        platform = PlatformProcess(tmp_path / "data", platform_env(kubeconfig, store, moto_endpoint)).start()
        try:
            source = function_dir(tmp_path, "errs", targets=["local", "knative"])

            def deploy_error() -> str:
                result = cli(platform, "deploy", str(source))
                assert result.returncode == 1, result.stdout + result.stderr
                return result.stderr

            error = deploy_error()
            assert f"no kubeconfig: KUBECONFIG ({kubeconfig}) does not exist" in error, error
            closed = api.write_kubeconfig(kubeconfig, server="http://127.0.0.1:9", namespace=NAMESPACE)
            assert "cannot reach the Kubernetes API server at http://127.0.0.1:9" in deploy_error()
            api.write_kubeconfig(closed, namespace=NAMESPACE)
            api.crd_installed = False
            assert "Knative Serving is not installed in this cluster: no services.serving.knative.dev" in deploy_error()
            with platform.client() as client:  # none of these changed anything
                assert client.list_functions() == []
            api.crd_installed = True
            api.forbid("create")
            error = deploy_error()
            assert "forbidden: may not create services.serving.knative.dev in namespace 'ml'" in error, error
            assert api.service("errs", NAMESPACE) is None
            api.forbidden.clear()
            out = ok(cli(platform, "deploy", str(source)))
            # The refused create spent a number (reserved before it), never reused.
            assert "created errs-00002" in out, out
            assert spec_split(api, "errs") == [("errs-00002", 100, None)]
        finally:
            platform.stop()


def test_the_knative_target_needs_a_store_the_cluster_can_reach(tmp_path: Path, moto_endpoint: str  # noqa: F811
                                                                ) -> None:
    with running_apiserver() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
        platform = PlatformProcess(tmp_path / "data", platform_env(kubeconfig, None, moto_endpoint)).start()
        try:
            result = cli(platform, "deploy", str(function_dir(tmp_path, "nostore", targets=["local", "knative"])))
            assert result.returncode == 1
            assert "the Knative target needs an artifact store the cluster can reach" in result.stderr, result.stderr
            assert "ZEROSERVE_ARTIFACTS=s3://bucket/prefix" in result.stderr
            assert api.service("nostore", NAMESPACE) is None
            with platform.client() as client:
                assert client.list_functions() == []
        finally:
            platform.stop()
