"""The timeline: status samples summed over revisions, the progress file, derived facts, CSV and chart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loadtests.chart import render_chart
from loadtests.timeline import (
    TIMELINE_COLUMNS,
    LoadPoint,
    LoadTotals,
    ProgressLog,
    ScaleSample,
    Timeline,
    read_locust_totals,
)

T0 = 1_700_000_000.0


def sample(t: float, ready: int, desired: int | None = None, panicking: bool = False,
           starting: int = 0) -> ScaleSample:
    return ScaleSample(time=T0 + t, ready=ready, desired=ready if desired is None else desired,
                       starting=starting, panicking=panicking, stable_value=float(ready),
                       panic_value=2.0 * ready, queue_depth=0, in_flight=ready)


def point(t: float, users: int, requests: int, failures: int = 0, p95: float | None = 50.0) -> LoadPoint:
    return LoadPoint(time=T0 + t, interval=1.0, users=users, requests=requests, failures=failures,
                     p50_ms=None if p95 is None else p95 / 2, p95_ms=p95)


def spike_timeline() -> Timeline:
    """Load from 0 to 4 s; panic from 1 s to 3 s; at zero again 6 s after the stop."""
    samples = [sample(-0.5, 0), sample(0.5, 0, 3, panicking=True, starting=3), sample(1.0, 1, 3, True),
               sample(2.0, 3, 3, True), sample(3.0, 3), sample(4.0, 3), sample(6.0, 1, 0), sample(10.0, 0),
               sample(10.5, 0)]
    load = [point(1, 10, 100, p95=900.0), point(2, 10, 300), point(3, 10, 300, failures=2), point(4, 10, 300)]
    return Timeline(samples=samples, load=load, load_start=T0, load_stop=T0 + 4.0)


def test_status_is_summed_over_revisions_and_panic_is_any() -> None:
    status = {"function": "f", "revisions": [
        {"revision": "f-1", "ready": 2, "desired": 3, "starting": 1, "panicking": False,
         "metric": "rps", "stable_value": 1.5, "panic_value": 2.0, "queue_depth": 4, "in_flight": 2},
        {"revision": "f-2", "ready": 1, "desired": 1, "starting": 0, "panicking": True,
         "metric": "rps", "stable_value": 0.5, "panic_value": 1.0, "queue_depth": 0, "in_flight": 1},
    ]}
    s = ScaleSample.from_status(status, T0)
    assert (s.ready, s.desired, s.starting, s.panicking, s.queue_depth, s.in_flight) == (3, 4, 1, True, 4, 3)
    assert (s.stable_value, s.panic_value, s.metric) == (2.0, 3.0, "rps")
    assert not s.at_zero
    empty = ScaleSample.from_status({"function": "f", "revisions": []}, T0)
    assert empty.at_zero and not empty.panicking


def test_progress_log_reads_complete_lines_only_and_folds_a_short_last_tick(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    log = ProgressLog(path)
    assert log.poll().start is None  # no file yet
    tick = {"event": "tick", "time": T0 + 1, "interval": 1.0, "users": 5, "requests": 40, "failures": 1,
            "p50_ms": 10.0, "p95_ms": 30.0, "max_ms": 40.0}
    path.write_text(json.dumps({"event": "start", "time": T0}) + "\n" + json.dumps(tick) + "\n"
                    + '{"event": "tick", "ti')
    log.poll()
    assert log.start == T0 and len(log.points) == 1 and log.points[0].rps == 40.0
    with path.open("a") as handle:  # the rest of the half-written line, then a 50 ms remainder and stop
        handle.write('me": %r, "interval": 1.0, "users": 5, "requests": 60, "failures": 0, "p50_ms": 11.0, '
                     '"p95_ms": 31.0}\n' % (T0 + 2))
        handle.write(json.dumps({**tick, "time": T0 + 2.05, "interval": 0.05, "requests": 3}) + "\n")
        handle.write(json.dumps({"event": "stop", "time": T0 + 2.05}) + "\n")
    log.poll()
    assert [p.requests for p in log.points] == [40, 63]
    assert log.points[1].interval == 1.05 and log.stop == T0 + 2.05


def test_facts_of_a_spike() -> None:
    timeline = spike_timeline()
    facts = timeline.facts(LoadTotals(requests=1000, failures=2, p50_ms=20.0, p95_ms=100.0))
    assert (facts.requests, facts.failures, facts.p95_ms) == (1000, 2, 100.0)
    assert facts.mean_rps == 250.0 and facts.load_seconds == 4.0
    assert (facts.peak_users, facts.peak_ready, facts.peak_desired) == (10, 3, 3)
    assert facts.panic_after == 0.5
    assert facts.panic_seconds == 2.5  # 0.5 s .. 3.0 s
    assert facts.back_to_zero_after == 6.0  # first sample at zero after the stop: 10 s


def test_facts_without_locust_totals_sum_the_ticks_and_know_no_percentiles() -> None:
    facts = spike_timeline().facts()
    assert (facts.requests, facts.failures, facts.p95_ms) == (1000, 2, None)


def test_no_panic_and_never_back_to_zero() -> None:
    timeline = Timeline(samples=[sample(0, 1), sample(5, 2), sample(9, 1)], load=[point(1, 2, 10)],
                        load_start=T0, load_stop=T0 + 5)
    facts = timeline.facts()
    assert facts.panic_after is None and facts.panic_seconds == 0 and facts.back_to_zero_after is None
    assert timeline.panic_periods() == []


def test_a_panic_still_on_at_the_last_sample_ends_there() -> None:
    timeline = Timeline(samples=[sample(0, 1), sample(1, 1, 3, True), sample(2, 3, 3, True)], load=[],
                        load_start=T0, load_stop=None)
    assert timeline.panic_periods() == [(T0 + 1, T0 + 2)]


def test_rows_join_each_sample_with_the_second_of_load_it_fell_in(tmp_path: Path) -> None:
    timeline = spike_timeline()
    path = tmp_path / "timeline.csv"
    timeline.write_csv(path)
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    by_t = {row["t_s"]: row for row in rows}
    assert by_t["-0.5"]["users"] == "0" and by_t["-0.5"]["p95_ms"] == ""  # before the load
    assert by_t["0.5"]["users"] == "10" and by_t["0.5"]["p95_ms"] == "900.0"  # second 0..1
    assert by_t["2.0"]["rps"] == "300.0" and by_t["2.0"]["panicking"] == "1"
    assert by_t["10.0"]["users"] == "0" and by_t["10.0"]["ready"] == "0"  # after the load


def test_locust_totals_come_from_the_aggregated_row(tmp_path: Path) -> None:
    stats = tmp_path / "locust_stats.csv"
    stats.write_text("Type,Name,Request Count,Failure Count,50%,95%\n"
                     "POST,V2 infer,120,3,14,95\n"
                     ",Aggregated,120,3,14,95\n")
    assert read_locust_totals(stats) == LoadTotals(requests=120, failures=3, p50_ms=14.0, p95_ms=95.0)
    stats.write_text("Type,Name,Request Count,Failure Count,50%,95%\n,Aggregated,0,0,N/A,N/A\n")
    assert read_locust_totals(stats) == LoadTotals(requests=0, failures=0, p50_ms=None, p95_ms=None)
    assert read_locust_totals(tmp_path / "missing.csv") is None


def test_the_chart_renders_a_png(tmp_path: Path) -> None:
    path = render_chart(spike_timeline(), tmp_path / "chart.png", "f - spike")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    # An empty run (interrupted before the first tick) still gives a chart rather than an error.
    nothing = Timeline(samples=[], load=[], load_start=None, load_stop=None)
    empty = render_chart(nothing, tmp_path / "e.png", "e")
    assert empty.read_bytes()[:4] == b"\x89PNG"
