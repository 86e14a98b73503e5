"""Fixtures for the function runtime: real uvicorn processes on free ports, and in-process ASGI clients."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FIXTURE_FUNCTIONS = Path(__file__).resolve().parent / "fixture_functions"
READY = re.compile(r"^zeroserve: serving .* at ((?:http://|unix:)\S+) ")


@dataclass
class ServedFunction:
    url: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")


@contextmanager
def serve_function(function_dir: Path, *args: str, timeout: float = 60.0,
                   ready_url: str | None = None) -> Iterator[ServedFunction]:
    """`python -m functions.server DIR --port 0 ARGS` as a child process; yields once it printed its URL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "functions.server", str(function_dir), "--port", "0", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
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
                raise AssertionError(f"{function_dir} did not start in {timeout}s:\n{''.join(output)}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"{function_dir} exited with {process.wait()}:\n{''.join(output)}")
            match = READY.match(line)
            if match:
                url = match.group(1)
                assert ready_url is None or url == ready_url, line
        yield ServedFunction(url, process, output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def iris_server() -> Iterator[ServedFunction]:
    with serve_function(EXAMPLES / "iris", "--revision", "iris-00001") as served:
        yield served


@pytest.fixture(scope="session")
def multi_io_server() -> Iterator[ServedFunction]:
    with serve_function(FIXTURE_FUNCTIONS / "multi-io") as served:
        yield served


def asgi_client(app: object) -> httpx.AsyncClient:
    """A real HTTP client (httpx) talking to an app in this process, without a socket."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://function.test")


@pytest.fixture
def make_client():
    return asgi_client
