"""A bounded queue in front of a semaphore, after Knative's queue.Breaker.

Requests take a slot before they are proxied; when none is free they wait, in arrival order, in a
queue of bounded length, so memory stays bounded under backpressure and no request waits past its
deadline. Capacity changes as replicas come and go; at zero replicas it is zero and every request
waits. Everything runs on one event loop, so there are no locks: plain counters suffice.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque


class QueueFull(Exception):
    """The revision already has `queue_limit` requests waiting."""


class PendingFailed(Exception):
    """A waiting request was failed on purpose (a replica could not start, the activator is closing)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


UNLIMITED = math.inf


class Breaker:
    def __init__(self, queue_limit: int, capacity: float = 0):
        self.queue_limit = queue_limit
        self._capacity = capacity
        self._in_flight = 0
        self._waiting = 0
        # Futures of waiters, oldest first. A waiter that gives up leaves its (done) future behind
        # rather than paying O(n) to remove it; `_grant` skips those and `_compact` bounds them.
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> float:
        return self._capacity

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return self._waiting

    def set_capacity(self, capacity: float) -> None:
        """In-flight may exceed a lowered capacity for a while; new slots wait until it drops below."""
        self._capacity = capacity
        self._grant()

    async def acquire(self, deadline: float | None, *, front: bool = False) -> None:
        """Take a slot, waiting until `deadline` (loop time) at most.

        `front` puts the caller at the head of the queue, past the limit: it was admitted once and is
        only coming back because its replica could not be reached.
        Raises QueueFull, TimeoutError, or PendingFailed.
        """
        if self._waiting == 0 and self._in_flight < self._capacity:
            self._in_flight += 1
            return
        if not front and self._waiting >= self.queue_limit:
            raise QueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if front:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        self._waiting += 1
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                error = waiter.exception()
                if error is None:
                    # The slot was granted in the same loop turn the deadline fired: pass it on.
                    self.release()
                elif isinstance(error, PendingFailed):
                    raise error from None
                raise
            # Still queued (our own cancellation cancels the future too): leave the queue.
            waiter.cancel()
            self._waiting -= 1
            self._compact()
            raise

    def release(self) -> None:
        self._in_flight -= 1
        self._grant()

    def fail_waiters(self, error: PendingFailed) -> int:
        """Fail every waiting request with `error`; returns how many there were."""
        failed = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
                failed += 1
        # Waiters whose futures were cancelled but have not run yet still count; they leave themselves.
        self._waiting -= failed
        return failed

    def _grant(self) -> None:
        # Slots go straight to the oldest waiter (no barging), which is what makes the queue FIFO.
        while self._waiters and self._in_flight < self._capacity:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self._waiting -= 1
            self._in_flight += 1
            waiter.set_result(None)

    def _compact(self) -> None:
        if len(self._waiters) > 2 * self._waiting + 64:
            self._waiters = deque(w for w in self._waiters if not w.done())
