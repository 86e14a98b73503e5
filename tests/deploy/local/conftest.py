from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def echo_app_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote (a child process) imports the test runtime `echo_app` from this directory."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{HERE}{os.pathsep}{existing}" if existing else str(HERE))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
