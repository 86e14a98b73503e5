"""Load-balancing policies, as Knative's activator picks them by containerConcurrency."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import cycle

import pytest

from activator.balancing import FirstAvailable, PowerOfTwoChoices, RoundRobin, policy_for


@dataclass(eq=False)
class Replica:
    name: str
    in_flight: int = 0


def replicas(*loads: int) -> list[Replica]:
    return [Replica(f"r{i}", load) for i, load in enumerate(loads)]


@pytest.mark.parametrize(("concurrency", "policy"), [
    (0, PowerOfTwoChoices), (1, FirstAvailable), (3, FirstAvailable), (4, RoundRobin), (100, RoundRobin),
])
def test_policy_follows_container_concurrency(concurrency, policy):
    assert isinstance(policy_for(concurrency), policy)


@pytest.mark.parametrize(("loads", "concurrency", "expected"), [
    ((0, 0, 0), 1, "r0"),
    ((1, 0, 0), 1, "r1"),
    ((1, 1, 0), 1, "r2"),
    ((1, 1, 1), 1, None),
    ((2, 3, 1), 3, "r0"),
    ((3, 3, 2), 3, "r2"),
    ((), 2, None),
])
def test_first_available_packs_the_first_replicas(loads, concurrency, expected):
    chosen = FirstAvailable(concurrency)(replicas(*loads))
    assert (chosen.name if chosen else None) == expected


def test_round_robin_rotates_and_skips_full_replicas():
    pool = replicas(0, 0, 0)
    policy = RoundRobin(4)
    assert [policy(pool).name for _ in range(4)] == ["r0", "r1", "r2", "r0"]
    pool[1].in_flight = 4
    assert [policy(pool).name for _ in range(3)] == ["r2", "r0", "r2"]
    for replica in pool:
        replica.in_flight = 4
    assert policy(pool) is None


def test_round_robin_survives_a_shrinking_set():
    policy = RoundRobin(10)
    assert [policy(replicas(0, 0, 0)).name for _ in range(3)] == ["r0", "r1", "r2"]
    assert policy(replicas(0)).name == "r0"


def test_power_of_two_choices_takes_the_less_loaded_of_two_distinct():
    pool = replicas(5, 1, 9)
    draws = cycle([0.0, 0.0,   # r0, then r1 of the remaining two -> r1 (1 < 5)
                   0.9, 0.9,   # r2, then r1 -> r1
                   0.0, 0.9])  # r0, then r2 -> r0 (5 < 9)
    policy = PowerOfTwoChoices(lambda: next(draws))
    assert [policy(pool).name for _ in range(3)] == ["r1", "r1", "r0"]


def test_power_of_two_choices_never_draws_the_same_replica_twice():
    pool = replicas(0, 0)
    pool[0].in_flight = 1
    for u in (0.0, 0.3, 0.6, 0.99):
        policy = PowerOfTwoChoices(lambda u=u: u)
        assert policy(pool).name == "r1"  # whichever is drawn first, the other is the second choice


def test_power_of_two_choices_edge_sizes():
    policy = PowerOfTwoChoices()
    assert policy([]) is None
    only = Replica("only", 1000)
    assert policy([only]) is only
