"""What the activator costs on the warm path: its added latency and its throughput against a direct
request to the replica's Unix socket, with the same client both ways.

    .venv/bin/python bench/activator.py [--seconds 3] [--requests 2000] [--json out.json]

Three processes: a replica (`zeroserve serve examples/iris --uds PATH`, or the activator tests' tiny
app with --replica tiny), the activator (uvicorn + uvloop + the platform's HTTP protocol with its default
connection limits on 127.0.0.1, as `zeroserve up` runs it) and this client. The client is a minimal
keep-alive HTTP/1.1 client on uvloop streams, so its own cost stays small and identical in both modes.
Direct and activator runs alternate, several rounds, and the medians are reported, because the machine
is shared. bench/wrk_activator.py measures the same with wrk against a real `zeroserve up`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402

IRIS = ROOT / "examples" / "iris"
TINY_REPLICA = ROOT / "tests" / "activator" / "replica_app.py"
REVISION = "iris-00001"


# -- the activator process --------------------------------------------------------------------


def serve_activator(replica_socket: str, port: int) -> None:
    """Run an activator with one function `iris` routed to the replica at `replica_socket`."""
    import uvicorn

    sys.path.insert(0, str(ROOT))
    from activator import Activator, ReplicaEndpoint, RevisionSettings
    from functions.connection_limits import ConnectionLimits
    from functions.http_protocol import limited_http_protocol

    class OneRoute:
        def has_function(self, function: str) -> bool:
            return function == "iris"

        def has_tag(self, function: str, tag: str) -> bool:
            return False

        def pick(self, function: str, tag: str | None, u: float) -> str | None:
            return REVISION

        def revision_settings(self, revision: str) -> RevisionSettings:
            return RevisionSettings(container_concurrency=0)

    activator = Activator(OneRoute())
    activator.set_endpoints(REVISION, [ReplicaEndpoint("bench-1", replica_socket)])
    # The protocol and default connection limits `zeroserve up` serves its port with.
    uvicorn.run(activator, host="127.0.0.1", port=port, loop="uvloop", http=limited_http_protocol(ConnectionLimits()),
                access_log=False, log_level="warning", lifespan="on")


# -- a small client ---------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that sends one fixed request and reads sized responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        self.reader, self.writer, self.request = reader, writer, request

    async def call(self) -> int:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"response without content-length: {head[:200]!r}")
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def make_request(path: str, host: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def open_connections(target: dict, count: int, body: bytes) -> list[Connection]:
    connections = []
    for _ in range(count):
        if target["uds"]:
            reader, writer = await asyncio.open_unix_connection(target["uds"])
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", target["port"])
        connections.append(Connection(reader, writer, make_request(target["path"], target["host"], body)))
    return connections


async def latencies(target: dict, body: bytes, requests: int, warmup: int) -> list[float]:
    (connection,) = await open_connections(target, 1, body)
    try:
        for _ in range(warmup):
            assert await connection.call() == 200
        samples = []
        clock = time.perf_counter
        for _ in range(requests):
            started = clock()
            status = await connection.call()
            samples.append(clock() - started)
            if status != 200:
                raise RuntimeError(f"status {status} from {target['name']}")
        return samples
    finally:
        connection.close()


async def throughput(target: dict, body: bytes, concurrency: int, seconds: float) -> float:
    connections = await open_connections(target, concurrency, body)
    done = 0
    stop_at = 0.0

    async def worker(connection: Connection) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            if await connection.call() != 200:
                raise RuntimeError(f"non-200 from {target['name']}")
            done += 1

    try:
        for connection in connections:  # warm every connection
            await connection.call()
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker(c) for c in connections))
        return done / (time.perf_counter() - started)
    finally:
        for connection in connections:
            connection.close()


# -- orchestration ----------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_until(
    condition: Callable[[], bool], what: str, process: subprocess.Popen, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}")
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def connectable(family: int, address: str | tuple[str, int]) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            probe.connect(address)
        return True
    except OSError:
        return False


def machine() -> str:
    model = cpu_model()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0)
    return (f"{model}, {os.cpu_count()} cores, load average {load[0]:.2f} at start, "
            f"Python {platform.python_version()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def measure(args: argparse.Namespace, direct: dict, through: dict, body: bytes) -> dict:
    results: dict = {"latency": {}, "throughput": {}}
    p50s: dict[str, list[float]] = {"direct": [], "activator": []}
    p99s: dict[str, list[float]] = {"direct": [], "activator": []}
    for _ in range(args.rounds):
        for target in (direct, through):
            samples = await latencies(target, body, args.requests, warmup=200)
            p50s[target["name"]].append(percentile(samples, 0.50))
            p99s[target["name"]].append(percentile(samples, 0.99))
    for name in ("direct", "activator"):
        results["latency"][name] = {"p50_ms": statistics.median(p50s[name]) * 1e3,
                                    "p99_ms": statistics.median(p99s[name]) * 1e3}
    results["latency"]["added_p50_ms"] = statistics.median(
        a - d for a, d in zip(p50s["activator"], p50s["direct"], strict=True)) * 1e3
    results["latency"]["added_p99_ms"] = statistics.median(
        a - d for a, d in zip(p99s["activator"], p99s["direct"], strict=True)) * 1e3
    for concurrency in args.concurrency:
        rates: dict[str, list[float]] = {"direct": [], "activator": []}
        for _ in range(args.rounds):
            for target in (direct, through):
                rates[target["name"]].append(await throughput(target, body, concurrency, args.seconds))
        # Each round's ratio compares two runs seconds apart, so load from other users of the machine
        # mostly cancels out; the median of those ratios is the figure that matters.
        ratios = [a / d for a, d in zip(rates["activator"], rates["direct"], strict=True)]
        results["throughput"][str(concurrency)] = {
            "direct_rps": statistics.median(rates["direct"]),
            "activator_rps": statistics.median(rates["activator"]),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        }
    return results


def report(results: dict, replica: str, args: argparse.Namespace) -> None:
    latency = results["latency"]
    print(f"machine: {results['machine']}")
    print(f"replica: {replica}; {args.rounds} alternating rounds; medians shown "
          "(ratio: median of per-round ratios)")
    print(f"latency c=1 ({args.requests} requests per round)")
    print(f"  direct     p50 {latency['direct']['p50_ms']:.3f} ms   p99 {latency['direct']['p99_ms']:.3f} ms")
    print(f"  activator  p50 {latency['activator']['p50_ms']:.3f} ms   "
          f"p99 {latency['activator']['p99_ms']:.3f} ms")
    print(f"  added      p50 {latency['added_p50_ms']:.3f} ms   p99 {latency['added_p99_ms']:.3f} ms"
          f"   (target p50 <= 0.5 ms)")
    print(f"throughput ({args.seconds:g} s per run)")
    for concurrency, row in results["throughput"].items():
        print(f"  c={concurrency:<3} direct {row['direct_rps']:8.0f} req/s   "
              f"activator {row['activator_rps']:8.0f}"
              f" req/s   ratio {row['ratio']:.2f} (rounds: {' '.join(f'{r:.2f}' for r in row['ratios'])})"
              + ("   target >= 0.50" if concurrency == "32" else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replica", choices=("iris", "tiny"), default="iris")
    parser.add_argument("--requests", type=int, default=2000, help="latency samples per round")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--serve-activator", nargs=2, metavar=("REPLICA_SOCKET", "PORT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_activator:
        serve_activator(args.serve_activator[0], int(args.serve_activator[1]))
        return

    workdir = tempfile.mkdtemp(prefix="zs-bench-")
    replica_socket = os.path.join(workdir, "replica.sock")
    if args.replica == "iris":
        replica_cmd = [sys.executable, "-m", "zeroserve.cli", "serve", str(IRIS), "--uds", replica_socket]
        body = (IRIS / "sample.json").read_bytes()
        path = "/v2/models/iris/infer"
    else:
        replica_cmd = [sys.executable, str(TINY_REPLICA), "--uds", replica_socket]
        body = b'{"x": 1}'
        path = "/echo"
    port = free_port()
    processes = []
    try:
        replica = subprocess.Popen(replica_cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        processes.append(replica)
        wait_until(lambda: connectable(socket.AF_UNIX, replica_socket), "replica start", replica)
        activator = subprocess.Popen(
            [sys.executable, __file__, "--serve-activator", replica_socket, str(port)], cwd=ROOT
        )
        processes.append(activator)
        wait_until(lambda: connectable(socket.AF_INET, ("127.0.0.1", port)), "activator start", activator)
        direct = {"name": "direct", "uds": replica_socket, "port": None, "host": "replica", "path": path}
        through = {"name": "activator", "uds": None, "port": port, "host": f"iris.localhost:{port}",
                   "path": path}
        import uvloop

        started_machine = machine()
        results = uvloop.run(measure(args, direct, through, body))
        results["machine"] = f"{started_machine}, {os.getloadavg()[0]:.2f} at end"
        results["replica"] = " ".join(replica_cmd[1:3] if args.replica == "tiny" else replica_cmd[2:5])
        report(results, results["replica"], args)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for leftover in Path(workdir).iterdir():
            leftover.unlink()
        os.rmdir(workdir)


if __name__ == "__main__":
    main()
