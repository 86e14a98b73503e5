"""The supervisor's decisions (deploy/local/replica_plan.py), table-driven with the time passed in: a row per rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import pytest

from deploy.local.replica_plan import (
    DRAINING,
    GONE,
    READY,
    STABLE_UPTIME,
    STARTING,
    STOPPING,
    Actions,
    Backoff,
    Failures,
    ReplicaFacts,
    ReplicaSetState,
    ReplicaState,
    after_crash,
    after_ready,
    after_start_failure,
    error_for_waiters,
    exit_reason,
    plan,
)
from functions.isolation import OUT_OF_MEMORY_EXIT_CODE

NOW = 100.0
BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=30.0)


def replicas(*states: ReplicaState) -> tuple[ReplicaFacts, ...]:
    """r1, r2, ... in start order, each asked for a second after the one before."""
    return tuple(ReplicaFacts(f"r{i}", state, requested_at=float(i), ready_at=float(i) + 0.5 if state != STARTING
                              else None) for i, state in enumerate(states, start=1))


class PlanCase(NamedTuple):
    name: str
    replicas: tuple[ReplicaFacts, ...]
    desired: int
    expected: Actions
    retry_at: float = -math.inf


PLAN_CASES = [
    PlanCase("nothing wanted, nothing there: nothing to do", (), 0, Actions()),
    PlanCase("scale up from zero starts the difference", (), 3, Actions(start=3)),
    PlanCase("scale up counts starts under way as live", replicas(READY, STARTING), 3, Actions(start=1)),
    PlanCase("as many live as desired: nothing to do", replicas(READY, STARTING), 2, Actions()),
    PlanCase("draining, stopping and gone replicas do not count", replicas(DRAINING, STOPPING, GONE), 1,
             Actions(start=1)),
    PlanCase("scale up while backing off waits for retry_at", replicas(READY), 2, Actions(retry_at=NOW + 5),
             retry_at=NOW + 5),
    PlanCase("backing off ends at retry_at exactly", (), 1, Actions(start=1), retry_at=NOW),
    PlanCase("scale down calls off the newest start first", replicas(STARTING, STARTING, STARTING), 2,
             Actions(retire=("r3",))),
    PlanCase("scale down calls off starts before it drains ready replicas", replicas(READY, STARTING, READY), 1,
             Actions(retire=("r2", "r3"))),
    PlanCase("scale down among ready replicas retires the newest first", replicas(READY, READY, READY), 1,
             Actions(retire=("r3", "r2"))),
    PlanCase("scale down skips replicas already draining", replicas(READY, DRAINING, READY), 1,
             Actions(retire=("r3",))),
    PlanCase("desired 0 retires every live replica, starts first", replicas(READY, STARTING, READY, STARTING), 0,
             Actions(retire=("r4", "r2", "r3", "r1"))),
    PlanCase("a backoff never delays a scale down", replicas(READY, READY), 1, Actions(retire=("r2",)),
             retry_at=NOW + 5),
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=[c.name for c in PLAN_CASES])
def test_plan_rules(case: PlanCase) -> None:
    state = ReplicaSetState(case.replicas, Failures(retry_at=case.retry_at))
    assert plan(state, case.desired, NOW) == case.expected


class Fail(NamedTuple):
    """A start asked for at `requested_at` failed at `at`."""

    requested_at: float
    at: float


class Crash(NamedTuple):
    """A replica ready since `ready_at` died at `at`."""

    ready_at: float
    at: float


class Ready(NamedTuple):
    pass


class Expected(NamedTuple):
    retry_at: float
    start_failures: int = 0
    crash_streak: int = 0
    restarts: int = 0


class HistoryCase(NamedTuple):
    name: str
    events: Sequence[Fail | Crash | Ready]
    expected: Expected


HISTORY_CASES = [
    HistoryCase("no failure: no backoff", [], Expected(-math.inf)),
    HistoryCase("a failed start waits the first step", [Fail(0, 10)], Expected(10.5, 1, 0, 1)),
    HistoryCase("failed starts double the wait: 0.5, 1, 2, 4",
                [Fail(0, 10), Fail(11, 20), Fail(21, 30), Fail(31, 40)], Expected(44.0, 4, 0, 4)),
    HistoryCase("failed starts' wait is capped at the maximum",
                [Fail(i * 100, i * 100 + 1) for i in range(10)], Expected(901 + 30.0, 10, 0, 10)),
    # Still the first step, counted from the latest of them.
    HistoryCase("replicas launched together that fail together are one attempt",
                [Fail(0, 10), Fail(0, 10.2), Fail(0, 10.4)], Expected(10.9, 1, 0, 3)),
    HistoryCase("a start asked for after the last failure is a new attempt",
                [Fail(0, 10), Fail(10.5, 11)], Expected(12.0, 2, 0, 2)),
    HistoryCase("a ready replica ends the run of failed starts",
                [Fail(0, 10), Fail(11, 20), Ready(), Fail(30, 40)], Expected(40.5, 1, 0, 3)),
    HistoryCase("a first crash is replaced at once", [Crash(0, 5)], Expected(5.0, 0, 1, 1)),
    HistoryCase("replicas dying young back off: 0, 0.5, 1",
                [Crash(0, 1), Crash(1, 2), Crash(2, 3)], Expected(4.0, 0, 3, 3)),
    HistoryCase("the crash streak's wait is capped at the maximum",
                [Crash(i, i + 1) for i in range(0, 200, 10)] + [Crash(300, 301)], Expected(331.0, 0, 21, 21)),
    HistoryCase("a crash after STABLE_UPTIME starts a new streak",
                [Crash(0, 1), Crash(1, 2), Crash(3, 3 + STABLE_UPTIME)], Expected(13.0, 0, 1, 3)),
    HistoryCase("just under STABLE_UPTIME still extends the streak",
                [Crash(0, 1), Crash(1, 1 + STABLE_UPTIME - 0.01)], Expected(1 + STABLE_UPTIME - 0.01 + 0.5, 0, 2, 2)),
    HistoryCase("a ready replica does not end a crash streak (only stable uptime does)",
                [Crash(0, 1), Ready(), Crash(1, 2)], Expected(2.5, 0, 2, 2)),
    HistoryCase("retry_at never moves earlier", [Fail(0, 10), Fail(11, 20), Crash(20, 20.1)],
                Expected(21.0, 2, 1, 3)),
    HistoryCase("crashes and failed starts both count as restarts",
                [Fail(0, 1), Ready(), Crash(2, 20), Fail(21, 22)], Expected(22.5, 1, 1, 3)),
]


@pytest.mark.parametrize("case", HISTORY_CASES, ids=[c.name for c in HISTORY_CASES])
def test_failure_history_rules(case: HistoryCase) -> None:
    failures = Failures()
    for event in case.events:
        if isinstance(event, Fail):
            failures = after_start_failure(failures, event.requested_at, f"failed at {event.at}", event.at, BACKOFF)
            assert failures.last_error == f"failed at {event.at}" and failures.last_failure_at == event.at
        elif isinstance(event, Crash):
            failures = after_crash(failures, event.ready_at, event.at, BACKOFF)
        else:
            failures = after_ready(failures)
    expected = Expected(failures.retry_at, failures.start_failures, failures.crash_streak, failures.restarts)
    assert expected == pytest.approx(case.expected), case.name


def test_a_crash_keeps_the_last_error_for_the_shell_to_set() -> None:
    failed = after_start_failure(Failures(), 0.0, "LoadError: bad model", 1.0, BACKOFF)
    assert after_crash(failed, 2.0, 3.0, BACKOFF).last_error == "LoadError: bad model"
    assert after_ready(failed).last_error == "LoadError: bad model"  # kept after recovery, for operators


class WaitersCase(NamedTuple):
    name: str
    replicas: tuple[ReplicaFacts, ...]
    failures: Failures
    expected: str | None


WAITERS_CASES = [
    WaitersCase("backing off with none ready: waiters hear the last error now", replicas(STARTING),
                Failures(retry_at=NOW + 1, last_error="boom"), "boom"),
    WaitersCase("a ready replica serves them: nothing to report", replicas(READY),
                Failures(retry_at=NOW + 1, last_error="boom"), None),
    WaitersCase("the backoff is over: a start is coming", (), Failures(retry_at=NOW, last_error="boom"), None),
    WaitersCase("backing off without an error yet: nothing to say", (), Failures(retry_at=NOW + 1), None),
]


@pytest.mark.parametrize("case", WAITERS_CASES, ids=[c.name for c in WAITERS_CASES])
def test_error_for_waiters(case: WaitersCase) -> None:
    assert error_for_waiters(ReplicaSetState(case.replicas, case.failures), NOW) == case.expected


@pytest.mark.parametrize(
    "returncode, description, memory, expected",
    [
        (OUT_OF_MEMORY_EXIT_CODE, "exit status 137", "512Mi", "out of memory: 512Mi"),
        (OUT_OF_MEMORY_EXIT_CODE, "exit status 137", None, "exit status 137"),  # no limit: not ours to call OOM
        (1, "exit status 1", "512Mi", "exit status 1"),
        (-9, "killed by SIGKILL", "512Mi", "killed by SIGKILL"),
        (None, "exit status unknown", "512Mi", "exit status unknown"),
    ],
    ids=["137 with a memory limit is out of memory", "137 without a limit is as described",
         "another status is as described", "a signal is as described", "unknown status is as described"],
)
def test_exit_reason(returncode: int | None, description: str, memory: str | None, expected: str) -> None:
    assert exit_reason(returncode, description, memory) == expected


@pytest.mark.parametrize(
    "failures, expected",
    [(0, 0.0), (-1, 0.0), (1, 0.5), (2, 1.0), (6, 16.0), (7, 30.0), (5000, 30.0)],
    ids=["none: no wait", "negative: no wait", "first step", "doubles", "below the cap", "capped",
         "a revision failing for hours stays capped (no overflow)"],
)
def test_backoff_delay(failures: int, expected: float) -> None:
    assert BACKOFF.delay(failures) == expected
