"""Warm templates with real processes: replicas forked from a revision's loaded function, within a budget."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from protocol.manifest import load_manifest
from tests.deploy.local.harness import HERE, alive, http, run, running_supervisor, zombie

ROOT = HERE.parents[2]
FACTORY = "functions.app:create_app"
IRIS_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def iris_copy(tmp_path: Path, name: str, *, threads: int | None = 1, env: dict[str, str] | None = None) -> Path:
    dest = tmp_path / name
    shutil.copytree(ROOT / "examples" / "iris", dest, ignore=shutil.ignore_patterns("make_model.py"))
    manifest = yaml.safe_load((dest / "function.yaml").read_text())
    manifest["name"] = name
    if threads is not None:
        manifest["resources"] = {"threads": threads}
    if env:
        manifest["env"] = env
    (dest / "function.yaml").write_text(yaml.safe_dump(manifest))
    return dest


PROBE_HANDLER = """
import os
import numpy as np

class Probe:
    inputs = [{"name": "input", "datatype": "FP32", "shape": [-1]}]
    outputs = [{"name": "output", "datatype": "FP32", "shape": [-1]}]

    def load(self):
        self.at_load = float(os.environ.get("SCALE", "0"))

    def predict(self, inputs):
        seen = [self.at_load, float(os.environ.get("SCALE", "0")), float("PLATFORM_SECRET" in os.environ),
                float(os.environ.get("HOME", "").endswith("/probe"))]
        return {"output": np.array(seen, dtype=np.float32)}
