"""What the target benchmarks (bench/knative_deploy.py, bench/lambda_deploy.py) share: a copy of examples/iris
naming its targets, and a deploy through the real client timed from upload to result."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import yaml

from tests.zeroserve.control.harness import PlatformProcess

REPO = Path(__file__).resolve().parent.parent


def function_copy(work: Path, name: str, targets: list[str]) -> Path:
    dest = work / name
    shutil.copytree(REPO / "examples" / "iris", dest, ignore=shutil.ignore_patterns("make_model.py", "__pycache__"))
    manifest = yaml.safe_load((dest / "function.yaml").read_text())
    manifest.update(name=name, targets=targets)
    (dest / "function.yaml").write_text(yaml.safe_dump(manifest))
    return dest


def timed_deploy(platform: PlatformProcess, directory: Path) -> tuple[float, list[str]]:
    lines: list[str] = []
    with platform.client() as client:
        started = time.perf_counter()
        result = client.deploy(directory, on_line=lines.append)
        elapsed = time.perf_counter() - started
    assert result["status"] == "created", result
    return elapsed, lines


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"
