"""The revision builder: real function directories, a real smoke child process, real stores, real git."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from revisions.build_log import BuildLog
from revisions.builder import BuildError, build_from_git, build_function
from revisions.digest import digest_function
from revisions.store import ArtifactStore, LocalArtifactStore

STEP_LINE = re.compile(r"^\[(\d)/(\d)\] (\w+) (ok|FAILED) \(\d+ ms\)")


@pytest.fixture
def local_store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def build_error(source: Path, store: ArtifactStore, **kwargs) -> BuildError:
    with pytest.raises(BuildError) as info:
        build_function(source, store, **kwargs)
    assert store.list_digests() == [], "a failed build must not store anything"
    return info.value


# --------------------------------------------------------------------------------------- success


def test_build_is_stable_and_stores_once(artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path):
    streamed: list[str] = []
    first = build_function(onnx_function, artifact_store, BuildLog(on_line=streamed.append))
    assert first.name == "linear" and first.manifest.runtime == "onnx"
    assert first.digest.startswith("sha256:") and not first.already_stored
    assert first.smoke["ok"] is True and first.smoke["outputs"] == {"y": [[2, 3], "FP32"]}
    assert set(first.files) == {"function.yaml", "model.onnx", "sample.json"}
    assert [STEP_LINE.match(line).group(1, 2, 3, 4) for line in streamed] == [
        ("1", "5", "manifest", "ok"), ("2", "5", "files", "ok"), ("3", "5", "smoke", "ok"),
        ("4", "5", "digest", "ok"), ("5", "5", "store", "ok"),
    ]
    assert first.digest in streamed[3]

    second_log = BuildLog()
    second = build_function(onnx_function, artifact_store, second_log)
    assert second.digest == first.digest and second.already_stored
    assert "already stored" in second_log.lines[-1]
    assert artifact_store.list_digests() == [first.digest]
    materialized = artifact_store.materialize(first.digest, tmp_path / "revision")
    assert digest_function(materialized).digest == first.digest


def test_python_handler_builds_with_a_scrubbed_environment(
    local_store: LocalArtifactStore, function_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Secrets of the control plane must not reach user code; the function's own env must.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("ZEROSERVE_API_TOKEN", "do-not-leak")
    source = '''
import os
import numpy as np

class Model:
    inputs = [{"name": "text", "datatype": "FP32", "shape": [-1, 2]}]
    outputs = [{"name": "doubled", "datatype": "FP32", "shape": [-1, 2]}]

    def predict(self, inputs):
        leaked = [n for n in ("AWS_SECRET_ACCESS_KEY", "ZEROSERVE_API_TOKEN") if n in os.environ]
        if leaked or os.environ.get("GREETING") != "hello":
            raise RuntimeError(f"environment: leaked={leaked} greeting={os.environ.get('GREETING')!r}")
        return {"doubled": np.asarray(inputs["text"], dtype=np.float32) * 2}
'''
    function_dir = function_factory.handler(tmp_path / "doubler", source=source)
    manifest = (function_dir / "function.yaml").read_text()
    (function_dir / "function.yaml").write_text(manifest + "env:\n  GREETING: hello\n")
    built = build_function(function_dir, local_store)
    assert built.manifest.runtime == "python" and built.smoke["ok"] is True
    assert local_store.exists(built.digest)
    assert not (function_dir / "__pycache__").exists(), "the smoke run must not write into the source"


def test_digest_ignores_manifest_formatting_but_not_model_bytes(function_factory, tmp_path: Path):
    base = digest_function(function_factory.onnx(tmp_path / "a"))
    commented = function_factory.onnx(tmp_path / "b", comment="# the linear model, v1\n\n")
    assert digest_function(commented).digest == base.digest
    (tmp_path / "b" / "__pycache__").mkdir()
    (tmp_path / "b" / "__pycache__" / "h.cpython-311.pyc").write_bytes(b"cache")
    assert digest_function(commented).digest == base.digest, "caches are not part of a revision"

    changed = function_factory.onnx(tmp_path / "c")
    model = bytearray((changed / "model.onnx").read_bytes())
    model[-1] ^= 0x01
    (changed / "model.onnx").write_bytes(bytes(model))
    assert digest_function(changed).digest != base.digest

    other_setting = function_factory.onnx(tmp_path / "d")
    text = (other_setting / "function.yaml").read_text().replace("window: 60s", "window: 61s")
    (other_setting / "function.yaml").write_text(text)
    assert digest_function(other_setting).digest != base.digest
    # "60s" and 60 are the same setting once normalised.
    same_setting = function_factory.onnx(tmp_path / "e")
    text = (same_setting / "function.yaml").read_text().replace("window: 60s", "window: 60")
    (same_setting / "function.yaml").write_text(text)
    assert digest_function(same_setting).digest == base.digest


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_iris_example_builds_and_a_comment_is_not_a_new_revision(
    local_store: LocalArtifactStore, tmp_path: Path
):
    copy = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris", copy)
    built = build_function(copy, local_store)
    assert built.name == "iris" and built.smoke["ok"] is True
    manifest = copy / "function.yaml"
    manifest.write_text("# deployed by the tests\n" + manifest.read_text() + "\n# trailing comment\n")
    assert digest_function(copy).digest == built.digest
    assert digest_function(EXAMPLES / "iris").digest == built.digest


# --------------------------------------------------------------------------------------- failures


def test_corrupt_model_fails_the_smoke_naming_the_file(local_store: LocalArtifactStore, onnx_function: Path):
    model = onnx_function / "model.onnx"
    model.write_bytes(b"\x08\x07garbage" + model.read_bytes()[40:])
    error = build_error(onnx_function, local_store)
    assert error.message.startswith("smoke inference failed: model file model.onnx could not be loaded")
    assert "ONNX Runtime" in error.message, "the child's own error line is passed on"
    assert str(onnx_function) not in error.message, "paths are relative to the function"
    assert "[3/5] smoke FAILED" in error.log.text()


def test_missing_model_fails_before_the_smoke(local_store: LocalArtifactStore, onnx_function: Path):
    (onnx_function / "model.onnx").unlink()
    error = build_error(onnx_function, local_store)
    assert error.message == "model file model.onnx (named in function.yaml) does not exist"
    assert error.log.lines[-1].startswith("[2/5] files FAILED")


def test_invalid_manifest_lists_every_problem(local_store: LocalArtifactStore, onnx_function: Path):
    (onnx_function / "function.yaml").write_text(
        "name: Not_A_Name\nmodel: model.onnx\nscaling:\n  window: 2s\n  colour: blue\n"
    )
    error = build_error(onnx_function, local_store)
    assert error.message.startswith("function.yaml is invalid (3 problem(s))")
    for problem in ("name: name 'Not_A_Name' must be a DNS-1035 label", "scaling.window: must be between",
                    "scaling.colour: unknown key"):
        assert problem in error.message
    assert error.log.lines[0].startswith("[1/5] manifest FAILED")
    assert any(line.startswith("  - scaling.colour") for line in error.log.lines), "one log line per problem"


def test_handler_that_raises_fails_naming_the_handler(
    local_store: LocalArtifactStore, function_factory, tmp_path: Path
):
    source = function_factory.raising_handler_source
    function_dir = function_factory.handler(tmp_path / "broken", source=source)
    error = build_error(function_dir, local_store)
    assert error.message == (
        "smoke inference failed: handler 'handler:Model' raised RuntimeError: "
        "the handler is broken on purpose"
    )


def test_missing_handler_module_names_both_candidates(
    local_store: LocalArtifactStore, function_factory, tmp_path: Path
):
    function_dir = function_factory.handler(tmp_path / "nohandler")
    (function_dir / "handler.py").unlink()
    error = build_error(function_dir, local_store)
    assert "handler file handler.py or handler/__init__.py" in error.message


def test_a_hanging_smoke_is_killed_at_the_timeout(
    local_store: LocalArtifactStore, function_factory, tmp_path: Path
):
    source = "import time\ntime.sleep(60)\n"
    source += "class Model:\n    def predict(self, inputs):\n        return {}\n"
    function_dir = function_factory.handler(tmp_path / "hangs", source=source)
    started = time.monotonic()
    error = build_error(function_dir, local_store, smoke_timeout=1.5)
    assert time.monotonic() - started < 20
    assert error.message == "handler handler:Model: smoke inference did not finish within 1.5 s"


def test_symlink_leaving_the_function_is_refused(
    local_store: LocalArtifactStore, onnx_function: Path, tmp_path: Path
):
    outside = tmp_path / "secret.txt"
    outside.write_text("host secret")
    (onnx_function / "notes.txt").symlink_to(outside)
    with pytest.raises(BuildError, match="notes.txt: is a symlink pointing outside the function directory"):
        # The smoke passes (it never reads notes.txt); the digest step refuses to take a host file.
        build_function(onnx_function, local_store)
    assert local_store.list_digests() == []


# --------------------------------------------------------------------------------------------- git


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    base.update({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                 "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)})
    base.update(env or {})
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=base, check=True
    )
    return result.stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def test_build_from_git_by_commit_sha(local_store: LocalArtifactStore, function_factory, tmp_path: Path):
    repo = init_repo(tmp_path / "repo")
    function_factory.onnx(repo)
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    sha = git(repo, "rev-parse", "HEAD")
    (repo / "model.onnx").write_bytes(b"uncommitted change is not built")

    streamed: list[str] = []
    built = build_from_git(repo, sha, local_store, BuildLog(on_line=streamed.append))
    assert built.commit == sha and built.name == "linear" and local_store.exists(built.digest)
    assert streamed[0].startswith("[1/6] export ok") and sha[:12] in streamed[0]
    assert streamed[-1].startswith("[6/6] store ok")
    expected = function_factory.onnx(tmp_path / "same")
    (expected / ".gitignore").write_text("*.log\n")
    assert built.digest == digest_function(expected).digest

    with pytest.raises(BuildError, match="commit 'feedface' not found"):
        build_from_git(repo, "feedface", local_store)
    with pytest.raises(BuildError, match="is not a commit id or ref name"):
        build_from_git(repo, "--output=/tmp/x", local_store)


def test_build_from_git_reads_quarantined_objects_through_git_env(
    local_store: LocalArtifactStore, tmp_path: Path
):
    """A pre-receive hook sees pushed objects only in git's quarantine directory, via its environment."""
    repo = init_repo(tmp_path / "repo")
    (repo / "function.yaml").write_text("name: quarantined\nmodel: missing.onnx\n")
    quarantine = tmp_path / "incoming-objects"
    quarantine.mkdir()
    hook_env = {"GIT_OBJECT_DIRECTORY": str(quarantine),
                "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(repo / ".git" / "objects")}
    git(repo, "add", "-A", env=hook_env)
    tree = git(repo, "write-tree", env=hook_env)
    sha = git(repo, "commit-tree", tree, "-m", "pushed", env=hook_env)

    with pytest.raises(BuildError, match=f"commit '{sha}' not found"):
        build_from_git(repo, sha, local_store)
    with pytest.raises(BuildError) as info:
        build_from_git(repo, sha, local_store, git_env=hook_env)
    # The export read the quarantined commit; the build then stops at the missing model.
    assert info.value.log.lines[0].startswith("[1/6] export ok")
    assert info.value.message == "model file missing.onnx (named in function.yaml) does not exist"
    assert local_store.list_digests() == []


# ------------------------------------------------------------------------------------- build log


def test_build_log_numbers_times_and_streams_lines():
    streamed: list[str] = []
    log = BuildLog(on_line=streamed.append)
    log.expect_steps(2)
    log.expect_steps(9)  # the outer build's count wins
    with log.step("manifest") as step:
        step.detail = "iris (onnx)"
        assert streamed == [], "a step's line is written when it ends"
    log.info("two lines\nof info")
    with pytest.raises(ValueError, match="boom"), log.step("files"):
        raise ValueError("boom")
    assert streamed == log.lines
    assert re.fullmatch(r"\[1/2\] manifest ok \(\d+ ms\): iris \(onnx\)", streamed[0])
    assert streamed[1:3] == ["two lines", "of info"]
    assert re.fullmatch(r"\[2/2\] files FAILED \(\d+ ms\): boom", streamed[3])
    assert log.text() == "\n".join(streamed)
