"""A build's smoke test forked from a real zygote (deploy.local.smoke_fork): same confinement, same reports."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from deploy.local.smoke_fork import ForkedSmoke
from protocol.manifest import load_manifest
from revisions.builder import BuildError, build_function, run_smoke
from revisions.smoke_sandbox import SmokeSandbox
from revisions.store import LocalArtifactStore
from tests.deploy.local.harness import HERE, run, running_supervisor

ROOT = HERE.parents[2]
FACTORY = "functions.app:create_app"

PROBE_HANDLER = """
import os
import numpy as np

class Probe:
    inputs = [{"name": "input", "datatype": "FP32", "shape": [-1]}]
    outputs = [{"name": "output", "datatype": "FP32", "shape": [-1]}]

    def load(self):
        if "PLATFORM_SECRET" in os.environ:
            raise RuntimeError("the platform's environment reached the function")
        if os.environ.get("SCALE") != "3":
            raise RuntimeError("the function's env is missing")

    def predict(self, inputs):
        return {"output": inputs["input"] * 3}
"""


def probe_function(tmp_path: Path, *, load_body: str | None = None) -> Path:
    fn = tmp_path / "probe"
    fn.mkdir(parents=True)
    source = PROBE_HANDLER if load_body is None else PROBE_HANDLER.replace(
        '        if "PLATFORM_SECRET"', f"        {load_body}\n        if \"PLATFORM_SECRET\"")
    (fn / "probe.py").write_text(source)
    (fn / "sample.json").write_text('{"inputs": [{"name": "input", "shape": [2], "datatype": "FP32", '
                                    '"data": [1, 2]}]}')
    (fn / "function.yaml").write_text("name: probe\nruntime: python\nhandler: probe:Probe\nsample: sample.json\n"
                                      "env:\n  SCALE: '3'\n")
    return fn


def test_the_smoke_child_forks_from_the_zygote_confined_like_a_fresh_one(tmp_path: Path, run_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_SECRET", "must-not-reach-functions")
    fn = probe_function(tmp_path)
    iris = tmp_path / "iris"
    shutil.copytree(ROOT / "examples" / "iris", iris, ignore=shutil.ignore_patterns("make_model.py"))
    store = LocalArtifactStore(tmp_path / "artifacts")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY) as (sv, _):
            forked = ForkedSmoke(run_dir)
            forked.attach(sv)
            sandbox = SmokeSandbox(fork=forked)
            report = await asyncio.to_thread(run_smoke, fn, load_manifest(fn), timeout=30, sandbox=sandbox)
            assert report["ok"] and report["outputs"] == {"output": [[2], "FP32"]}
            built = await asyncio.to_thread(build_function, iris, store, sandbox=sandbox)
            assert built.smoke["ok"] and built.smoke["outputs"]["probabilities"] == [[2, 3], "FP32"]
            assert forked.forked == 2
            assert not list(forked.scratch_dir.iterdir())  # workspaces removed
            # A load error is reported as from a fresh interpreter, naming the handler.
            broken = probe_function(tmp_path / "broken", load_body='raise ValueError("bad weights")')
            with pytest.raises(BuildError, match="bad weights"):
                await asyncio.to_thread(build_function, broken, store, sandbox=sandbox)
            assert forked.forked == 3

    run(scenario(), timeout=120)


def test_a_hanging_forked_smoke_is_killed_at_the_timeout(tmp_path: Path, run_dir: Path) -> None:
    fn = probe_function(tmp_path, load_body="import time; time.sleep(60)")
    store = LocalArtifactStore(tmp_path / "artifacts")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY) as (sv, _):
            forked = ForkedSmoke(run_dir)
            forked.attach(sv)
            started = time.monotonic()
            with pytest.raises(BuildError, match="did not finish within 2 s"):
                await asyncio.to_thread(build_function, fn, store, smoke_timeout=2,
                                        sandbox=SmokeSandbox(fork=forked))
            assert time.monotonic() - started < 20

    run(scenario(), timeout=120)


def test_without_a_running_zygote_the_smoke_runs_in_a_fresh_interpreter(tmp_path: Path, run_dir: Path) -> None:
    fn = probe_function(tmp_path)
    forked = ForkedSmoke(run_dir)  # never attached: no data plane
    report = run_smoke(fn, load_manifest(fn), timeout=60, sandbox=SmokeSandbox(fork=forked))
    assert report["ok"] and forked.forked == 0
