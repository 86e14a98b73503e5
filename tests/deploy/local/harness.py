"""Helpers for the supervisor tests: a recording owner, UDS HTTP, and /proc checks (no fixed sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from deploy.local import Backoff, ReplicaEndpoint, Supervisor

HERE = Path(__file__).resolve().parent
ECHO_FACTORY = "echo_app:create_app"
TIMEOUT = 20.0


def run(coroutine: Awaitable[Any], timeout: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine, timeout)
    return asyncio.run(bounded())


def write_echo_function(directory: Path, name: str = "echo", *, extra_yaml: str = "",
                        model: str = '{"weights": [1, 2, 3]}') -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_text(model)
    (directory / "function.yaml").write_text(
        f"name: {name}\nruntime: python\nhandler: echo_app:create_app\ntimeout_seconds: 7\n{extra_yaml}")
    return directory


class Owner:
    """Plays the activator: records every callback and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, str, list[ReplicaEndpoint]]] = []
        self.failures: list[tuple[float, str, str]] = []
        self.drains: list[tuple[str, str, float, list[str]]] = []
        self.drain_hook: Callable[[str, str], Awaitable[None]] | None = None
        self._changed = asyncio.Event()

    def on_replicas_changed(self, revision: str, endpoints: list[ReplicaEndpoint]) -> None:
        self.changes.append((time.monotonic(), revision, list(endpoints)))
        self._changed.set()

    def on_start_failed(self, revision: str, error: str) -> None:
        self.failures.append((time.monotonic(), revision, error))
        self._changed.set()

    async def drain(self, revision: str, replica_id: str, timeout: float) -> None:
        routable = [e.replica_id for e in self.endpoints(revision)]
        self.drains.append((revision, replica_id, timeout, routable))
        if self.drain_hook is not None:
            await self.drain_hook(revision, replica_id)
        self._changed.set()

    def endpoints(self, revision: str) -> list[ReplicaEndpoint]:
        for _, rev, endpoints in reversed(self.changes):
            if rev == revision:
                return endpoints
        return []

    async def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        """Re-check `condition` on every callback (and every 50 ms for process-level conditions)."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass


def make_supervisor(run_dir: Path, owner: Owner, *, app_factory: str = ECHO_FACTORY,
                    backoff: Backoff | None = None, **kwargs: Any) -> Supervisor:
    return Supervisor(run_dir, on_replicas_changed=owner.on_replicas_changed,
                      on_start_failed=owner.on_start_failed, drain=owner.drain, app_factory=app_factory,
                      backoff=backoff or Backoff(), **kwargs)


@contextlib.asynccontextmanager
async def running_supervisor(run_dir: Path, **options: Any) -> AsyncIterator[tuple[Supervisor, Owner]]:
    """A started supervisor and the owner recording its callbacks; stopped however the test ends."""
    owner = Owner()
    supervisor = make_supervisor(run_dir, owner, **options)
    await supervisor.start()
    try:
        yield supervisor, owner
    finally:
        await supervisor.stop()


async def http(endpoint: ReplicaEndpoint | str, method: str, path: str,
               body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    socket_path = endpoint if isinstance(endpoint, str) else endpoint.socket_path
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as session:
        data = None if body is None else json.dumps(body)
        async with session.request(method, f"http://replica{path}", data=data,
                                   timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as response:
            return response.status, await response.json(content_type=None), dict(response.headers)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie would mean nobody reaped it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "X"


def zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return found
