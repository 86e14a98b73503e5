"""The activator end to end: a real uvicorn server on 127.0.0.1 in front of real replica processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from prometheus_client import generate_latest

from activator import Activator, RevisionSettings, RevisionStats
from tests.activator.harness import (
    Replica,
    StaticResolver,
    client_session,
    replica_session,
    run,
    running_activator,
    serving,
    wait_for,
)
from zeroserve.host_dispatch import HostDispatcher

MB = 1024 * 1024


def iris_routes(**settings):
    return StaticResolver(
        routes={"iris": {None: "iris-00001", "canary": "iris-00002"}, "canary-x": {None: "canary-x-00001"}},
        settings={"iris-00001": RevisionSettings(function="iris", **settings),
                  "iris-00002": RevisionSettings(function="iris", **settings)},
    )


@asynccontextmanager
async def iris_activator(*replicas: Replica, **kwargs) -> AsyncIterator[tuple[Activator, str]]:
    """A running activator over `iris_routes()` whose iris-00001 is served by `replicas`."""
    async with running_activator(iris_routes(), **kwargs) as (activator, url):
        activator.set_endpoints("iris-00001", [replica.endpoint for replica in replicas])
        yield activator, url


def test_requests_at_zero_wait_and_all_succeed_once_a_replica_is_ready(shared_replicas):
    r1, r2 = shared_replicas
    pokes: list[str] = []

    async def scenario():
        resolver = iris_routes(container_concurrency=10)
        async with running_activator(resolver, on_cold_request=pokes.append) as (activator, url), \
                client_session() as client:
            async def call(index: int):
                async with client.get(f"{url}/fn/iris/echo?i={index}") as response:
                    return response.status, response.headers.get("zeroserve-revision"), await response.json()

            calls = [asyncio.create_task(call(i)) for i in range(200)]
            await wait_for(lambda: activator.queue_depth("iris-00001") == 200, what="200 waiting")
            assert pokes == ["iris-00001"]  # the first waiter pokes the autoscaler, not every request
            assert activator.in_flight("iris-00001") == 0
            activator.set_endpoints("iris-00001", [r1.endpoint, r2.endpoint])
            results = await asyncio.gather(*calls)
            assert all(status == 200 and revision == "iris-00001" for status, revision, _ in results)
            assert sorted(body["query"] for _, _, body in results) == sorted(f"i={i}" for i in range(200))
            # capacity 2 x 10: both replicas served
            assert {body["replica"] for _, _, body in results} == {"r1", "r2"}
            assert activator.queue_depth("iris-00001") == 0 and activator.in_flight("iris-00001") == 0
            stats = activator.collect_stats(time.monotonic())
            assert stats["iris-00001"].request_count == 200
            assert stats["iris-00001"].average_concurrency > 0
            metrics = generate_latest(activator.metrics_registry).decode()
            assert ('zeroserve_activator_requests_total{code="200",function="iris",revision="iris-00001"} 200.0'
                    in metrics)

    run(scenario())


def test_routing_by_host_and_path_and_named_404s(shared_replicas):
    r1, _ = shared_replicas

    async def scenario():
        async with iris_activator(r1) as (activator, url), client_session() as client:
            activator.set_endpoints("iris-00002", [r1.endpoint])

            async def get(path: str, host: str | None = None, **kwargs):
                headers = {"Host": host} if host else {}
                headers.update(kwargs.pop("headers", {}))
                async with client.get(url + path, headers=headers, **kwargs) as response:
                    return response.status, response.headers, await response.json()

            status, headers, body = await get("/fn/iris/echo/a%2Fb?x=1&y=%20z")
            assert status == 200 and headers["zeroserve-revision"] == "iris-00001"
            assert body["raw_path"] == "/echo/a%2Fb" and body["query"] == "x=1&y=%20z"
            sent = dict(body["headers"])
            assert sent["x-forwarded-prefix"] == "/fn/iris"
            assert sent["x-forwarded-host"] == url.removeprefix("http://")
            assert sent["x-forwarded-for"] == "127.0.0.1"

            assert len(headers.getall("date")) == 1 and len(headers.getall("server")) == 1  # not doubled
            status, headers, body = await get("/fn/iris")
            assert status == 200 and body["path"] == "/"

            status, headers, body = await get("/echo", host="iris.localhost:8080")
            assert status == 200 and body["path"] == "/echo" and headers["zeroserve-revision"] == "iris-00001"
            assert dict(body["headers"])["host"] == "iris.localhost:8080"

            for path, host in (("/echo", "canary-iris.localhost"), ("/fn/canary-iris/echo", None)):
                status, headers, body = await get(path, host=host)
                assert status == 200 and headers["zeroserve-revision"] == "iris-00002"
                assert body["path"] == "/echo"

            # hop-by-hop headers stay on this hop; end-to-end ones go through
            status, _, body = await get("/fn/iris/echo", headers={
                "Connection": "keep-alive, X-Hop", "X-Hop": "1", "X-End": "2", "TE": "trailers"})
            sent = dict(body["headers"])
            assert "x-hop" not in sent and "te" not in sent and sent["x-end"] == "2"

            status, headers, body = await get("/fn/iris/echo?status=418")
            assert status == 418 and headers["zeroserve-revision"] == "iris-00001"

            for path, host, message in (
                ("/fn/nope/echo", None, "function 'nope' not found"),
                ("/echo", "nope.localhost", "function 'nope' not found"),
                ("/fn/blue-iris/", None, "tag 'blue' not found for function 'iris'"),
                ("/echo", "blue-iris.localhost", "tag 'blue' not found for function 'iris'"),
            ):
                status, headers, body = await get(path, host=host)
                # every answer, an error too, names its request id: in a header and in the body
                assert status == 404 and body == {"error": message, "request_id": headers["zeroserve-request-id"]}

            # a function named exactly `canary-x` exists: no tag lookup for it
            activator.set_endpoints("canary-x-00001", [r1.endpoint])
            status, headers, body = await get("/fn/canary-x/echo")
            assert status == 200 and headers["zeroserve-revision"] == "canary-x-00001"


def test_function_named_like_a_tag_wins(shared_replicas):
    r1, _ = shared_replicas

    async def scenario():
        resolver = StaticResolver(routes={"iris": {None: "iris-00001", "canary": "iris-00002"},
                                                  "canary-iris": {None: "canary-iris-00001"}})
        async with running_activator(resolver) as (activator, url), client_session() as client:
            activator.set_endpoints("canary-iris-00001", [r1.endpoint])
            async with client.get(f"{url}/echo", headers={"Host": "canary-iris.localhost"}) as response:
                assert response.status == 200
                assert response.headers["zeroserve-revision"] == "canary-iris-00001"

    run(scenario())


def test_host_dispatcher_splits_function_urls_from_the_control_plane(shared_replicas):
    r1, _ = shared_replicas

    async def control_plane(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = json.dumps({"control": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def scenario():
        app = Activator(iris_routes(), domain="zs.test")
        try:
            app.set_endpoints("iris-00001", [r1.endpoint])
            async with serving(HostDispatcher(app, control_plane, domain="zs.test")) as url, \
                    client_session() as client:
                for path, host, expected in (
                    ("/api/v1/functions", None, {"control": "/api/v1/functions"}),
                    ("/metrics", None, {"control": "/metrics"}),
                    ("/api/v1/functions", "localhost", {"control": "/api/v1/functions"}),
                    ("/api/v1/functions", "iris.localhost", {"control": "/api/v1/functions"}),
                ):
                    async with client.get(url + path, headers={"Host": host} if host else {}) as response:
                        assert await response.json() == expected
                async with client.get(url + "/echo", headers={"Host": "iris.zs.test"}) as response:
                    assert (await response.json())["replica"] == "r1"
                async with client.get(url + "/fn/iris/echo") as response:
                    assert (await response.json())["path"] == "/echo"
        finally:
            await app.close()

    run(scenario())


def test_queue_full_gives_503_with_retry_after_and_deadline_gives_504():
    async def scenario():
        resolver = iris_routes(container_concurrency=1, queue_limit=2, timeout_seconds=0.5)
        async with running_activator(resolver) as (activator, url), client_session() as client:
            async def call():
                async with client.get(f"{url}/fn/iris/echo") as response:
                    return response.status, dict(response.headers), await response.json()

            waiting = [asyncio.create_task(call()) for _ in range(2)]
            await wait_for(lambda: activator.queue_depth("iris-00001") == 2)
            status, headers, body = await call()
            assert status == 503 and headers["Retry-After"] == "1"
            assert "iris-00001" in body["error"] and "2 requests waiting" in body["error"]
            for status, headers, body in await asyncio.gather(*waiting):
                assert status == 504 and headers["zeroserve-revision"] == "iris-00001"
                assert body == {"error": "revision 'iris-00001' had no free replica within 0.5s",
                                "request_id": headers["zeroserve-request-id"]}
            assert activator.queue_depth("iris-00001") == 0
            metrics = generate_latest(activator.metrics_registry).decode()
            assert 'code="504",function="iris",revision="iris-00001"} 2.0' in metrics
            assert 'code="503",function="iris",revision="iris-00001"} 1.0' in metrics
            assert ('zeroserve_activator_rejected_requests_total{function="iris",reason="timeout",'
                    'revision="iris-00001"} 2.0') in metrics
            assert ('zeroserve_activator_rejected_requests_total{function="iris",reason="queue_full",'
                    'revision="iris-00001"} 1.0') in metrics

    run(scenario())


def test_fail_pending_answers_waiters_with_503():
    async def scenario():
        resolver = iris_routes(timeout_seconds=30)
        async with running_activator(resolver) as (activator, url), client_session() as client:
            async def call():
                async with client.post(f"{url}/fn/iris/echo", data=b"x" * 100) as response:
                    return response.status, await response.json()

            waiting = [asyncio.create_task(call()) for _ in range(5)]
            await wait_for(lambda: activator.queue_depth("iris-00001") == 5)
            message = "replica of 'iris-00001' failed to start: exit 3"
            assert activator.fail_pending("iris-00001", message) == 5
            for status, body in await asyncio.gather(*waiting):
                assert (status, body["error"]) == (503, "replica of 'iris-00001' failed to start: exit 3")

    run(scenario())


class RssSampler:
    """Samples this process's resident memory from a thread while a transfer runs."""

    def __init__(self) -> None:
        self.peak = self.baseline = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_large_bodies_stream_through_without_buffering(shared_replicas):
    r1, _ = shared_replicas
    size = 50 * MB
    block = bytes(random.Random(5).getrandbits(8) for _ in range(64 * 1024))

    async def upload_body(total: int):
        sent = 0
        while sent < total:
            chunk = block[: min(len(block), total - sent)]
            sent += len(chunk)
            yield chunk

    async def scenario():
        async with iris_activator(r1) as (activator, url), client_session() as client:
            digest = hashlib.sha256()
            for _ in range(size // len(block)):
                digest.update(block)
            with RssSampler() as memory:
                async with client.post(f"{url}/fn/iris/upload", data=upload_body(size)) as response:
                    body = await response.json()
                received = 0
                async with client.get(f"{url}/fn/iris/download?bytes={size}") as response:
                    async for chunk in response.content.iter_any():
                        received += len(chunk)
            assert body["bytes"] == size and body["sha256"] == digest.hexdigest()
            assert body["chunks"] > 100  # it arrived as a stream, not as one buffered blob
            assert received == size
            grown = memory.peak - memory.baseline
            assert grown < 25 * MB, f"activator process grew by {grown / MB:.1f} MB moving 2 x 50 MB"

    run(scenario())


def test_bodies_are_forwarded_chunk_by_chunk(shared_replicas):
    """Lockstep: the far side sees the first chunk before the near side sends the rest."""
    r1, _ = shared_replicas

    async def scenario():
        async with iris_activator(r1) as (activator, url), client_session() as client, \
                replica_session(r1) as direct:
            async def progress() -> int:
                async with direct.get("http://r/progress?id=up1") as response:
                    return (await response.json())["bytes"]

            async def upload():
                yield b"a" * 100_000
                async with asyncio.timeout(10):  # the replica has the first chunk while we hold the rest
                    while await progress() < 100_000:
                        await asyncio.sleep(0.005)
                yield b"b" * 100_000

            async with client.post(f"{url}/fn/iris/upload?id=up1", data=upload()) as response:
                assert (await response.json())["bytes"] == 200_000

            # download: the replica sends 64 KiB, then waits for /release; we must see those bytes first
            async with client.get(f"{url}/fn/iris/download?bytes={4 * MB}&id=down1") as response:
                first = await asyncio.wait_for(response.content.readexactly(64 * 1024), 10)
                assert first == b"z" * 64 * 1024
                async with direct.get("http://r/release?id=down1") as released:
                    assert released.status == 200
                rest = await response.content.read()
                assert len(first) + len(rest) == 4 * MB

    run(scenario())


def test_client_leaving_a_stream_ends_the_proxied_request(shared_replicas):
    r1, _ = shared_replicas

    async def scenario():
        async with iris_activator(r1) as (activator, url), \
                replica_session(r1) as direct:
            async with client_session() as client:
                response = await client.get(f"{url}/fn/iris/download?bytes={8 * MB}&id=gone1")
                await response.content.readexactly(64 * 1024)
                assert activator.in_flight("iris-00001") == 1
                response.close()  # drops the connection mid-stream while the replica is still holding
            await wait_for(lambda: activator.in_flight("iris-00001") == 0, what="stream cancelled")
            async with direct.get("http://r/release?id=gone1"):
                pass

    run(scenario())


def test_drain_stops_routing_and_waits_for_in_flight(shared_replicas):
    r1, r2 = shared_replicas

    async def scenario():
        async with iris_activator(r1) as (activator, url), client_session() as client, \
                replica_session(r1) as direct:
            async def call(path: str):
                async with client.get(f"{url}/fn/iris{path}") as response:
                    return response.status, await response.json()

            held = [asyncio.create_task(call("/hold?id=drain1")) for _ in range(3)]
            await wait_for(lambda: activator.in_flight("iris-00001") == 3)
            activator.set_endpoints("iris-00001", [r1.endpoint, r2.endpoint])
            drain = asyncio.create_task(activator.drain("iris-00001", "r1", timeout=20))
            for _ in range(5):
                status, body = await call("/echo")
                assert (status, body["replica"]) == (200, "r2")  # no new work for the draining replica
            assert not drain.done()
            async with direct.get("http://r/release?id=drain1"):
                pass
            await asyncio.wait_for(drain, 10)
            assert [result for result in await asyncio.gather(*held)] == [
                (200, {"replica": "r1", "held": "drain1"})] * 3
            # a drain past its timeout returns rather than hanging the supervisor
            activator.set_endpoints("iris-00001", [r2.endpoint])
            stuck = asyncio.create_task(call("/hold?id=drain2"))
            await wait_for(lambda: activator.in_flight("iris-00001") == 1)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await activator.drain("iris-00001", "r2", timeout=0.2)
            assert 0.2 <= loop.time() - started < 5
            async with replica_session(r2) as direct2, direct2.get("http://r/release?id=drain2"):
                pass
            assert (await stuck)[0] == 200

    run(scenario())


@pytest.mark.timeout(90)
def test_sigkill_of_a_replica_fails_only_its_requests(replica_pool):
    k1, k2 = replica_pool.start("k1", "k2")

    async def scenario():
        # iris_routes() has concurrency 0: two random choices spreads requests
        async with iris_activator(k1, k2, rng=random.Random(11).random) as (activator, url), \
                client_session() as client, replica_session(k2) as direct:
            async def call(path: str):
                async with client.get(f"{url}/fn/iris{path}") as response:
                    return response.status, await response.json()

            held = [asyncio.create_task(call("/hold?id=kill")) for _ in range(30)]
            await wait_for(lambda: activator.in_flight("iris-00001") == 30)
            k1.kill()
            async with direct.get("http://r/release?id=kill"):
                pass
            results = await asyncio.gather(*held)
            failed = [body for status, body in results if status != 200]
            served = [body for status, body in results if status == 200]
            assert failed and served, f"both replicas should have had requests: {results}"
            assert all(status in (200, 502) for status, _ in results)
            assert all(body == {"replica": "k2", "held": "kill"} for body in served)
            assert all(body["error"].startswith("replica k1 of revision 'iris-00001'") for body in failed)

            # before the supervisor notices, requests that hit the dead socket are retried on k2
            for status, body in await asyncio.gather(*(call("/echo") for _ in range(30))):
                assert (status, body["replica"]) == (200, "k2")
            activator.set_endpoints("iris-00001", [k2.endpoint])
            for status, body in await asyncio.gather(*(call("/echo") for _ in range(10))):
                assert (status, body["replica"]) == (200, "k2")
            assert activator.in_flight("iris-00001") == 0

    run(scenario())


def test_only_replica_unreachable_waits_for_a_new_one(replica_pool, shared_replicas):
    r1, _ = shared_replicas
    (dead,) = replica_pool.start("dead")
    dead.kill()
    pokes: list[str] = []

    async def scenario():
        resolver = iris_routes(timeout_seconds=20)
        async with running_activator(resolver, on_cold_request=pokes.append) as (activator, url), \
                client_session() as client:
            activator.set_endpoints("iris-00001", [dead.endpoint])

            async def call():
                async with client.get(f"{url}/fn/iris/echo") as response:
                    return response.status, await response.json()

            pending = asyncio.create_task(call())
            await wait_for(lambda: activator.queue_depth("iris-00001") == 1)
            assert pokes == ["iris-00001"]  # the refused replica left no routable one: ask for another
            activator.set_endpoints("iris-00001", [r1.endpoint])
            status, body = await pending
            assert (status, body["replica"]) == (200, "r1")

    run(scenario())


def test_unknown_revision_and_empty_route():
    async def scenario():
        resolver = StaticResolver(routes={"ghost": {None: "ghost-00009"}, "empty": {}})
        resolver.revision_settings = lambda revision: (_ for _ in ()).throw(KeyError(revision))
        async with running_activator(resolver) as (_, url), client_session() as client:
            async with client.get(f"{url}/fn/ghost/") as response:
                assert response.status == 404
                assert (await response.json())["error"] == "revision 'ghost-00009' of function 'ghost' not found"
            async with client.get(f"{url}/fn/empty/") as response:
                assert response.status == 503
                assert (await response.json())["error"] == "function 'empty' has no revision receiving traffic"
            async with client.get(f"{url}/api/v1/functions") as response:
                assert response.status == 404
                assert "no function in host or path" in (await response.json())["error"]

    run(scenario())


def test_close_answers_waiters_with_503_and_refuses_new_requests():
    async def scenario():
        resolver = iris_routes()
        async with running_activator(resolver) as (activator, url), client_session() as client:
            async def call():
                async with client.get(f"{url}/fn/iris/echo") as response:
                    return response.status, await response.json()

            waiting = asyncio.create_task(call())
            await wait_for(lambda: activator.queue_depth("iris-00001") == 1)
            await activator.close()
            status, body = await waiting
            assert (status, body["error"]) == (503, "the activator is shutting down")
            async with client.get(f"{url}/fn/iris/echo") as response:
                assert response.status == 503

    run(scenario())


def test_close_lets_requests_being_proxied_finish(shared_replicas):
    r1, _ = shared_replicas

    async def scenario():
        async with iris_activator(r1) as (activator, url), client_session() as client, \
                replica_session(r1) as direct:
            async def call():
                async with client.get(f"{url}/fn/iris/hold?id=closing") as response:
                    return response.status, await response.json()

            held = asyncio.create_task(call())
            await wait_for(lambda: activator.in_flight("iris-00001") == 1)
            await activator.close()
            async with direct.get("http://r/release?id=closing"):
                pass
            assert await held == (200, {"replica": "r1", "held": "closing"})

    run(scenario())


def test_head_and_client_errors_pass_through(shared_replicas):
    r1, _ = shared_replicas

    async def scenario():
        async with iris_activator(r1) as (activator, url), client_session() as client:
            async with client.head(f"{url}/fn/iris/echo") as response:
                assert response.status == 200 and await response.read() == b""
            async with client.get(f"{url}/fn/iris/download?bytes=0") as response:
                assert response.status == 200 and await response.read() == b""
            async with client.put(f"{url}/fn/iris/echo", data=b"q" * 200_000) as response:
                assert (await response.json())["body_bytes"] == 200_000

    run(scenario())


def test_connection_errors_are_not_retried_after_the_body_was_sent(replica_pool):
    """A streamed body that reached the replica cannot be replayed: its failure is a 502."""
    (victim,) = replica_pool.start("victim")

    async def scenario():
        async with iris_activator(victim) as (activator, url), client_session() as client:
            async def body():
                yield b"x" * 200_000
                await wait_for(lambda: victim.process.poll() is not None, what="replica killed")
                yield b"y" * 200_000

            upload = asyncio.create_task(client.post(f"{url}/fn/iris/upload", data=body()))
            await wait_for(lambda: activator.in_flight("iris-00001") == 1)
            victim.process.kill()
            try:
                response = await upload
                assert response.status == 502
                assert "replica victim of revision 'iris-00001'" in (await response.json())["error"]
                response.close()
            except aiohttp.ClientError:
                pass  # the activator may also have closed the connection mid-upload

    run(scenario())


def test_replica_dying_mid_response_aborts_only_that_response(replica_pool):
    (victim,) = replica_pool.start("midway")

    async def scenario():
        async with iris_activator(victim) as (activator, url), client_session() as client:
            async with client.get(f"{url}/fn/iris/download?bytes={8 * MB}&id=midway") as response:
                assert response.status == 200
                await response.content.readexactly(64 * 1024)
                victim.process.kill()
                # the client must see a broken response, never a short one passed off as complete
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.content.read()
            await wait_for(lambda: activator.in_flight("iris-00001") == 0, what="request ended")
            metrics = generate_latest(activator.metrics_registry).decode()
            assert 'code="200",function="iris",revision="iris-00001"} 1.0' in metrics

    run(scenario())


def test_collect_stats_counts_waiting_requests_on_the_injected_clock(shared_replicas):
    r1, _ = shared_replicas
    now = [100.0]

    async def scenario():
        resolver = iris_routes()
        async with running_activator(resolver, clock=lambda: now[0]) as (activator, url), \
                client_session() as client:
            async def call():
                async with client.get(f"{url}/fn/iris/echo") as response:
                    return response.status

            waiting = [asyncio.create_task(call()) for _ in range(3)]
            await wait_for(lambda: activator.queue_depth("iris-00001") == 3)
            now[0] = 102.0
            # three requests held for the 2 s since the revision was first seen: demand at zero replicas
            assert activator.collect_stats(102.0) == {"iris-00001": RevisionStats(3.0, 3)}
            activator.set_endpoints("iris-00001", [r1.endpoint])
            assert await asyncio.gather(*waiting) == [200, 200, 200]  # they leave at t=102
            assert activator.collect_stats(104.0) == {"iris-00001": RevisionStats(0.0, 0)}

    run(scenario())
