"""httpx versus aiohttp as the activator's proxy client over a Unix socket.

    .venv/bin/python bench/proxy_client.py [--requests 2000] [--rounds 3] [--json out.json]

An upstream uvicorn app (uvloop + httptools, access log off, as a replica runs) listens on a Unix
socket in its own process and answers each POST with a small JSON body, like an inference reply.
Each client keeps a pooled keep-alive connection and runs on uvloop, as the activator does:

* c=1: `--requests` sequential POSTs; latency p50 and p99.
* c=32: 32 tasks sharing the pool send `--requests` * 4 POSTs in total; requests per second.

Rounds alternate between the clients and the medians are reported, because the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine import cpu_model  # noqa: E402
from protocol.asgi import Receive, Scope, Send  # noqa: E402

REQUEST = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                  "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
REPLY = json.dumps({"model_name": "iris", "outputs": [{"name": "probabilities", "datatype": "FP32",
                    "shape": [1, 3], "data": [0.99, 0.009, 0.001]}]}).encode()
PATH = "/v2/models/iris/infer"
CONCURRENCY = 32

Post = Callable[[], Awaitable[None]]


async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """The replica stand-in: read the body, answer a fixed inference-sized JSON reply."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]})
    await send({"type": "http.response.body", "body": REPLY})


def serve_upstream(socket_path: str) -> None:
    import uvicorn

    uvicorn.run(upstream, uds=socket_path, loop="uvloop", http="httptools", access_log=False, log_level="warning",
                lifespan="off")


def machine() -> str:
    model = cpu_model()
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


class HttpxClient:
    name = f"httpx {httpx.__version__}"

    def __init__(self, socket_path: str):
        transport = httpx.AsyncHTTPTransport(uds=socket_path)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://replica",
                                         limits=httpx.Limits(max_connections=CONCURRENCY,
                                                             max_keepalive_connections=CONCURRENCY))

    async def post(self) -> None:
        response = await self._client.post(PATH, content=REQUEST)
        if response.status_code != 200 or not response.content:
            raise RuntimeError(f"upstream answered {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()


class AiohttpClient:
    name = f"aiohttp {aiohttp.__version__}"

    def __init__(self, socket_path: str):
        connector = aiohttp.UnixConnector(path=socket_path, limit=CONCURRENCY)
        self._session = aiohttp.ClientSession(connector=connector, base_url="http://replica")

    async def post(self) -> None:
        async with self._session.post(PATH, data=REQUEST) as response:
            body = await response.read()
            if response.status != 200 or not body:
                raise RuntimeError(f"upstream answered {response.status}")

    async def close(self) -> None:
        await self._session.close()


async def run_client(factory: type, socket_path: str, requests: int) -> dict[str, float]:
    client = factory(socket_path)
    try:
        for _ in range(200):  # warm-up: open the pooled connections, fill caches
            await client.post()
        latencies = []
        for _ in range(requests):
            started = time.perf_counter()
            await client.post()
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        total = requests * 4
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await client.post()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    return {"c1_p50_us": latencies[len(latencies) // 2] * 1e6,
            "c1_p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
            "c32_rps": total / elapsed}


def wait_for_socket(path: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the upstream app did not start")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serve-upstream", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return

    print(f"machine: {machine()}")
    print(f"upstream: uvicorn on a Unix socket; c=1: {args.requests} requests, c={CONCURRENCY}: "
          f"{args.requests * 4} requests; {args.rounds} rounds")
    results: dict[str, list[dict[str, float]]] = {HttpxClient.name: [], AiohttpClient.name: []}
    with tempfile.TemporaryDirectory() as scratch:
        socket_path = str(Path(scratch) / "upstream.sock")
        process = subprocess.Popen([sys.executable, __file__, "--serve-upstream", socket_path])
        try:
            wait_for_socket(socket_path, process)
            for round_number in range(args.rounds):
                for factory in (HttpxClient, AiohttpClient):
                    result = uvloop.run(run_client(factory, socket_path, args.requests))
                    results[factory.name].append(result)
                    print(f"  round {round_number + 1} {factory.name:>15}: c=1 p50 {result['c1_p50_us']:7.0f} us  "
                          f"p99 {result['c1_p99_us']:7.0f} us   c={CONCURRENCY} {result['c32_rps']:7.0f} req/s")
        finally:
            process.terminate()
            process.wait(timeout=10)
    summary = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for name, runs in results.items()}
    for name, s in summary.items():
        print(f"median {name:>15}: c=1 p50 {s['c1_p50_us']:7.0f} us  p99 {s['c1_p99_us']:7.0f} us   "
              f"c={CONCURRENCY} {s['c32_rps']:7.0f} req/s")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rounds": results, "median": summary}, indent=2))


if __name__ == "__main__":
    main()
