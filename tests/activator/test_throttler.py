"""The per-revision throttler: capacity from replicas, routing, drain, retire, unreachable replicas."""

from __future__ import annotations

import asyncio
import math

import pytest

from activator.breaker import PendingFailed, QueueFull
from activator.contracts import ReplicaEndpoint, RevisionSettings
from activator.throttler import RevisionThrottler
from tests.activator.harness import run, settle


def endpoints(*ids: str) -> list[ReplicaEndpoint]:
    return [ReplicaEndpoint(i, f"/tmp/{i}.sock") for i in ids]


def throttler(concurrency: int = 1, queue_limit: int = 100) -> tuple[RevisionThrottler, list[str]]:
    closed: list[str] = []
    settings = RevisionSettings(container_concurrency=concurrency, timeout_seconds=10,
                                queue_limit=queue_limit)
    made = RevisionThrottler("iris-00001", settings, make_client=lambda e: f"client-{e.replica_id}",
                             close_client=closed.append)
    return made, closed


@pytest.mark.parametrize(("concurrency", "replicas", "capacity"), [
    (1, 0, 0), (1, 1, 1), (1, 3, 3), (10, 3, 30), (0, 0, 0), (0, 1, math.inf), (0, 5, math.inf),
])
def test_capacity_is_replicas_times_container_concurrency(concurrency, replicas, capacity):
    made, _ = throttler(concurrency)
    made.set_endpoints(endpoints(*[f"r{i}" for i in range(replicas)]))
    assert made.breaker.capacity == capacity


def test_requests_wait_at_zero_and_all_go_when_replicas_appear():
    async def scenario():
        made, _ = throttler(concurrency=2)
        waiting = [asyncio.create_task(made.acquire(None)) for _ in range(4)]
        await settle()
        assert made.queue_depth == 4 and made.in_flight == 0
        made.set_endpoints(endpoints("r1", "r2"))
        trackers = await asyncio.gather(*waiting)
        assert sorted(t.replica_id for t in trackers) == ["r1", "r1", "r2", "r2"]
        assert made.in_flight == 4 and made.queue_depth == 0
    run(scenario())


def test_first_available_fills_replicas_in_order():
    async def scenario():
        made, _ = throttler(concurrency=1)
        made.set_endpoints(endpoints("a", "b"))
        first, second = await made.acquire(None), await made.acquire(None)
        assert (first.replica_id, second.replica_id) == ("a", "b")
        third = asyncio.create_task(made.acquire(None))
        await settle()
        assert not third.done()
        made.release(second)
        assert (await third).replica_id == "b"
    run(scenario())


def test_queue_limit_and_deadline():
    async def scenario():
        made, _ = throttler(concurrency=1, queue_limit=1)
        loop = asyncio.get_running_loop()
        holder = asyncio.create_task(made.acquire(loop.time() + 0.05))
        await settle()
        with pytest.raises(QueueFull):
            await made.acquire(None)
        with pytest.raises(TimeoutError):
            await holder
        assert made.queue_depth == 0
    run(scenario())


def test_fail_pending_answers_only_waiters():
    async def scenario():
        made, _ = throttler(concurrency=1)
        made.set_endpoints(endpoints("a"))
        busy = await made.acquire(None)
        waiters = [asyncio.create_task(made.acquire(None)) for _ in range(3)]
        await settle()
        assert made.fail_pending("replica failed to start: exit 1") == 3
        for result in await asyncio.gather(*waiters, return_exceptions=True):
            assert isinstance(result, PendingFailed)
        assert made.in_flight == 1
        made.release(busy)
        assert made.in_flight == 0
    run(scenario())


def test_same_endpoint_keeps_its_tracker_and_load():
    async def scenario():
        made, closed = throttler(concurrency=1)
        made.set_endpoints(endpoints("a"))
        tracker = await made.acquire(None)
        made.set_endpoints(endpoints("a", "b"))
        assert made.routable[0] is tracker and tracker.in_flight == 1
        assert closed == []
        # same id, new socket: a new replica; the old tracker's client closes when its request ends
        made.set_endpoints([ReplicaEndpoint("a", "/tmp/a-2.sock"), *endpoints("b")])
        assert made.routable[0] is not tracker
        assert closed == []
        made.release(tracker)
        assert closed == ["client-a"]
    run(scenario())


def test_unlisted_idle_replica_closes_at_once_and_capacity_drops():
    made, closed = throttler(concurrency=3)
    made.set_endpoints(endpoints("a", "b"))
    made.set_endpoints(endpoints("b"))
    assert closed == ["client-a"] and made.breaker.capacity == 3


