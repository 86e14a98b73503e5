"""Harness pieces without a platform: stopping locust's process group, waiting for zero, the command's
cooldown and live line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests import harness
from loadtests.harness import (
    LoadTestError,
    LoadTestPlan,
    Progress,
    locust_command,
    stop_process_group,
    wait_for_zero,
)
from loadtests.timeline import ScaleSample
from zeroserve.commands.loadtest import auto_cooldown, progress_line

IGNORES_SIGTERM = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(60)")


def status(ready: int, desired: int, panicking: bool = False) -> dict:
    return {"function": "f", "revisions": [
        {"revision": "f-00001", "ready": ready, "desired": desired, "starting": 0, "panicking": panicking,
         "metric": "concurrency", "stable_value": 1.0, "panic_value": 2.0, "queue_depth": 3, "in_flight": 1}]}


def test_a_locust_that_ignores_sigterm_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "STOP_TIMEOUT", 0.5)
    proc = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        started = time.monotonic()
        assert stop_process_group(proc) == -signal.SIGKILL
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_stopping_an_exited_process_is_a_no_op() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    assert stop_process_group(proc) == 0


def test_wait_for_zero_returns_at_zero_and_reports_what_runs_on_timeout() -> None:
    answers = iter([status(1, 1), status(0, 0)])
    seen: list[Progress] = []
    wait_for_zero(lambda: next(answers), timeout=10, on_progress=seen.append)
    assert [p.sample.ready for p in seen if p.sample] == [1]
    with pytest.raises(LoadTestError, match=r"still runs 2 ready / 3 desired replicas after 0s"):
        wait_for_zero(lambda: status(2, 3), timeout=0)


def test_the_locust_command_carries_the_plan(tmp_path: Path) -> None:
    plan = LoadTestPlan(function="iris", url="http://127.0.0.1:9/fn/iris/", shape="sine", users=7,
                        duration=30.0, request={}, out_dir=tmp_path, cooldown=0.0, protocol="v1", period=10.0)
    command = locust_command(plan, tmp_path / "request.json", tmp_path / "progress.jsonl")
    assert command[-1] == "PredictV1User"
    pairs = dict(zip(command, command[1:], strict=False))
    assert pairs["--host"] == "http://127.0.0.1:9/fn/iris" and pairs["--function"] == "iris"
    assert (pairs["--shape"], pairs["--shape-users"], pairs["--shape-duration"]) == ("sine", "7", "30s")
    assert pairs["--shape-period"] == "10s" and "--headless" in command
    # The shape drives the run: options locust ignores with a shape (and warns about) are never passed.
    assert not {"--run-time", "-t", "--users", "-u", "--spawn-rate", "-r"} & set(command)


def test_a_relative_report_folder_is_resolved_before_locust_runs_inside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = LoadTestPlan(function="iris", url="http://127.0.0.1:9/fn/iris/", shape="spike", users=1,
                        duration=5.0, request={}, out_dir=Path("loadtest-iris-1"), cooldown=0.0)
    assert plan.out_dir == tmp_path.resolve() / "loadtest-iris-1"
    command = locust_command(plan, plan.out_dir / "request.json", plan.out_dir / "progress.jsonl")
    pairs = dict(zip(command, command[1:], strict=False))
    for option in ("-f", "--request-file", "--progress-file", "--csv", "--html"):
        assert Path(pairs[option]).is_absolute(), (option, pairs[option])


def test_auto_cooldown_covers_window_grace_and_delay_of_the_slowest_revision() -> None:
    assert auto_cooldown([{"window": 6.0, "scale_to_zero_grace_period": 3.0, "min_scale": 0}]) == 24.0
    slow = {"window": 60.0, "scale_to_zero_grace_period": 30.0, "scale_down_delay": 5.0}
    assert auto_cooldown([{"window": 6.0, "scale_to_zero_grace_period": 3.0}, slow]) == 110.0
    assert auto_cooldown([{"window": 20.0, "min_scale": 1}]) == 30.0  # never reaches zero: settle only
    assert auto_cooldown([]) == 105.0  # Knative's defaults


def test_the_live_line_shows_users_rps_p95_failures_replicas_and_panic() -> None:
    sample = ScaleSample.from_status(status(2, 4, panicking=True), 0.0)
    line = progress_line(Progress("load", 12.5, 50, 812.34, 45.0, 9000, 3, sample))
    for part in ("12.5s", "load", "users   50", "rps   812.3", "p95    45 ms", "failures 3/9000",
                 "replicas 2/4", "PANIC", "queue 3"):
        assert part in line, (part, line)
    assert "replicas ?" in progress_line(Progress("starting", 0.0, 0, 0.0, None, 0, 0, None))
