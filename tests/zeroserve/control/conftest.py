"""Fixtures: platforms started as real `zeroserve up` subprocesses, stopped (or killed) afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.zeroserve.control.harness import PlatformProcess


@pytest.fixture
def start_platform(tmp_path: Path) -> Iterator[Callable[..., PlatformProcess]]:
    """Start platforms on demand (a test may kill one and start another on the same data dir)."""
    started: list[PlatformProcess] = []

    def start(data_dir: Path | None = None) -> PlatformProcess:
        platform = PlatformProcess(data_dir or tmp_path / "data").start()
        started.append(platform)
        return platform

    try:
        yield start
    finally:
        for platform in started:
            platform.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    proc = PlatformProcess(tmp_path_factory.mktemp("platform") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()
