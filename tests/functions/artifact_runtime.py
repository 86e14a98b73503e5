"""Helpers for `zeroserve serve --artifact`: put a function into a store, run the runtime as a real process.

Used by the runtime tests here (conftest's `serve_function` runs `functions.server` with `running` too),
the runtime image's entrypoint test (tests/deploy/knative) and the credential isolation test (tests/security).
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from revisions.artifact_uri import format_artifact_uri
from revisions.digest import digest_function
from revisions.store import ArtifactStore

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"^zeroserve: serving .* at (http://127\.0\.0\.1:\d+) ")
ZEROSERVE = Path(sys.executable).parent / "zeroserve"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                  "AWS_REGION": "us-east-1"}


def put_function(store: ArtifactStore, function_dir: Path) -> str:
    """Store a function directory as a revision artifact, as the builder does; returns its digest."""
    digest = digest_function(function_dir)
    store.put(digest.digest, function_dir, digest.files, generated=digest.generated)
    return digest.digest


def artifact_uri(store_spec: str, digest: str) -> str:
    return format_artifact_uri(store_spec, digest)


def runtime_env(tmp_dir: Path, **extra: str) -> dict[str, str]:
    """This interpreter's environment without anything a test run may have set for other reasons."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AWS_", "ZEROSERVE_", "K_")) and name != "PORT"}
    env.update({"TMPDIR": str(tmp_dir), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


@dataclass
class RunningRuntime:
    url: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.output)

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")


@contextmanager
def running(command: Sequence[str], env: Mapping[str, str], *, timeout: float = 60.0,
            ready: re.Pattern[str] = READY, stop_timeout: float = 15.0) -> Iterator[RunningRuntime]:
    """Run `command` until it prints a `ready` line (its group 1 is the URL); terminate it (and wait) afterwards."""
    process = subprocess.Popen(list(command), cwd=REPO, env=dict(env), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:  # keep draining so the child never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{command} was not ready in {timeout}s:\n{''.join(output)}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"{command} exited with {process.wait()}:\n{''.join(output)}")
            if match := ready.match(line):
                url = match.group(1)
        yield RunningRuntime(url, process, output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_to_exit(command: Sequence[str], env: Mapping[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=REPO, env=dict(env), capture_output=True, text=True, timeout=timeout)
