"""Hostile function.yaml against a real `zeroserve up`: a YAML alias bomb, a push into another
function's repository, and targets this version cannot deploy to."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from revisions.store import LocalArtifactStore
from tests.deploy.git.gitrepo import WorkRepo, ls_remote, remote_url
from tests.protocol.manifest.yaml_bombs import alias_bomb
from tests.zeroserve.control.harness import PlatformProcess, function_dir
from tests.zeroserve.control.uploads import tar_gz

NDJSON = "application/x-ndjson"


def tar_gz_dir(directory: Path) -> bytes:
    return tar_gz({p.relative_to(directory).as_posix(): p.read_bytes()
                   for p in sorted(directory.rglob("*")) if p.is_file()})


def post_deploy(platform: PlatformProcess, body: bytes, *, stream: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {platform.token}", "Content-Type": "application/gzip"}
    if stream:
        headers["Accept"] = NDJSON
    return httpx.post(f"{platform.url}/api/v1/functions", content=body, headers=headers, timeout=120)


def registry_state(platform: PlatformProcess) -> tuple[dict[str, int], list[Any], list[Any]]:
    """What a deploy could have changed: the database files' sizes, the functions, the events."""
    sizes = {p.name: p.stat().st_size for p in sorted(platform.data_dir.glob("registry.db*"))}
    client = platform.client()
    return sizes, client.list_functions(), client.events(limit=10_000)


