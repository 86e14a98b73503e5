"""Dynamic batching: concurrent requests stacked along the first dimension into one model run.

Requests join a group keyed by everything that must match to stack them: input names, dtypes, the
non-batch dimensions. A worker takes the group of the oldest waiting request and decides, each time
the model is free or a request arrives, whether to run it now (`wait_before_running`):

- a lone request on an idle model runs at once: batching never adds its delay to light traffic;
- under load, the callers of the batch that just finished are about to send their next requests,
  so the worker waits until about half as many rows as that batch carried have arrived (or
  `max_batch_size` rows, or `max_delay_ms` since the model became free). Half, not all: the rest
  arrive while that batch runs and form the next one, so request parsing on the event loop overlaps
  the model's work instead of leaving the model idle while a whole cohort comes back.

One batch runs at a time per model (one model instance, as in Triton's default); it runs in the
model's thread, and the outputs are split back by row.

The worker task exists only while requests wait, so the batcher works under any event loop that
calls it (uvicorn's, or mangum's loop per Lambda invocation) and leaves no task behind when idle.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from functions.request_context import request_id, set_batch, traceparent
from protocol.inference_errors import InferenceError, InferenceFailed, Unavailable

# (input name, dtype, non-batch shape) for every input, in name order.
GroupKey = tuple[tuple[str, str, tuple[int, ...]], ...]
RunBatch = Callable[[dict[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]]


@dataclass(eq=False)
class _Waiter:
    inputs: dict[str, np.ndarray]
    rows: int
    arrived: float
    future: asyncio.Future[dict[str, np.ndarray]] = field(repr=False)
    request_id: str | None = None  # the request's, so the batch's log lines name it
    traceparent: str | None = None


@dataclass
class BatchStats:
    """Counts for tests and metrics: how many runs and how many requests they carried."""

    batches: int = 0
    requests: int = 0
    largest: int = 0

    def record(self, size: int) -> None:
        self.batches += 1
        self.requests += size
        self.largest = max(self.largest, size)


# The share of the last batch's rows the next batch waits for while its callers come back (see above).
REFILL_SHARE = 0.5


def wait_before_running(*, queued_rows: int, max_batch_size: int, max_delay: float, waited: float,
                        returning_rows: int) -> float:
    """Seconds the worker should still wait before running the queued rows; 0 means run now.

    `waited`: how long the oldest request has waited since the model became free (time spent behind
    a running batch is not batching delay). `returning_rows`: the rows of a batch that finished less
    than `max_delay` ago (its callers are likely sending again), 0 when the model has been idle.
    """
    if queued_rows >= max_batch_size or waited >= max_delay:
        return 0.0
    if queued_rows >= math.ceil(returning_rows * REFILL_SHARE):
        return 0.0  # an idle model (returning 0), or enough of the last batch's callers are back
    return max_delay - waited


def group_key(inputs: dict[str, np.ndarray]) -> GroupKey:
    return tuple(sorted((name, array.dtype.str, array.shape[1:]) for name, array in inputs.items()))


class DynamicBatcher:
    def __init__(self, run: RunBatch, *, max_batch_size: int, max_delay_ms: float, max_queue: int,
                 model: str = "model"):
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self.model = model
        self._groups: dict[GroupKey, deque[_Waiter]] = {}
        self._queued = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        # When the model last became free, and how many rows that batch carried (wait_before_running).
        self._free_since = -math.inf
        self._last_rows = 0
        self.holding = False  # the worker is holding queued rows back for more to arrive (tests, debugging)
        self.stats = BatchStats()

    @property
    def queued(self) -> int:
        return self._queued

    async def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Queue one validated request (all inputs share the first dimension) and await its rows."""
        if self._queued >= self.max_queue:
            raise Unavailable(f"model '{self.model}' is overloaded: {self._queued} requests queued "
                              f"(batching.max_queue {self.max_queue}); retry later")
        loop = asyncio.get_running_loop()
        rows = next(iter(inputs.values())).shape[0]
        waiter = _Waiter(inputs, rows, time.monotonic(), loop.create_future(), request_id(), traceparent())
        self._groups.setdefault(group_key(inputs), deque()).append(waiter)
        self._queued += 1
        self._ensure_worker(loop)
        assert self._wakeup is not None
        self._wakeup.set()
        return await waiter.future

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is not None and not self._worker.done() and self._worker.get_loop() is loop:
            return
        self._wakeup = asyncio.Event()
        self._worker = loop.create_task(self._work(), name=f"batcher[{self.model}]")

    async def _work(self) -> None:
        try:
            await self._drain()
        finally:
            # Only reached with waiters left when the loop is shutting down: never leave them hanging.
            for waiters in self._groups.values():
                for waiter in waiters:
                    _fail(waiter, Unavailable(f"model '{self.model}' is shutting down"))
            self._groups.clear()
            self._queued = 0

    async def _drain(self) -> None:
        assert self._wakeup is not None
        while self._groups:
            key, waiters = self._oldest_group()
            now = time.monotonic()
            idle_for = now - self._free_since
            wait = wait_before_running(
                queued_rows=sum(w.rows for w in waiters), max_batch_size=self.max_batch_size,
                max_delay=self.max_delay, waited=now - max(waiters[0].arrived, self._free_since),
                returning_rows=self._last_rows if idle_for < self.max_delay else 0,
            )
            if wait > 0:
                self._wakeup.clear()  # no await since the rows were counted: no arrival is missed
                self.holding = True
                try:
                    await asyncio.wait_for(self._wakeup.wait(), wait)
                except TimeoutError:
                    pass
                finally:
                    self.holding = False
                continue  # decide again: a request arrived, or the delay is up
            batch = self._take(key)
            if batch:
                await self._run_batch(batch)
                self._last_rows = sum(w.rows for w in batch)
                self._free_since = time.monotonic()

    def _oldest_group(self) -> tuple[GroupKey, deque[_Waiter]]:
        return min(self._groups.items(), key=lambda item: item[1][0].arrived)

    def _take(self, key: GroupKey) -> list[_Waiter]:
        """Up to max_batch_size rows from the group, oldest first; a lone oversized request runs alone."""
        waiters = self._groups.get(key, deque())
        batch: list[_Waiter] = []
        rows = 0
        while waiters and (not batch or rows + waiters[0].rows <= self.max_batch_size):
            waiter = waiters.popleft()
            self._queued -= 1
            if waiter.future.cancelled():  # its client went away while it waited
                continue
            batch.append(waiter)
            rows += waiter.rows
        if not waiters:
            self._groups.pop(key, None)
        return batch

    async def _run_batch(self, batch: list[_Waiter]) -> None:
        self.stats.record(len(batch))
        # This task's own context: the model call that follows carries the batch's requests.
        set_batch([w.request_id for w in batch], [w.traceparent for w in batch])
        try:
            if len(batch) == 1:
                outputs = await self._run(batch[0].inputs)
                _resolve(batch[0], outputs)
                return
            names = batch[0].inputs.keys()
            stacked = {name: np.concatenate([w.inputs[name] for w in batch]) for name in names}
            outputs = await self._run(stacked)
            total = sum(w.rows for w in batch)
            for name, array in outputs.items():
                if np.ndim(array) == 0 or np.shape(array)[0] != total:
                    raise InferenceFailed(
                        f"model '{self.model}' returned output '{name}' with shape {list(np.shape(array))} "
                        f"for a batch of {total} rows; batching needs outputs with the batch dimension first"
                    )
            start = 0
            for waiter in batch:
                end = start + waiter.rows
                _resolve(waiter, {name: array[start:end] for name, array in outputs.items()})
                start = end
        except InferenceError as exc:
            for waiter in batch:
                _fail(waiter, exc)
        except asyncio.CancelledError:
            for waiter in batch:
                _fail(waiter, Unavailable(f"model '{self.model}' is shutting down"))
            raise
        except Exception as exc:  # the model's own failure: every waiter hears about it
            failure = InferenceFailed(f"model '{self.model}' failed on a batch: {type(exc).__name__}: {exc}")
            for waiter in batch:
                _fail(waiter, failure)


def _resolve(waiter: _Waiter, outputs: dict[str, np.ndarray]) -> None:
    if not waiter.future.done():
        waiter.future.set_result(outputs)


def _fail(waiter: _Waiter, exc: Exception) -> None:
    if not waiter.future.done():
        waiter.future.set_exception(exc)