"""


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_replica_forks_from_its_warm_template_which_retires_after_its_last_replica(tmp_path: Path,
                                                                                   run_dir: Path) -> None:
    fn = iris_copy(tmp_path, "iris")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY, warm_templates_memory=256 << 20) as (sv, owner):
            sv.register_revision("iris-00001", fn, load_manifest(fn))
            status = await owner.wait_for(lambda: sv.warm_templates()["count"] == 1 and sv.warm_templates(),
                                          "the warm template")
            (template,) = status["templates"]
            assert template["revision"] == "iris-00001" and 0 < template["private_bytes"] <= status["bytes"]
            assert parent_of(template["pid"]) == sv.zygotes()["default"]["pid"]
            await sv.set_scale("iris-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("iris-00001"), "a replica")
            (info,) = sv.replicas("iris-00001")
            assert info.mode == "template" and sv.warm_templates()["hits"] == 1
            assert info.pid is not None and parent_of(info.pid) == template["pid"]
            code, body, _ = await http(endpoint, "POST", "/v2/models/iris/infer", IRIS_BODY)
            assert code == 200 and body["outputs"][0]["shape"] == [1, 3]
            # A crash of a template's replica is seen and replaced, with its exit status (the template reaps it).
            os.kill(info.pid, signal.SIGKILL)
            (endpoint,) = await owner.wait_for(
                lambda: sv.status("iris-00001").restarts == 1 and owner.endpoints("iris-00001") != [endpoint]
                and owner.endpoints("iris-00001"), "a replacement")
            assert "killed by SIGKILL" in (sv.status("iris-00001").last_error or "")
            assert sv.replicas("iris-00001")[0].mode == "template"
            # Evicted, the template forks nothing more but stays while its replica serves; then it exits.
            sv.templates.discard("iris-00001")
            assert sv.warm_templates()["count"] == 0
            assert (await http(endpoint, "POST", "/v2/models/iris/infer", IRIS_BODY))[0] == 200
            assert alive(template["pid"]) and not zombie(template["pid"])
            await sv.set_scale("iris-00001", 0)
            await owner.wait_for(lambda: not alive(template["pid"]) or zombie(template["pid"]), "the template gone")
            # The next start finds none (a miss), forks from the zygote, and asks for a new template.
            await sv.set_scale("iris-00001", 1)
            await owner.wait_for(lambda: owner.endpoints("iris-00001"), "a replica")
            assert sv.replicas("iris-00001")[0].mode == "fork" and sv.warm_templates()["misses"] == 1
            await owner.wait_for(lambda: sv.warm_templates()["count"] == 1, "a new warm template")

    run(scenario(), timeout=90)


def test_replicas_die_with_their_template_and_are_replaced(tmp_path: Path, run_dir: Path) -> None:
    fn = iris_copy(tmp_path, "iris")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY, warm_templates_memory=256 << 20) as (sv, owner):
            sv.register_revision("iris-00001", fn, load_manifest(fn))
            await owner.wait_for(lambda: sv.warm_templates()["count"] == 1, "the warm template")
            (template,) = sv.warm_templates()["templates"]
            await sv.set_scale("iris-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("iris-00001"), "a replica")
            (info,) = sv.replicas("iris-00001")
            assert info.pid is not None
            os.kill(template["pid"], signal.SIGKILL)
            await owner.wait_for(lambda: owner.endpoints("iris-00001") and owner.endpoints("iris-00001") != [endpoint],
                                 "a replacement")
            assert not alive(info.pid) or zombie(info.pid)
            assert sv.status("iris-00001").restarts == 1

    run(scenario(), timeout=90)


def test_a_template_and_its_replicas_hold_exactly_a_replicas_environment(tmp_path: Path, run_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_SECRET", "must-not-reach-functions")
    fn = tmp_path / "probe"
    fn.mkdir()
    (fn / "probe.py").write_text(PROBE_HANDLER)
    (fn / "function.yaml").write_text("name: probe\nruntime: python\nhandler: probe:Probe\nenv:\n  SCALE: '3'\n")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY, warm_templates_memory=256 << 20) as (sv, owner):
            sv.register_revision("probe-00001", fn, load_manifest(fn))
            await owner.wait_for(lambda: sv.warm_templates()["count"] == 1, "the warm template")
            await sv.set_scale("probe-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("probe-00001"), "a replica")
            assert sv.replicas("probe-00001")[0].mode == "template"
            body = {"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [0]}]}
            code, answer, _ = await http(endpoint, "POST", "/v2/models/probe/infer", body)
            assert code == 200, answer
            # The function's env at load (in the template) and at predict; no platform variable; its own HOME.
            assert answer["outputs"][0]["data"] == [3.0, 3.0, 0.0, 1.0]

    run(scenario(), timeout=90)


def test_a_load_that_starts_threads_gets_no_template_and_says_why(tmp_path: Path, run_dir: Path) -> None:
    fn = iris_copy(tmp_path, "iris", threads=2)

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY, warm_templates_memory=256 << 20) as (sv, owner):
            sv.register_revision("iris-00001", fn, load_manifest(fn))
            reason = await owner.wait_for(lambda: sv.warm_templates()["unavailable"].get("iris-00001"),
                                          "the template refused")
            assert "thread" in reason and "unsafe" in reason
            await sv.set_scale("iris-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("iris-00001"), "a replica")
            assert sv.replicas("iris-00001")[0].mode == "fork"
            assert (await http(endpoint, "POST", "/v2/models/iris/infer", IRIS_BODY))[0] == 200

    run(scenario(), timeout=90)


def test_templates_stay_within_the_budget_least_recently_used_first(tmp_path: Path, run_dir: Path) -> None:
    fns = [iris_copy(tmp_path, f"iris{i}") for i in range(3)]

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY, warm_templates_memory=256 << 20) as (sv, owner):
            sv.register_revision("iris0-00001", fns[0], load_manifest(fns[0]))
            one = await owner.wait_for(lambda: sv.warm_templates()["count"] == 1 and sv.warm_templates()["bytes"],
                                       "one template")
            # Room for two: the third evicts the least recently used (iris0; iris1 was used after it).
            sv.templates.budget_bytes = int(one * 2.5)
            sv.register_revision("iris1-00001", fns[1], load_manifest(fns[1]))
            await owner.wait_for(lambda: sv.warm_templates()["count"] == 2, "two templates")
            sv.register_revision("iris2-00001", fns[2], load_manifest(fns[2]))
            status = await owner.wait_for(lambda: sv.warm_templates()["evictions"] == 1 and sv.warm_templates(),
                                          "an eviction")
            assert sorted(t["revision"] for t in status["templates"]) == ["iris1-00001", "iris2-00001"]
            assert status["bytes"] <= sv.templates.budget_bytes

    run(scenario(), timeout=90)


def test_a_template_that_cannot_load_is_reported_and_replicas_fail_with_the_real_error(tmp_path: Path,
                                                                                       run_dir: Path) -> None:
    fn = iris_copy(tmp_path, "broken")
    (fn / "model.onnx").write_bytes(b"not a model")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY, warm_templates_memory=256 << 20) as (sv, owner):
            sv.register_revision("broken-00001", fn, load_manifest(fn))
            reason = await owner.wait_for(lambda: sv.warm_templates()["unavailable"].get("broken-00001"),
                                          "the template's load error")
            assert "model.onnx" in reason
            await sv.set_scale("broken-00001", 1)
            failure = await owner.wait_for(lambda: owner.failures, "the start failure")
            assert "model.onnx" in failure[0][2]

    run(scenario(), timeout=90)


def test_templates_are_off_with_a_zero_budget(tmp_path: Path, run_dir: Path) -> None:
    fn = iris_copy(tmp_path, "iris")

    async def scenario() -> None:
        async with running_supervisor(run_dir, app_factory=FACTORY, warm_templates_memory=0) as (sv, owner):
            sv.register_revision("iris-00001", fn, load_manifest(fn))
            await sv.set_scale("iris-00001", 1)
            await owner.wait_for(lambda: owner.endpoints("iris-00001"), "a replica")
            assert sv.replicas("iris-00001")[0].mode == "fork"
            assert sv.warm_templates() == {**sv.warm_templates(), "count": 0, "hits": 0, "misses": 0}

    run(scenario(), timeout=90)
