"""Crash and restart: kill -9 mid-deploy leaves nothing half-routed; a rollout continues after a restart."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading

import httpx

from tests.polling import wait_for
from tests.zeroserve.control.harness import change_model, function_dir, run_cli, slow_function_dir
from zeroserve.client import ApiError


def test_kill_9_mid_deploy_then_restart_keeps_everything(start_platform, tmp_path, shared_tmp):
    gate = shared_tmp / "gate"  # the handler (its own user, when the suite runs as root) reads and writes here
    pid_file = shared_tmp / "gate.pid"
    first = start_platform()
    try:
        assert run_cli(first, "deploy", str(function_dir(tmp_path, "iris"))).returncode == 0
        gate.touch()
        assert run_cli(first, "deploy", str(slow_function_dir(tmp_path, "slow", gate, "v1"))).returncode == 0
        gate.unlink()
        pid_file.unlink()
        before = {name: first.client().describe(name) for name in ("iris", "slow")}

        lines: list[str] = []
        outcome: list[BaseException] = []

        def deploy_v2() -> None:
            try:
                with first.client() as client:
                    client.deploy(slow_function_dir(tmp_path, "slow", gate, "v2"), on_line=lines.append)
            except ApiError as exc:  # the platform dies under it: that is the point
                outcome.append(exc)

        watcher = threading.Thread(target=deploy_v2)
        watcher.start()
        # The build log stream says the smoke step has begun; the handler's pid file says load() is waiting.
        wait_for(lambda: any(line.startswith("[2/5] files ok") for line in lines), "the build to reach smoke",
                 timeout=60)
        wait_for(pid_file.exists, "the smoke child to block in load()", timeout=60)
        first.kill9()
        watcher.join(timeout=30)
        assert outcome and outcome[0].status == 0  # the client saw the connection drop, not a result
    finally:
        gate.touch()  # releases the orphaned smoke child, whose build no longer has a platform
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    db = first.data_dir / "registry.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

    second = start_platform(first.data_dir)
    assert list((first.data_dir / "tmp").iterdir()) == []  # the killed upload's scratch files are gone
    with second.client() as client:
        for name in ("iris", "slow"):
            after = client.describe(name)
            assert after["revisions"] == before[name]["revisions"], name
            assert after["traffic"]["targets"] == before[name]["traffic"]["targets"], name
        assert [r["name"] for r in client.revisions("slow")] == ["slow-00001"]
        # The interrupted deploy, run again, completes normally on the restarted platform.
        result = client.deploy(slow_function_dir(tmp_path, "slow", gate, "v3"))
        assert result["revision"] == "slow-00002"
        assert client.traffic("slow")["traffic"]["targets"][0]["revision"] == "slow-00002"


def test_rollout_continues_after_a_restart_and_unauthorised_calls_change_nothing(start_platform, tmp_path):
    first = start_platform()
    assert run_cli(first, "deploy", str(function_dir(tmp_path, "iris"))).returncode == 0
    v2 = function_dir(tmp_path, "iris", traffic={"rollout_duration": "6s"})
    change_model(v2, "v2")
    with first.client() as client:
        result = client.deploy(v2)
        assert result["rollout"]["target_percent"] == 100
        started = client.traffic("iris")
    shares = {t["revision"]: t["percent"] for t in started["traffic"]["targets"]}
    assert shares["iris-00002"] < 100 and started["rollout"]["revision"] == "iris-00002"

    # Unauthorised calls on the real server: 401, and nothing changes.
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.patch(f"{first.url}/api/v1/functions/iris/traffic", headers=headers,
                               json={"percents": {"iris-00001": 100}})
        assert response.status_code == 401 and "error" in response.json()
    first.kill9()
    with sqlite3.connect(first.data_dir / "registry.db") as conn:  # killed mid-rollout, and it was persisted
        assert conn.execute("SELECT revision FROM rollouts").fetchall() == [("iris-00002",)]

    second = start_platform(first.data_dir)
    with second.client() as client:
        def finished():
            info = client.traffic("iris")
            return info if info["rollout"] is None else None

        done = wait_for(finished, "the rollout to complete after the restart", timeout=30)
        assert [(t["revision"], t["percent"]) for t in done["traffic"]["targets"]] == [("iris-00002", 100)]
        kinds = [e["kind"] for e in client.events("iris")]
        assert kinds.index("rollout-start") < kinds.index("rollout-done")
        # Rolling back goes to the route before the rollout, not to an intermediate step.
        back = client.rollback("iris")
        assert [(t["revision"], t["percent"]) for t in back["traffic"]["targets"]] == [("iris-00001", 100)]
