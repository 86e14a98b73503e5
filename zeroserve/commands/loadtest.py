"""`zeroserve loadtest FN`: locust against the function URL while the platform's scale status is sampled.

    zeroserve loadtest iris --shape spike --users 50 --duration 60s --expect expect.yaml --out report/

Writes a report folder (locust's HTML and CSVs, timeline.csv, chart.png, summary.json), prints a live
line while it runs, a summary and the expectations as a pass/fail table at the end. Exit code: 0 when
every expectation holds, 1 when one fails (or the test could not run), 130 when interrupted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from loadtests.shapes import SHAPE_NAMES, LoadShape, build_shape
from protocol.durations import format_duration, parse_duration
from zeroserve.client import ApiError, ControlClient, resolve_token
from zeroserve.commands.connection import (
    DataOption,
    ServerOption,
    TokenOption,
    connect,
    console,
    fail,
)
from zeroserve.commands.functions import FunctionArg

if TYPE_CHECKING:
    from loadtests.expectations import CheckResult, Expectations
    from loadtests.harness import LoadTestPlan, LoadTestRun, Progress
    from loadtests.report import ReportFiles

# Scale-to-zero takes the stable window (the average decays), the grace period, any scale-down delay and
# a replica's drain; the margin covers autoscaler ticks and draining.
COOLDOWN_MARGIN = 15.0
STATUS_TIMEOUT = 5.0
PLAIN_PROGRESS_EVERY = 5.0


# The command's options, in the order `--help` lists them.
ShapeOption = Annotated[str, typer.Option("--shape", help=f"Load shape: {', '.join(SHAPE_NAMES)}")]
UsersOption = Annotated[int, typer.Option("--users", help="Peak number of locust users")]
DurationOption = Annotated[str, typer.Option("--duration", help="How long the load runs ('60s', '2m')")]
StepsOption = Annotated[int, typer.Option("--steps", help="step shape: number of plateaus")]
PeriodOption = Annotated[str | None, typer.Option(
    "--period", help="sine shape: one cycle (default: the duration)", show_default=False)]
ProtocolOption = Annotated[Literal["v2", "v1"], typer.Option(
    "--protocol", help="v2: OIP V2 infer; v1: KServe V1 predict")]
SampleOption = Annotated[Path | None, typer.Option(
    "--sample", help="V2 request to send, e.g. the function's sample.json (default: made from metadata)",
    show_default=False)]
ExpectOption = Annotated[Path | None, typer.Option(
    "--expect", help="YAML expectations to check (exit 1 when one fails)", show_default=False)]
OutOption = Annotated[Path | None, typer.Option(
    "--out", help="Report folder (default: ./loadtest-FN-TIMESTAMP)", show_default=False)]
CooldownOption = Annotated[str, typer.Option(
    "--cooldown", help="Keep sampling after the load this long at most, or until zero replicas; "
    "'auto': the revision's window + grace + 15s")]
FromZeroOption = Annotated[bool, typer.Option(
    "--from-zero", help="Wait until the function runs no replica before starting the load")]
ThinkTimeOption = Annotated[float, typer.Option(
    "--think-time", help="Seconds a user waits between requests")]
UrlOption = Annotated[str | None, typer.Option(
    "--url", help="Function URL to load (default: the function's path URL)", show_default=False)]


def loadtest(
    function: FunctionArg,
    shape: ShapeOption = "spike",
    users: UsersOption = 10,
    duration: DurationOption = "60s",
    steps: StepsOption = 4,
    period: PeriodOption = None,
    protocol: ProtocolOption = "v2",
    sample: SampleOption = None,
    expect: ExpectOption = None,
    out: OutOption = None,
    cooldown: CooldownOption = "auto",
    from_zero: FromZeroOption = False,
    think_time: ThinkTimeOption = 0.0,
    url: UrlOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    data: DataOption = None,
) -> None:
    """Load-test a function with locust and check that it scales: report folder, chart, expectations."""
    # The loadtests modules are imported inside the helpers, not at the top: matplotlib and numpy would
    # slow down every other `zeroserve` command.
    from loadtests.harness import LoadTestPlan, prepare_request

    load_shape, period_seconds = _checked_shape(shape, users, duration, steps, period)
    expectations = _checked_expectations(expect)
    if think_time < 0:
        fail(f"--think-time: must be >= 0 seconds (got {think_time:g})")

    out_console = console()
    with connect(server, token, data) as client, _reported() as _:
        info = client.describe(function)
        target_url = url or info["path_url"]
        cooldown_seconds = _cooldown(client, function, info, cooldown, expectations)
        request = prepare_request(target_url, function, sample)
        plan = LoadTestPlan(function=function, url=target_url, shape=shape, users=users,
                            duration=load_shape.duration, request=request, out_dir=_out_dir(out, function),
                            cooldown=cooldown_seconds, protocol=protocol, steps=steps, period=period_seconds,
                            think_time=think_time)
        sampler = ControlClient(client.server, resolve_token(token, data), timeout=STATUS_TIMEOUT)
        run = _run(plan, sampler, from_zero, out_console)
    checks = _report(out_console, run, expectations)
    _exit_with_verdict(out_console, run, checks)


def _checked_shape(shape: str, users: int, duration: str, steps: int,
                   period: str | None) -> tuple[LoadShape, float | None]:
    """The load shape and the sine period in seconds, or the CLI's error naming the option at fault."""
    try:
        # Shape errors start with the parameter's name, which is the option's name here.
        load_shape = build_shape(shape, users=users, duration=duration, steps=steps, period=period)
        period_seconds = parse_duration(period) if period else None
    except ValueError as exc:
        fail(f"--{exc}")
    return load_shape, period_seconds


