"""Fixtures for the activator tests: replica processes, killed on teardown whatever happens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.activator.harness import Replica, ReplicaPool


@pytest.fixture
def replica_pool() -> Iterator[ReplicaPool]:
    pool = ReplicaPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def shared_replicas() -> Iterator[list[Replica]]:
    """Two replicas (r1, r2) shared by a test module's tests that do not kill them."""
    pool = ReplicaPool()
    try:
        yield pool.start("r1", "r2")
    finally:
        pool.close()
