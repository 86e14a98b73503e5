"""Where and as whom a build's smoke child runs the function's code for the first time.

The smoke child (`functions.isolation.confined_smoke`) is the first process to run a pushed
function's code, before anything about it is trusted. It gets:
- the platform's allowlisted environment at exec; the function's `env` only after it is confined;
- a private home of its own (HOME, TMPDIR), removed with the build;
- with `run_as` (the platform runs as root): the function's own unprivileged uid/gid, the one its
  replicas run as (never a user shared between functions: a build could then read another build's
  processes), and a copy of the function directory it may read (group = its gid, 0750/0440) but not
  change, in a workspace that is the only part of a private parent (the data dir) its view shows;
- PR_SET_PDEATHSIG after the drop, and a record in `processes`, so it never outlives the platform.

Where the platform has a zygote (the local data plane), `fork` forks the child from it instead of starting
a fresh interpreter: the same request and confinement, without importing the runtime again (most of the
smoke step's time). It is injected from above (deploy.local.smoke_fork): revisions imports nothing of deploy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from functions.isolation import Confinement, Identity, function_environment, inherited_environment
from functions.isolation.environment import with_runtime_on_path
from functions.isolation.files import private_dir, share_read_only
from functions.isolation.orphans import ProcessRecords
from protocol.manifest import FunctionManifest

CHILD_MODULE = "functions.isolation.confined_smoke"
# Imported before the memory limit applies: the runtime's own footprint is not the function's.
RUNTIME_PREIMPORTS = {"onnx": ("onnxruntime", "functions.loaders.onnx_model"),
                      "torch": ("torch", "functions.loaders.torchscript"),
                      "python": ("functions.loaders.python_handler",)}


class SmokeFork(Protocol):
    """Runs the smoke child forked from a process that has the runtime imported (deploy.local.smoke_fork)."""

    scratch_dir: Path   # where workspaces go, so that a forked child can reach them

    def run(self, request: bytes, runtime: str | None, output: tuple[int, int], timeout: float) -> int | None:
        """The child's exit status; None: cannot fork now (start a fresh interpreter). TimeoutError past timeout."""
        ...


@dataclass(frozen=True)
class SmokeSandbox:
    run_as: Callable[[str], Identity] | None = None  # function name -> its user; None: stay this process's user
    scratch_dir: Path | None = None         # where workspaces go (None: the system temp dir)
    processes: ProcessRecords | None = None  # where the running child is recorded for the start-up sweep
    fork: SmokeFork | None = None            # fork the child where it can (its scratch_dir then holds workspaces)


@dataclass(frozen=True)
class SmokeWorkspace:
    root: Path           # the only directory the confined child's view adds
    function_dir: Path   # what the child loads: the source itself, or its readable copy
    home: Path


@contextlib.contextmanager
def smoke_workspace(source_dir: Path, identity: Identity | None, sandbox: SmokeSandbox) -> Iterator[SmokeWorkspace]:
    """A private workspace for one smoke run, removed afterwards (whatever the child left in it)."""
    scratch_dir = sandbox.fork.scratch_dir if sandbox.fork is not None else sandbox.scratch_dir
    if scratch_dir is not None:
        scratch_dir.mkdir(parents=True, exist_ok=True)
    # Absolute: the child starts in "/" (a relative data dir would point nowhere there).
    root = Path(tempfile.mkdtemp(prefix="smoke-", dir=scratch_dir)).resolve()
    try:
        home = private_dir(root / "home", identity)
        function_dir = source_dir.resolve()
        if identity is not None:
            os.chmod(root, 0o711)  # traversable by the child, listable by nobody
            function_dir = root / "function"
            shutil.copytree(source_dir, function_dir, symlinks=True)
            share_read_only(function_dir, identity.gid)
        yield SmokeWorkspace(root, function_dir, home)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def launch_environment() -> dict[str, str]:
    """The child's environment at exec: the allowlist and our packages; never the function's env."""
    env = with_runtime_on_path(inherited_environment())
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the source directory is being digested: leave it as it is
    env["PYTHONUNBUFFERED"] = "1"
    return env


def smoke_identity(manifest: FunctionManifest, sandbox: SmokeSandbox) -> Identity | None:
    return sandbox.run_as(manifest.name) if sandbox.run_as is not None else None


def smoke_request(workspace: SmokeWorkspace, manifest: FunctionManifest,
                  identity: Identity | None) -> dict[str, object]:
    """What the child reads on stdin (see functions.isolation.confined_smoke)."""
    env = function_environment(launch_environment(), home=str(workspace.home), function_env=manifest.env,
                               threads=manifest.resources.threads)
    confinement = Confinement(env=env, identity=identity, workdir=str(workspace.function_dir),
                              threads=manifest.resources.threads, memory_bytes=manifest.resources.memory_bytes)
    return {
        "function_dir": str(workspace.function_dir),
        "confinement": confinement.to_json(),
        "view": [str(workspace.root)] if identity is not None else [],
        "preimports": list(RUNTIME_PREIMPORTS.get(manifest.runtime or "", ())),
        "parent_pid": os.getpid(),
    }
