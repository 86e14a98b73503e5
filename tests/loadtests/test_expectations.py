"""Expectations: parsing (every problem named by its key) and checking against run facts (table tests)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from loadtests.expectations import (
    Expectations,
    ExpectationsError,
    check_expectations,
    load_expectations,
    parse_expectations,
)
from loadtests.timeline import RunFacts

FACTS = RunFacts(requests=1000, failures=0, p50_ms=20.0, p95_ms=120.0, mean_rps=100.0, peak_users=50,
                 peak_ready=3, peak_desired=4, panic_after=2.5, panic_seconds=10.0, back_to_zero_after=40.0,
                 load_seconds=10.0)


def test_the_issue_example_parses_with_durations_in_seconds() -> None:
    expect = parse_expectations({"max_failures": 0, "min_peak_replicas": 3, "panic_within": "8s",
                                 "back_to_zero_within": "1m30s", "p95_ms_below": 250})
    assert expect == Expectations(max_failures=0, min_peak_replicas=3, panic_within=8.0,
                                  back_to_zero_within=90.0, p95_ms_below=250.0)


@pytest.mark.parametrize(("document", "message"), [
    ({"max_failure": 0}, "unknown key 'max_failure' (known: back_to_zero_within, max_failure_percent"),
    ({"max_failures": -1}, "max_failures: must be a whole number >= 0 (got -1)"),
    ({"max_failures": 1.5}, "max_failures: must be a whole number >= 0 (got 1.5)"),
    ({"max_failures": True}, "max_failures: must be a whole number >= 0 (got True)"),
    ({"min_peak_replicas": 0}, "min_peak_replicas: must be at least 1 (got 0)"),
    ({"panic_within": "soon"}, "panic_within: 'soon' is not a duration"),
    ({"back_to_zero_within": 0}, "back_to_zero_within: must be a duration > 0 (got 0)"),
    ({"p95_ms_below": "fast"}, "p95_ms_below: must be a number > 0 (got 'fast')"),
    ({"p50_ms_below": -3}, "p50_ms_below: must be a number > 0 (got -3)"),
    ({"max_failure_percent": 101}, "max_failure_percent: must be a percentage between 0 and 100"),
    ({"min_rps": float("nan")}, "min_rps: must be a number > 0"),
    ({1: 2}, "unknown key '1'"),
    ([1, 2], "must be a mapping of expectation: value, not list"),
    (None, "is empty; expected keys such as"),
])
def test_bad_documents_are_refused_naming_the_key(document: object, message: str) -> None:
    with pytest.raises(ExpectationsError) as info:
        parse_expectations(document, "expect.yaml")
    assert str(info.value).startswith("expect.yaml: ")
    assert message in str(info.value), str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ExpectationsError) as info:
        parse_expectations({"max_failures": -1, "bogus": 1, "panic_within": "x"})
    assert len(info.value.problems) == 3


def test_files_are_read_and_yaml_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("# a spike must panic quickly\npanic_within: 8s\nmax_failures: 0\n")
    assert load_expectations(good) == Expectations(panic_within=8.0, max_failures=0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("panic_within: [8s\n")
    with pytest.raises(ExpectationsError, match=r"bad\.yaml: not valid YAML"):
        load_expectations(bad)
    with pytest.raises(ExpectationsError, match=r"missing\.yaml: cannot read it"):
        load_expectations(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("expect", "facts", "passed", "observed"), [
    (Expectations(max_failures=0), FACTS, True, "0"),
    (Expectations(max_failures=0), replace(FACTS, failures=1), False, "1"),
    (Expectations(max_failure_percent=1), replace(FACTS, failures=10), True, "1.00%"),
    (Expectations(max_failure_percent=1), replace(FACTS, failures=11), False, "1.10%"),
    (Expectations(min_requests=1000), FACTS, True, "1000"),
    (Expectations(min_rps=150), FACTS, False, "100.0"),
    (Expectations(min_peak_replicas=3), FACTS, True, "3"),
    (Expectations(min_peak_replicas=4), FACTS, False, "3"),
    (Expectations(max_peak_replicas=2), FACTS, False, "3"),
    (Expectations(panic_within=2.5), FACTS, True, "after 2.5s"),
    (Expectations(panic_within=2.0), FACTS, False, "after 2.5s"),
    (Expectations(panic_within=8.0), replace(FACTS, panic_after=None), False, "never"),
    (Expectations(back_to_zero_within=40.0), FACTS, True, "after 40.0s"),
    (Expectations(back_to_zero_within=39.0), FACTS, False, "after 40.0s"),
    (Expectations(back_to_zero_within=90.0), replace(FACTS, back_to_zero_after=None), False,
     "not within the run"),
    (Expectations(p95_ms_below=121), FACTS, True, "120 ms"),
    (Expectations(p95_ms_below=120), FACTS, False, "120 ms"),  # strictly below
    (Expectations(p50_ms_below=100), replace(FACTS, p50_ms=None), False, "no requests"),
])
def test_checks(expect: Expectations, facts: RunFacts, passed: bool, observed: str) -> None:
    [result] = check_expectations(expect, facts)
    assert (result.passed, result.observed) == (passed, observed)


def test_only_the_expectations_given_are_checked_in_a_stable_order() -> None:
    results = check_expectations(Expectations(p95_ms_below=250, max_failures=0, panic_within=8.0), FACTS)
    assert [r.name for r in results] == ["max_failures", "panic_within", "p95_ms_below"]
    assert check_expectations(Expectations(), FACTS) == []
