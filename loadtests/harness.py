"""Runs one load test: locust headless in a subprocess, the platform's scale status sampled every 500 ms.

    plan = LoadTestPlan(function="iris", url="http://127.0.0.1:8080/fn/iris/", shape="spike", users=50,
                        duration=60.0, request=request, out_dir=Path("loadtest-report"), cooldown=90.0)
    run = run_load_test(plan, status=lambda: client.status("iris"), on_progress=print)

`status` is any callable returning `GET /api/v1/functions/<fn>/status` (the caller owns the token).
After the load stops, sampling goes on until the function is back at zero replicas or `cooldown` seconds
have passed, so scale-down is on the chart and `back_to_zero_within` can be checked.

Locust runs in its own process group (so Ctrl-C in a terminal reaches only us, and we stop it in order)
and dies with us on Linux (PR_SET_PDEATHSIG) should we be killed outright; every exit path of
`run_load_test`, an interrupt included, stops that group before returning.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from loadtests.bodies import read_v2_request, request_from_metadata
from loadtests.shapes import LoadShape, build_shape
from loadtests.timeline import LoadTotals, ProgressLog, RunFacts, ScaleSample, Timeline, read_locust_totals

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
REPO_ROOT = LOCUSTFILE.parents[1]
SAMPLE_INTERVAL = 0.5
USER_CLASSES = {"v2": "InferV2User", "v1": "PredictV1User"}
# Locust imports gevent and the locustfile before its first tick; a start slower than this is a fault.
LOCUST_START_TIMEOUT = 60.0
# Locust quits on its own when the shape ends; this backstop (ours: locust's --run-time is ignored with a
# shape, and passing it only makes locust warn the user) covers a locust that does not.
LOCUST_EXIT_GRACE = 60.0
STOP_TIMEOUT = 5.0

Protocol = Literal["v2", "v1"]
StatusSource = Callable[[], dict[str, Any]]


class LoadTestError(RuntimeError):
    """The load test could not run (locust failed to start, the function never reached zero, ...)."""


@dataclass(frozen=True)
class LoadTestPlan:
    function: str
    url: str
    shape: str
    users: int
    duration: float
    request: dict[str, Any]
    out_dir: Path
    cooldown: float
    protocol: Protocol = "v2"
    steps: int = 4
    period: float | None = None
    think_time: float = 0.0

    def __post_init__(self) -> None:
        # Locust runs with the report folder as its cwd: a relative folder (the default
        # ./loadtest-FN-TIMESTAMP) would be read from inside itself. Resolved once, here, every path
        # derived from it is absolute for both processes.
        object.__setattr__(self, "out_dir", Path(self.out_dir).resolve())

    def load_shape(self) -> LoadShape:
        return build_shape(self.shape, users=self.users, duration=self.duration, steps=self.steps,
                           period=self.period)


@dataclass(frozen=True)
class Progress:
    """What the live line shows; `phase` is 'starting', 'load' or 'cooldown'."""

    phase: str
    elapsed: float
    users: int
    rps: float
    p95_ms: float | None
    requests: int
    failures: int
    sample: ScaleSample | None


@dataclass
class LoadTestRun:
    plan: LoadTestPlan
    timeline: Timeline
    totals: LoadTotals | None
    locust_exit_code: int | None
    interrupted: bool = False
    status_errors: list[str] = field(default_factory=list)

    @property
    def facts(self) -> RunFacts:
        return self.timeline.facts(self.totals)

    @property
    def locust_log(self) -> Path:
        return self.plan.out_dir / "locust.log"


def prepare_request(url: str, function: str, sample: Path | None, timeout: float = 120.0) -> dict[str, Any]:
    """The V2 request to send: the --sample file, else one generated from the model's V2 metadata.

    Reading metadata reaches a replica, so it wakes a function at zero (the caller waits for zero after).
    """
    if sample is not None:
        return read_v2_request(sample)
    metadata_url = f"{url.rstrip('/')}/v2/models/{function}"
    try:
        response = httpx.get(metadata_url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise LoadTestError(f"cannot read the metadata of '{function}' at {metadata_url}: {exc}") from None
    if response.status_code != 200:
        raise LoadTestError(f"metadata of '{function}' at {metadata_url}: HTTP {response.status_code}: "
                            f"{response.text[:200]} (pass a request with --sample FILE)")
    return request_from_metadata(response.json(), function)


def wait_for_zero(status: StatusSource, timeout: float, on_progress: Callable[[Progress], None] | None = None,
                  clock: Callable[[], float] = time.monotonic) -> None:
    """Blocks until the function runs no replica (a spike 'from zero' starts cold), or raises."""
    deadline = clock() + timeout
    started = clock()
    while True:
        sample = ScaleSample.from_status(status(), time.time())
        if sample.at_zero:
            return
        if on_progress is not None:
            on_progress(Progress("waiting for zero", clock() - started, 0, 0.0, None, 0, 0, sample))
        if clock() >= deadline:
            raise LoadTestError(
                f"the function still runs {sample.ready} ready / {sample.desired} desired replicas after "
                f"{timeout:.0f}s; it has not scaled to zero (is min_scale > 0?)")
        time.sleep(SAMPLE_INTERVAL)


def run_load_test(plan: LoadTestPlan, status: StatusSource,
                  on_progress: Callable[[Progress], None] | None = None) -> LoadTestRun:
    """Runs the plan to the end (or to Ctrl-C/SIGTERM: then `interrupted` is set) and returns what it saw."""
    shape = plan.load_shape()  # refuse bad parameters before starting anything
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    request_file = plan.out_dir / "request.json"
    request_file.write_text(json.dumps(plan.request, indent=2) + "\n", encoding="utf-8")
    progress_file = plan.out_dir / "progress.jsonl"
    progress_file.unlink(missing_ok=True)
    progress = ProgressLog(progress_file)
    samples: list[ScaleSample] = []
    errors: list[str] = []
    interrupted = False
    exit_code: int | None = None

    launched = time.monotonic()
    process = _start_locust(plan, request_file, progress_file)
    try:
        exit_code = _sample_until_done(plan, shape, process, launched, status, progress, samples, errors,
                                       on_progress)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stopped_code = stop_process_group(process)
        exit_code = exit_code if exit_code is not None else stopped_code
    progress.poll()
    if progress.start is None and not interrupted:
        raise LoadTestError(f"locust stopped before the load started (exit code {exit_code}):\n"
                            + _tail(plan.out_dir / "locust.log"))
    load_stop = progress.stop
    if load_stop is None and progress.start is not None:
        load_stop = progress.points[-1].time if progress.points else progress.start
    timeline = Timeline(samples=samples, load=progress.points, load_start=progress.start, load_stop=load_stop)
    totals = read_locust_totals(plan.out_dir / "locust_stats.csv")
    return LoadTestRun(plan=plan, timeline=timeline, totals=totals, locust_exit_code=exit_code,
                       interrupted=interrupted, status_errors=errors)


def _sample_until_done(plan: LoadTestPlan, shape: LoadShape, process: subprocess.Popen[bytes],
                       launched: float, status: StatusSource, progress: ProgressLog,
                       samples: list[ScaleSample], errors: list[str],
                       on_progress: Callable[[Progress], None] | None) -> int | None:
    exit_code: int | None = None
    next_sample = time.monotonic()
    while True:
        now = time.time()
        sample = _sample(status, now, errors)
        if sample is not None:
            samples.append(sample)
        progress.poll()
        if exit_code is None:
            exit_code = process.poll()
        elapsed = time.monotonic() - launched
        if progress.start is None:
            if exit_code is not None:
                return exit_code
            if elapsed > LOCUST_START_TIMEOUT:
                raise LoadTestError(f"locust did not start the load within {LOCUST_START_TIMEOUT:.0f}s:\n"
                                    + _tail(plan.out_dir / "locust.log"))
        load_stop = progress.stop
        if load_stop is None and exit_code is not None and progress.start is not None:
            load_stop = now  # locust died mid-load: what follows is cooldown all the same
        if on_progress is not None:
            on_progress(_progress(progress, sample, load_stop, now))
        if load_stop is not None and exit_code is not None:
            back_at_zero = sample is not None and sample.at_zero and now >= load_stop
            if back_at_zero or now >= load_stop + plan.cooldown:
                return exit_code
        if exit_code is None and elapsed > shape.duration + LOCUST_START_TIMEOUT + LOCUST_EXIT_GRACE:
            errors.append("locust outlived its shape; stopped it")
            exit_code = stop_process_group(process)
        next_sample += SAMPLE_INTERVAL
        time.sleep(max(0.0, next_sample - time.monotonic()))


def _sample(status: StatusSource, now: float, errors: list[str]) -> ScaleSample | None:
    try:
        return ScaleSample.from_status(status(), now)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a missed sample is a gap in the chart, not the end of the run
        errors.append(f"{time.strftime('%H:%M:%S')}: {exc}")
        return None


def _progress(log: ProgressLog, sample: ScaleSample | None, load_stop: float | None, now: float) -> Progress:
    last = log.points[-1] if log.points else None
    phase = "starting" if log.start is None else "load" if load_stop is None else "cooldown"
    elapsed = 0.0 if log.start is None else now - log.start
    loading = last is not None and phase == "load"
    return Progress(phase=phase, elapsed=elapsed, users=last.users if last and loading else 0,
                    rps=last.rps if last and loading else 0.0, p95_ms=last.p95_ms if last else None,
                    requests=sum(p.requests for p in log.points),
                    failures=sum(p.failures for p in log.points), sample=sample)


def locust_command(plan: LoadTestPlan, request_file: Path, progress_file: Path) -> list[str]:
    """Everything locust needs, as absolute paths; no --run-time/--users/--spawn-rate (the shape drives)."""
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", plan.url.rstrip("/"), "--function", plan.function, "--request-file", str(request_file),
        "--shape", plan.shape, "--shape-users", str(plan.users), "--shape-duration", f"{plan.duration:g}s",
        "--shape-steps", str(plan.steps), "--think-time", f"{plan.think_time:g}",
        "--progress-file", str(progress_file),
        "--csv", str(plan.out_dir / "locust"), "--csv-full-history",
        "--html", str(plan.out_dir / "locust.html"),
    ]
    if plan.period is not None:
        command += ["--shape-period", f"{plan.period:g}s"]
    return command + [USER_CLASSES[plan.protocol]]


def _start_locust(plan: LoadTestPlan, request_file: Path, progress_file: Path) -> subprocess.Popen[bytes]:
    # LOCUST_* and ZEROSERVE_LOADTEST_* variables would add options the plan did not ask for
    # (LOCUST_RUN_TIME, ZEROSERVE_LOADTEST_PERIOD, ...): the run is what the command line says.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "ZEROSERVE_LOADTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    log = (plan.out_dir / "locust.log").open("wb")
    try:
        return subprocess.Popen(locust_command(plan, request_file, progress_file), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=plan.out_dir,
                                start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        log.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, so a kill -9 of us leaves no locust behind."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_process_group(process: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM to locust's whole group (it writes its reports and quits), SIGKILL if it does not."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:
            continue  # a second Ctrl-C: go straight to SIGKILL
    # No group-wide kill once the leader is reaped: its pid (= the group id) may already be reused, and
    # locust in local mode starts no processes of its own.
    return process.poll()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no locust log)"
