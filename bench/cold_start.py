"""Cold start of the local platform: `set_scale(rev, 1)` -> first V2 infer answered over the replica's socket.

Each of N revisions is a copy of examples/iris under its own name, so every measurement is a first
start of that revision (no replica of it ever ran). The zygote is started and ready beforehand, as it
is once `zeroserve up` has been running for a second. Per start we record the supervisor's breakdown:
  fork    set_scale -> forked child running (request to the zygote, fork itself)
  load    -> app created (limits, env, ONNX session, runtime objects)
  listen  -> uvicorn accepting on the Unix socket
  report  -> the supervisor has read "ready" from the replica's pipe
  infer   -> the first infer response is complete (connect, HTTP, first ONNX run)
The client is a bare HTTP/1.1 request over a fresh Unix-socket connection, so the number is the
platform's, not a client library's session setup. Targets: p50 <= 50 ms, p99 <= 150 ms.

    .venv/bin/python bench/cold_start.py [--functions 30] [--example examples/iris] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from deploy.local import ReplicaEndpoint, Supervisor  # noqa: E402
from protocol.manifest import load_manifest  # noqa: E402

TARGET_P50_MS = 50.0
TARGET_P99_MS = 150.0


def machine() -> dict[str, Any]:
    model = cpu_model()
    import onnxruntime

    return {"cpu": model, "cores": os.cpu_count(), "loadavg": os.getloadavg(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "kernel": platform.release()}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 20-40 samples p99 is the worst one, as it should be)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def make_functions(example: Path, count: int, into: Path) -> list[Path]:
    base = load_manifest(example).name
    made = []
    for index in range(1, count + 1):
        name = f"{base}-c{index:03d}"
        target = into / name
        shutil.copytree(example, target)
        manifest = target / "function.yaml"
        manifest.write_text(re.sub(r"(?m)^name:.*$", f"name: {name}", manifest.read_text()))
        made.append(target)
    return made


async def first_infer(endpoint: ReplicaEndpoint, model: str, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_unix_connection(endpoint.socket_path)
    try:
        writer.write(
            f"POST /v2/models/{model}/infer HTTP/1.1\r\nhost: replica\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        declared = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if declared is None:
            raise RuntimeError(f"the replica answered without a content-length: {head!r}")
        length = int(declared.group(1))
        return status, await reader.readexactly(length)
    finally:
        writer.close()


async def measure(functions: list[Path], run_dir: Path) -> tuple[list[dict[str, float]], dict[str, Any]]:
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    failures: list[str] = []

    def on_changed(revision: str, endpoints: list[ReplicaEndpoint]) -> None:
        changed.set()

    def on_failed(revision: str, error: str) -> None:
        failures.append(f"{revision}: {error}")
        changed.set()

    supervisor = Supervisor(run_dir, on_replicas_changed=on_changed, on_start_failed=on_failed)
    await supervisor.start()
    results = []
    try:
        deadline = loop.time() + 120
        while not supervisor.zygotes() and loop.time() < deadline:
            await asyncio.sleep(0.05)  # the zygote imports once, at platform start
        zygote = supervisor.zygotes().get("default", {})
        for index, function_dir in enumerate(functions):
            manifest = load_manifest(function_dir)
            revision = f"{manifest.name}-00001"
            supervisor.register_revision(revision, function_dir, manifest)
            sample = (function_dir / manifest.sample).read_bytes() if manifest.sample else b'{"inputs": []}'

            started = time.monotonic()
            await supervisor.set_scale(revision, 1)
            while not supervisor.endpoints(revision):
                if failures:
                    raise RuntimeError(f"start failed: {failures[0]}")
                changed.clear()
                await asyncio.wait_for(changed.wait(), 60)
            ready = time.monotonic()
            (endpoint,) = supervisor.endpoints(revision)
            status, body = await first_infer(endpoint, manifest.name, sample)
            answered = time.monotonic()
            if status != 200:
                raise RuntimeError(f"{revision}: infer answered {status}: {body[:300]!r}")
            outputs = json.loads(body)["outputs"]
            (info,) = supervisor.replicas(revision)
            results.append({**info.timings_ms, "infer": (answered - ready) * 1000,
                            "cold_start": (answered - started) * 1000, "outputs": len(outputs),
                            "index": index})
            await supervisor.set_scale(revision, 0)
            while supervisor.replicas(revision):
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.05)
                except TimeoutError:
                    pass
    finally:
        await supervisor.stop()
    return results, zygote


def report(results: list[dict[str, float]], zygote: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average {info['loadavg'][0]:.2f}, "
          f"Linux {info['kernel']}, Python {info['python']}, onnxruntime {info['onnxruntime']}")
    print(f"zygote: imports {zygote.get('import_ms', 0):.0f} ms + warm-up "
          f"{zygote.get('warmup_ms', 0):.0f} ms "
          f"(once, at platform start), threads {zygote.get('threads')}, fork-safe {zygote.get('fork_safe')}")
    print(f"{len(results)} cold starts, each a distinct revision:\n")
    print(f"{'phase (ms)':<12}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    summary = {}
    for phase in ("fork", "load", "listen", "report", "infer", "cold_start"):
        values = [r[phase] for r in results]
        row = {q: percentile(values, q) for q in (50, 90, 99)} | {"max": max(values)}
        summary[phase] = row
        print(f"{phase:<12}{row[50]:>8.1f}{row[90]:>8.1f}{row[99]:>8.1f}{row['max']:>8.1f}")
    p50, p99 = summary["cold_start"][50], summary["cold_start"][99]
    verdict = {True: "met", False: "MISSED"}
    print(f"\ncold start p50 {p50:.1f} ms (target <= {TARGET_P50_MS:.0f}: {verdict[p50 <= TARGET_P50_MS]}), "
          f"p99 {p99:.1f} ms (target <= {TARGET_P99_MS:.0f}: {verdict[p99 <= TARGET_P99_MS]})")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=30, help="distinct revisions to cold-start (>= 20)")
    parser.add_argument("--example", type=Path, default=ROOT / "examples" / "iris")
    parser.add_argument("--json", type=Path, help="also write the raw samples and summary here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    info = machine()
    # A short path: Unix socket paths are limited to 107 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="zs-cold-"))
    try:
        functions = make_functions(args.example, args.functions, workdir / "functions")
        results, zygote = asyncio.run(measure(functions, workdir / "run"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = report(results, zygote, info)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "zygote": zygote, "summary": summary,
                                         "samples": results, "measured_at": time.time()}, indent=2))


if __name__ == "__main__":
    main()
