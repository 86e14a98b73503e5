"""`zeroserve loadtest` never leaves locust behind: not on Ctrl-C, not on SIGTERM, not when killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.loadtests.conftest import cli_env, loadtest_command, sleepy_function
from tests.polling import wait_for
from tests.zeroserve.control.harness import REPO, PlatformProcess

WAIT = 30.0
StartLoadtest = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def busy(platform: PlatformProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    function = sleepy_function(tmp_path_factory.mktemp("busy"), "busy", {"target": 10, "max_scale": 1})
    platform.client().deploy(function)
    return function


def processes_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `text` (the run's unique report folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found



@pytest.fixture
def start_loadtest(platform: PlatformProcess, busy: Path, tmp_path: Path) -> Iterator[StartLoadtest]:
    started: list[subprocess.Popen[bytes]] = []

    def start(out: Path, *args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / "cli.log").open("wb")
        command = loadtest_command("busy", "--users", "2", "--duration", "5m", "--think-time", "0.05",
                                   "--cooldown", "0s", "--out", str(out), *args)
        proc = subprocess.Popen(command, cwd=REPO, env=cli_env(platform), stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        started.append(proc)
        # Running means: locust has sent load (its first per-second tick is in the progress file).
        wait_for(lambda: '"tick"' in _read(out / "progress.jsonl") or proc.poll() is not None,
                 "the first tick")
        assert proc.poll() is None, (tmp_path / "cli.log").read_text()
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=WAIT)
        for out in tmp_path.iterdir():  # a failed test still leaves no locust running
            for pid in processes_mentioning(str(out)) if out.is_dir() else []:
                os.kill(pid, signal.SIGKILL)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


# Each run also covers a request path: V2 with a body generated from the model's metadata, V1 rows.
@pytest.mark.parametrize(("sig", "protocol", "request_name"), [
    (signal.SIGINT, "v2", "V2 infer"), (signal.SIGTERM, "v1", "V1 predict")], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_locust_and_still_writes_the_report(
        start_loadtest: StartLoadtest, tmp_path: Path, sig: signal.Signals, protocol: str, request_name: str,
) -> None:
    out = tmp_path / "report"
    proc = start_loadtest(out, "--protocol", protocol)
    locust = processes_mentioning(str(out))
    assert locust, "locust should be running during the load"

    proc.send_signal(sig)

    assert proc.wait(timeout=WAIT) == 130, (tmp_path / "cli.log").read_text()
    assert processes_mentioning(str(out)) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["passed"] is False
    assert summary["facts"]["requests"] > 0 and summary["facts"]["failures"] == 0, summary["facts"]
    generated = json.loads((out / "request.json").read_text())  # no --sample: made from metadata
    assert generated["inputs"] == [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4}]
    stats = (out / "locust_stats.csv").read_text()
    assert f",{request_name}," in stats, stats
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert "interrupted" in (tmp_path / "cli.log").read_text()


def test_locust_dies_with_a_killed_loadtest(start_loadtest: StartLoadtest, busy: Path,
                                            tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = start_loadtest(out, "--sample", str(busy / "sample.json"))
    assert processes_mentioning(str(out))

    proc.kill()  # no handler runs: only PR_SET_PDEATHSIG can take locust down
    proc.wait(timeout=WAIT)

    wait_for(lambda: processes_mentioning(str(out)) == [], "locust to exit after its parent was killed")
