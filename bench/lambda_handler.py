"""The Lambda handler's cold init and its per-invocation overhead (deploy/aws_lambda/handler.py).

init       Each round starts a fresh Python process that imports `deploy.aws_lambda.handler`, which is
           what Lambda's runtime client does at init: import mangum and the runtime, fetch the revision's
           artifact (examples/iris) by digest from moto's S3 server on 127.0.0.1, verify every file, load
           the model. Timed from process start until the import returns (the child reports it on
           stdout), and the import alone (it includes the fetch and the load, which the runtime's own
           figures split out). Target: median <= 1000 ms from process start.
           (On Lambda the runtime interface client's own start comes on top; it is not installed here.)
overhead   In one process, the same V2 infer request (examples/iris/sample.json) and a GET of
           /v2/health/ready, sent as a Function URL event (payload format 2.0) through the mangum
           handler, against the same request as an ASGI call to the app on the same event loop.
           Interleaved batches; the overhead is the difference of the medians. Target: <= 1 ms p50.

    .venv/bin/python bench/lambda_handler.py [--rounds 10] [--calls 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402
from revisions.artifact_uri import format_artifact_uri  # noqa: E402
from revisions.digest import digest_function  # noqa: E402

INIT_TARGET_MS = 1000.0
OVERHEAD_TARGET_MS = 1.0
EXAMPLE = ROOT / "examples" / "iris"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}
# The child: time from its first line to the end of the handler's import (what Lambda calls init).
CHILD = """
import json, sys, time
started = time.perf_counter()
import deploy.aws_lambda.handler as h
done = time.perf_counter()
print(json.dumps({"import_ms": (done - started) * 1000, "fetch_ms": h.runtime.fetch_seconds * 1000,
                  "load_ms": h.runtime.load_seconds * 1000}), flush=True)
