"""The report folder of a load test, for people and for scripts.

    locust.html, locust_stats.csv, locust_stats_history.csv, ...   locust's own report
    locust.log                                                      locust's output
    request.json                                                    the V2 request that was sent
    progress.jsonl                                                  per-second load (locustfile)
    timeline.csv                                                    load + scale status, every 500 ms
    chart.png                                                       the chart (loadtests/chart.py)
    summary.json                                                    plan, facts, expectation results
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.chart import render_chart
from loadtests.expectations import CheckResult
from loadtests.harness import LoadTestRun
from protocol.durations import format_duration


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    html: Path
    timeline: Path
    chart: Path
    summary: Path


def chart_title(run: LoadTestRun) -> str:
    plan = run.plan
    shape = f"{plan.shape}: {plan.users} users over {format_duration(plan.duration)}"
    if plan.shape == "step":
        shape += f" in {plan.steps} steps"
    suffix = " (interrupted)" if run.interrupted else ""
    return f"{plan.function} ({plan.protocol.upper()}) - {shape}{suffix}"


def write_report(run: LoadTestRun, checks: list[CheckResult] | None = None) -> ReportFiles:
    folder = run.plan.out_dir
    files = ReportFiles(folder=folder, html=folder / "locust.html", timeline=folder / "timeline.csv",
                        chart=folder / "chart.png", summary=folder / "summary.json")
    run.timeline.write_csv(files.timeline)
    render_chart(run.timeline, files.chart, chart_title(run))
    files.summary.write_text(json.dumps(summary(run, checks), indent=2) + "\n", encoding="utf-8")
    return files


def summary(run: LoadTestRun, checks: list[CheckResult] | None = None) -> dict[str, Any]:
    plan = run.plan
    return {
        "function": plan.function, "url": plan.url, "protocol": plan.protocol, "shape": plan.shape,
        "users": plan.users, "duration_s": plan.duration, "steps": plan.steps, "period_s": plan.period,
        "cooldown_s": plan.cooldown, "interrupted": run.interrupted, "locust_exit_code": run.locust_exit_code,
        "load_start": run.timeline.load_start, "load_stop": run.timeline.load_stop,
        "facts": asdict(run.facts),
        "panic_periods_s": [[round(a - run.timeline.origin, 2), round(b - run.timeline.origin, 2)]
                            for a, b in run.timeline.panic_periods()],
        "status_errors": run.status_errors[-20:],
        "checks": [asdict(c) for c in checks or []],
        "passed": all(c.passed for c in checks or []) and not run.interrupted,
    }