@pytest.fixture(scope="module")
def hostile_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    proc = PlatformProcess(tmp_path_factory.mktemp("hostile-platform") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def fresh_platform(tmp_path: Path) -> Iterator[PlatformProcess]:
    """A platform nothing else has touched, so any write to its registry shows."""
    proc = PlatformProcess(tmp_path / "fresh-data").start()
    try:
        yield proc
    finally:
        proc.stop()


# ------------------------------------------------------------------------------------- the YAML bomb


def test_a_yaml_alias_bomb_gets_a_small_quick_400_and_leaves_the_registry_unchanged(fresh_platform):
    before = registry_state(fresh_platform)
    for levels in (6, 9):  # 6: the reviewer's 11.5 MB answer; 9: never finished
        body = tar_gz({"function.yaml": alias_bomb(levels).encode()})
        assert len(body) < 1024
        started = time.perf_counter()
        response = post_deploy(fresh_platform, body)
        elapsed = time.perf_counter() - started
        print(f"alias bomb, {levels} levels: {response.status_code}, {len(response.content)} bytes "
              f"in {elapsed * 1000:.0f} ms")
        assert response.status_code == 400, response.text[:2000]
        assert len(response.content) < 2048, f"{len(response.content)} bytes"
        assert elapsed < 5.0  # about 20 ms here; loose so a busy machine cannot fail it
        error = response.json()["error"]
        assert "anchors (&lol0) are not allowed in function.yaml" in error and "line 1" in error

        # The streamed deploy (what `zeroserve deploy` reads) answers the same, as briefly.
        streamed = post_deploy(fresh_platform, body, stream=True)
        assert streamed.status_code == 200
        last = json.loads(streamed.text.strip().splitlines()[-1])
        assert last["type"] == "error" and last["http_status"] == 400
        assert "anchors (&lol0) are not allowed" in last["error"]
        assert len(streamed.content) < 4096, f"{len(streamed.content)} bytes"
    assert registry_state(fresh_platform) == before


def test_an_oversized_manifest_is_refused_by_size_before_it_is_parsed(hostile_platform):
    text = "name: big\nmodel: model.onnx\n" + "# padding\n" * 10_000
    response = post_deploy(hostile_platform, tar_gz({"function.yaml": text.encode()}))
    assert response.status_code == 400
    assert f"function.yaml is {len(text)} bytes; the limit is 65536 bytes (64 KiB)" in response.json()["error"]
    assert len(response.content) < 2048


def test_a_pushed_alias_bomb_is_rejected_quickly_and_briefly(hostile_platform, tmp_path):
    source = tmp_path / "bomb-git"
    source.mkdir()
    (source / "function.yaml").write_text(alias_bomb(9))
    repo = WorkRepo.from_dir(source, source)
    url = remote_url(hostile_platform, "bomb-git")
    started = time.perf_counter()
    result = repo.push(url)
    elapsed = time.perf_counter() - started
    assert result.returncode != 0
    assert "[2/7] manifest FAILED" in result.stderr
    assert "anchors (&lol0) are not allowed in function.yaml" in result.stderr
    assert len(result.stderr) < 4096, f"{len(result.stderr)} bytes"
    assert elapsed < 30.0  # a git push round trip; the manifest step itself takes milliseconds
    assert "refs/heads/main" not in ls_remote(url, tmp_path)
    events = [e for e in hostile_platform.client().events("bomb-git") if e["kind"] == "build-failed"]
    assert len(events) == 1 and len(events[0]["message"]) < 2048


# ------------------------------------------------------------------ a push into another function's repository

MARKER_HANDLER = textwrap.dedent('''
    """Leaves a mark when imported: the test sees whether this code ran at all."""
    from pathlib import Path

    Path({marker!r}).write_text("imported")


    class Model:
        inputs = [{{"name": "input", "datatype": "FP32", "shape": [-1, -1]}}]
        outputs = [{{"name": "output", "datatype": "FP32", "shape": [-1, -1]}}]

        def load(self):
            pass

        def predict(self, inputs):
            return {{"output": inputs["input"]}}
''')
SAMPLE = '{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}'


def marker_function(directory: Path, name: str, marker: Path) -> Path:
    directory.mkdir()
    (directory / "handler.py").write_text(MARKER_HANDLER.format(marker=str(marker)))
    (directory / "sample.json").write_text(SAMPLE)
    (directory / "function.yaml").write_text(yaml.safe_dump(
        {"name": name, "handler": "handler:Model", "sample": "sample.json", "scaling": {"initial_scale": 0}}))
    return directory


@pytest.fixture
def marker_dir() -> Iterator[Path]:
    # Outside the test's private tmp dir and writable by all: user code may run as an unprivileged uid.
    # The control push below proves the handler can leave its mark here when it does run.
    path = Path(tempfile.mkdtemp(prefix="zeroserve-marker-"))
    os.chmod(path, 0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_push_naming_another_function_is_refused_before_any_of_its_code_runs(hostile_platform, tmp_path,
                                                                               marker_dir):
    store = LocalArtifactStore(hostile_platform.data_dir / "artifacts")

    # Control: the same kind of handler, pushed to its own repository, runs and leaves its mark.
    control_mark = marker_dir / "control"
    control = WorkRepo.from_dir(marker_function(tmp_path / "ok", "marker-ok", control_mark), tmp_path / "ok")
    pushed = control.push(remote_url(hostile_platform, "marker-ok"))
    assert pushed.returncode == 0, pushed.stderr
    assert control_mark.read_text() == "imported"

    artifacts = sorted(store.list_digests())
    functions = [f["name"] for f in hostile_platform.client().list_functions()]
    mark = marker_dir / "intruder"
    intruder = WorkRepo.from_dir(marker_function(tmp_path / "intruder", "marker-ok", mark), tmp_path / "intruder")
    url = remote_url(hostile_platform, "marker-victim")
    result = intruder.push(url)

    assert result.returncode != 0, result.stderr
    assert not mark.exists(), "the handler of a refused push ran"
    assert sorted(store.list_digests()) == artifacts
    assert "! [remote rejected] HEAD -> main (pre-receive hook declined)" in result.stderr
    assert "[2/7] manifest FAILED" in result.stderr
    assert "names the function 'marker-ok', but this is the repository of 'marker-victim'" in result.stderr
    assert "push it to marker-ok.git" in result.stderr
    assert "smoke" not in result.stderr and "store" not in result.stderr
    assert [f["name"] for f in hostile_platform.client().list_functions()] == functions
    assert "refs/heads/main" not in ls_remote(url, tmp_path)
    assert [r["name"] for r in hostile_platform.client().revisions("marker-ok")] == ["marker-ok-00001"]


# -------------------------------------------------------------------------------- unknown targets


@pytest.mark.parametrize("target", ["cloudrun"])
def test_unknown_targets_are_refused_with_a_clear_message(hostile_platform, tmp_path, target):
    directory = function_dir(tmp_path, f"on-{target}", targets=["local", target])
    response = post_deploy(hostile_platform, tar_gz_dir(directory))
    assert response.status_code == 400, response.text[:2000]
    error = response.json()["error"]
    assert "targets.1: must be one of 'local', 'knative' or 'lambda'" in error
    assert f"on-{target}" not in [f["name"] for f in hostile_platform.client().list_functions()]
