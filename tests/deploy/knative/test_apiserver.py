"""The Kubernetes API test server, driven by the official `kubernetes` client over real HTTP.

What passes against it must pass against a cluster, so it must answer like one: CRUD on
services.serving.knative.dev, 409 on stale writes, 422 for a Service the CRD schema refuses, 400 from
Knative's webhook, 403 for RBAC, 404 when Knative is not installed, 401 without a token, 415 for a
strategic merge patch; and a controller that writes status back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.deploy.knative.apiserver import KnativeApiServer
from tests.polling import wait_for

GROUP, VERSION, PLURAL, NS = "serving.knative.dev", "v1", "services", "default"


def real_client(kubeconfig: Path) -> client.CustomObjectsApi:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.CustomObjectsApi(client.ApiClient(configuration))


def service(name: str = "iris", revision: str = "iris-00001", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Service", "metadata": {"name": name},
            "spec": {"template": {"metadata": {"name": revision},
                                  "spec": {"containers": [{"image": "registry.example/runtime:1"}]}}, **spec}}


def settled(api: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    """The Service once the controller has written its status for the latest spec (no more writes coming)."""
    def ready() -> dict[str, Any] | None:
        got = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
        status = got.get("status", {})
        done = status.get("observedGeneration") == got["metadata"]["generation"] and any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        return got if done else None

    return wait_for(ready, f"the controller to settle Service {name}", timeout=10)


def refused(call: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return caught.value.status, json.loads(caught.value.body)


def test_the_real_client_creates_reads_updates_patches_and_deletes(kubeconfig: Path,
                                                                    apiserver: KnativeApiServer) -> None:
    api = real_client(kubeconfig)
    created = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, service())
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    assert created["spec"]["template"]["spec"]["containers"][0]["name"] == "user-container"  # webhook default
    got = settled(api, "iris")
    assert got["metadata"]["uid"] == created["metadata"]["uid"] and got["spec"] == created["spec"]
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["iris"]

    replacement = service(revision="iris-00002")
    replacement["metadata"]["resourceVersion"] = got["metadata"]["resourceVersion"]
    replaced = api.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris", replacement)
    assert replaced["metadata"]["generation"] == 2
    assert replaced["metadata"]["annotations"]["serving.knative.dev/creator"]  # kept across the replace

    traffic = [{"revisionName": "iris-00001", "percent": 50}, {"revisionName": "iris-00002", "percent": 50}]
    merged = api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris", {"spec": {"traffic": traffic}})
    assert [t["percent"] for t in merged["spec"]["traffic"]] == [50, 50]
    assert apiserver.requests[-1].content_type == "application/merge-patch+json"

    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "iris", [{"op": "replace", "path": "/spec/traffic/0/percent", "value": 90},
                                             {"op": "replace", "path": "/spec/traffic/1/percent", "value": 10}],
        _content_type="application/json-patch+json")
    assert [t["percent"] for t in patched["spec"]["traffic"]] == [90, 10]
    assert patched["spec"]["template"] == replaced["spec"]["template"]  # a traffic patch leaves the template

    api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris")
    code, status = refused(api.get_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "iris")
    assert (code, status["reason"], status["details"]["name"]) == (404, "NotFound", "iris")
    assert apiserver.revision("iris-00001") is None  # the Revisions went with the Service


def test_stale_and_unversioned_writes_are_refused(kubeconfig: Path, apiserver: KnativeApiServer) -> None:
    api = real_client(kubeconfig)
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, service())
    code, status = refused(api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, service())
    assert (code, status["reason"]) == (409, "AlreadyExists")

    stale = settled(api, "iris")
    fresh = json.loads(json.dumps(stale))
    fresh["spec"]["traffic"] = [{"revisionName": "iris-00001", "percent": 100}]
    api.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris", fresh)
    stale["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]
    code, status = refused(api.replace_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "iris", stale)
    assert (code, status["reason"]) == (409, "Conflict")
    assert "the object has been modified" in status["message"]

    del stale["metadata"]["resourceVersion"]
    code, status = refused(api.replace_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "iris", stale)
    assert (code, status["reason"]) == (422, "Invalid")
    assert "metadata.resourceVersion" in status["message"] and "must be specified for an update" in status["message"]

    code, status = refused(api.patch_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "iris",
                           {"metadata": {"resourceVersion": "1"}, "spec": {"traffic": []}})
    assert code == 409  # a merge patch that names a resourceVersion is a precondition too


def test_a_service_the_crd_schema_refuses_is_422_naming_the_field(kubeconfig: Path) -> None:
    api = real_client(kubeconfig)
    bad = service()
    bad["spec"]["template"]["spec"]["containerConcurrency"] = "many"
    bad["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
    code, status = refused(api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, bad)
    assert (code, status["reason"], status["kind"]) == (422, "Invalid", "Status")
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert fields == {"spec.template.spec.containerConcurrency",
                      "spec.template.spec.containers[0].resources.limits.memory"}
    assert "must be of type integer" in status["message"]

    no_containers = service()
    del no_containers["spec"]["template"]["spec"]["containers"]
    code, status = refused(api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, no_containers)
    assert code == 422 and status["details"]["causes"][0] == {
        "reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers"}


def test_unknown_fields_are_pruned_or_refused_when_strict(kubeconfig: Path, apiserver: KnativeApiServer) -> None:
    api = real_client(kubeconfig)
    typo = service()
    typo["spec"]["template"]["spec"]["containerConcurency"] = 5
    code, status = refused(api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, typo,
                           field_validation="Strict")
    assert code == 400 and 'unknown field "spec.template.spec.containerConcurency"' in status["message"]
    stored = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, typo)
    assert "containerConcurency" not in stored["spec"]["template"]["spec"]  # dropped, as a cluster does


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["spec"]["template"]["metadata"].update(name="other-00001"), 'must have prefix "iris-"'),
    (lambda s: s["spec"]["template"]["metadata"].update(
        annotations={"autoscaling.knative.dev/activation-scale": "1"}), "min-activate-scale=1 must be greater than 1"),
    (lambda s: s["spec"].update(traffic=[{"revisionName": "iris-00001", "percent": 90}]),
     "Traffic targets sum to 90, want 100"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0].update(env=[{"name": "PORT", "value": "1"}]),
     "'PORT' is a reserved environment variable"),
    (lambda s: s["spec"]["template"]["spec"].update(timeoutSeconds=900), "expected 0 <= 900 <= 600"),
])
def test_knatives_webhook_refuses_with_400(kubeconfig: Path, change: Any, message: str) -> None:
    api = real_client(kubeconfig)
    bad = service()
    change(bad)
    code, status = refused(api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, bad)
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"].startswith('admission webhook "validation.webhook.serving.knative.dev" denied')
    assert message in status["message"]


def test_a_template_change_without_a_new_name_is_refused(kubeconfig: Path) -> None:
    api = real_client(kubeconfig)
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, service())
    code, status = refused(api.patch_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "iris",
                           {"spec": {"template": {"spec": {"containers": [{"image": "registry.example/runtime:2"}]}}}})
    assert code == 400 and "Saw the following changes without a name change" in status["message"]


def test_rbac_forbids_a_named_verb_with_403(kubeconfig: Path, apiserver: KnativeApiServer) -> None:
    api = real_client(kubeconfig)
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, service())
    apiserver.forbid("patch")
    code, status = refused(api.patch_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "iris", {"spec": {}})
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == ('services.serving.knative.dev "iris" is forbidden: User '
                                 '"system:serviceaccount:zeroserve:deployer" cannot patch resource "services" in API '
                                 'group "serving.knative.dev" in the namespace "default"')
    assert api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris")  # other verbs still allowed


def test_without_the_crd_the_group_is_404(kubeconfig: Path, apiserver: KnativeApiServer) -> None:
    apiserver.crd_installed = False
    api = real_client(kubeconfig)
    for call, args in ((api.get_namespaced_custom_object, (GROUP, VERSION, NS, PLURAL, "iris")),
                       (api.list_namespaced_custom_object, (GROUP, VERSION, NS, PLURAL)),
                       (api.create_namespaced_custom_object, (GROUP, VERSION, NS, PLURAL, service())),
                       (api.get_api_resources, (GROUP, VERSION))):
        code, status = refused(call, *args)
        assert (code, status["message"]) == (404, "the server could not find the requested resource")
    groups = client.ApisApi(api.api_client).get_api_versions()
    assert GROUP not in [group.name for group in groups.groups]


def test_a_bad_token_is_401(kubeconfig: Path, apiserver: KnativeApiServer, tmp_path: Path) -> None:
    wrong = apiserver.write_kubeconfig(tmp_path / "wrong", token="not-the-token")
    code, status = refused(real_client(wrong).list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL)
    assert (code, status["reason"]) == (401, "Unauthorized")


def test_patch_media_types(kubeconfig: Path, apiserver: KnativeApiServer) -> None:
    api = real_client(kubeconfig)
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, service())
    # The client turns a JSON-patch content type with an object body into a strategic merge patch,
    # which no custom resource accepts.
    code, status = refused(api.patch_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "iris", {"spec": {}},
                           _content_type="application/json-patch+json")
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert apiserver.requests[-1].content_type == "application/strategic-merge-patch+json"

    applied = service(name="echo", revision="echo-00001")
    code, status = refused(api.patch_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "echo", applied,
                           _content_type="application/apply-patch+yaml")
    assert code == 422 and "fieldManager: Required value" in status["message"]
    api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "echo", applied,
                                       _content_type="application/apply-patch+yaml", field_manager="zs")
    assert apiserver.requests[-1].code == 201  # server-side apply creates (the client maps only 200 to a body)
    assert api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "echo")["metadata"]["generation"] == 1


def test_the_controller_writes_status_and_revisions(kubeconfig: Path, apiserver: KnativeApiServer) -> None:
    api = real_client(kubeconfig)
    spec = service(traffic=[{"revisionName": "iris-00001", "percent": 100, "tag": "current"}])
    spec["spec"]["template"]["metadata"]["annotations"] = {"autoscaling.knative.dev/initial-scale": "2"}
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, spec)

    def ready() -> dict[str, Any] | None:
        got = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris")
        conditions = {c["type"]: c["status"] for c in got.get("status", {}).get("conditions", [])}
        return got if conditions == {"Ready": "True", "ConfigurationsReady": "True", "RoutesReady": "True"} else None

    status = wait_for(ready, "the Service to become Ready", timeout=10)["status"]
    assert status["url"] == "http://iris.default.example.com"
    assert status["address"]["url"] == "http://iris.default.svc.cluster.local"
    assert status["latestReadyRevisionName"] == status["latestCreatedRevisionName"] == "iris-00001"
    assert status["traffic"] == [{"revisionName": "iris-00001", "percent": 100, "latestRevision": False,
                                  "tag": "current", "url": "http://current-iris.default.example.com"}]
    revisions = api.list_namespaced_custom_object(GROUP, VERSION, NS, "revisions",
                                                  label_selector="serving.knative.dev/service=iris")["items"]
    (revision,) = revisions
    assert revision["metadata"]["labels"]["serving.knative.dev/configuration"] == "iris"
    assert (revision["status"]["desiredReplicas"], revision["status"]["actualReplicas"]) == (2, 2)
    apiserver.set_scale("iris-00001", 5, 3)
    wait_for(lambda: api.get_namespaced_custom_object(GROUP, VERSION, NS, "revisions", "iris-00001")["status"]
             .get("actualReplicas") == 3, "the new scale to be reported", timeout=10)


def test_failed_and_missing_revisions_are_reported(kubeconfig: Path, apiserver: KnativeApiServer) -> None:
    api = real_client(kubeconfig)
    apiserver.fail_revision("iris-00001", "ContainerMissing", "Unable to fetch image \"nope\"")
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, service())

    def ready_condition() -> dict[str, Any] | None:
        got = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "iris")
        return next((c for c in got.get("status", {}).get("conditions", []) if c["type"] == "Ready"
                     and c["status"] == "False"), None)

    condition = wait_for(ready_condition, "Ready=False for the failed revision", timeout=10)
    assert condition["reason"] == "RevisionFailed"
    assert condition["message"] == 'Revision "iris-00001" failed with message: Unable to fetch image "nope".'
    revision = api.get_namespaced_custom_object(GROUP, VERSION, NS, "revisions", "iris-00001")
    assert {c["type"]: c.get("reason") for c in revision["status"]["conditions"]}["Ready"] == "ContainerMissing"

    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, service(
        name="echo", revision="echo-00001", traffic=[{"revisionName": "echo-00009", "percent": 100}]))

    def missing() -> dict[str, Any] | None:
        got = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "echo")
        return next((c for c in got.get("status", {}).get("conditions", []) if c["type"] == "RoutesReady"
                     and c["status"] == "False"), None)

    routes = wait_for(missing, "RoutesReady=False for a revision that does not exist", timeout=10)
    assert (routes["reason"], routes["message"]) == ("RevisionMissing",
                                                     'Revision "echo-00009" referenced in traffic not found.')