def _checked_expectations(expect: Path | None) -> Expectations | None:
    from loadtests.expectations import load_expectations

    try:
        return load_expectations(expect) if expect is not None else None
    except ValueError as exc:
        fail(str(exc))


def _out_dir(out: Path | None, function: str) -> Path:
    # Absolute before anything uses it: locust runs inside this folder.
    return (out or Path(f"loadtest-{function}-{time.strftime('%Y%m%d-%H%M%S')}")).resolve()


def _run(plan: LoadTestPlan, sampler: ControlClient, from_zero: bool, out: Console) -> LoadTestRun:
    """Wait for zero replicas first when asked, then run the load, with the live line showing progress."""
    from loadtests.harness import run_load_test, wait_for_zero

    with sampler, _sigterm_as_interrupt(), LiveLine(out) as live:
        if from_zero:
            out.print(f"waiting for {plan.function} to scale to zero "
                      f"(up to {format_duration(plan.cooldown)})")
            wait_for_zero(lambda: sampler.status(plan.function), plan.cooldown, live.update)
        out.print(f"load test of {plan.function} at {plan.url}: {plan.shape}, {plan.users} users, "
                  f"{format_duration(plan.duration)} ({plan.protocol.upper()}); "
                  f"report in {shown_path(plan.out_dir)}/", markup=False)
        return run_load_test(plan, lambda: sampler.status(plan.function), live.update)


def _report(out: Console, run: LoadTestRun, expectations: Expectations | None) -> list[CheckResult]:
    """Check the expectations, write the report folder and print the summary and the checks."""
    from loadtests.expectations import check_expectations
    from loadtests.report import write_report

    checks = check_expectations(expectations, run.facts) if expectations is not None else []
    files = write_report(run, checks)
    print_summary(out, run, files)
    if checks:
        out.print(checks_table(checks))
    return checks


def _exit_with_verdict(out: Console, run: LoadTestRun, checks: list[CheckResult]) -> None:
    """Exit 130 when interrupted, 1 when an expectation failed; otherwise return (exit 0)."""
    if run.interrupted:
        out.print("[yellow]interrupted[/]: locust stopped; the report covers the run so far")
        raise typer.Exit(130)
    if any(not c.passed for c in checks):
        failed = ", ".join(c.name for c in checks if not c.passed)
        out.print(f"[bold red]FAILED[/]: {failed}")
        raise typer.Exit(1)
    if checks:
        out.print("[bold green]all expectations met[/]")


def _cooldown(client: ControlClient, function: str, info: dict[str, Any], cooldown: str,
              expectations: Expectations | None) -> float:
    """How long to keep sampling after the load: long enough to see (and check) the return to zero."""
    wanted = expectations.back_to_zero_within if expectations is not None else None
    if cooldown != "auto":
        try:
            seconds = parse_duration(cooldown)
        except ValueError as exc:
            raise ValueError(f"--cooldown: {exc}") from None
        if seconds < 0:
            raise ValueError(f"--cooldown: must be >= 0 (got {cooldown})")
        return max(seconds, wanted or 0.0)
    if wanted is not None:
        return wanted
    scalings = [client.revision(function, name).get("manifest", {}).get("scaling", {})
                for name in _routed_revisions(info)]
    return auto_cooldown(scalings)


