"""Start-to-ready of the runtime outside the platform: what a cold Knative pod pays before it can serve.

Each round starts `zeroserve serve --artifact s3://bucket/prefix@sha256:...` as a fresh process (the
runtime image's exact command) against moto's S3 server on 127.0.0.1 and times process start until
GET /v2/health/ready answers 200 (the pod's readiness probe). The artifact is examples/iris. For
context the same rounds, interleaved, time two neighbours:
  file   the same artifact from a file:// store (no boto3, no S3 round trips)
  dir    `zeroserve serve examples/iris` (no fetch, no verification, no exec)
Per S3 round the runtime's own "fetched ... (N ms)" line splits the time into fetch and the rest.
Target: S3 median <= 1000 ms.

    .venv/bin/python bench/runtime_start.py [--rounds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402
from bench.moto_artifact import CREDENTIALS, S3Artifact, artifact_in_moto  # noqa: E402
from revisions.artifact_uri import format_artifact_uri  # noqa: E402
from revisions.store import LocalArtifactStore  # noqa: E402

TARGET_MS = 1000.0
EXAMPLE = ROOT / "examples" / "iris"
READY_LINE = re.compile(r"^zeroserve: serving .* at http://127\.0\.0\.1:(\d+) ")
FETCHED_LINE = re.compile(r"^zeroserve: fetched .*\((\d+) ms\)")


def zeroserve_command() -> list[str]:
    script = Path(sys.executable).parent / "zeroserve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "zeroserve.cli"]


def start_to_ready(args: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[float, float | None]:
    """(ms from process start to /v2/health/ready == 200, the runtime's reported fetch ms or None)."""
    started = time.perf_counter()
    process = subprocess.Popen([*zeroserve_command(), "serve", *args, "--port", "0"], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fetched_ms = None
    output = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the ready line is printed once uvicorn accepts connections
            output.append(line)
            if match := FETCHED_LINE.match(line):
                fetched_ms = float(match.group(1))
            if match := READY_LINE.match(line):
                connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=timeout)
                connection.request("GET", "/v2/health/ready")
                status = connection.getresponse().status
                elapsed = (time.perf_counter() - started) * 1000
                connection.close()
                if status != 200:
                    raise RuntimeError(f"/v2/health/ready answered {status}")
                return elapsed, fetched_ms
            if time.perf_counter() - started > timeout:
                break
        raise RuntimeError(f"zeroserve serve {' '.join(args)} never became ready:\n{''.join(output)}")
    finally:
        process.terminate()
        process.wait(timeout=30)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(ordered), 1), "min_ms": round(ordered[0], 1),
            "max_ms": round(ordered[-1], 1), "p90_ms": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 1)}


def measure(rounds: int, artifact: S3Artifact, work: Path) -> dict[str, Any]:
    """The interleaved rounds of the three cases; `work` holds the file store and the runtimes' TMPDIR."""
    digest = artifact.digest
    LocalArtifactStore(work / "store").put(digest.digest, EXAMPLE, digest.files, generated=digest.generated)
    file_uri = format_artifact_uri(f"file://{work / 'store'}", digest.digest)

    base_env = {**os.environ, "TMPDIR": str(work)}
    base_env.pop("PORT", None)
    s3_env = {**base_env, **CREDENTIALS, "ZEROSERVE_S3_ENDPOINT_URL": artifact.endpoint}
    cases = {"s3": (["--artifact", artifact.uri], s3_env), "file": (["--artifact", file_uri], base_env),
             "dir": ([str(EXAMPLE)], base_env)}
    start_to_ready(*cases["s3"])  # warm the page cache once; not counted
    results: dict[str, list[float]] = {name: [] for name in cases}
    fetches: list[float] = []
    for _ in range(rounds):
        for name, (args, env) in cases.items():
            elapsed, fetched = start_to_ready(args, env)
            results[name].append(elapsed)
            if name == "s3" and fetched is not None:
                fetches.append(fetched)
    return {
        "machine": describe_machine(), "rounds": rounds, "example": "examples/iris",
        "start_to_ready": {name: summary(values) for name, values in results.items()},
        "s3_fetch_median_ms": round(statistics.median(fetches), 1) if fetches else None,
        "target_ms": TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="zeroserve-bench-runtime-"))
    try:
        with artifact_in_moto(EXAMPLE) as artifact:
            report = measure(options.rounds, artifact, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s3 = report["start_to_ready"]["s3"]
    print(f"machine: {report['machine']}")
    print(f"rounds: {options.rounds} (interleaved), examples/iris, process start -> /v2/health/ready 200")
    for name, stats in report["start_to_ready"].items():
        print(f"  {name:5s} median {stats['median_ms']:7.1f} ms  p90 {stats['p90_ms']:7.1f}  "
              f"min {stats['min_ms']:7.1f}  max {stats['max_ms']:7.1f}")
    print(f"  s3 fetch + verify (runtime's own figure): median {report['s3_fetch_median_ms']} ms")
    verdict = "meets" if s3["median_ms"] <= TARGET_MS else "MISSES"
    print(f"S3 start-to-ready median {s3['median_ms']} ms {verdict} the target of {TARGET_MS:.0f} ms")
    if options.json:
        options.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
