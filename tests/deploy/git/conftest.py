"""One real `zeroserve up` for the git tests (each test uses functions of its own), and push cleanup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.git.gitrepo import StreamedPush, WorkRepo
from tests.zeroserve.control.harness import PlatformProcess


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    proc = PlatformProcess(tmp_path_factory.mktemp("git-platform") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def streamed_push() -> Iterator[Callable[..., StreamedPush]]:
    """Start background pushes; any still running when the test ends is killed."""
    started: list[StreamedPush] = []

    def start(repo: WorkRepo, url: str, *args: str) -> StreamedPush:
        push = StreamedPush(repo, url, *args)
        started.append(push)
        return push

    try:
        yield start
    finally:
        for push in started:
            push.kill()


@pytest.fixture
def data_dir(platform: PlatformProcess) -> Path:
    return platform.data_dir
