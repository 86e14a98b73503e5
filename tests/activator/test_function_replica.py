"""The activator in front of the real function runtime (`python -m functions.server examples/iris`)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from activator import RevisionSettings
from tests.activator.harness import StaticResolver, client_session, run, running_activator, wait_for

IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris"

pytestmark = pytest.mark.skipif(not (IRIS / "function.yaml").is_file(), reason="examples/iris is not there")


def test_cold_v2_and_v1_inference_through_the_activator(replica_pool):
    sample = json.loads((IRIS / "sample.json").read_text())
    (replica,) = replica_pool.start(
        "iris-a", command=[sys.executable, "-m", "functions.server", str(IRIS), "--revision", "iris-00001"],
        probe="/v2/health/ready",
    )

    async def scenario():
        resolver = StaticResolver(routes={"iris": {None: "iris-00001"}},
                                          settings={"iris-00001": RevisionSettings(container_concurrency=0)})
        async with running_activator(resolver) as (activator, url), client_session() as client:
            async def infer(index: int):
                async with client.post(f"{url}/fn/iris/v2/models/iris/infer", json=sample) as response:
                    revisions = response.headers.getall("zeroserve-revision")
                    return response.status, revisions, await response.json()

            waiting = [asyncio.create_task(infer(i)) for i in range(20)]
            await wait_for(lambda: activator.queue_depth("iris-00001") == 20)
            activator.set_endpoints("iris-00001", [replica.endpoint])
            for status, revisions, body in await asyncio.gather(*waiting):
                assert status == 200, body
                assert revisions == ["iris-00001"]  # the replica names it too: sent once
                (output,) = body["outputs"]
                assert output["shape"][0] == 2

            v1 = {"instances": sample["inputs"][0]["data"]}
            async with client.post(f"{url}/v1/models/iris:predict", json=v1,
                                   headers={"Host": "iris.localhost:8080"}) as response:
                assert response.status == 200
                assert len((await response.json())["predictions"]) == 2

            async with client.post(f"{url}/fn/iris/v2/models/iris/infer", data=b"{not json") as response:
                assert response.status == 400 and "error" in await response.json()  # the runtime's 4xx passes

    run(scenario())
