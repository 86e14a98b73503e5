"""What the supervisor does about one revision's replicas, decided without I/O and without reading a clock.

The supervisor (`supervisor.py`) is the I/O shell around these rules: it keeps each revision's
`ReplicaSetState` (its replicas' facts and its `Failures`), asks `plan` what to do whenever the count it
wants or the replicas it has change, and records what happened with `after_ready`, `after_start_failure`
and `after_crash`. Every time is passed in (`now`, seconds on the supervisor's monotonic clock), so each
rule has a row in tests/deploy/local/test_replica_plan.py.

- Scale up: start `desired - live` replicas (live: starting or ready), unless the revision is backing
  off; then plan again at `retry_at`.
- Scale down: retire the excess. Starts still under way go first (calling one off costs nothing), then
  ready replicas; newest first in both (the newest has the coldest caches). Replicas already draining,
  stopping or gone do not count.
- A failed start backs off `Backoff.delay(consecutive failed attempts)`: 0.5 s, doubling to 30 s.
  Replicas launched together that fail together are one attempt. A replica becoming ready ends the run.
- A crash after ready is replaced at once; a replica that keeps dying within `STABLE_UPTIME` of becoming
  ready backs off like a failed start (0 s, 0.5 s, 1 s, ...). One that served that long starts a new run.
- While the revision backs off with no ready replica, requests waiting for one hear the last error now
  (`error_for_waiters`) rather than after the backoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from functions.isolation import OUT_OF_MEMORY_EXIT_CODE
from functions.isolation.limits import out_of_memory_message

# STOPPING covers both a start that was called off and a drained replica being stopped; GONE is a replica
# that died or failed and only waits for its cleanup.
ReplicaState = Literal["starting", "ready", "draining", "stopping", "gone"]
STARTING: Final = "starting"
READY: Final = "ready"
DRAINING: Final = "draining"
STOPPING: Final = "stopping"
GONE: Final = "gone"

STABLE_UPTIME = 10.0  # a replica that served this long before dying does not extend a crash streak


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff for revisions whose replicas keep failing, so a broken model never spins the CPU."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next attempt after `failures` consecutive failures (0 -> none)."""
        if failures <= 0:
            return 0.0
        try:
            return min(self.maximum, self.initial * self.factor ** (failures - 1))
        except OverflowError:  # a revision failing for hours: factor ** n outgrew a float long ago
            return self.maximum


@dataclass(frozen=True)
class ReplicaFacts:
    """What the rules need to know of one replica."""

    replica_id: str
    state: ReplicaState
    requested_at: float          # when its start was asked for
    ready_at: float | None = None


@dataclass(frozen=True)
class Failures:
    """A revision's failure history: what its backoff and its reported error follow from."""

    start_failures: int = 0                 # failed start attempts since a replica was last ready
    last_failure_at: float = -math.inf      # when the last start failed
    crash_streak: int = 0                   # replicas in a row that died within STABLE_UPTIME of ready
    retry_at: float = -math.inf             # no start may begin before this
    restarts: int = 0                       # crashes after ready plus failed starts, ever
    last_error: str | None = None           # the latest of those, kept after recovery for operators


@dataclass(frozen=True)
class ReplicaSetState:
    replicas: tuple[ReplicaFacts, ...] = ()   # in the order their starts were asked for
    failures: Failures = field(default_factory=Failures)

    def in_state(self, *states: ReplicaState) -> list[ReplicaFacts]:
        return [r for r in self.replicas if r.state in states]


@dataclass(frozen=True)
class Actions:
    start: int = 0                          # replicas to start now
    retire: tuple[str, ...] = ()            # replicas to take out of service, in this order
    retry_at: float | None = None           # backing off: plan again at this time


def plan(state: ReplicaSetState, desired: int, now: float) -> Actions:
    """What to do now so that `desired` replicas serve."""
    excess = len(state.in_state(STARTING, READY)) - desired
    if excess > 0:
        victims = state.in_state(STARTING)[::-1] + state.in_state(READY)[::-1]
        return Actions(retire=tuple(r.replica_id for r in victims[:excess]))
    if excess < 0:
        if state.failures.retry_at > now:
            return Actions(retry_at=state.failures.retry_at)
        return Actions(start=-excess)
    return Actions()


def after_ready(failures: Failures) -> Failures:
    """A replica became ready: the next failed start backs off from the first step again."""
    return replace(failures, start_failures=0)


def after_start_failure(failures: Failures, requested_at: float, error: str, now: float,
                        backoff: Backoff) -> Failures:
    """A start failed at `now`; the replica's start was asked for at `requested_at`."""
    # Replicas launched together fail together: one asked for before the last failure is the same attempt.
    start_failures = failures.start_failures + (1 if requested_at >= failures.last_failure_at else 0)
    return replace(failures, start_failures=start_failures, last_failure_at=now, restarts=failures.restarts + 1,
                   last_error=error, retry_at=max(failures.retry_at, now + backoff.delay(start_failures)))


def after_crash(failures: Failures, ready_at: float | None, now: float, backoff: Backoff) -> Failures:
    """A ready replica (ready since `ready_at`) died at `now` without being asked to."""
    uptime = now - (ready_at if ready_at is not None else now)
    streak = failures.crash_streak + 1 if uptime < STABLE_UPTIME else 1
    # The first crash is replaced at once; a replica that keeps dying young backs off like a failed start.
    return replace(failures, crash_streak=streak, restarts=failures.restarts + 1,
                   retry_at=max(failures.retry_at, now + backoff.delay(streak - 1)))


def error_for_waiters(state: ReplicaSetState, now: float) -> str | None:
    """The error requests waiting for a replica should hear now: the last one, while backing off with none ready."""
    failures = state.failures
    if failures.retry_at > now and failures.last_error and not state.in_state(READY):
        return failures.last_error
    return None


def exit_reason(returncode: int | None, description: str, memory: str | None) -> str:
    """Why a replica exited: 'exit status 137' of one with a memory limit is its own out-of-memory exit."""
    if returncode == OUT_OF_MEMORY_EXIT_CODE and memory is not None:
        return out_of_memory_message(memory)
    return description


def failure_exit(error: str, memory: str | None, otherwise: Literal["crash", "start_failure"]
                 ) -> Literal["crash", "start_failure", "out_of_memory"]:
    """The exit reason a metric counts for a replica that failed with `error`: out of memory when it says so."""
    if memory is not None and out_of_memory_message(memory) in error:
        return "out_of_memory"
    return otherwise
