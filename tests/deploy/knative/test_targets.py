"""The target seam (deploy/targets.py) with the Knative target against the Kubernetes API test server: the
registry's route changes reach the cluster before they commit, or roll back; rollout steps a cluster missed
are sent again; deletes and failed first deploys leave nothing behind.

The deploys here go through the same public steps as the deploy service (plan, reserve the number, make the
revision ready on the target, record) with made-up digests: the build itself is tested elsewhere, and the
whole path with real builds in test_platform_knative.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.knative.cluster import KnativeCluster
from deploy.knative.service import KnativeSettings
from deploy.knative.target import KnativeTarget
from deploy.targets import NewRevision, TargetError, Targets, check_plan, plan_deploy
from protocol.manifest import FunctionManifest, parse_manifest
from revisions.build_log import BuildLog
from revisions.registry import Registry
from revisions.traffic import TrafficError, TrafficTarget
from tests.deploy.knative.apiserver import KnativeApiServer

STORE = "s3://models/zeroserve"
BOTH = ["local", "knative"]


def manifest(targets: list[str] | None = None, **more: Any) -> FunctionManifest:
    return parse_manifest({"name": "iris", "model": "model.onnx", "targets": targets or BOTH, **more})


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


@pytest.fixture
def platform(tmp_path: Path, kubeconfig: Path) -> Iterator[tuple[Registry, Targets]]:
    registry = Registry(tmp_path / "registry.db")
    knative = KnativeTarget(KnativeSettings(image="registry.example/zeroserve-runtime:0.1"), store=STORE,
                            ready_timeout=10, connect=lambda: KnativeCluster.connect(config_file=kubeconfig))
    targets = Targets({"knative": lambda: knative})
    registry.route_observer = targets.follow
    try:
        yield registry, targets
    finally:
        registry.close()


def deploy(registry: Registry, targets: Targets, n: int, function_manifest: FunctionManifest,
           now: float = 1000.0) -> str:
    """What the deploy service does once a build succeeded (deploy/service.py `_record`)."""
    plan = plan_deploy(registry, "iris", digest(n), function_manifest, now)
    remote = targets.remote(function_manifest.targets)
    number = None
    if remote:
        check_plan(plan, function_manifest.targets)
        new = NewRevision("iris", plan.revision, digest(n), function_manifest, routed=plan.routed)
        for target in remote:
            target.check(new)
        number = registry.reserve_revision_number("iris")
        for target in remote:
            target.apply_revision(BuildLog(), new)
    outcome = registry.record_deploy("iris", digest=digest(n), manifest=function_manifest, files={}, build_log="",
                                     now=now, number=number)
    return outcome.revision.name


def split(api: KnativeApiServer) -> list[tuple[str, int]]:
    stored = api.service("iris")
    assert stored is not None
    return [(t["revisionName"], t["percent"]) for t in stored["spec"]["traffic"]]


def test_a_route_change_the_cluster_refuses_rolls_back_everywhere(platform, apiserver: KnativeApiServer) -> None:
    registry, targets = platform
    deploy(registry, targets, 1, manifest())
    deploy(registry, targets, 2, manifest())
    registry.set_traffic("iris", [TrafficTarget.to("iris-00001", 50), TrafficTarget.to("iris-00002", 50)])
    assert split(apiserver) == [("iris-00001", 50), ("iris-00002", 50)]
    history, events = registry.route_history("iris"), registry.events("iris")
    apiserver.forbid("patch")
    with pytest.raises(TargetError, match="forbidden: may not patch services.serving.knative.dev"):
        registry.set_traffic("iris", [TrafficTarget.to("iris-00002", 100)])
    with pytest.raises(TargetError):
        registry.rollback("iris")
    route = registry.get_route("iris")
    assert route is not None and [(t.revision, t.percent) for t in route.targets] == [("iris-00001", 50),
                                                                                      ("iris-00002", 50)]
    assert registry.route_history("iris") == history and registry.events("iris") == events
    assert split(apiserver) == [("iris-00001", 50), ("iris-00002", 50)]


def test_a_route_to_a_revision_the_target_does_not_have_is_refused(platform, apiserver: KnativeApiServer) -> None:
    registry, targets = platform
    deploy(registry, targets, 1, manifest(["local"]))  # before the function listed knative
    deploy(registry, targets, 2, manifest())
    assert split(apiserver) == [("iris-00002", 100)]
    with pytest.raises(TrafficError, match="iris-00001 was not deployed to knative, where function 'iris' runs"):
        registry.set_traffic("iris", [TrafficTarget.to("iris-00001", 50), TrafficTarget.to("iris-00002", 50)])
    route = registry.get_route("iris")
    assert route is not None and [t.revision for t in route.targets] == ["iris-00002"]
    # A canary deploy that would keep 90 % on a local-only revision is refused before anything changes.
    registry.set_traffic("iris", [TrafficTarget.to("iris-00002", 100)])
    registry.route_observer = None
    registry.set_traffic("iris", [TrafficTarget.to("iris-00001", 100)])  # as if knative was added just now
    registry.route_observer = targets.follow
    plan = plan_deploy(registry, "iris", digest(3), manifest(traffic={"percent": 10}), 2000.0)
    with pytest.raises(TrafficError, match="iris-00001 was not deployed to knative"):
        check_plan(plan, BOTH)


def test_rollout_steps_a_cluster_misses_are_sent_again(platform, apiserver: KnativeApiServer) -> None:
    registry, targets = platform
    deploy(registry, targets, 1, manifest())
    deploy(registry, targets, 2, manifest(traffic={"rollout_duration": "4s"}), now=1000.0)
    assert split(apiserver) == [("iris-00001", 99), ("iris-00002", 1)]
    apiserver.forbid("patch")
    assert registry.advance_rollouts(1002.5) == ["iris"]  # the rollout's schedule is the registry's
    route = registry.get_route("iris")
    assert route is not None and [(t.revision, t.percent) for t in route.targets] == [("iris-00001", 50),
                                                                                      ("iris-00002", 50)]
    assert split(apiserver) == [("iris-00001", 99), ("iris-00002", 1)]
    assert "forbidden: may not patch" in targets.unsynced()["iris"]
    assert targets.retry_unsynced(registry) == []  # still refused
    apiserver.forbidden.clear()
    assert targets.retry_unsynced(registry) == ["iris"]
    assert split(apiserver) == [("iris-00001", 50), ("iris-00002", 50)] and targets.unsynced() == {}
    registry.advance_rollouts(1004.0)
    assert split(apiserver) == [("iris-00002", 100)]


def test_a_delete_the_cluster_refuses_keeps_the_function(platform, apiserver: KnativeApiServer) -> None:
    registry, targets = platform
    deploy(registry, targets, 1, manifest())
    apiserver.forbid("delete")
    with pytest.raises(TargetError, match="may not delete services.serving.knative.dev"):
        registry.delete_function("iris")
    assert registry.get_function("iris").revision_count == 1 and apiserver.service("iris") is not None
    apiserver.forbidden.clear()
    assert registry.delete_function("iris").revisions == ["iris-00001"]
    assert apiserver.service("iris") is None and apiserver.revision("iris-00001") is None


def test_a_first_deploy_knative_cannot_make_ready_leaves_no_service(platform, apiserver: KnativeApiServer) -> None:
    registry, targets = platform
    apiserver.fail_revision("iris-00001")
    log = BuildLog()
    new = NewRevision("iris", "iris-00001", digest(1), manifest(), routed=False)
    with pytest.raises(TargetError, match="RevisionFailed"):
        targets.get("knative").apply_revision(log, new)
    assert apiserver.service("iris") is None
    assert "knative: deleted Service iris again (this deploy created it)" in log.lines


def test_a_function_not_on_knative_never_touches_the_cluster(platform, apiserver: KnativeApiServer) -> None:
    registry, targets = platform
    deploy(registry, targets, 1, manifest(["local"]))
    deploy(registry, targets, 2, manifest(["local"]))
    registry.set_traffic("iris", [TrafficTarget.to("iris-00001", 100)])
    registry.delete_function("iris")
    assert apiserver.requests == []
