"""Which replica gets the next request, as Knative's activator chooses (pkg/activator/net/lb_policy.go).

The breaker has already granted a slot, so with bounded concurrency at least one replica has room;
a policy returns None only when the routable set changed under a waiter that was just woken.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class Loaded(Protocol):
    in_flight: int


# A policy hands back one of the replicas it was given, of the caller's own type.
Replica = TypeVar("Replica", bound=Loaded)


class Policy(Protocol):
    def __call__(self, replicas: Sequence[Replica]) -> Replica | None: ...


class FirstAvailable:
    """Small concurrency (1-3): pack the first replicas, so the spare ones go idle and can scale down."""

    def __init__(self, container_concurrency: int):
        self.container_concurrency = container_concurrency

    def __call__(self, replicas: Sequence[Replica]) -> Replica | None:
        for replica in replicas:
            if replica.in_flight < self.container_concurrency:
                return replica
        return None


class RoundRobin:
    """Larger concurrency: spread requests evenly, skipping replicas that are full."""

    def __init__(self, container_concurrency: int):
        self.container_concurrency = container_concurrency
        self._next = 0

    def __call__(self, replicas: Sequence[Replica]) -> Replica | None:
        count = len(replicas)
        for step in range(count):
            index = (self._next + step) % count
            if replicas[index].in_flight < self.container_concurrency:
                self._next = index + 1
                return replicas[index]
        return None


class PowerOfTwoChoices:
    """Unlimited concurrency: the less loaded of two random replicas; no global scan, no herding."""

    def __init__(self, rng: Callable[[], float] = random.random):
        self._rng = rng

    def __call__(self, replicas: Sequence[Replica]) -> Replica | None:
        count = len(replicas)
        if count <= 1:
            return replicas[0] if count else None
        first = int(self._rng() * count)
        second = int(self._rng() * (count - 1))
        if second >= first:  # a second, distinct replica drawn uniformly from the others
            second += 1
        a, b = replicas[first], replicas[second]
        return b if b.in_flight < a.in_flight else a


def policy_for(container_concurrency: int, rng: Callable[[], float] = random.random) -> Policy:
    """Knative's choice: 0 -> two random choices, 1-3 -> first available, above -> round robin."""
    if container_concurrency == 0:
        return PowerOfTwoChoices(rng)
    if container_concurrency <= 3:
        return FirstAvailable(container_concurrency)
    return RoundRobin(container_concurrency)
