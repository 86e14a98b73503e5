"""Dynamic batching on versus off on examples/heavy over HTTP: throughput at 32 clients, latency at 1.

    .venv/bin/python bench/batching.py [--seconds 6] [--rounds 4] [--concurrency 32] [--threads N] [--json out.json]

Both goals of the batcher side by side in one run: throughput with batching at `--concurrency`
clients is at least 3x that without, and a lone client's p99 with batching is no worse than
without (the batcher must not add its delay to requests that have nobody to batch with).

Two runtime processes serve examples/heavy on 127.0.0.1: one with its function.yaml as committed
(batching: max_batch_size 32, max_delay_ms 5) and one from a copy without the `batching` key. Each
client sends one row (1024 FP32, binary tensor extension) per request on a keep-alive connection
(aiohttp), back to back, for a fixed time. Rounds alternate on/off and the medians are reported,
because the machine is shared. The client runs on the same machine, so both modes pay its cost.
`--threads N` sets `resources.threads` (ONNX Runtime's intra-op threads) in both manifests alike.
"""

from __future__ import annotations

import argparse
import asyncio
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

import aiohttp
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402

HEAVY = ROOT / "examples" / "heavy"
READY = re.compile(r"^zeroserve: serving .* at (http://\S+) ")


def start_runtime(function_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """The runtime in its own process, output to a file (a pipe nobody drains could block it)."""
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "functions.server", str(function_dir), "--port", "0"], cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=sink, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text().splitlines():
            match = READY.match(line)
            if match:
                return process, match.group(1)
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"runtime for {function_dir} did not start:\n{log.read_text()}")


def heavy_copy(scratch: Path, *, batching: bool, threads: int | None) -> Path:
    """examples/heavy as committed, or without its `batching` key; with `threads`, that many intra-op threads."""
    target = scratch / ("heavy-batched" if batching else "heavy-unbatched")
    target.mkdir()
    shutil.copy(HEAVY / "model.onnx", target / "model.onnx")
    manifest = yaml.safe_load((HEAVY / "function.yaml").read_text())
    if not batching:
        manifest.pop("batching")
    if threads is not None:
        manifest.setdefault("resources", {})["threads"] = threads
    (target / "function.yaml").write_text(yaml.safe_dump(manifest))
    return target


def request_body() -> tuple[bytes, dict[str, str]]:
    row = np.random.default_rng(0).random((1, 1024), dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1024], "datatype": "FP32",
                                     "parameters": {"binary_data_size": row.nbytes}}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
    return header + row.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


async def measure(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    body, headers = request_body()
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> None:
            nonlocal errors
            started = time.perf_counter()
            async with session.post(f"{url}/v2/models/heavy/infer", data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

        async def client(stop_at: float) -> None:
            while time.perf_counter() < stop_at:
                await one()

        await asyncio.gather(*(client(time.perf_counter() + 1.0) for _ in range(concurrency)))  # warm-up
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=4)  # even: each mode goes first as often
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="resources.threads for both modes (default: as committed, ONNX Runtime decides)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    print(f"machine: {describe_machine()}")
    print(f"onnxruntime intra-op threads: {args.threads or 'as committed (onnxruntime default)'}")
    print(f"examples/heavy, {args.concurrency} concurrent clients and 1 client, {args.seconds:g} s x "
          f"{args.rounds} rounds each")
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    lone: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        on_process, on_url = start_runtime(heavy_copy(work, batching=True, threads=args.threads), work / "on.log")
        off_process, off_url = start_runtime(heavy_copy(work, batching=False, threads=args.threads),
                                             work / "off.log")
        try:
            for round_number in range(args.rounds):
                # The order flips each round: whichever runs right after the 32-client load of the other
                # server shares the cores with that server's ONNX Runtime threads, still spinning down.
                order = (("on", on_url), ("off", off_url))[::1 if round_number % 2 == 0 else -1]
                for mode, url in order:
                    result = asyncio.run(measure(url, args.seconds, args.concurrency))
                    results[mode].append(result)
                    print(f"  round {round_number + 1} batching {mode:>3}, {args.concurrency} clients: "
                          f"{_describe(result)}")
                for mode, url in order:
                    result = asyncio.run(measure(url, args.seconds, 1))
                    lone[mode].append(result)
                    print(f"  round {round_number + 1} batching {mode:>3},  1 client:  {_describe(result)}")
        finally:
            for process in (on_process, off_process):
                process.terminate()
                process.wait(timeout=10)
    print(f"machine after the run: {describe_machine()}")
    summary = _medians(results)
    lone_summary = _medians(lone)
    ratio = summary["on"]["rps"] / summary["off"]["rps"]
    # Each round's on and off ran back to back, so their ratio is the least disturbed by neighbours.
    paired = statistics.median(on["rps"] / off["rps"] for on, off in zip(results["on"], results["off"], strict=True))
    for mode in ("on", "off"):
        print(f"median batching {mode:>3}, {args.concurrency} clients: {_describe(summary[mode])}")
    for mode in ("on", "off"):
        print(f"median batching {mode:>3},  1 client:  {_describe(lone_summary[mode])}")
    p99_on, p99_off = lone_summary["on"]["p99_ms"], lone_summary["off"]["p99_ms"]
    print(f"goal 1, throughput at {args.concurrency} clients on/off >= 3x: {ratio:.2f}x of the medians, "
          f"{paired:.2f}x median of per-round ratios")
    # A lone request's p99 is a handful of slow requests: the spread of "off" between its own rounds says
    # how far apart two runs of the same code land on this machine, so the verdict names it.
    off_rounds = [r["p99_ms"] for r in lone["off"]]
    verdict = ("met" if p99_on <= p99_off else
               "within off's own round-to-round spread" if p99_on <= max(off_rounds) else "not met")
    print(f"goal 2, p99 at 1 client on <= off: {p99_on:.1f} ms vs {p99_off:.1f} ms ({verdict}; off's rounds "
          f"{min(off_rounds):.1f}-{max(off_rounds):.1f} ms; p50 {lone_summary['on']['p50_ms']:.1f} vs "
          f"{lone_summary['off']['p50_ms']:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps({"machine": describe_machine(), "threads": args.threads,
                                         "concurrency": args.concurrency,
                                         "seconds": args.seconds, "rounds": results, "median": summary,
                                         "ratio": ratio, "paired_ratio": paired, "lone_rounds": lone,
                                         "lone_median": lone_summary}, indent=2))


def _medians(runs_by_mode: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {mode: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")}
            for mode, runs in runs_by_mode.items()}


def _describe(result: dict[str, float]) -> str:
    errors = f"  errors {result['errors']:.0f}" if "errors" in result else ""
    return (f"{result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms"
            f"{errors}")


if __name__ == "__main__":
    main()
