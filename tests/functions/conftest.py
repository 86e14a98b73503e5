"""Fixtures for the function runtime: real uvicorn processes on free ports, and in-process ASGI clients."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.functions.artifact_runtime import REPO, RunningRuntime, running

EXAMPLES = REPO / "examples"
FIXTURE_FUNCTIONS = Path(__file__).resolve().parent / "fixture_functions"
READY = re.compile(r"^zeroserve: serving .* at ((?:http://|unix:)\S+) ")


@contextmanager
def serve_function(function_dir: Path, *args: str, timeout: float = 60.0,
                   ready_url: str | None = None) -> Iterator[RunningRuntime]:
    """`python -m functions.server DIR --port 0 ARGS` as a child process; yields once it printed its URL."""
    command = [sys.executable, "-m", "functions.server", str(function_dir), "--port", "0", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with running(command, env, timeout=timeout, ready=READY, stop_timeout=10) as served:
        assert ready_url is None or served.url == ready_url, served.text
        yield served


@pytest.fixture(scope="session")
def iris_server() -> Iterator[RunningRuntime]:
    with serve_function(EXAMPLES / "iris", "--revision", "iris-00001") as served:
        yield served


@pytest.fixture(scope="session")
def multi_io_server() -> Iterator[RunningRuntime]:
    with serve_function(FIXTURE_FUNCTIONS / "multi-io") as served:
        yield served


def asgi_client(app: object) -> httpx.AsyncClient:
    """A real HTTP client (httpx) talking to an app in this process, without a socket."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://function.test")


@pytest.fixture
def make_client():
    return asgi_client
