"""A real `zeroserve up` with the data plane, functions tuned to scale within seconds, and HTTP load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.polling import wait_for
from tests.revisions.conftest import moto_endpoint  # noqa: F401  (a fixture: moto's S3 on 127.0.0.1)
from tests.zeroserve.control.harness import REPO, PlatformProcess

# Scale within seconds: Knative's rules, Knative's shortest stable window.
FAST_SCALING = {"window": "6s", "scale_to_zero_grace_period": "1s", "initial_scale": 0}

SLEEPY_HANDLER = textwrap.dedent('''
    """Sleeps for the number of milliseconds it is sent, then echoes it: a stand-in for a slow model."""
    import os
    import time

    import numpy as np


    class Sleepy:
        inputs = [{"name": "ms", "datatype": "FP32", "shape": [-1]}]
        outputs = [{"name": "ms", "datatype": "FP32", "shape": [-1]},
                   {"name": "pid", "datatype": "INT64", "shape": [1]}]

        def predict(self, inputs):
            time.sleep(float(inputs["ms"].max()) / 1000.0)
            return {"ms": inputs["ms"], "pid": np.array([os.getpid()], dtype=np.int64)}
''')


def sleepy_function(tmp_path: Path, name: str, **manifest: Any) -> Path:
    dest = tmp_path / name
    dest.mkdir()
    (dest / "handler.py").write_text(SLEEPY_HANDLER)
    (dest / "sample.json").write_text(
        '{"inputs": [{"name": "ms", "shape": [1], "datatype": "FP32", "data": [1]}]}')
    (dest / "function.yaml").write_text(yaml.safe_dump(
        {"name": name, "handler": "handler:Sleepy", "sample": "sample.json", **manifest}))
    return dest


def infer_body(ms: float) -> dict[str, Any]:
    return {"inputs": [{"name": "ms", "shape": [1], "datatype": "FP32", "data": [ms]}]}


class Platform(PlatformProcess):
    """PlatformProcess with extra ZEROSERVE_* settings in its environment."""

    def start(self) -> Platform:
        super().start()
        return self

    def fn_url(self, function: str, path: str) -> str:
        return f"{self.url}/fn/{function}/{path.lstrip('/')}"

    def status(self, function: str) -> dict[str, Any]:
        with self.client() as client:
            return client.status(function)

    def revision_status(self, function: str, revision: str | None = None) -> dict[str, Any]:
        revisions = self.status(function)["revisions"]
        if revision is None:
            return revisions[-1]
        return next(r for r in revisions if r["revision"] == revision)

    def deploy(self, directory: Path) -> dict[str, Any]:
        with self.client() as client:
            result = client.deploy(directory)
        assert result.get("status") in ("created", "unchanged"), result
        return result

    def replica_pids(self) -> set[int]:
        """Every process below the platform (zygotes and replicas), from /proc."""
        assert self.proc is not None
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found, todo = set(), [self.proc.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found



def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_leaving_nothing(platforms: Iterable[Platform], leftovers: Iterable[int] = ()) -> None:
    """Stop each platform, then SIGKILL whatever ran below it (and any of `leftovers`) that is still alive:
    nothing may outlive a test's platforms, so the next test starts clean."""
    pids = list(leftovers)
    for platform in platforms:
        pids.extend(platform.replica_pids() if platform.proc and platform.proc.poll() is None else ())
        platform.stop()
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_platform(tmp_path: Path) -> Iterator[Callable[..., Platform]]:
    started: list[Platform] = []

    def start(**env: str) -> Platform:
        platform = Platform(tmp_path / "data", env).start()
        started.append(platform)
        return platform

    try:
        yield start
    finally:
        stop_leaving_nothing(started)


class Load:
    """Closed-loop load from a background thread: `clients` concurrent requests at all times."""

    def __init__(self, url: str, body: dict[str, Any], clients: int, headers: dict[str, str] | None = None):
        self.url, self.body, self.clients, self.headers = url, body, clients, headers or {}
        self.results: list[tuple[float, int, str]] = []  # (finished at, status, revision)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                response = await http.post(self.url, json=self.body, headers=self.headers)
                self.results.append((time.monotonic(), response.status_code,
                                     response.headers.get("zeroserve-revision", "")))
            except httpx.HTTPError as exc:
                self.results.append((time.monotonic(), 0, type(exc).__name__))

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.clients)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=90)


def burst(url: str, bodies: list[dict[str, Any]], headers: dict[str, str] | None = None,
          timeout: float = 60) -> list[httpx.Response]:
    """All requests at once, each on its own connection."""
    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
            return await asyncio.gather(*(http.post(url, json=b, headers=headers or {}) for b in bodies))
    return asyncio.run(run())


__all__ = ["FAST_SCALING", "REPO", "Load", "Platform", "burst", "infer_body", "pid_alive", "sleepy_function",
           "wait_for"]
