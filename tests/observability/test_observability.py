"""Observability end to end (issue 15): a real `zeroserve up`, a handler that prints and reads its request's
trace context, and what an operator sees: /metrics (checked by promtool), `zeroserve logs [-f]`, request
ids and traceparents, the access log, and scale events."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.zeroserve.control.harness import REPO, _env, run_cli
from tests.zeroserve.platform.conftest import FAST_SCALING, Load, Platform, stop_leaving_nothing, wait_for

# Prints one line per request, sleeps `ms`, answers with the request id and traceparent it saw; a negative
# value crashes the replica (its process exits, as a segfault in a native library would end it).
HANDLER = textwrap.dedent('''
    import os
    import time

    import numpy as np

    from functions.request_context import request_id, traceparent


    class Traced:
        inputs = [{"name": "ms", "datatype": "FP32", "shape": [-1]}]
        outputs = [{"name": "rid", "datatype": "BYTES", "shape": [-1]},
                   {"name": "tp", "datatype": "BYTES", "shape": [-1]}]

        def predict(self, inputs):
            ms = float(inputs["ms"].max())
            print(f"handled ms={ms:g}", flush=True)
            if ms < 0:
                os._exit(3)
            time.sleep(ms / 1000.0)
            return {"rid": np.array([request_id() or ""], dtype=object),
                    "tp": np.array([traceparent() or ""], dtype=object)}
''')
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACEPARENT_FORMAT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def traced_function(tmp_path: Path, name: str, **manifest: Any) -> Path:
    dest = tmp_path / name
    dest.mkdir()
    (dest / "handler.py").write_text(HANDLER)
    (dest / "sample.json").write_text('{"inputs": [{"name": "ms", "shape": [1], "datatype": "FP32", "data": [1]}]}')
    (dest / "function.yaml").write_text(yaml.safe_dump(
        {"name": name, "handler": "handler:Traced", "sample": "sample.json", **manifest}))
    return dest


def body(ms: float) -> dict[str, Any]:
    return {"inputs": [{"name": "ms", "shape": [1], "datatype": "FP32", "data": [ms]}]}


def outputs(response: httpx.Response) -> dict[str, str]:
    return {o["name"]: o["data"][0] for o in response.json()["outputs"]}


@pytest.fixture
def platform(tmp_path: Path):
    started = Platform(tmp_path / "data", {"ZEROSERVE_ACCESS_LOG": "true"}).start()
    try:
        yield started
    finally:
        stop_leaving_nothing([started])


def scrape(platform: Platform) -> str:
    response = httpx.get(f"{platform.url}/metrics", headers={"Authorization": f"Bearer {platform.token}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def promtool() -> str | None:
    """promtool on PATH, or where `make test` unpacks it (the virtualenv's bin)."""
    return shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.executable).parent))


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)], parsed as Prometheus parses the text format."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    return sum(v for sample_labels, v in found.get(name, []) if labels.items() <= sample_labels.items())


def test_metrics_after_a_cold_start_a_scale_up_and_a_crash_pass_promtool(platform: Platform, tmp_path: Path):
    platform.deploy(traced_function(tmp_path, "obs", concurrency=1,
                                    scaling={**FAST_SCALING, "target": 1, "max_scale": 3}))
    url = platform.fn_url("obs", "v2/models/obs/infer")

    cold = httpx.post(url, json=body(1), timeout=60)  # at zero: a cold start
    assert cold.status_code == 200, cold.text
    assert cold.headers["zeroserve-cold-start"] == "true"
    with Load(url, body(300), clients=4) as load:  # 4 in flight for a target of 1: scale up
        wait_for(lambda: platform.revision_status("obs")["ready"] >= 2, "a scale-up to 2 or more replicas",
                 timeout=60)
    assert {code for _, code, _ in load.results} == {200}, load.results
    crashed = httpx.post(url, json=body(-1), timeout=60)  # the replica serving it exits
    assert crashed.status_code == 502, crashed.text
    wait_for(lambda: platform.revision_status("obs")["restarts"] >= 1, "the crash to be seen")

    text = scrape(platform)
    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; `make test` unpacks it "
                    "into .venv/bin where apt is available): the metrics were scraped but not linted")
    lint = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, f"promtool check metrics:\n{lint.stdout}{lint.stderr}"

    found = samples(text)
    fn = {"function": "obs", "revision": "obs-00001"}
    assert value(found, "zeroserve_cold_start_seconds_count", **fn) >= 1
    for phase in ("queue", "fork", "load", "listen", "first_byte"):
        assert value(found, "zeroserve_cold_start_phase_seconds_count", phase=phase, **fn) >= 1, phase
    for gauge in ("desired_pods", "requested_pods", "actual_pods", "not_ready_pods", "terminating_pods",
                  "panic_mode", "excess_burst_capacity", "stable_request_concurrency",
                  "panic_request_concurrency", "target_concurrency_per_pod"):
        assert [labels for labels, _ in found[f"zeroserve_autoscaler_{gauge}"]] == [fn], gauge
    assert value(found, "zeroserve_autoscaler_target_concurrency_per_pod", **fn) == pytest.approx(0.7)
    assert value(found, "zeroserve_replicas_started_total", **fn) >= 2
    assert value(found, "zeroserve_replicas_exited_total", reason="crash", **fn) >= 1
    assert {labels["reason"] for labels, _ in found["zeroserve_replicas_exited_total"]} == {
        "scale_down", "crash", "out_of_memory", "start_failure"}
    assert value(found, "zeroserve_replica_restarts_total", **fn) >= 1
    assert value(found, "zeroserve_activator_requests_total", code="502", **fn) == 1
    assert value(found, "zeroserve_activator_requests_total", code="200", **fn) >= 5
    assert {labels["reason"] for labels, _ in found["zeroserve_activator_rejected_requests_total"]} == {
        "queue_full", "timeout", "start_failed", "shutting_down"}
    assert value(found, "zeroserve_build_duration_seconds_count", outcome="succeeded") == 1
    assert value(found, "zeroserve_deploy_duration_seconds_count", outcome="created") == 1

    # The scale-up is an event naming the decider's reason.
    events = run_cli(platform, "events", "obs", "--json")
    assert events.returncode == 0, events.stderr
    changes = [re.search(r": (\d+) -> (\d+) replicas \((.+)\)$", e["message"])
               for e in yaml.safe_load(events.stdout) if e["kind"] == "scale"]
    assert any(m and 1 <= int(m[1]) < int(m[2]) and m[3] for m in changes), events.stdout  # 1 -> N, and why


