"""The trace simulator: shapes of a step and a spike from zero, the CLI, the plot, trace errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.simulate import Phase, Trace, TraceError, load_trace, main, simulate

TRACES = Path(__file__).resolve().parents[2] / "autoscaler" / "traces"


def test_step_panics_promptly_and_holds_until_the_stable_window_passes() -> None:
    trace = Trace(name="step", phases=[Phase(30, 20, 20), Phase(40, 200, 200), Phase(70, 20, 20)], seed=None,
                  warm=1, service_time=1.0, startup_time=2.0)
    result = simulate(trace)
    panicking = [s for s in result.samples if s.decision.panicking]
    assert panicking and 30 < panicking[0].t <= 36  # within a few ticks of the step
    applied = [s.decision.applied for s in panicking]
    assert applied == sorted(applied)  # never scales down in panic
    assert not result.samples[-1].decision.panicking  # over 60 s after the last over-threshold tick
    assert len(result.waits) == result.arrivals  # everything was served


def test_spike_from_zero_pokes_queues_then_returns_to_zero() -> None:
    trace = Trace(name="spike", phases=[Phase(10, 0, 0), Phase(5, 100, 100), Phase(115, 0, 0)], seed=7,
                  scaling={"initial_scale": 0}, startup_time=3.0)
    result = simulate(trace)
    before = [s for s in result.samples if s.t <= 10]
    assert all(s.decision.applied == 0 for s in before)
    first_up = next(s for s in result.samples if s.decision.applied > 0)
    assert first_up.t <= 12.0 and first_up.decision.activity == "activating"
    assert max(result.waits) >= 3.0  # the first requests waited for a replica to start
    assert len(result.waits) == result.arrivals
    assert result.samples[-1].decision.applied == 0  # stable window + grace after the spike


def test_cli_prints_table_and_summary_and_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "tiny.yaml"
    trace.write_text("name: tiny\nphases:\n  - {duration: 20, from: 0, to: 40}\nwarm: 1\npoisson: false\n")
    png = tmp_path / "out" / "tiny.png"
    assert main([str(trace), "--png", str(png), "--every", "10"]) == 0
    out = capsys.readouterr().out
    assert "reason" in out.splitlines()[0] and "trace tiny: 20s" in out and "requests " in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_trace_with_command_line_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "burst.csv"
    trace.write_text("second,rate\n" + "".join(f"{s},{30 if s < 5 else 0}\n" for s in range(12)))
    assert main([str(trace), "--quiet", "--service-time", "0.5", "--concurrency", "5"]) == 0
    out = capsys.readouterr().out
    assert "service 0.5s" in out and "containerConcurrency 5" in out and "target 3.5 per replica" in out


@pytest.mark.parametrize(
    "text, message",
    [
        ("phases: []\n", "phases must be a non-empty list"),
        ("phases:\n  - {duration: 10}\n", "phases[0]: missing rate"),
        ("phases:\n  - {duration: -1, rate: 3}\n", "duration must be positive"),
        ("phases:\n  - {duration: 5, rate: 3, burst: 1}\n", "unknown key(s) ['burst']"),
        ("phases:\n  - {duration: 5, rate: 3}\nspeed: 2\n", "unknown key(s) ['speed']"),
        ("phases:\n  - {duration: 5, rate: 3}\nscaling: {window: 1s}\n", "scaling.window: must be between 6s and 1h"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_traces_are_refused_with_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                               message: str) -> None:
    trace = tmp_path / "bad.yaml"
    trace.write_text(text)
    assert main([str(trace), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_shipped_traces_load() -> None:
    names = sorted(p.stem for p in TRACES.glob("*.yaml"))
    assert names == ["slow-ramp", "spike-from-zero", "step"]
    for name in names:
        trace = load_trace(TRACES / f"{name}.yaml")
        assert trace.duration > 0 and trace.phases
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(TRACES / "missing.yaml")
