"""Per-revision throttling: capacity follows the ready replicas, requests wait for a free one.

After Knative's revisionThrottler (pkg/activator/net/throttler.go): a Breaker whose capacity is
ready replicas x containerConcurrency (unlimited when 0, zero at zero replicas), and a load
balancing policy that picks the replica once a slot is granted. Every slot held maps to at most one
replica's in-flight count, so a granted slot always finds a replica with room.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from activator.balancing import policy_for
from activator.breaker import UNLIMITED, Breaker, PendingFailed
from activator.contracts import ReplicaEndpoint, RevisionSettings

Client = TypeVar("Client")


class ReplicaTracker(Generic[Client]):
    """One replica as the throttler sees it: its endpoint, its client and its in-flight count."""

    __slots__ = ("endpoint", "client", "in_flight", "_idle_waiters")

    def __init__(self, endpoint: ReplicaEndpoint, client: Client):
        self.endpoint = endpoint
        self.client = client
        self.in_flight = 0
        self._idle_waiters: list[asyncio.Future[None]] = []

    @property
    def replica_id(self) -> str:
        return self.endpoint.replica_id

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request is in flight on this replica, False if `timeout` passed first."""
        if self.in_flight == 0:
            return True
        idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(idle)
        try:
            async with asyncio.timeout(timeout):
                await idle
            return True
        except TimeoutError:
            return False
        finally:
            if idle in self._idle_waiters:
                self._idle_waiters.remove(idle)

    def _finished_one(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle_waiters:
            for idle in self._idle_waiters:
                if not idle.done():
                    idle.set_result(None)
            self._idle_waiters.clear()

    def __repr__(self) -> str:
        return f"ReplicaTracker({self.replica_id!r}, in_flight={self.in_flight})"


class RevisionThrottler(Generic[Client]):
    """Admission and replica choice for one revision.

    A replica is routable when it is listed by the last `set_endpoints`, is not being drained and has
    not refused a connection since it was listed. Trackers that leave the listed set keep their
    client until their last in-flight request ends, then `close_client` is called.
    """

    def __init__(
        self,
        revision: str,
        settings: RevisionSettings,
        *,
        make_client: Callable[[ReplicaEndpoint], Client],
        close_client: Callable[[Client], None],
        rng: Callable[[], float] = random.random,
    ):
        self.revision = revision
        self.settings = settings
        self.breaker = Breaker(queue_limit=settings.queue_limit)
        self._make_client = make_client
        self._close_client = close_client
        self._pick = policy_for(settings.container_concurrency, rng)
        self._listed: dict[str, ReplicaTracker[Client]] = {}
        self._draining: set[str] = set()
        self._unreachable: set[str] = set()
        self._retired: set[ReplicaTracker[Client]] = set()  # unlisted, requests still in flight
        self._routable: list[ReplicaTracker[Client]] = []

    # -- the routable set -------------------------------------------------------------------

    @property
    def routable(self) -> Sequence[ReplicaTracker[Client]]:
        return self._routable

    def set_endpoints(self, endpoints: Sequence[ReplicaEndpoint]) -> None:
        """Replace the listed replicas. A replica keeps its tracker (and in-flight count) while its
        id and socket stay the same; being listed again clears an earlier connection failure."""
        listed: dict[str, ReplicaTracker[Client]] = {}
        for endpoint in endpoints:
            if endpoint.replica_id in listed:
                raise ValueError(
                    f"revision '{self.revision}': replica id '{endpoint.replica_id}' is listed twice"
                )
            tracker = self._listed.get(endpoint.replica_id)
            if tracker is None or tracker.endpoint != endpoint:
                tracker = ReplicaTracker(endpoint, self._make_client(endpoint))
            listed[endpoint.replica_id] = tracker
        for replica_id, tracker in self._listed.items():
            if listed.get(replica_id) is not tracker:
                self._retire(tracker)
        self._listed = listed
        self._unreachable.clear()
        # A drain outlives a refresh that still lists the replica (the supervisor stops it next),
        # and is forgotten once the replica is gone from the list.
        self._draining &= listed.keys()
        self._update_capacity()

    def start_drain(self, replica_id: str) -> ReplicaTracker[Client] | None:
        tracker = self._listed.get(replica_id)
        if tracker is not None:
            self._draining.add(replica_id)
            self._update_capacity()
        return tracker

    def _update_capacity(self) -> None:
        self._routable = [
            tracker
            for replica_id, tracker in self._listed.items()
            if replica_id not in self._draining and replica_id not in self._unreachable
        ]
        concurrency = self.settings.container_concurrency
        if not self._routable:
            capacity: float = 0
        elif concurrency == 0:
            capacity = UNLIMITED
        else:
            capacity = len(self._routable) * concurrency
        self.breaker.set_capacity(capacity)

    def _retire(self, tracker: ReplicaTracker[Client]) -> None:
        if tracker.in_flight == 0:
            self._close_client(tracker.client)
        else:
            self._retired.add(tracker)

    # -- requests ---------------------------------------------------------------------------

    async def acquire(self, deadline: float | None, *, retry: bool = False) -> ReplicaTracker[Client]:
        """Wait for a slot and pick a replica. Raises QueueFull, TimeoutError or PendingFailed."""
        await self.breaker.acquire(deadline, front=retry)
        while True:
            tracker = self._pick(self._routable)
            if tracker is not None:
                tracker.in_flight += 1
                return tracker
            # Granted under a capacity that has since shrunk: queue again, at the front.
            self.breaker.release()
            await self.breaker.acquire(deadline, front=True)

    def release(self, tracker: ReplicaTracker[Client], *, unreachable: bool = False) -> None:
        """End a request on `tracker`; `unreachable` stops routing to it until it is listed again."""
        if unreachable and self._listed.get(tracker.replica_id) is tracker:
            self._unreachable.add(tracker.replica_id)
            self._update_capacity()
        tracker._finished_one()
        if tracker.in_flight == 0 and tracker in self._retired:
            self._retired.discard(tracker)
            self._close_client(tracker.client)
        self.breaker.release()

    def suspect(self, tracker: ReplicaTracker[Client], seconds: float) -> None:
        """Stop routing to a replica that dropped a connection before answering: it is almost surely dying.
        A killed process's listening socket can outlive its connections by a moment, so a connection made
        then is accepted and reset, losing the request; the supervisor relists the replicas within
        milliseconds of the death. Its next listing clears the mark, and so does `seconds` passing, for a
        replica that turns out to be alive (a lone replica is never shut out for longer than that)."""
        if self._listed.get(tracker.replica_id) is not tracker:
            return
        self._unreachable.add(tracker.replica_id)
        self._update_capacity()
        asyncio.get_running_loop().call_later(seconds, self._clear_suspicion, tracker)

    def _clear_suspicion(self, tracker: ReplicaTracker[Client]) -> None:
        if self._listed.get(tracker.replica_id) is tracker and tracker.replica_id in self._unreachable:
            self._unreachable.discard(tracker.replica_id)
            self._update_capacity()

    def fail_pending(self, message: str) -> int:
        return self.breaker.fail_waiters(PendingFailed(message))

    def close(self) -> None:
        """Route nowhere from now on: idle clients close at once, busy ones when their requests end."""
        for tracker in self._listed.values():
            self._retire(tracker)
        self._listed.clear()
        self._draining.clear()
        self._update_capacity()

    @property
    def queue_depth(self) -> int:
        return self.breaker.waiting

    @property
    def in_flight(self) -> int:
        return self.breaker.in_flight