def test_request_id_and_traceparent_reach_the_handler_and_come_back(platform: Platform, tmp_path: Path):
    platform.deploy(traced_function(tmp_path, "traced", scaling={"initial_scale": 1}))
    url = platform.fn_url("traced", "v2/models/traced/infer")

    response = httpx.post(url, json=body(1), headers={"traceparent": TRACEPARENT}, timeout=60)
    assert response.status_code == 200, response.text
    request_id = response.headers["zeroserve-request-id"]
    echoed = response.headers["traceparent"]
    # The caller's trace goes on, with the activator's span (the request id) as the replica's parent.
    assert echoed == f"00-0af7651916cd43dd8448eb211c80319c-{request_id}-01"
    assert outputs(response) == {"rid": request_id, "tp": echoed}

    # No traceparent: a new trace starts; an invalid one is replaced by a new trace too.
    for headers in ({}, {"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"}):
        fresh = httpx.post(url, json=body(1), headers=headers, timeout=60)
        assert TRACEPARENT_FORMAT.fullmatch(fresh.headers["traceparent"]), fresh.headers
        assert "0" * 32 not in fresh.headers["traceparent"]
        assert outputs(fresh) == {"rid": fresh.headers["zeroserve-request-id"], "tp": fresh.headers["traceparent"]}

    # The line the handler printed for that request carries its id.
    logs = run_cli(platform, "logs", "traced", "--json")
    assert logs.returncode == 0, logs.stderr
    lines = [yaml.safe_load(line) for line in logs.stdout.splitlines()]
    assert {"line": "handled ms=1", "request_id": request_id} in [
        {"line": line["line"], "request_id": line["request_id"]} for line in lines]

    # Errors name the request too: in the header and in the body.
    missing = httpx.post(platform.fn_url("nothing-here", "v2/models/x/infer"), json=body(1), timeout=30)
    assert missing.status_code == 404
    assert missing.json()["request_id"] == missing.headers["zeroserve-request-id"]

    # The access log has one line for that request: its revision, status and times.
    line = wait_for(lambda: next((out for out in platform.output if f"request_id={request_id}" in out), None),
                    "the access log line of the request")
    assert "revision=traced-00001" in line and "status=200" in line and "queue_ms=" in line, line


def test_logs_follow_shows_a_line_printed_while_following(platform: Platform, tmp_path: Path):
    platform.deploy(traced_function(tmp_path, "followed", scaling={"initial_scale": 1}))
    url = platform.fn_url("followed", "v2/models/followed/infer")
    assert httpx.post(url, json=body(1), timeout=60).status_code == 200

    env = _env(ZEROSERVE_URL=platform.url, ZEROSERVE_DATA=str(platform.data_dir))
    follower = subprocess.Popen([sys.executable, "-m", "zeroserve.cli", "logs", "followed", "-f"], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout or ()], daemon=True).start()

    def printed(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(line.rstrip().endswith(text) for line in seen)

    try:
        wait_for(lambda: printed("handled ms=1"), "the follower to print the earlier line", timeout=30)
        response = httpx.post(url, json=body(2), timeout=60)  # printed now, while followed
        assert response.status_code == 200
        wait_for(lambda: printed("handled ms=2"), "the line printed while following", timeout=30)
        line = next(line for line in seen if line.rstrip().endswith("handled ms=2"))
        assert f"[{response.headers['zeroserve-request-id']}]" in line and "followed-00001-r" in line, line
        assert follower.poll() is None  # still following
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            follower.wait(timeout=20)
        except subprocess.TimeoutExpired:
            follower.kill()
            follower.wait()
    assert follower.returncode in (0, -signal.SIGINT), follower.stderr.read() if follower.stderr else ""


def test_the_platform_log_says_where_replica_output_goes_and_logs_stay_private(platform: Platform, tmp_path: Path):
    platform.deploy(traced_function(tmp_path, "private", scaling={"initial_scale": 1}))
    log_file = platform.data_dir / "logs" / "private" / "private-00001.log"
    wait_for(lambda: any(str(log_file) in line for line in platform.output), "the platform's log naming the file")
    answer = httpx.post(platform.fn_url("private", "v2/models/private/infer"), json=body(1), timeout=60)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: log_file.exists() and "handled ms=1" in log_file.read_text(), "the line in the log file")
    assert oct(os.stat(log_file).st_mode & 0o777) == oct(0o600)
    assert oct(os.stat(log_file.parent).st_mode & 0o777) == oct(0o700)