h.runtime.close()
"""


def function_url_event(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """A Lambda function URL request: API Gateway HTTP API payload format 2.0."""
    domain = "abcdefghij.lambda-url.us-east-1.on.aws"
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": domain, "x-forwarded-proto": "https", "x-forwarded-port": "443", **headers},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij", "domainName": domain, "domainPrefix": "abcdefghij",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "bench"},
            "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000,
        },
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def asgi_call(app: Any, loop: asyncio.AbstractEventLoop, method: str, path: str, body: bytes,
              headers: dict[str, str]) -> int:
    """The same request as a plain ASGI call (what a server would hand the app), on the same loop."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "https",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
             "server": ("abcdefghij.lambda-url.us-east-1.on.aws", 443), "client": ("127.0.0.1", 0)}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    loop.run_until_complete(app(scope, receive, send))
    return status


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure_init(rounds: int, env: dict[str, str]) -> dict[str, Any]:
    totals, imports, fetches, loads = [], [], [], []
    for attempt in range(rounds + 1):  # the first warms the page cache and is not counted
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        total = (time.perf_counter() - started) * 1000
        if result.returncode != 0:
            raise RuntimeError(f"the handler's init failed:\n{result.stderr}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        if attempt == 0:
            continue
        totals.append(total)
        imports.append(figures["import_ms"])
        fetches.append(figures["fetch_ms"])
        loads.append(figures["load_ms"])
    return {"process_start_to_ready_ms": _summary(totals), "handler_import_ms": _summary(imports),
            "fetch_and_verify_ms": _summary(fetches), "model_load_ms": _summary(loads)}


def measure_overhead(calls: int, env: dict[str, str]) -> dict[str, Any]:
    from deploy.aws_lambda.runtime import prepare

    runtime = prepare(dict(env))
    try:
        loop = asyncio.get_event_loop()  # the loop mangum set up and runs every invocation on
        sample = (EXAMPLE / "sample.json").read_bytes()
        cases = {
            "infer": ("POST", "/v2/models/iris/infer", sample, {"content-type": "application/json"}),
            "ready": ("GET", "/v2/health/ready", b"", {}),
        }
        report: dict[str, Any] = {}
        for name, (method, path, body, headers) in cases.items():
            through_mangum: list[float] = []
            direct: list[float] = []
            for _ in range(50):  # warm both paths
                runtime.handler(function_url_event(method, path, body, headers), None)
                asgi_call(runtime.app, loop, method, path, body, headers)
            batch = 100
            for _ in range(max(1, calls // batch)):  # interleaved batches: both see the same machine load
                for _ in range(batch):
                    event = function_url_event(method, path, body, headers)
                    started = time.perf_counter()
                    answer = runtime.handler(event, None)
                    through_mangum.append((time.perf_counter() - started) * 1000)
                    assert answer["statusCode"] == 200, answer
                for _ in range(batch):
                    started = time.perf_counter()
                    status = asgi_call(runtime.app, loop, method, path, body, headers)
                    direct.append((time.perf_counter() - started) * 1000)
                    assert status == 200
            report[name] = {
                "mangum_p50_ms": round(statistics.median(through_mangum), 4),
                "direct_p50_ms": round(statistics.median(direct), 4),
                "overhead_p50_ms": round(statistics.median(through_mangum) - statistics.median(direct), 4),
                "mangum_p99_ms": round(percentile(through_mangum, 0.99), 4),
                "direct_p99_ms": round(percentile(direct, 0.99), 4),
                "calls": len(direct),
            }
        return report
    finally:
        runtime.close()


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 1), "min": round(ordered[0], 1),
            "max": round(ordered[-1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="fresh processes for the init figure")
    parser.add_argument("--calls", type=int, default=2000, help="invocations per path for the overhead figure")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise

    from revisions.store_s3 import S3ArtifactStore

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="zeroserve-bench-lambda-"))
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        digest = digest_function(EXAMPLE)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench-secret")
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        client.create_bucket(Bucket=bucket)
        S3ArtifactStore(bucket, "zeroserve", client=client).put(digest.digest, EXAMPLE, digest.files,
                                                                generated=digest.generated)
        env = {**os.environ, **CREDENTIALS, "TMPDIR": str(work), "ZEROSERVE_S3_ENDPOINT_URL": endpoint,
               "ZEROSERVE_ARTIFACT": format_artifact_uri(f"s3://{bucket}/zeroserve", digest.digest),
               "ZEROSERVE_REVISION": "iris-00001", "PYTHONPATH": str(ROOT)}
        init = measure_init(options.rounds, env)
        os.environ.update(CREDENTIALS)  # boto3's chain reads the process environment, as on Lambda
        overhead = measure_overhead(options.calls, env)
        report = {"machine": describe_machine(), "rounds": options.rounds, "example": "examples/iris",
                  "init": init, "overhead": overhead,
                  "targets": {"init_median_ms": INIT_TARGET_MS, "overhead_p50_ms": OVERHEAD_TARGET_MS}}
        print(f"machine: {report['machine']}")
        print(f"init, {options.rounds} fresh processes (import deploy.aws_lambda.handler: fetch from moto S3, verify, "
              "load examples/iris):")
        for name, stats in init.items():
            print(f"  {name:28s} median {stats['median']:7.1f} ms  min {stats['min']:7.1f}  max {stats['max']:7.1f}")
        init_median = init["process_start_to_ready_ms"]["median"]
        print(f"  -> init median {init_median} ms {'meets' if init_median <= INIT_TARGET_MS else 'MISSES'} "
              f"the target of {INIT_TARGET_MS:.0f} ms")
        print("per invocation, Function URL event (payload 2.0) through mangum vs the same ASGI call direct:")
        for name, stats in overhead.items():
            print(f"  {name:6s} mangum p50 {stats['mangum_p50_ms']:.3f} ms, direct p50 {stats['direct_p50_ms']:.3f} ms"
                  f" -> overhead {stats['overhead_p50_ms']:.3f} ms (p99 {stats['mangum_p99_ms']:.3f} vs "
                  f"{stats['direct_p99_ms']:.3f}; {stats['calls']} calls each)")
        worst = max(stats["overhead_p50_ms"] for stats in overhead.values())
        print(f"  -> overhead p50 at most {worst:.3f} ms {'meets' if worst <= OVERHEAD_TARGET_MS else 'MISSES'} "
              f"the target of {OVERHEAD_TARGET_MS:.0f} ms")
        if options.json:
            options.json.write_text(json.dumps(report, indent=1))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
