"""Fixtures: a real `zeroserve up` (tests/zeroserve/control's harness), a slow Python function, the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.zeroserve.control.harness import REPO, PlatformProcess

# ~20 ms per request, one request at a time per replica: on 2 cores a handful of users is enough for
# concurrency to build up and the autoscaler to add replicas.
SLEEPY = REPO / "loadtests" / "functions" / "sleepy"


def sleepy_function(parent: Path, name: str, scaling: dict[str, object]) -> Path:
    """A copy of loadtests/functions/sleepy under another name, with its own scaling settings."""
    directory = parent / name
    shutil.copytree(SLEEPY, directory, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((directory / "function.yaml").read_text())
    manifest.update(name=name, scaling=scaling)
    (directory / "function.yaml").write_text(yaml.safe_dump(manifest))
    return directory


def cli_env(platform: PlatformProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZEROSERVE_", "LOCUST_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(ZEROSERVE_URL=platform.url, ZEROSERVE_DATA=str(platform.data_dir), PYTHONUNBUFFERED="1")
    return env


def loadtest_command(function: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "zeroserve.cli", "loadtest", function, *args]


def run_loadtest(platform: PlatformProcess, function: str, *args: str,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(loadtest_command(function, *args), cwd=REPO, env=cli_env(platform),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="package")  # one platform for the spike and interrupt modules (each its own function)
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    proc = PlatformProcess(tmp_path_factory.mktemp("platform") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()
