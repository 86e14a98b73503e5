"""Dynamic batching through the app: batches form under concurrency, results go back to their callers,
bad requests stay out of batches, failures reach every waiter, and the queue is bounded.

The model blocks on a gate while the test queues requests behind it, so batch composition is
deterministic: no timing assumptions beyond generous timeouts.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from functions.app import FunctionApp
from functions.loaders import LoadedFunction
from functions.metadata import MetadataTensor, ModelMetadata
from protocol.manifest import parse_manifest

from .conftest import asgi_client

INFER = "/v2/models/batched/infer"
TIMEOUT = 20.0


class GatedModel(LoadedFunction):
    """y = 2x + 1 row by row; every call waits for the gate, and records the rows it was given."""

    source = "model gated"

    def __init__(self, fail: bool = False, scalar_output: bool = False):
        self.metadata = ModelMetadata("python", inputs=[MetadataTensor(name="x", datatype="FP32", shape=[-1, -1])],
                                      outputs=[MetadataTensor(name="y", datatype="FP32", shape=[-1, -1])])
        self.gate = threading.Event()
        self.batches: list[int] = []
        self.fail, self.scalar_output = fail, scalar_output

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(inputs["x"].shape[0])
        if not self.gate.wait(TIMEOUT):
            raise TimeoutError("the test never opened the gate")
        if self.fail:
            raise RuntimeError("the accelerator caught fire")
        if self.scalar_output:
            return {"y": np.float32(1.0)}
        return {"y": inputs["x"] * 2 + 1}


def make_app(model: GatedModel, max_batch_size: int = 8, max_queue: int = 64) -> FunctionApp:
    manifest = parse_manifest({"name": "batched", "runtime": "python", "handler": "handler:Model",
                               "batching": {"max_batch_size": max_batch_size, "max_delay_ms": 20,
                                            "max_queue": max_queue}})
    return FunctionApp(model, manifest)


def body(rows: np.ndarray, datatype: str = "FP32") -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": datatype,
                                   "data": rows.ravel().tolist()}]}).encode()


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


def run(scenario, model: GatedModel, **app_options):
    app = make_app(model, **app_options)

    async def go():
        async with asgi_client(app) as client:
            return await asyncio.wait_for(scenario(app, client), TIMEOUT)
    try:
        return asyncio.run(go())
    finally:
        model.gate.set()
        app.runner.close()


def rows_for(caller: int, count: int = 1, width: int = 3) -> np.ndarray:
    return (np.arange(count * width, dtype=np.float32).reshape(count, width) + 100 * caller)


def test_concurrent_requests_form_batches_and_each_caller_gets_its_own_rows() -> None:
    model = GatedModel()

    async def scenario(app, client):
        first = asyncio.create_task(client.post(INFER, content=body(rows_for(0))))
        await until(lambda: model.batches == [1], "the first request to reach the model")
        # Callers send 1 or 2 distinct rows each; 12 callers, 18 rows, max_batch_size 8.
        sent = {caller: rows_for(caller, count=1 + caller % 2) for caller in range(1, 13)}
        tasks = {caller: asyncio.create_task(client.post(INFER, content=body(rows)))
                 for caller, rows in sent.items()}
        await until(lambda: app.runner.batcher.queued == 12, "12 queued requests")
        model.gate.set()
        responses = {caller: await task for caller, task in tasks.items()}
        return await first, sent, responses, app.runner.batcher.stats

    first, sent, responses, stats = run(scenario, model)
    assert first.status_code == 200
    for caller, response in responses.items():
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        got = np.array(output["data"], dtype=np.float32).reshape(output["shape"])
        assert np.array_equal(got, sent[caller] * 2 + 1), f"caller {caller} got someone else's rows"
    assert model.batches[0] == 1 and sum(model.batches[1:]) == 18
    # Greedy filling of 1- and 2-row requests up to 8 rows leaves at most one batch under 7 rows.
    assert all(size <= 8 for size in model.batches) and sorted(model.batches[1:])[1] >= 7
    assert stats.largest >= 4  # one model run carried at least four callers' requests


def test_a_bad_request_never_fails_its_batch_mates() -> None:
    model = GatedModel()

    async def scenario(app, client):
        blocker = asyncio.create_task(client.post(INFER, content=body(rows_for(0))))
        await until(lambda: model.batches == [1], "the blocker to reach the model")
        good = [asyncio.create_task(client.post(INFER, content=body(rows_for(c)))) for c in range(1, 5)]
        bad_datatype = await client.post(INFER, content=body(rows_for(9).astype(np.int64), "INT64"))
        bad_shape = await client.post(INFER, content=json.dumps({"inputs": [
            {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).encode())
        other_width = asyncio.create_task(client.post(INFER, content=body(rows_for(7, width=5))))
        await until(lambda: app.runner.batcher.queued == 5, "the good requests to queue")
        model.gate.set()
        return [await blocker, *[await t for t in good]], bad_datatype, bad_shape, await other_width

    goods, bad_datatype, bad_shape, other_width = run(scenario, model)
    assert bad_datatype.status_code == 400 and "expects FP32" in bad_datatype.json()["error"]
    assert bad_shape.status_code == 400 and "needs 6 elements" in bad_shape.json()["error"]
    assert [r.status_code for r in goods] == [200] * 5
    assert other_width.status_code == 200 and other_width.json()["outputs"][0]["shape"] == [1, 5]
    # Rows of width 3 and width 5 cannot stack: they ran as separate batches.
    assert sorted(model.batches) == [1, 1, 4]


def test_a_failing_model_answers_every_waiter_with_an_error() -> None:
    model = GatedModel(fail=True)

    async def scenario(app, client):
        tasks = [asyncio.create_task(client.post(INFER, content=body(rows_for(0))))]
        await until(lambda: model.batches == [1], "the first request to reach the model")
        tasks += [asyncio.create_task(client.post(INFER, content=body(rows_for(c)))) for c in range(1, 6)]
        await until(lambda: app.runner.batcher.queued == 5, "a batch behind the first")
        model.gate.set()
        return [await t for t in tasks]

    responses = run(scenario, model)
    assert [r.status_code for r in responses] == [500] * 6
    for response in responses:
        assert "model gated raised RuntimeError: the accelerator caught fire" in response.json()["error"]
    assert model.batches == [1, 5]


def test_outputs_without_a_batch_dimension_fail_the_batch_with_a_clear_error() -> None:
    model = GatedModel(scalar_output=True)

    async def scenario(app, client):
        blocker = asyncio.create_task(client.post(INFER, content=body(rows_for(0))))
        await until(lambda: model.batches == [1], "the blocker")
        tasks = [asyncio.create_task(client.post(INFER, content=body(rows_for(c)))) for c in range(1, 4)]
        await until(lambda: app.runner.batcher.queued == 3, "three queued")
        model.gate.set()
        return await blocker, [await t for t in tasks]

    _, batched = run(scenario, model)
    for response in batched:
        assert response.status_code == 500
        assert "batching needs outputs with the batch dimension first" in response.json()["error"]


def test_a_full_queue_answers_503_with_retry_after() -> None:
    model = GatedModel()

    async def scenario(app, client):
        blocker = asyncio.create_task(client.post(INFER, content=body(rows_for(0))))
        await until(lambda: model.batches == [1], "the blocker")
        queued = [asyncio.create_task(client.post(INFER, content=body(rows_for(c)))) for c in range(1, 4)]
        await until(lambda: app.runner.batcher.queued == 3, "a full queue")
        refused = await client.post(INFER, content=body(rows_for(5)))
        model.gate.set()
        return refused, [await blocker, *[await t for t in queued]]

    refused, accepted = run(scenario, model, max_queue=3)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "overloaded" in refused.json()["error"] and "max_queue 3" in refused.json()["error"]
    assert [r.status_code for r in accepted] == [200] * 4


@pytest.mark.parametrize("loops", [2])
def test_the_batcher_works_across_event_loops(loops: int) -> None:
    """mangum (Lambda) may drive the app from a fresh loop; no worker task may be tied to an old one."""
    model = GatedModel()
    model.gate.set()
    app = make_app(model)
    try:
        for _ in range(loops):
            async def go():
                async with asgi_client(app) as client:
                    return await client.post(INFER, content=body(rows_for(1)))
            assert asyncio.run(go()).status_code == 200
    finally:
        app.runner.close()
