"""Helpers for the activator tests: real replica processes on Unix sockets, a real uvicorn server for
the activator on 127.0.0.1, a route resolver held in memory, and asyncio plumbing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvicorn

from activator import Activator, ReplicaEndpoint, RevisionSettings

REPLICA_APP = Path(__file__).with_name("replica_app.py")
ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


@dataclass
class StaticResolver:
    """Routes held in memory: function -> {tag or None: revision}; settings per revision."""

    routes: dict[str, dict[str | None, str]]
    settings: dict[str, RevisionSettings] = field(default_factory=dict)
    picks: list[tuple[str, str | None]] = field(default_factory=list)

    def has_function(self, function: str) -> bool:
        return function in self.routes

    def has_tag(self, function: str, tag: str) -> bool:
        return tag in self.routes.get(function, {})

    def pick(self, function: str, tag: str | None, u: float) -> str | None:
        assert 0.0 <= u < 1.0
        self.picks.append((function, tag))
        return self.routes[function].get(tag)

    def revision_settings(self, revision: str) -> RevisionSettings:
        if revision not in self.settings and not any(revision in r.values() for r in self.routes.values()):
            raise KeyError(revision)
        return self.settings.get(revision, RevisionSettings())


@dataclass
class Replica:
    replica_id: str
    socket_path: str
    process: subprocess.Popen

    @property
    def endpoint(self) -> ReplicaEndpoint:
        return ReplicaEndpoint(self.replica_id, self.socket_path)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def _wait_until_serving(replica: Replica, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise RuntimeError(f"replica {replica.replica_id} exited with {replica.process.returncode}")
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(1.0)
            probe.connect(replica.socket_path)
            probe.sendall(f"GET {path} HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".encode())
            if probe.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.02)  # polling interval while the process boots, not a synchronisation sleep
    raise TimeoutError(f"replica {replica.replica_id} did not serve on {replica.socket_path}")


class ReplicaPool:
    """Starts replica processes; `close` kills every one it started and removes the sockets' dir."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="zs-act-")
        self.replicas: list[Replica] = []

    def start(
        self, *replica_ids: str, command: list[str] | None = None, probe: str = "/echo"
    ) -> list[Replica]:
        """Start replicas of the test app, or of `command` (to which `--uds PATH` is appended)."""
        started = []
        for replica_id in replica_ids:
            path = os.path.join(self.directory, f"{replica_id}-{len(self.replicas)}.sock")
            argv = ([*command, "--uds", path] if command
                    else [sys.executable, str(REPLICA_APP), "--uds", path, "--replica-id", replica_id])
            process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=ROOT)
            replica = Replica(replica_id, path, process)
            self.replicas.append(replica)
            started.append(replica)
        for replica in started:
            _wait_until_serving(replica, probe)
        return started

    def close(self) -> None:
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def serving(app: Callable) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on an ephemeral 127.0.0.1 port in this loop; yields the base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await task
        listener.close()


@contextlib.asynccontextmanager
async def running_activator(resolver: StaticResolver, **kwargs) -> AsyncIterator[tuple[Activator, str]]:
    activator = Activator(resolver, **kwargs)
    async with serving(activator) as url:
        try:
            yield activator, url
        finally:
            # Before the server stops: uvicorn waits for open requests before the lifespan shutdown.
            await activator.close()


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `condition` on the loop until it holds (never a fixed sleep)."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise TimeoutError(f"{what} not reached within {timeout}s") from None


def client_session(**kwargs) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=60), **kwargs,
    )


def replica_session(replica: Replica) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=replica.socket_path),
                                 timeout=aiohttp.ClientTimeout(total=30))


def run(coroutine, timeout: float = 60.0):
    """Run a test's scenario on a fresh event loop, bounded in time."""
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coroutine
    return asyncio.run(bounded())


async def settle() -> None:
    """Let every ready task run a few steps (each queued waiter enqueues itself in one)."""
    for _ in range(5):
        await asyncio.sleep(0)
