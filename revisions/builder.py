"""The revision builder: a function directory (or a git commit) -> a validated, smoke-tested artifact.

    built = build_function(Path("examples/iris"), store, BuildLog(on_line=print))
    built.digest   # "sha256:…", the revision's identity; built.smoke is the smoke run's report

Steps, each logged and timed (`[n/5] …`, `[n/6]` from git, whose first step is the export):

1. manifest  function.yaml parses and follows every rule (all problems listed at once)
2. files     the model, handler module and sample named by the manifest exist inside the directory
3. smoke     `python -m functions.smoke DIR` in a child process loads the model and runs one
             inference: a model that crashes ONNX Runtime or hangs takes down the child, not the
             control plane; the child is confined (revisions.smoke_sandbox: scrubbed environment,
             its own unprivileged user when the platform is root, dies with the platform) and timed
4. digest    the revision digest (revisions.digest)
5. store     the artifact is stored under its digest, unless it already is

Any failure raises `BuildError(message, log)`; the message names the file and the fault. Nothing is
written to the store unless every earlier step passed, and the store commits atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from protocol.manifest import MANIFEST_FILE, FunctionManifest, ManifestError, load_manifest
from revisions.archive import ArchiveError, extract_archive_file
from revisions.build_log import BuildLog
from revisions.digest import DigestError, FunctionDigest, digest_function, short_digest
from revisions.smoke_sandbox import (
    CHILD_MODULE,
    SmokeSandbox,
    launch_environment,
    smoke_identity,
    smoke_request,
    smoke_workspace,
)
from revisions.store import ArtifactError, ArtifactStore

FUNCTION_BUILD_STEPS = 5
GIT_BUILD_STEPS = FUNCTION_BUILD_STEPS + 1
_CHILD_OUTPUT_TAIL = 2000
_GIT_REF = re.compile(r"^[^\s\-][^\s]*$")


class BuildError(Exception):
    """A build that failed; `log` holds every line written up to and including the failure."""

    def __init__(self, message: str, log: BuildLog):
        self.message = message
        self.log = log
        super().__init__(message)


@dataclass(frozen=True)
class BuiltFunction:
    name: str
    digest: str
    manifest: FunctionManifest
    files: dict[str, str]  # path -> sha256, as stored
    smoke: dict[str, Any]  # the smoke child's report: ok, load_ms, infer_ms, outputs
    already_stored: bool = False  # True when an identical revision was stored before
    commit: str | None = None  # the git commit built, for build_from_git


def build_function(source_dir: Path, store: ArtifactStore, log: BuildLog | None = None, *,
                   smoke_timeout: float = 120, expected_name: str | None = None,
                   sandbox: SmokeSandbox | None = None) -> BuiltFunction:
    """Build `source_dir`; with `expected_name`, a manifest naming another function fails at step 1,
    before any of its code runs (a push to iris.git must not run, or store, someone else's function)."""
    log = log if log is not None else BuildLog()
    log.expect_steps(FUNCTION_BUILD_STEPS)
    source_dir = Path(source_dir)
    try:
        with log.step("manifest") as step:
            manifest = _read_manifest(source_dir)
            _check_name(manifest, expected_name)
            step.detail = f"{manifest.name} ({manifest.runtime})"
        with log.step("files") as step:
            step.detail = ", ".join(_check_named_files(source_dir, manifest))
        with log.step("smoke") as step:
            smoke = run_smoke(source_dir, manifest, timeout=smoke_timeout, sandbox=sandbox)
            step.detail = _describe_smoke(smoke)
        with log.step("digest") as step:
            digested = _digest(source_dir, manifest)
            step.detail = f"{digested.digest} ({len(digested.files)} files)"
        with log.step("store") as step:
            already_stored = store.exists(digested.digest)
            if already_stored:
                step.detail = f"{short_digest(digested.digest)} already stored"
            else:
                store.put(digested.digest, source_dir, digested.files, generated=digested.generated)
                step.detail = f"{short_digest(digested.digest)} stored"
    except _StepFailure as failure:
        raise BuildError(str(failure), log) from None
    except ArtifactError as exc:
        raise BuildError(f"storing the artifact failed: {exc}", log) from None
    except Exception as exc:  # an I/O fault or a bug: still a failed build, reported with its log
        raise BuildError(f"build failed: {type(exc).__name__}: {exc}", log) from exc
    return BuiltFunction(
        name=manifest.name, digest=digested.digest, manifest=manifest, files=digested.files, smoke=smoke,
        already_stored=already_stored,
    )


def build_from_git(repo_dir: Path, commit: str, store: ArtifactStore, log: BuildLog | None = None, *,
                   git_env: dict[str, str] | None = None, smoke_timeout: float = 120,
                   expected_name: str | None = None, sandbox: SmokeSandbox | None = None) -> BuiltFunction:
    """Build the tree of `commit` in the git repository at `repo_dir` (bare or not).

    `git_env` is laid over a copy of this process's environment with its GIT_* variables removed; a
    pre-receive hook passes GIT_OBJECT_DIRECTORY and GIT_ALTERNATE_OBJECT_DIRECTORIES (git's
    quarantine) so the pushed, not yet accepted objects can be read.
    """
    log = log if log is not None else BuildLog()
    log.expect_steps(GIT_BUILD_STEPS)
    work = Path(tempfile.mkdtemp(prefix="zeroserve-git-build-"))
    try:
        try:
            with log.step("export") as step:
                sha = _export_commit(Path(repo_dir), commit, work, git_env or {})
                step.detail = f"commit {sha[:12]}"
        except _StepFailure as failure:
            raise BuildError(str(failure), log) from None
        except Exception as exc:
            raise BuildError(f"exporting commit '{commit}' failed: {type(exc).__name__}: {exc}", log) from exc
        built = build_function(work / "tree", store, log, smoke_timeout=smoke_timeout, expected_name=expected_name,
                               sandbox=sandbox)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return replace(built, commit=sha)


class _StepFailure(Exception):
    """A step's failure, already worded for the user; becomes a BuildError with the log attached."""


def _read_manifest(source_dir: Path) -> FunctionManifest:
    if not source_dir.is_dir():
        raise _StepFailure(f"{source_dir}: not a directory")
    try:
        return load_manifest(source_dir)
    except ManifestError as exc:
        problems = "\n".join(f"  - {problem}" for problem in exc.problems)
        raise _StepFailure(f"{MANIFEST_FILE} is invalid ({exc.count} problem(s)):\n{problems}") from None


def _check_name(manifest: FunctionManifest, expected_name: str | None) -> None:
    if expected_name is not None and manifest.name != expected_name:
        raise _StepFailure(f"{MANIFEST_FILE} names the function '{manifest.name}', but this is the repository "
                           f"of '{expected_name}': push it to {manifest.name}.git instead")


def _check_named_files(source_dir: Path, manifest: FunctionManifest) -> list[str]:
    """The files the manifest names exist inside the directory; returns them for the log line."""
    named: list[tuple[str, list[str]]] = []
    if manifest.model is not None:
        named.append(("model", [manifest.model]))
    if manifest.handler is not None:
        module = manifest.handler.partition(":")[0].replace(".", "/")
        named.append(("handler", [f"{module}.py", f"{module}/__init__.py"]))
    if manifest.sample is not None:
        named.append(("sample", [manifest.sample]))
    root = source_dir.resolve()
    found = []
    for key, candidates in named:
        present = [c for c in candidates if (source_dir / c).is_file()]
        if not present:
            wanted = " or ".join(candidates)
            raise _StepFailure(f"{key} file {wanted} (named in {MANIFEST_FILE}) does not exist")
        if not (source_dir / present[0]).resolve().is_relative_to(root):
            raise _StepFailure(f"{key} file {present[0]} is a symlink leaving the function directory")
        found.append(present[0])
    return found


def _subject(manifest: FunctionManifest) -> tuple[str, str]:
    """What a smoke failure is about, for the error message: (how to name it, the name itself)."""
    if manifest.runtime == "python" and manifest.handler:
        return f"handler {manifest.handler}", manifest.handler
    return f"model file {manifest.model}", str(manifest.model)


def run_smoke(source_dir: Path, manifest: FunctionManifest, *, timeout: float,
              sandbox: SmokeSandbox | None = None) -> dict[str, Any]:
    """Run the function's smoke test in a confined child; returns its report, raises _StepFailure on any fault."""
    sandbox = sandbox if sandbox is not None else SmokeSandbox()
    identity = smoke_identity(manifest, sandbox)
    with smoke_workspace(source_dir, identity, sandbox) as workspace:
        request = json.dumps(smoke_request(workspace, manifest, identity)).encode()
        returncode, stdout, stderr = _run_child(request, manifest, timeout, sandbox)
    report = _last_report(stdout.decode("utf-8", "replace"))
    if returncode == 0 and report is not None and report.get("ok") is True:
        return report
    subject, subject_name = _subject(manifest)
    if report is not None and report.get("error"):
        fault = str(report["error"])
    else:
        exited = f"the smoke process exited with {returncode}"
        fault = _tail(stderr.decode("utf-8", "replace")) or exited
        if returncode and returncode < 0:
            fault = f"the smoke process was killed by signal {-returncode}; {fault}"
    # Paths relative to the function: a git build runs in a temp dir the user never sees.
    for directory in (source_dir.resolve(), workspace.function_dir):
        fault = fault.replace(f"{directory}{os.sep}", "")
    if subject_name in fault:  # the child already named the file at fault
        raise _StepFailure(f"smoke inference failed: {fault}")
    raise _StepFailure(f"{subject}: smoke inference failed: {fault}")


def _run_child(request: bytes, manifest: FunctionManifest, timeout: float,
               sandbox: SmokeSandbox) -> tuple[int, bytes, bytes]:
    """Run the child to its exit, forked (sandbox.fork) or a fresh interpreter; returns (exit status, stdout, stderr).

    Files, not pipes: a process the function started and left running would hold a pipe open, and the
    build would wait for it; it is killed with the child's process group once the child exits.
    """
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        if sandbox.fork is not None:
            try:
                returncode = sandbox.fork.run(request, manifest.runtime, (stdout.fileno(), stderr.fileno()), timeout)
            except TimeoutError:
                subject, _ = _subject(manifest)
                raise _StepFailure(f"{subject}: smoke inference did not finish within {timeout:g} s") from None
            if returncode is not None:
                stdout.seek(0)
                stderr.seek(0)
                return returncode, stdout.read(), stderr.read()
        stdin.write(request)
        stdin.seek(0)
        # -P: the child's sys.path does not start with its working directory. The working directory is
        # "/" until the child is confined: nothing of the function's acts on a process that may be root.
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", CHILD_MODULE], cwd="/", env=launch_environment(), stdin=stdin,
            stdout=stdout, stderr=stderr, start_new_session=True,
        )
        if sandbox.processes is not None:
            sandbox.processes.add(process.pid, "smoke")
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            subject, _ = _subject(manifest)
            raise _StepFailure(f"{subject}: smoke inference did not finish within {timeout:g} s") from None
        finally:
            _kill_group(process)  # what the function started and left behind goes with it
            process.wait()
            if sandbox.processes is not None:
                sandbox.processes.remove(process.pid)
        stdout.seek(0)
        stderr.seek(0)
        return process.returncode, stdout.read(), stderr.read()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _last_report(stdout: str) -> dict[str, Any] | None:
    """The child prints one JSON line last; a handler's own prints may come before it."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict) and "ok" in report:
            return report
    return None


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _CHILD_OUTPUT_TAIL else "…" + text[-_CHILD_OUTPUT_TAIL:]


def _describe_smoke(report: dict[str, Any]) -> str:
    parts = []
    for key, label in (("load_ms", "load"), ("infer_ms", "infer")):
        value = report.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {value:.0f} ms")
    return ", ".join(parts)


def _digest(source_dir: Path, manifest: FunctionManifest) -> FunctionDigest:
    try:
        return digest_function(source_dir, manifest)
    except DigestError as exc:
        raise _StepFailure(str(exc)) from None


def _git_environment(git_env: dict[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env.update(git_env)
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _export_commit(repo_dir: Path, commit: str, work: Path, git_env: dict[str, str]) -> str:
    """Resolve `commit` and unpack its tree into work/tree with `git archive`; returns the full sha."""
    if not _GIT_REF.match(commit):
        raise _StepFailure(f"'{commit}' is not a commit id or ref name")
    if not repo_dir.is_dir():
        raise _StepFailure(f"{repo_dir}: not a git repository")
    env = _git_environment(git_env)
    verify = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}^{{commit}}"]
    resolved = _git(repo_dir, verify, env)
    if resolved.returncode != 0:
        why = _tail(resolved.stderr.decode("utf-8", "replace"))
        raise _StepFailure(f"commit '{commit}' not found in {repo_dir.name}" + (f": {why}" if why else ""))
    sha = resolved.stdout.decode().strip()
    archive_path = work / "tree.tar"
    with open(archive_path, "wb") as archive_file:
        exported = subprocess.run(
            ["git", "-C", str(repo_dir), "archive", "--format=tar", sha],
            stdout=archive_file, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL, check=False,
        )
    if exported.returncode != 0:
        why = _tail(exported.stderr.decode("utf-8", "replace"))
        raise _StepFailure(f"git archive of commit {sha[:12]} failed: {why}")
    try:
        extract_archive_file(archive_path, work / "tree")
    except ArchiveError as exc:
        raise _StepFailure(f"commit {sha[:12]}: {exc}") from None
    archive_path.unlink()
    return sha


def _git(repo_dir: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(repo_dir), *args], capture_output=True, env=env, stdin=subprocess.DEVNULL,
        check=False,
    )


__all__ = [
    "BuildError", "BuiltFunction", "FUNCTION_BUILD_STEPS", "GIT_BUILD_STEPS", "build_from_git",
    "SmokeSandbox", "build_function", "run_smoke",
]
