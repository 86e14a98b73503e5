"""Deploys of different functions run side by side; deploys of one function queue in order.

The real DeployService with a real registry (SQLite) and artifact store, real builds with real smoke
children. A gated function's smoke child blocks in load() until the test creates its gate file, and
writes a pid file once it got there, so "both builds are in their smoke step at once" is observed,
not timed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from deploy.results import DeployResult
from deploy.service import DeployService
from revisions.registry import Registry
from revisions.store import LocalArtifactStore
from tests.zeroserve.control.harness import change_model, function_dir, slow_function_dir

TIMEOUT = 120.0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DeployService]:
    registry = Registry(tmp_path / "registry.db")
    deployer = DeployService(registry, LocalArtifactStore(tmp_path / "artifacts"), build_workers=2)
    try:
        yield deployer
    finally:
        deployer.close()


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def open_gates(gates: Iterable[Path]) -> None:
    for gate in gates:
        gate.touch()


def created(result: DeployResult) -> str:
    assert result.status == "created", (result.message, result.log)
    assert result.revision is not None
    return result.revision


def test_deploys_of_two_functions_are_in_their_smoke_step_at_once(service: DeployService, tmp_path: Path,
                                                                  shared_tmp: Path) -> None:
    gates = {name: shared_tmp / f"gate-{name}" for name in ("alpha", "beta")}
    directories = {name: slow_function_dir(tmp_path, name, gate, "v1") for name, gate in gates.items()}

    async def scenario() -> list[DeployResult]:
        deploys = [asyncio.create_task(service.deploy_dir(d)) for d in directories.values()]
        # Each smoke child writes its pid file once it is blocked in load(): both at once is parallel.
        await until(lambda: all(Path(f"{gate}.pid").exists() for gate in gates.values()),
                    "both builds to be in their smoke step together")
        for gate in gates.values():
            gate.touch()
        return await asyncio.gather(*deploys)

    try:
        results = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    finally:
        open_gates(gates.values())  # on failure too: a smoke child blocked in load() goes away
    assert [created(r) for r in results] == ["alpha-00001", "beta-00001"]


def test_a_deploy_waiting_for_its_function_holds_no_build_worker(service: DeployService, tmp_path: Path,
                                                                 shared_tmp: Path) -> None:
    gate = shared_tmp / "gate-slow"
    first = slow_function_dir(tmp_path, "slow", gate, "v1")
    second = slow_function_dir(tmp_path, "slow", gate, "v2")
    lines: list[str] = []

    async def scenario() -> tuple[list[str], list[str]]:
        slow_v1 = asyncio.create_task(service.deploy_dir(first))
        await until(Path(f"{gate}.pid").exists, "the first build of slow to block in its smoke step")
        slow_v2 = asyncio.create_task(service.deploy_dir(second, lines.append))
        await until(lambda: lines, "the second deploy of slow to say it waits")
        # Two build workers: one holds slow v1's build; the queued slow v2 must not hold the other,
        # so other functions keep deploying, one after another, meanwhile.
        others = [created(await service.deploy_dir(function_dir(tmp_path, name))) for name in ("iris-a", "iris-b")]
        assert not slow_v1.done() and not slow_v2.done()
        gate.touch()
        return [created(await slow_v1), created(await slow_v2)], others

    try:
        slow, others = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    finally:
        open_gates([gate])
    assert lines[0] == "waiting for another deploy of slow to finish"
    assert others == ["iris-a-00001", "iris-b-00001"]
    assert slow == ["slow-00001", "slow-00002"]  # in the order they were sent
    route = service.registry.get_route("slow")
    assert route is not None and [t.revision for t in route.targets] == ["slow-00002"]


def test_concurrent_deploys_of_many_functions_all_land_with_dense_numbers(service: DeployService,
                                                                          tmp_path: Path) -> None:
    # Three functions, two versions each, all sent at once: SQLite writes from both build threads
    # (and the event loop's reads) must never fail with "database is locked", and each function's
    # revisions must be numbered 1, 2 with no gap.
    directories = []
    for name in ("one", "two", "three"):
        for version in range(2):
            directory = function_dir(tmp_path, name)
            change_model(directory, f"{name} v{version}")
            directories.append(directory)

    async def scenario() -> list[DeployResult]:
        return await asyncio.gather(*(service.deploy_dir(d) for d in directories))

    results = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    for result in results:
        created(result)
    for name in ("one", "two", "three"):
        numbers = [r.name for r in service.registry.list_revisions(name)]
        assert numbers == [f"{name}-00001", f"{name}-00002"]
