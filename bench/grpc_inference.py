"""gRPC (Open Inference Protocol) through the platform against gRPC straight to the runtime, and gRPC against
REST for a 1 MB tensor.

    .venv/bin/python bench/grpc_inference.py [--rounds 5] [--requests 1000] [--seconds 2] [--json out.json]

Processes: a real `zeroserve up --port 0` (its gRPC port: the activator's front, activator/grpc_front.py)
with examples/iris and examples/echo-python deployed at min_scale 1 (warm: this measures the warm path, not
cold starts), the runtime alone with its own gRPC server (`python -m functions.server examples/iris
--grpc-port 0`: what a replica runs, so "direct" is the floor the platform adds to), and this client.
Replicas on the platform speak HTTP/1.1 over their Unix socket; the front turns each call into that request
(docs/grpc.md), so the platform's figure includes that translation.

The client is grpc.aio with pre-serialized requests and undecoded responses (bytes in, bytes out), one
channel, on uvloop, so its own cost is small and identical both ways; for REST, a minimal keep-alive
HTTP/1.1 client (bench/activator.py's). Direct and platform runs alternate for several rounds and medians
are reported (ratio: the median of per-round ratios), because the machine may be shared.
Targets (issue 19): c=32 throughput through the platform >= 0.5 of direct; added p50 at c=1 <= 0.5 ms.
(Not named bench/grpc.py: run as a script, bench/ is sys.path[0] and that file would shadow `import grpc`.)
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
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.activator import Connection, percentile  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from protocol.grpc.service import method_path  # noqa: E402
from protocol.grpc.tensors import encode_infer_request  # noqa: E402
from protocol.v2_codec import encode_infer_request as encode_rest_request  # noqa: E402

IRIS_ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4]], dtype=np.float32)
MEGABYTE_ROWS = np.random.default_rng(0).random((256, 1024), dtype=np.float32)  # 1 MiB of FP32
GRPC_LINE = re.compile(r"^zeroserve(?:: serving)? gRPC .* at (127\.0\.0\.1:\d+)")
READY_LINE = re.compile(r"^zeroserve ready at (http://127\.0\.0\.1:\d+)")

Call = Callable[[], Awaitable[None]]


class Process:
    """A child process whose output is read line by line: up to a line, then in the background (`drain`)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        self.argv = " ".join(argv)
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.lines: list[str] = []

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if match := pattern.search(line):
                return match.group(1)
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.argv} exited:\n{''.join(self.lines)}")
            self.lines.append(line)
            if match := pattern.search(line):
                return match.group(1)
        raise TimeoutError(f"{pattern.pattern} not printed by {self.argv}")

    def drain(self) -> None:
        """Keep reading in a thread, so a chatty child never blocks on a full pipe while the benchmark runs."""
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        threading.Thread(target=lambda: self.lines.extend(stream), daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def warm_copy(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    manifest = yaml.safe_load((dest / "function.yaml").read_text())
    manifest["scaling"] = {**manifest.get("scaling", {}), "min_scale": 1, "initial_scale": 1}
    (dest / "function.yaml").write_text(yaml.safe_dump(manifest))
    return dest


def deploy(url: str, data_dir: Path, function_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "zeroserve.cli", "deploy", str(function_dir), "--server", url],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "ZEROSERVE_DATA": str(data_dir)})


def grpc_caller(channel: grpc.aio.Channel, request: bytes) -> Call:
    # Bytes in, bytes out: neither side of the comparison pays for the client's message handling.
    stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method_path("ModelInfer"))

    async def call() -> None:
        await stub(request, timeout=60)
    return call


async def rest_caller(port: int, path: str, model_inputs: dict[str, np.ndarray]) -> tuple[Call, Connection]:
    encoded = encode_rest_request(model_inputs, binary=True, binary_data_output=True)
    body = encoded.body()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
               f"Inference-Header-Content-Length: {encoded.header_length}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    connection = Connection(reader, writer, request)

    async def call() -> None:
        status = await connection.call()
        if status != 200:
            raise RuntimeError(f"REST status {status}")
    return call, connection


async def latencies(call: Call, requests: int, warmup: int = 100) -> list[float]:
    for _ in range(warmup):
        await call()
    samples = []
    clock = time.perf_counter
    for _ in range(requests):
        started = clock()
        await call()
        samples.append(clock() - started)
    return samples


