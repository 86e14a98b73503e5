"""Process-level guarantees: no orphans when the platform dies, spawn fallback, the real ONNX runtime."""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.local.zygote import WARMUP_MODEL
from protocol.manifest import load_manifest
from tests.deploy.local.harness import (
    HERE,
    alive,
    http,
    run,
    running_supervisor,
    write_echo_function,
    zombie,
)

ROOT = HERE.parents[2]
IRIS = ROOT / "examples" / "iris"


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no line from pid {process.pid} within {timeout}s")
    return process.stdout.readline()


def test_replicas_and_zygote_die_when_the_supervisor_process_is_killed(tmp_path: Path) -> None:
    fn = write_echo_function(tmp_path / "echo")
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, str(HERE / "orphan_supervisor.py"), str(run_dir), str(fn)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}"})
    pids: list[int] = []
    try:
        seen = json.loads(read_line(process, 30.0))
        pids = [seen["zygote"], *seen["replicas"]]
        assert all(alive(pid) for pid in pids)
        process.send_signal(signal.SIGKILL)  # no stop(), no cleanup code of ours runs
        process.wait(10)
        deadline = time.monotonic() + 10.0
        # The zygote sees its control socket close and stops its replicas (which also carry
        # PR_SET_PDEATHSIG). Orphaned by the kill, the zygote is reaped by init, so a brief
        # zombie state counts as gone here.
        while any(alive(pid) and not zombie(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in pids if alive(pid) and not zombie(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in pids:  # never leave a process behind, even when an assertion failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_zygote_with_threads_falls_back_to_spawning_and_says_so(tmp_path: Path, run_dir: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    fn = write_echo_function(tmp_path / "echo")
    caplog.set_level(logging.WARNING, logger="zeroserve.supervisor")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory="threaded_echo:create_app") as (sv, owner):
            sv.register_revision("echo-00001", fn, load_manifest(fn))
            await sv.set_scale("echo-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("echo-00001"), "a spawned replica", 60)
            zygote = sv.zygotes()["default"]
            assert not zygote["fork_safe"] and zygote["threads"] == 2
            assert "threads are running" in zygote["reason"]
            (info,) = sv.replicas("echo-00001")
            assert info.mode == "spawn"
            _, seen, _ = await http(endpoint, "GET", "/debug")
            assert seen["pid"] == info.pid and seen["ppid"] == os.getpid()
            assert not list((run_dir / "replicas").glob("spec-*.json"))  # the spec file is consumed
        assert not alive(info.pid)

    run(scenario(), timeout=90)
    assert any("not fork-safe" in r.getMessage() and "spawned as fresh processes" in r.getMessage()
               for r in caplog.records)


def test_examples_iris_on_the_real_runtime_serves_v2_and_a_corrupt_model_reports_onnx_error(
        tmp_path: Path, run_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "function.yaml").write_text("name: broken\nmodel: model.onnx\n")
    (broken / "model.onnx").write_bytes(WARMUP_MODEL[:40])  # truncated: not a valid protobuf
    sample = json.loads((IRIS / "sample.json").read_text())

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory="functions.app:create_app") as (sv, owner):
            sv.register_revision("iris-00001", IRIS, load_manifest(IRIS))
            sv.register_revision("broken-00001", broken, load_manifest(broken))
            await sv.set_scale("iris-00001", 1)
            await sv.set_scale("broken-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("iris-00001"), "an iris replica")
            status, body, _ = await http(endpoint, "GET", "/v2/health/ready")
            assert status == 200 and body["ready"] is True
            status, body, headers = await http(endpoint, "POST", "/v2/models/iris/infer", sample)
            assert status == 200, body
            (output,) = body["outputs"]
            assert output["shape"] == [2, 3]
            assert headers["zeroserve-revision"] == "iris-00001"
            await owner.wait_for(lambda: owner.failures, "the broken model's start failure")
            _, revision, error = owner.failures[0]
            assert revision == "broken-00001" and "could not be loaded by ONNX Runtime" in error

    run(scenario())


def test_a_killed_zygote_takes_its_replicas_along_and_both_come_back(tmp_path: Path, run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "echo")

    async def scenario() -> None:
        async with running_supervisor(run_dir) as (sv, owner):
            sv.register_revision("echo-00001", fn, load_manifest(fn))
            await sv.set_scale("echo-00001", 2)
            before = await owner.wait_for(lambda: len(owner.endpoints("echo-00001")) == 2
                                          and owner.endpoints("echo-00001"), "two replicas")
            old_pids = [r.pid for r in sv.replicas("echo-00001")]
            old_zygote = sv.zygotes()["default"]["pid"]
            os.kill(old_zygote, signal.SIGKILL)
            after = await owner.wait_for(
                lambda: len(owner.endpoints("echo-00001")) == 2
                and not set(owner.endpoints("echo-00001")) & set(before) and owner.endpoints("echo-00001"),
                "two replacement replicas")
            # PR_SET_PDEATHSIG killed the replicas with their zygote. Orphaned, they are init's to reap,
            # and this sandbox's init does not, so a zombie counts as gone here.
            assert not [pid for pid in [old_zygote, *old_pids] if alive(pid) and not zombie(pid)]
            assert sv.zygotes()["default"]["pid"] != old_zygote
            for endpoint in after:
                assert (await http(endpoint, "GET", "/v2/health/ready"))[0] == 200
            assert sv.status("echo-00001").restarts == 2

    run(scenario())


def test_a_torch_revision_gets_its_own_fork_safe_zygote(run_dir: Path) -> None:
    torch_fn = ROOT / "examples" / "torch-linear"
    sample = json.loads((torch_fn / "sample.json").read_text())

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory="functions.app:create_app") as (sv, owner):
            sv.register_revision("torch-linear-00001", torch_fn, load_manifest(torch_fn))
            await sv.set_scale("torch-linear-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("torch-linear-00001"),
                                               "a torch replica", 60)
            zygotes = sv.zygotes()
            # torch imported, no op run: still one thread, so forking it is safe.
            assert zygotes["torch"]["fork_safe"] and zygotes["torch"]["threads"] == 1
            assert zygotes["torch"]["pid"] != zygotes["default"]["pid"]
            assert sv.replicas("torch-linear-00001")[0].mode == "fork"
            status, body, _ = await http(endpoint, "POST", "/v2/models/torch-linear/infer", sample)
            assert status == 200 and body["outputs"][0]["shape"] == [2, 2]

    run(scenario(), timeout=90)
