"""Expectations of a load test (a YAML file) and their check against what the run measured.

    max_failures: 0           # failed requests, at most
    min_peak_replicas: 3      # ready replicas reached, at least
    panic_within: 8s          # panic mode entered within this long after the load started
    back_to_zero_within: 90s  # zero replicas within this long after the load stopped
    p95_ms_below: 250         # locust's whole-run p95 latency, strictly below

Every key is optional; an unknown key or a bad value is refused with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtests.timeline import RunFacts
from protocol.durations import format_duration, parse_duration


class ExpectationsError(ValueError):
    def __init__(self, problems: list[str], source: str):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class Expectations:
    max_failures: int | None = None
    max_failure_percent: float | None = None
    min_requests: int | None = None
    min_rps: float | None = None
    min_peak_replicas: int | None = None
    max_peak_replicas: int | None = None
    panic_within: float | None = None
    back_to_zero_within: float | None = None
    p50_ms_below: float | None = None
    p95_ms_below: float | None = None


@dataclass(frozen=True)
class CheckResult:
    name: str
    expected: str
    observed: str
    passed: bool


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number >= 0 (got {value!r})")
    return value


def _replicas(value: object) -> int:
    count = _count(value)
    if count < 1:
        raise ValueError(f"must be at least 1 (got {value!r})")
    return count


def _positive(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"must be a number > 0 (got {value!r})")
    return float(value)


def _percent(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ValueError(f"must be a percentage between 0 and 100 (got {value!r})")
    return float(value)


def _duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be a duration > 0 (got {value!r})")
    return seconds


_PARSERS = {
    "max_failures": _count, "max_failure_percent": _percent, "min_requests": _count, "min_rps": _positive,
    "min_peak_replicas": _replicas, "max_peak_replicas": _count, "panic_within": _duration,
    "back_to_zero_within": _duration, "p50_ms_below": _positive, "p95_ms_below": _positive,
}


def parse_expectations(document: object, source: str = "expectations") -> Expectations:
    """Every problem at once, each naming its key."""
    if document is None:
        raise ExpectationsError([f"is empty; expected keys such as {', '.join(sorted(_PARSERS))}"], source)
    if not isinstance(document, dict):
        raise ExpectationsError(
            [f"must be a mapping of expectation: value, not {type(document).__name__}"], source)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in document.items():
        parser = _PARSERS.get(key) if isinstance(key, str) else None
        if parser is None:
            problems.append(f"unknown key '{key}' (known: {', '.join(sorted(_PARSERS))})")
            continue
        try:
            values[key] = parser(value)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise ExpectationsError(problems, source)
    return Expectations(**values)


def load_expectations(path: str | Path) -> Expectations:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpectationsError([f"cannot read it: {exc.strerror or exc}"], str(path)) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExpectationsError([f"not valid YAML: {exc}"], str(path)) from None
    return parse_expectations(document, str(path))


def check_expectations(expect: Expectations, facts: RunFacts) -> list[CheckResult]:
    """One result per expectation set, in the order of the file's documentation."""
    results: list[CheckResult] = []

    def add(name: str, expected: str, observed: str, passed: bool) -> None:
        results.append(CheckResult(name, expected, observed, passed))

    failure_percent = 100.0 * facts.failures / facts.requests if facts.requests else 0.0
    if expect.max_failures is not None:
        add("max_failures", f"<= {expect.max_failures}", str(facts.failures),
            facts.failures <= expect.max_failures)
    if expect.max_failure_percent is not None:
        add("max_failure_percent", f"<= {expect.max_failure_percent:g}%", f"{failure_percent:.2f}%",
            failure_percent <= expect.max_failure_percent)
    if expect.min_requests is not None:
        add("min_requests", f">= {expect.min_requests}", str(facts.requests),
            facts.requests >= expect.min_requests)
    if expect.min_rps is not None:
        add("min_rps", f">= {expect.min_rps:g}", f"{facts.mean_rps:.1f}", facts.mean_rps >= expect.min_rps)
    if expect.min_peak_replicas is not None:
        add("min_peak_replicas", f">= {expect.min_peak_replicas}", str(facts.peak_ready),
            facts.peak_ready >= expect.min_peak_replicas)
    if expect.max_peak_replicas is not None:
        add("max_peak_replicas", f"<= {expect.max_peak_replicas}", str(facts.peak_ready),
            facts.peak_ready <= expect.max_peak_replicas)
    if expect.panic_within is not None:
        observed = "never" if facts.panic_after is None else f"after {facts.panic_after:.1f}s"
        add("panic_within", f"panic <= {format_duration(expect.panic_within)} after start", observed,
            facts.panic_after is not None and facts.panic_after <= expect.panic_within)
    if expect.back_to_zero_within is not None:
        observed = ("not within the run" if facts.back_to_zero_after is None
                    else f"after {facts.back_to_zero_after:.1f}s")
        add("back_to_zero_within", f"0 replicas <= {format_duration(expect.back_to_zero_within)} after stop",
            observed, facts.back_to_zero_after is not None
            and facts.back_to_zero_after <= expect.back_to_zero_within)
    for name, limit, value in (("p50_ms_below", expect.p50_ms_below, facts.p50_ms),
                               ("p95_ms_below", expect.p95_ms_below, facts.p95_ms)):
        if limit is not None:
            add(name, f"< {limit:g} ms", "no requests" if value is None else f"{value:g} ms",
                value is not None and value < limit)
    return results
