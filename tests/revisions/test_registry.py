"""The registry against a real SQLite file: deploy records, routes, rollback, rollouts, retention, crashes."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from protocol.manifest import parse_manifest
from revisions.registry import (
    MIGRATIONS,
    ConflictError,
    NotFoundError,
    Registry,
    RegistryError,
)
from revisions.traffic import RouteTable, TrafficError, TrafficTarget

REPO = Path(__file__).resolve().parents[2]


def digest(n: int | str) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def manifest(name: str = "iris", **traffic):
    return parse_manifest({"name": name, "model": "model.onnx", "traffic": traffic})


def deploy(reg: Registry, content: int | str, name: str = "iris", now: float | None = None, **traffic):
    return reg.record_deploy(name, digest=digest(content), manifest=manifest(name, **traffic),
                             files={"model.onnx": "0" * 64}, build_log=f"built {content}", now=now)


def split(route):
    return [(t.ref, t.percent, t.tag) for t in route.targets]


@pytest.fixture
def reg(tmp_path):
    registry = Registry(tmp_path / "registry.db")
    try:
        yield registry
    finally:
        registry.close()


def test_schema_is_versioned_and_reopens(tmp_path):
    path = tmp_path / "r.db"
    first = Registry(path)
    deploy(first, 1)
    assert first.schema_version() == len(MIGRATIONS)
    first.close()
    again = Registry(path)
    try:
        assert [r.name for r in again.list_revisions("iris")] == ["iris-00001"]
        assert again.schema_version() == len(MIGRATIONS)
    finally:
        again.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(RegistryError, match="schema version 999"):
        Registry(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_deploys_number_revisions_and_detect_unchanged_content(reg):
    first = deploy(reg, "a")
    assert (first.status, first.revision.name) == ("created", "iris-00001")
    assert split(first.route) == [("iris-00001", 100, None)]
    second = deploy(reg, "b")
    assert second.revision.name == "iris-00002" and split(second.route) == [("iris-00002", 100, None)]
    again = deploy(reg, "b")
    assert again.status == "unchanged" and again.message == "unchanged: iris-00002"
    old = deploy(reg, "a")
    assert old.status == "unchanged" and old.message.startswith("unchanged: iris-00001 (not routed")
    assert [r.name for r in reg.list_revisions("iris")] == ["iris-00001", "iris-00002"]
    assert reg.get_revision("iris", "iris-00001").build_log == "built a"
    assert reg.get_function("iris").latest_revision == "iris-00002"
    kinds = [e.kind for e in reg.events("iris")]
    assert kinds.count("revision") == 2 and kinds.count("deploy-unchanged") == 2
    with pytest.raises(NotFoundError, match="function 'nope' not found"):
        reg.get_function("nope")
    with pytest.raises(NotFoundError, match="revision 'iris-00009' of function 'iris' not found"):
        reg.get_revision("iris", "iris-00009")


def test_deploy_policies_canary_and_pin(reg):
    deploy(reg, 1)
    canary = deploy(reg, 2, percent=10)
    assert split(canary.route) == [("iris-00001", 90, None), ("iris-00002", 10, None)]
    pinned = deploy(reg, 3, percent=0, tag="candidate")
    assert split(pinned.route) == [("iris-00001", 90, None), ("iris-00002", 10, None),
                                   ("iris-00003", 0, "candidate")]
    moved = deploy(reg, 4, percent=0, tag="candidate")  # the tag moves; the old pin disappears
    assert split(moved.route) == [("iris-00001", 90, None), ("iris-00002", 10, None),
                                  ("iris-00004", 0, "candidate")]
    table = RouteTable(reg.resolved_routes())
    assert table.pick("iris", "candidate", 0.5) == "iris-00004"


def test_deploy_with_an_impossible_tag_records_nothing(reg):
    deploy(reg, 1, name="a-very-long-function-name-that-is-almost-at-the-limit")
    with pytest.raises(TrafficError, match="must stay within 63"):
        deploy(reg, 2, name="a-very-long-function-name-that-is-almost-at-the-limit", tag="a-long-tag-too")
    assert len(reg.list_revisions("a-very-long-function-name-that-is-almost-at-the-limit")) == 1


def test_traffic_changes_rollback_and_promote(reg):
    deploy(reg, 1)
    deploy(reg, 2)
    route = reg.edit_traffic("iris", percents={"iris-00001": 90, "iris-00002": 10})
    assert split(route) == [("iris-00001", 90, None), ("iris-00002", 10, None)]
    with pytest.raises(TrafficError, match=r"must sum to 100, got 90 \(iris-00001=60, iris-00002=30\)"):
        reg.set_traffic("iris", [TrafficTarget("iris-00001", percent=60), TrafficTarget("iris-00002", percent=30)])
    with pytest.raises(TrafficError, match="unknown revision 'iris-00007'"):
        reg.edit_traffic("iris", percents={"iris-00007": 100})
    assert split(reg.get_route("iris")) == split(route)  # refusals change nothing
    pinned = reg.edit_traffic("iris", tags={"old": "iris-00001"})
    assert ("iris-00001", 90, "old") in split(pinned)

    assert split(reg.rollback("iris")) == split(route)  # undo the tag
    assert split(reg.rollback("iris")) == [("iris-00002", 100, None)]  # undo the 90/10 split
    assert split(reg.rollback("iris")) == [("iris-00001", 100, None)]  # the first deploy
    with pytest.raises(ConflictError, match="no earlier route"):
        reg.rollback("iris")

    reg.edit_traffic("iris", tags={"next": "iris-00002"})
    assert split(reg.promote("iris", "next")) == [("iris-00002", 100, "next")]
    with pytest.raises(TrafficError, match="tag 'nope' does not exist"):
        reg.promote("iris", "nope")
    assert [e.kind for e in reg.events("iris")][-1] == "traffic"


def test_rollout_advances_survives_reopen_and_completes(tmp_path):
    path = tmp_path / "r.db"
    reg = Registry(path)
    deploy(reg, 1, now=1000.0)
    outcome = deploy(reg, 2, now=1000.0, rollout_duration="10s")
    assert outcome.rollout is not None
    assert split(outcome.route) == [("iris-00001", 99, None), ("iris-00002", 1, None)]
    reg.advance_rollouts(1005.0)
    assert split(reg.get_route("iris")) == [("iris-00001", 50, None), ("iris-00002", 50, None)]
    reg.close()

    reg = Registry(path)  # a restart mid-rollout
    try:
        assert reg.get_rollout("iris").revision == "iris-00002"
        assert reg.advance_rollouts(1005.0) == []  # nothing to move
        reg.advance_rollouts(1010.0)
        assert split(reg.get_route("iris")) == [("iris-00002", 100, None)]
        assert reg.get_rollout("iris") is None
        assert "rollout-done" in [e.kind for e in reg.events("iris")]
        # the intermediate steps are not history: a rollback goes to the route before the deploy
        assert split(reg.rollback("iris")) == [("iris-00001", 100, None)]
    finally:
        reg.close()


def test_rollback_and_manual_change_stop_a_rollout(reg):
    deploy(reg, 1, now=0.0)
    deploy(reg, 2, now=0.0, rollout_duration=100)
    reg.advance_rollouts(50.0)
    assert split(reg.rollback("iris", now=50.0)) == [("iris-00001", 100, None)]
    assert reg.get_rollout("iris") is None and reg.advance_rollouts(200.0) == []
    deploy(reg, 3, now=300.0, rollout_duration=100, percent=50)
    reg.edit_traffic("iris", percents={"iris-00003": 100}, now=310.0)
    assert reg.get_rollout("iris") is None
    assert "rollout-cancelled" in [e.kind for e in reg.events("iris")]


def test_retention_keeps_routed_and_newest_unrouted(reg):
    for n in range(1, 9):
        deploy(reg, n)
    reg.edit_traffic("iris", percents={"iris-00001": 50, "iris-00008": 50}, tags={"pin": "iris-00002"})
    deploy(reg, 1, name="other")  # shares iris-00001's digest
    deploy(reg, 3, name="other")  # shares iris-00003's digest
    removal = reg.apply_retention("iris", keep_unrouted=2)
    assert removal.revisions == ["iris-00005", "iris-00004", "iris-00003"]
    assert removal.unused_digests == sorted([digest(4), digest(5)])  # digest(3) is still used by "other"
    left = [r.name for r in reg.list_revisions("iris")]
    assert left == ["iris-00001", "iris-00002", "iris-00006", "iris-00007", "iris-00008"]
    assert reg.apply_retention("iris", keep_unrouted=2).revisions == []
    assert deploy(reg, 9).revision.name == "iris-00009"  # names are never reused


def test_delete_function_cascades_and_reports_unused_digests(reg):
    deploy(reg, 1)
    deploy(reg, 2)
    deploy(reg, 2, name="echo")
    seen = []
    reg.subscribe(seen.append)
    removal = reg.delete_function("iris")
    assert removal.revisions == ["iris-00001", "iris-00002"] and removal.unused_digests == [digest(1)]
    assert seen == ["iris"]
    with pytest.raises(NotFoundError):
        reg.get_route("iris")
    assert reg.resolved_route("iris") is None and set(reg.resolved_routes()) == {"echo"}
    assert reg.events("iris")[-1].kind == "delete"  # events outlive the function
    assert reg.digests_in_use() == {digest(2)}


def test_listeners_run_after_commit_only(reg):
    deploy(reg, 1)
    deploy(reg, 2)
    table = RouteTable(reg.resolved_routes())
    reg.subscribe(lambda fn: table.update(fn, reg.resolved_route(fn)))
    reg.edit_traffic("iris", percents={"iris-00001": 100})
    assert table.pick("iris", None, 0.99) == "iris-00001"
    with pytest.raises(TrafficError):
        reg.edit_traffic("iris", percents={"iris-00001": 10})
    assert table.pick("iris", None, 0.99) == "iris-00001"
    reg.set_traffic("iris", [TrafficTarget(latest=True, percent=100)])
    assert table.pick("iris", None, 0.0) == "iris-00002"
    reg.mark_revision("iris-00002", "Failed", "replica exited during load")
    assert table.pick("iris", None, 0.0) == "iris-00001"  # @latest means the latest *ready* revision


def test_concurrent_writers_from_separate_connections_serialise(tmp_path):
    path = tmp_path / "r.db"
    Registry(path).close()
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        registry = Registry(path)
        try:
            for j in range(5):
                deploy(registry, f"{i}-{j}", percent=10)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            registry.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    reg = Registry(path)
    try:
        names = [r.name for r in reg.list_revisions("iris")]
        assert names == [f"iris-{n:05d}" for n in range(1, 31)]
        assert sum(t.percent for t in reg.get_route("iris").targets) == 100
    finally:
        reg.close()


CRASHER = textwrap.dedent("""
    import hashlib, sys
    from protocol.manifest import parse_manifest
    from revisions.registry import Registry
    reg = Registry(sys.argv[1])
    n = 0
    while True:
        n += 1
        m = parse_manifest({"name": "iris", "model": "m.onnx", "traffic": {"percent": 30}})
        reg.record_deploy("iris", digest="sha256:" + hashlib.sha256(str(n).encode()).hexdigest(), manifest=m,
                          files={}, build_log="x" * 20000)
        print(n, flush=True)
""")


def test_kill_9_mid_write_leaves_a_consistent_registry(tmp_path):
    path = tmp_path / "r.db"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(path)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        committed = 0
        while committed < 6:  # the writer reports each commit; it goes on writing while we read
            line = proc.stdout.readline()
            assert line, "the writer exited before it was killed"
            committed = int(line)
        proc.send_signal(signal.SIGKILL)  # lands at whatever point of a later transaction it reached
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    reg = Registry(path)
    try:
        revisions = {r.name for r in reg.list_revisions("iris")}
        route = reg.get_route("iris")
        assert len(revisions) >= 6  # every commit it reported survived
        assert {t.revision for t in route.targets} <= revisions
        assert sum(t.percent for t in route.targets) == 100
        newest = max(revisions)
        assert newest in {t.revision for t in route.targets}  # the last committed deploy is routed
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        reg.close()