def auto_cooldown(scalings: list[dict[str, Any]]) -> float:
    """Long enough for the slowest routed revision to reach zero (or, with min_scale, to settle)."""
    longest = 0.0
    for scaling in scalings or [{}]:
        window = float(scaling.get("window", 60.0))
        if int(scaling.get("min_scale") or 0) > 0:
            longest = max(longest, window + 10.0)
        else:
            longest = max(longest, window + float(scaling.get("scale_to_zero_grace_period", 30.0))
                          + float(scaling.get("scale_down_delay", 0.0)) + COOLDOWN_MARGIN)
    return longest


def _routed_revisions(info: dict[str, Any]) -> list[str]:
    names = []
    for target in (info.get("traffic") or {}).get("targets", []):
        name = info.get("latest_revision") if target.get("latest") else target.get("revision")
        if name and int(target.get("percent") or 0) > 0:
            names.append(name)
    return names


@contextmanager
def _reported() -> Iterator[None]:
    from loadtests.harness import LoadTestError

    try:
        yield
    except ApiError as exc:
        fail(exc.message)
    except (LoadTestError, ValueError, OSError) as exc:  # ValueError: RequestBodyError, ExpectationsError
        fail(str(exc))
    except KeyboardInterrupt:
        console(stderr=True).print("interrupted before the load started")
        raise typer.Exit(130) from None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C: locust is stopped and the report written before we exit."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LiveLine:
    """One status line: redrawn in place on a terminal, printed every few seconds into a pipe or log."""

    def __init__(self, out: Console):
        self.out = out
        self._live = Live(console=out, auto_refresh=False, transient=True) if out.is_terminal else None
        self._last_print = 0.0
        self._last_phase = ""

    def __enter__(self) -> LiveLine:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, progress: Progress) -> None:
        text = progress_line(progress)
        if self._live is not None:
            self._live.update(Text(text), refresh=True)
            return
        now = time.monotonic()
        if progress.phase != self._last_phase or now - self._last_print >= PLAIN_PROGRESS_EVERY:
            self.out.print(text, markup=False)
            self._last_print, self._last_phase = now, progress.phase


def progress_line(progress: Progress) -> str:
    sample = progress.sample
    p95 = "-" if progress.p95_ms is None else f"{progress.p95_ms:.0f} ms"
    replicas = "replicas ?" if sample is None else f"replicas {sample.ready}/{sample.desired}"
    if sample is not None and sample.starting:
        replicas += f" (+{sample.starting} starting)"
    panic = "  PANIC" if sample is not None and sample.panicking else ""
    queue = f"  queue {sample.queue_depth}" if sample is not None and sample.queue_depth else ""
    return (f"{progress.elapsed:6.1f}s {progress.phase:<8} users {progress.users:>4}  "
            f"rps {progress.rps:7.1f}  p95 {p95:>8}  failures {progress.failures}/{progress.requests}  "
            f"{replicas}{panic}{queue}")


def print_summary(out: Console, run: LoadTestRun, files: ReportFiles) -> None:
    facts = run.facts
    table = Table("", "", title=f"load test of {run.plan.function}", show_header=False, box=None,
                  pad_edge=False)
    failure_style = "bold red" if facts.failures else "green"
    table.add_row("requests", f"{facts.requests} ({facts.mean_rps:.1f}/s over {facts.load_seconds:.1f}s)")
    table.add_row("failures", f"[{failure_style}]{facts.failures}[/]")
    table.add_row("latency", f"p50 {_ms(facts.p50_ms)}, p95 {_ms(facts.p95_ms)}")
    table.add_row("peak", f"{facts.peak_users} users, "
                  f"{facts.peak_ready} ready / {facts.peak_desired} desired replicas")
    table.add_row("panic", "never" if facts.panic_after is None
                  else f"after {facts.panic_after:.1f}s, {facts.panic_seconds:.1f}s in panic mode")
    table.add_row("back to zero", "not within the run" if facts.back_to_zero_after is None
                  else f"{facts.back_to_zero_after:.1f}s after the load stopped")
    table.add_row("report", f"{shown_path(files.folder)}/ (chart.png, timeline.csv, locust.html)")
    if run.status_errors:
        table.add_row("status errors",
                      f"{len(run.status_errors)} missed samples, last: {run.status_errors[-1]}")
    out.print(table)


def checks_table(checks: list[CheckResult]) -> Table:
    table = Table("expectation", "expected", "observed", "result", title="expectations")
    for check in checks:
        table.add_row(check.name, check.expected, check.observed,
                      "[bold green]PASS[/]" if check.passed else "[bold red]FAIL[/]")
    return table


def shown_path(path: Path) -> str:
    """A path as the user would type it: relative when it is under the working directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"
