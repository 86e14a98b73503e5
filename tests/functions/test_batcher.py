"""The batcher's decision to run now or wait: a lone request is never delayed, under load batches form.

`wait_before_running` is checked as a table; the DynamicBatcher itself with a model gated on an
asyncio.Event, so which rows share a run is decided by the test, not by timing. `max_delay_ms` is a
minute everywhere: a test that finishes at all shows nothing waited for the delay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest

from functions.batcher import DynamicBatcher, wait_before_running

TIMEOUT = 20.0
MINUTE_MS = 60_000.0


@pytest.mark.parametrize(
    ("queued_rows", "waited", "returning_rows", "max_delay", "expected"),
    [
        (1, 0.0, 0, 0.005, 0.0),  # a lone request on an idle model runs at once
        (1, 0.0, 1, 0.005, 0.0),  # a lone client's next request: its last batch was one row
        (32, 0.0, 32, 0.005, 0.0),  # a full batch runs at once
        (40, 0.0, 0, 0.005, 0.0),  # more than full: the first max_batch_size rows run
        (16, 0.0, 32, 0.005, 0.0),  # half of the last batch's callers are back
        (4, 0.001, 32, 0.005, 0.004),  # 4 of 32 back: hold for the rest of the delay
        (15, 0.0, 31, 0.005, 0.005),  # ceil(31 / 2) = 16 rows wanted
        (4, 0.005, 32, 0.005, 0.0),  # the delay is up: run what there is
        (4, 0.0, 32, 0.0, 0.0),  # max_delay_ms 0: never wait
    ],
)
def test_wait_before_running(queued_rows: int, waited: float, returning_rows: int, max_delay: float,
                             expected: float) -> None:
    wait = wait_before_running(queued_rows=queued_rows, max_batch_size=32, max_delay=max_delay, waited=waited,
                               returning_rows=returning_rows)
    assert wait == pytest.approx(expected)


class GatedRun:
    """The model: y = x + 1; each call records its row count and waits for `open` when `gated`."""

    def __init__(self, gated: bool):
        self.gated = gated
        self.open = asyncio.Event()
        self.batches: list[int] = []

    async def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(inputs["x"].shape[0])
        if self.gated:
            await self.open.wait()
        return {"y": inputs["x"] + 1}


def row(value: float) -> dict[str, np.ndarray]:
    return {"x": np.full((1, 2), value, dtype=np.float32)}


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def run(scenario: Callable[[DynamicBatcher, GatedRun], object], gated: bool = True) -> None:
    model = GatedRun(gated)
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_ms=MINUTE_MS, max_queue=64, model="gated")

    async def go() -> None:
        await asyncio.wait_for(scenario(batcher, model), TIMEOUT)  # type: ignore[arg-type]

    asyncio.run(go())


def test_a_lone_request_runs_at_once_despite_a_minute_of_max_delay() -> None:
    async def scenario(batcher: DynamicBatcher, model: GatedRun) -> None:
        for value in range(3):  # one client, request after request: each runs alone, none held back
            outputs = await batcher.submit(row(value))
            assert outputs["y"].tolist() == [[value + 1, value + 1]]
        assert model.batches == [1, 1, 1]

    run(scenario, gated=False)


def test_requests_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    async def scenario(batcher: DynamicBatcher, model: GatedRun) -> None:
        first = asyncio.create_task(batcher.submit(row(0)))
        await until(lambda: model.batches == [1], "the first request to run alone")
        rest = [asyncio.create_task(batcher.submit(row(value))) for value in range(1, 6)]
        await until(lambda: batcher.queued == 5, "five requests queued behind the running batch")
        model.open.set()
        answers = await asyncio.gather(first, *rest)
        assert model.batches == [1, 5]  # the five ran together as soon as the model was free
        assert [a["y"][0, 0] for a in answers] == [1, 2, 3, 4, 5, 6]  # each caller got its own row

    run(scenario)


def test_after_a_batch_the_next_waits_for_half_of_its_callers_to_come_back() -> None:
    async def scenario(batcher: DynamicBatcher, model: GatedRun) -> None:
        model.open.set()
        blocker = asyncio.create_task(batcher.submit(row(0)))
        await blocker
        model.open.clear()
        first = asyncio.create_task(batcher.submit(row(0)))
        await until(lambda: len(model.batches) == 2, "a request to run on the idle model")
        cohort = [asyncio.create_task(batcher.submit(row(value))) for value in range(4)]
        await until(lambda: batcher.queued == 4, "four requests behind it")
        model.open.set()
        await asyncio.gather(first, *cohort)  # a batch of 4 just finished: its callers come back
        model.open.clear()
        back = [asyncio.create_task(batcher.submit(row(10)))]
        await until(lambda: batcher.holding, "the worker to hold one row back for a second")
        assert model.batches == [1, 1, 4]
        back.append(asyncio.create_task(batcher.submit(row(11))))
        await until(lambda: model.batches == [1, 1, 4, 2], "the two returning callers to run together")
        model.open.set()
        answers = await asyncio.gather(*back)
        assert [a["y"][0, 0] for a in answers] == [11, 12]

    run(scenario)


def test_the_hold_ends_after_max_delay_since_the_model_became_free() -> None:
    model = GatedRun(gated=False)
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_ms=1, max_queue=64, model="gated")

    async def scenario() -> None:
        await asyncio.gather(*(batcher.submit(row(value)) for value in range(6)))  # one batch of 6
        assert model.batches == [6]
        # One returning caller of six: held for at most 1 ms, then it runs alone.
        assert (await batcher.submit(row(1)))["y"][0, 0] == 2
        assert model.batches == [6, 1]

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
