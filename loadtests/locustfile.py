"""Locust users that call a zeroserve function, and the load shape that drives them.

`zeroserve loadtest` runs this file in a locust subprocess. By hand (from the repository root):

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8080/fn/iris \\
        --function iris --shape spike --shape-users 20 --shape-duration 30s InferV2User

Users: `InferV2User` posts an Open Inference Protocol V2 infer request to `<url>/v2/models/<fn>/infer`;
`PredictV1User` posts the same tensors as V1 instances to `<url>/v1/models/<fn>:predict`. The request
comes from --request-file (a V2 request, e.g. a function's sample.json), else is generated from the
model's V2 metadata. Every option below also reads an environment variable (ZEROSERVE_LOADTEST_*).

With --progress-file, one JSON line per second records users, requests, failures and p50/p95 latency
of that second (not locust's 10-second smoothed "current" figures), which the harness charts.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import gevent
from locust import FastHttpUser, LoadTestShape, events, task
from locust.env import Environment
from locust.runners import LocalRunner

# `locust -f` puts only this file's folder on sys.path; the loadtests package lives one level up.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from loadtests.bodies import RequestBodyError, read_v2_request, request_from_metadata, v1_body  # noqa: E402
from loadtests.shapes import SHAPE_NAMES, LoadShape, build_shape  # noqa: E402

JSON_HEADERS = {"Content-Type": "application/json"}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("zeroserve")
    group.add_argument("--function", env_var="ZEROSERVE_LOADTEST_FUNCTION", default="",
                       help="Function (model) name: the <fn> in /v2/models/<fn>/infer")
    group.add_argument("--request-file", env_var="ZEROSERVE_LOADTEST_REQUEST", default="",
                       help="A V2 infer request (JSON) to send; default: generated from the model's metadata")
    group.add_argument("--shape", env_var="ZEROSERVE_LOADTEST_SHAPE", default="spike", choices=SHAPE_NAMES,
                       help="Load shape")
    group.add_argument("--shape-users", env_var="ZEROSERVE_LOADTEST_USERS", type=int, default=10,
                       help="Peak number of users")
    group.add_argument("--shape-duration", env_var="ZEROSERVE_LOADTEST_DURATION", default="60s",
                       help="How long the load runs ('60s', '2m')")
    group.add_argument("--shape-steps", env_var="ZEROSERVE_LOADTEST_STEPS", type=int, default=4,
                       help="step shape: number of plateaus")
    group.add_argument("--shape-period", env_var="ZEROSERVE_LOADTEST_PERIOD", default="",
                       help="sine shape: length of one cycle (default: the duration)")
    group.add_argument("--think-time", env_var="ZEROSERVE_LOADTEST_THINK_TIME", type=float, default=0.0,
                       help="Seconds each user waits between requests (0: back to back)")
    group.add_argument("--progress-file", env_var="ZEROSERVE_LOADTEST_PROGRESS", default="",
                       help="Append one JSON line per second of load (for the zeroserve harness)")


class PreparedRequests:
    """Paths and bodies, encoded once: users send the same bytes every time."""

    def __init__(self, function: str, v2_request: dict[str, Any]):
        self.v2_path = f"/v2/models/{function}/infer"
        self.v1_path = f"/v1/models/{function}:predict"
        self.v2_body = json.dumps(v2_request).encode()
        self.v1_body = json.dumps(v1_body(v2_request)).encode()


_prepared: PreparedRequests | None = None
_shape: LoadShape | None = None


@events.init.add_listener
def _prepare(environment: Environment, **_kwargs: Any) -> None:
    """Everything that can be wrong with the options fails here, before the first user starts."""
    global _prepared, _shape
    options = environment.parsed_options
    if options is None or not options.function:
        sys.exit("error: --function (or ZEROSERVE_LOADTEST_FUNCTION) names the function to call")
    try:
        _shape = build_shape(options.shape, users=options.shape_users, duration=options.shape_duration,
                             steps=options.shape_steps, period=options.shape_period or None)
    except ValueError as exc:
        sys.exit(f"error: --shape-{exc}" if not str(exc).startswith("shape") else f"error: --{exc}")
    try:
        if options.request_file:
            request = read_v2_request(options.request_file)
        else:
            metadata = _metadata(environment.host or "", options.function)
            request = request_from_metadata(metadata, options.function)
        _prepared = PreparedRequests(options.function, request)
    except RequestBodyError as exc:
        sys.exit(f"error: {exc}")
    if options.progress_file and isinstance(environment.runner, LocalRunner):
        ProgressWriter(Path(options.progress_file)).attach(environment)


def _metadata(host: str, function: str) -> Any:
    url = f"{host.rstrip('/')}/v2/models/{function}"
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        sys.exit(f"error: cannot read the model metadata at {url}: {exc}")


class _FunctionUser(FastHttpUser):
    abstract = True

    def wait_time(self) -> float:
        return float(self.environment.parsed_options.think_time or 0.0)

    def _post(self, path: str, body: bytes, name: str, expected_key: bytes) -> None:
        # locust annotates `data` as str | dict, but its docstring and geventhttpclient send bytes as they are
        with self.client.post(path, data=body, headers=JSON_HEADERS, name=name,  # type: ignore[arg-type]
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            elif expected_key not in (response.content or b""):
                response.failure(f"200 without {expected_key.decode()} in the body")
            else:
                response.success()


class InferV2User(_FunctionUser):
    """Back-to-back Open Inference Protocol V2 infer calls."""

    @task
    def infer(self) -> None:
        assert _prepared is not None
        self._post(_prepared.v2_path, _prepared.v2_body, "V2 infer", b'"outputs"')


class PredictV1User(_FunctionUser):
    """Back-to-back KServe V1 predict calls with the same tensors as rows."""

    @task
    def predict(self) -> None:
        assert _prepared is not None
        self._post(_prepared.v1_path, _prepared.v1_body, "V1 predict", b'"predictions"')


class ZeroserveShape(LoadTestShape):
    """Adapts the pure shape from loadtests/shapes.py chosen by --shape (built at init) to locust."""

    def tick(self) -> tuple[int, float] | None:
        assert _shape is not None
        return _shape.tick(self.get_run_time())


class ProgressWriter:
    """Per-second users, request count, failures and exact p50/p95 of the requests that ended that second."""

    def __init__(self, path: Path):
        self.path = path
        self._file: TextIO | None = None
        self._latencies: list[float] = []
        self._failures = 0
        self._since = 0.0
        self._loop: gevent.Greenlet | None = None

    def attach(self, environment: Environment) -> None:
        self._file = self.path.open("a", buffering=1, encoding="utf-8")
        environment.events.request.add_listener(self._on_request)
        environment.events.test_start.add_listener(lambda **_: self._start(environment))
        environment.events.test_stop.add_listener(lambda **_: self._stop(environment))

    def _on_request(self, response_time: float, exception: BaseException | None = None,
                    **_kwargs: Any) -> None:
        self._latencies.append(response_time)
        if exception is not None:
            self._failures += 1

    def _start(self, environment: Environment) -> None:
        self._since = time.time()
        self._write({"event": "start", "time": self._since})
        self._loop = gevent.spawn(self._every_second, environment)

    def _every_second(self, environment: Environment) -> None:
        while True:
            gevent.sleep(1.0 - (time.time() - self._since) % 1.0)
            self._flush(environment)

    def _stop(self, environment: Environment) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
        self._flush(environment)
        self._write({"event": "stop", "time": time.time()})

    def _flush(self, environment: Environment) -> None:
        now = time.time()
        latencies, failures = sorted(self._latencies), self._failures
        self._latencies, self._failures = [], 0
        runner = environment.runner
        self._write({"event": "tick", "time": now, "interval": now - self._since,
                     "users": runner.user_count if runner is not None else 0,
                     "requests": len(latencies), "failures": failures,
                     "p50_ms": _percentile(latencies, 0.50), "p95_ms": _percentile(latencies, 0.95),
                     "max_ms": latencies[-1] if latencies else None})
        self._since = now

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values (what locust reports too)."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * fraction // 1))
    return round(ordered[int(rank) - 1], 2)