async def throughput(call: Call, concurrency: int, seconds: float) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def measure(args: argparse.Namespace, direct_address: str, platform_address: str, http_port: int
                  ) -> dict[str, Any]:
    iris = encode_infer_request("iris", {"input": IRIS_ROWS}).SerializeToString()
    megabyte = encode_infer_request("echo-python", {"input": MEGABYTE_ROWS}).SerializeToString()
    results: dict[str, Any] = {"latency": {}, "throughput": {}, "megabyte": {}}
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(direct_address, options=options) as direct_channel, \
            grpc.aio.insecure_channel(platform_address, options=options) as platform_channel:
        calls = {"direct": grpc_caller(direct_channel, iris), "platform": grpc_caller(platform_channel, iris)}
        p50s: dict[str, list[float]] = {name: [] for name in calls}
        p99s: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                samples = await latencies(call, args.requests)
                p50s[name].append(percentile(samples, 0.50))
                p99s[name].append(percentile(samples, 0.99))
        for name in calls:
            results["latency"][name] = {"p50_ms": statistics.median(p50s[name]) * 1e3,
                                        "p99_ms": statistics.median(p99s[name]) * 1e3}
        results["latency"]["added_p50_ms"] = statistics.median(
            p - d for p, d in zip(p50s["platform"], p50s["direct"], strict=True)) * 1e3
        for concurrency in args.concurrency:
            rates: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    await throughput(call, concurrency, 0.2)  # warm the channel's streams
                    rates[name].append(await throughput(call, concurrency, args.seconds))
            ratios = [p / d for p, d in zip(rates["platform"], rates["direct"], strict=True)]
            results["throughput"][str(concurrency)] = {
                "direct_rps": statistics.median(rates["direct"]), "platform_rps": statistics.median(rates["platform"]),
                "ratio": statistics.median(ratios), "ratios": ratios}
        # 1 MiB in (and 1 MiB back: echo returns its input) through the platform, gRPC then REST, c=1.
        rest_call, connection = await rest_caller(http_port, "/fn/echo-python/v2/models/echo-python/infer",
                                                  {"input": MEGABYTE_ROWS})
        try:
            mb_calls = {"grpc": grpc_caller(platform_channel, megabyte), "rest": rest_call}
            mb_p50s: dict[str, list[float]] = {name: [] for name in mb_calls}
            for _ in range(args.rounds):
                for name, call in mb_calls.items():
                    samples = await latencies(call, max(20, args.requests // 20), warmup=5)
                    mb_p50s[name].append(percentile(samples, 0.50))
            for name in mb_calls:
                results["megabyte"][name] = {"p50_ms": statistics.median(mb_p50s[name]) * 1e3}
            results["megabyte"]["grpc_over_rest_p50"] = statistics.median(
                g / r for g, r in zip(mb_p50s["grpc"], mb_p50s["rest"], strict=True))
        finally:
            connection.close()
    return results


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    latency = results["latency"]
    print(f"machine: {results['machine']}")
    print(f"{args.rounds} alternating rounds; medians shown (ratio: median of per-round ratios)")
    print(f"gRPC ModelInfer, examples/iris, c=1 latency ({args.requests} requests per round)")
    for name in ("direct", "platform"):
        print(f"  {name:<9} p50 {latency[name]['p50_ms']:.3f} ms   p99 {latency[name]['p99_ms']:.3f} ms")
    print(f"  added     p50 {latency['added_p50_ms']:.3f} ms   (target <= 0.5 ms)")
    print(f"throughput ({args.seconds:g} s per run)")
    for concurrency, row in results["throughput"].items():
        print(f"  c={concurrency:<3} direct {row['direct_rps']:8.0f} req/s   platform {row['platform_rps']:8.0f} req/s"
              f"   ratio {row['ratio']:.2f} (rounds: {' '.join(f'{r:.2f}' for r in row['ratios'])})"
              + ("   target >= 0.50" if concurrency == "32" else ""))
    megabyte = results["megabyte"]
    print("1 MiB FP32 tensor in and out (examples/echo-python) through the platform, c=1")
    print(f"  gRPC p50 {megabyte['grpc']['p50_ms']:.2f} ms   REST (binary extension) p50 "
          f"{megabyte['rest']['p50_ms']:.2f} ms   gRPC/REST {megabyte['grpc_over_rest_p50']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="latency samples per round")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="zs-bench-grpc-"))
    processes: list[Process] = []
    try:
        direct = Process([sys.executable, "-m", "functions.server", str(ROOT / "examples" / "iris"), "--port", "0",
                          "--grpc-port", "0"])
        processes.append(direct)
        platform = Process([sys.executable, "-m", "zeroserve.cli", "up", "--port", "0", "--data",
                            str(workdir / "data")])
        processes.append(platform)
        direct_address = direct.wait_for(GRPC_LINE)
        platform_address = platform.wait_for(GRPC_LINE)
        url = platform.wait_for(READY_LINE)
        direct.drain()
        platform.drain()
        for example in ("iris", "echo-python"):
            deploy(url, workdir / "data", warm_copy(ROOT / "examples" / example, workdir / example))
        machine = describe_machine()
        import uvloop

        results = uvloop.run(measure(args, direct_address, platform_address, int(url.rsplit(":", 1)[1])))
        results["machine"] = f"{machine}; load average {os.getloadavg()[0]:.2f} at end"
        report(results, args)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        for process in processes:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