def test_drain_stops_routing_and_waits_for_in_flight():
    async def scenario():
        made, closed = throttler(concurrency=1)
        made.set_endpoints(endpoints("a", "b"))
        on_a = await made.acquire(None)
        draining = made.start_drain("a")
        assert draining is on_a and [t.replica_id for t in made.routable] == ["b"]
        assert made.breaker.capacity == 1
        idle = asyncio.create_task(on_a.wait_idle(5))
        await settle()
        assert not idle.done()
        # a refresh that still lists the draining replica does not route to it again
        made.set_endpoints(endpoints("a", "b"))
        assert [t.replica_id for t in made.routable] == ["b"]
        made.release(on_a)
        assert await idle is True
        assert closed == []  # still listed; its client closes when the supervisor unlists it
        made.set_endpoints(endpoints("b"))
        assert closed == ["client-a"]
        made.set_endpoints(endpoints("a", "b"))  # listed again after leaving: routable again
        assert [t.replica_id for t in made.routable] == ["a", "b"]
    run(scenario())


def test_drain_times_out_with_requests_still_running():
    async def scenario():
        made, _ = throttler(concurrency=1)
        made.set_endpoints(endpoints("a"))
        tracker = await made.acquire(None)
        assert made.start_drain("a") is tracker
        assert await tracker.wait_idle(0.05) is False
        assert made.start_drain("unknown") is None
    run(scenario())


def test_unreachable_replica_leaves_the_set_until_listed_again():
    async def scenario():
        made, _ = throttler(concurrency=1)
        made.set_endpoints(endpoints("a", "b"))
        tracker = await made.acquire(None)
        assert tracker.replica_id == "a"
        made.release(tracker, unreachable=True)
        assert [t.replica_id for t in made.routable] == ["b"]
        retried = await made.acquire(None, retry=True)
        assert retried.replica_id == "b"
        made.set_endpoints(endpoints("a", "b"))
        assert [t.replica_id for t in made.routable] == ["a", "b"]
    run(scenario())


def test_a_suspect_replica_gets_nothing_until_listed_again_or_its_time_is_up():
    async def scenario():
        made, _ = throttler(concurrency=1)
        made.set_endpoints(endpoints("a", "b"))
        tracker = await made.acquire(None)
        made.suspect(tracker, 60)
        made.release(tracker)
        assert [t.replica_id for t in made.routable] == ["b"] and made.breaker.capacity == 1
        made.set_endpoints(endpoints("a", "b"))  # the supervisor's listing clears it
        assert [t.replica_id for t in made.routable] == ["a", "b"]

        # A lone replica that turns out to be alive: requests wait for it, and go once the time is up.
        made.set_endpoints(endpoints("a"))
        tracker = await made.acquire(None)
        made.suspect(tracker, 0.05)
        made.release(tracker)
        assert made.routable == [] and made.breaker.capacity == 0
        waiting = asyncio.create_task(made.acquire(None))
        await settle()
        assert not waiting.done()
        assert (await asyncio.wait_for(waiting, 5)).replica_id == "a"
        assert [t.replica_id for t in made.routable] == ["a"]

        # A replica no longer listed (or listed anew) is not touched by an old suspicion.
        stale = made.routable[0]
        made.set_endpoints([ReplicaEndpoint("a", "/tmp/other.sock")])
        made.suspect(stale, 60)
        assert [t.replica_id for t in made.routable] == ["a"]
    run(scenario())


def test_slot_granted_under_a_shrinking_set_waits_again():
    async def scenario():
        made, _ = throttler(concurrency=1)
        waiter = asyncio.create_task(made.acquire(None))
        await settle()
        made.set_endpoints(endpoints("a"))  # grants the slot ...
        made.set_endpoints([])  # ... and the replica is gone before the waiter runs
        await settle()
        assert not waiter.done() and made.queue_depth == 1 and made.in_flight == 0
        made.set_endpoints(endpoints("b"))
        assert (await waiter).replica_id == "b"
    run(scenario())


def test_duplicate_replica_ids_are_refused():
    made, _ = throttler()
    with pytest.raises(ValueError, match="replica id 'a' is listed twice"):
        made.set_endpoints(endpoints("a", "a"))


def test_close_stops_routing_and_closes_clients_as_they_go_idle():
    async def scenario():
        made, closed = throttler(concurrency=1)
        made.set_endpoints(endpoints("busy", "idle"))
        tracker = await made.acquire(None)
        made.close()
        assert closed == ["client-idle"] and made.breaker.capacity == 0 and not made.routable
        made.release(tracker)
        assert closed == ["client-idle", "client-busy"]
    run(scenario())
