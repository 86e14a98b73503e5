"""The breaker: bounded FIFO queue in front of a semaphore whose capacity follows the replicas."""

from __future__ import annotations

import asyncio
import math

import pytest

from activator.breaker import Breaker, PendingFailed, QueueFull
from tests.activator.harness import run, settle


def test_acquires_immediately_below_capacity_and_waits_at_capacity():
    async def scenario():
        breaker = Breaker(queue_limit=10, capacity=2)
        await breaker.acquire(None)
        await breaker.acquire(None)
        assert breaker.in_flight == 2
        third = asyncio.create_task(breaker.acquire(None))
        await settle()
        assert not third.done() and breaker.waiting == 1
        breaker.release()
        await third
        assert breaker.in_flight == 2 and breaker.waiting == 0
    run(scenario())


def test_zero_capacity_holds_everyone_until_capacity_appears():
    async def scenario():
        breaker = Breaker(queue_limit=100, capacity=0)
        waiters = [asyncio.create_task(breaker.acquire(None)) for _ in range(50)]
        await settle()
        assert breaker.waiting == 50 and breaker.in_flight == 0
        breaker.set_capacity(math.inf)
        await asyncio.gather(*waiters)
        assert breaker.in_flight == 50 and breaker.waiting == 0
    run(scenario())


def test_capacity_increase_releases_exactly_the_new_slots():
    async def scenario():
        breaker = Breaker(queue_limit=100, capacity=0)
        waiters = [asyncio.create_task(breaker.acquire(None)) for _ in range(5)]
        await settle()
        breaker.set_capacity(3)
        await settle()
        assert [w.done() for w in waiters] == [True, True, True, False, False]
        assert breaker.in_flight == 3 and breaker.waiting == 2
        breaker.set_capacity(1)  # lowered below in-flight: nothing new until it drops under 1
        breaker.release()
        breaker.release()
        await settle()
        assert breaker.in_flight == 1 and breaker.waiting == 2
        breaker.release()
        await settle()
        assert breaker.in_flight == 1 and breaker.waiting == 1
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    run(scenario())


def test_queue_full_raises_and_does_not_count():
    async def scenario():
        breaker = Breaker(queue_limit=2, capacity=0)
        waiters = [asyncio.create_task(breaker.acquire(None)) for _ in range(2)]
        await settle()
        with pytest.raises(QueueFull):
            await breaker.acquire(None)
        assert breaker.waiting == 2
        # A retried request goes to the front even past the limit: it was admitted once already.
        retried = asyncio.create_task(breaker.acquire(None, front=True))
        await settle()
        assert breaker.waiting == 3
        breaker.set_capacity(1)
        await settle()
        assert retried.done() and not any(w.done() for w in waiters)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert breaker.waiting == 0
    run(scenario())


def test_queue_limit_zero_rejects_any_wait():
    async def scenario():
        breaker = Breaker(queue_limit=0, capacity=1)
        await breaker.acquire(None)
        with pytest.raises(QueueFull):
            await breaker.acquire(None)
    run(scenario())


def test_deadline_raises_timeout_and_leaves_the_queue():
    async def scenario():
        loop = asyncio.get_running_loop()
        breaker = Breaker(queue_limit=10, capacity=0)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await breaker.acquire(started + 0.05)
        assert loop.time() - started >= 0.05
        assert breaker.waiting == 0 and breaker.in_flight == 0
        # The expired waiter is skipped: a later waiter gets the slot.
        later = asyncio.create_task(breaker.acquire(None))
        await settle()
        breaker.set_capacity(1)
        await later
        assert breaker.in_flight == 1
    run(scenario())


def test_waiters_are_served_in_arrival_order():
    async def scenario():
        breaker = Breaker(queue_limit=100, capacity=1)
        await breaker.acquire(None)
        order: list[int] = []

        async def request(index: int) -> None:
            await breaker.acquire(None)
            order.append(index)

        tasks = []
        for index in range(10):
            tasks.append(asyncio.create_task(request(index)))
            await settle()
        for _ in range(10):
            breaker.release()
            await settle()
        await asyncio.gather(*tasks)
        assert order == list(range(10))
    run(scenario())


def test_no_barging_a_new_arrival_queues_behind_waiters():
    async def scenario():
        breaker = Breaker(queue_limit=100, capacity=1)
        await breaker.acquire(None)
        first = asyncio.create_task(breaker.acquire(None))
        await settle()
        breaker.release()  # handed to `first` directly; not left free for the next caller
        assert breaker.in_flight == 1
        late = asyncio.create_task(breaker.acquire(None))
        await settle()
        assert first.done() and not late.done()
        late.cancel()
        await asyncio.gather(late, return_exceptions=True)
    run(scenario())


def test_fail_waiters_fails_only_the_waiting():
    async def scenario():
        breaker = Breaker(queue_limit=100, capacity=1)
        await breaker.acquire(None)
        waiters = [asyncio.create_task(breaker.acquire(None)) for _ in range(3)]
        await settle()
        assert breaker.fail_waiters(PendingFailed("replica of 'iris-00001' failed to start")) == 3
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, PendingFailed) and "failed to start" in r.message for r in results)
        assert breaker.waiting == 0 and breaker.in_flight == 1
    run(scenario())


def test_cancelled_waiter_releases_a_slot_granted_in_the_same_turn():
    async def scenario():
        breaker = Breaker(queue_limit=10, capacity=0)
        waiter = asyncio.create_task(breaker.acquire(None))
        await settle()
        breaker.set_capacity(1)  # grants the slot ...
        waiter.cancel()  # ... and the request gives up before it could run
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert breaker.in_flight == 0 and breaker.waiting == 0
    run(scenario())


def test_cancelled_waiters_are_compacted_away():
    async def scenario():
        breaker = Breaker(queue_limit=10_000, capacity=0)
        waiters = [asyncio.create_task(breaker.acquire(None)) for _ in range(1000)]
        await settle()
        for waiter in waiters[:-1]:
            waiter.cancel()
        await asyncio.gather(*waiters[:-1], return_exceptions=True)
        assert breaker.waiting == 1
        assert len(breaker._waiters) < 100  # memory stays bounded by the live waiters
        breaker.set_capacity(1)
        await waiters[-1]
    run(scenario())
