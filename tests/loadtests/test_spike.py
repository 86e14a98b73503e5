"""End to end: a spike from zero against a real `zeroserve up`, checked through `zeroserve loadtest`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.loadtests.conftest import run_loadtest, sleepy_function
from tests.zeroserve.control.harness import PlatformProcess

WINDOW, GRACE = 6.0, 3.0
# Scale-to-zero needs the stable window to drain and the grace period; the margin is for autoscaler
# ticks, replica drain and a busy 2-core CI machine.
BACK_TO_ZERO_MARGIN = 20.0


def test_a_spike_from_zero_scales_up_panics_and_returns_to_zero(platform: PlatformProcess,
                                                                tmp_path: Path) -> None:
    scaling = {"target": 1, "window": f"{WINDOW:g}s", "scale_to_zero_grace_period": f"{GRACE:g}s",
               "max_scale": 4, "initial_scale": 0}
    function = sleepy_function(tmp_path, "spiky", scaling)
    platform.client().deploy(function)
    deadline = WINDOW + GRACE + BACK_TO_ZERO_MARGIN
    expect = tmp_path / "expect.yaml"
    expect.write_text(f"max_failures: 0\nmin_peak_replicas: 2\npanic_within: 8s\n"
                      f"back_to_zero_within: {deadline:g}s\n")
    out = tmp_path / "report"

    result = run_loadtest(platform, "spiky", "--shape", "spike", "--users", "8", "--duration", "8s",
                          "--sample", str(function / "sample.json"), "--expect", str(expect),
                          "--out", str(out), "--from-zero")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "all expectations met" in output and output.count("PASS") == 4, output
    facts = json.loads((out / "summary.json").read_text())["facts"]
    assert facts["failures"] == 0 and facts["requests"] > 100, facts
    assert facts["peak_ready"] > 1, facts
    assert facts["panic_after"] is not None, facts
    assert facts["back_to_zero_after"] is not None and facts["back_to_zero_after"] <= deadline, facts

    # The same story read independently from the timeline: from zero, up past one, panic, back to zero.
    with (out / "timeline.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["ready"] == "0", rows[0]
    assert max(int(r["ready"]) for r in rows) > 1
    assert any(r["panicking"] == "1" for r in rows)
    assert rows[-1]["ready"] == rows[-1]["desired"] == "0", rows[-1]
    assert max(float(r["rps"]) for r in rows) > 0

    chart = (out / "chart.png").read_bytes()
    assert chart[:8] == b"\x89PNG\r\n\x1a\n" and len(chart) > 30_000
    assert (out / "locust.html").stat().st_size > 0 and (out / "locust_stats.csv").exists()
