"""GET /api/v1/functions/{function}/history on a real `zeroserve up`: the points the console's chart draws."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.zeroserve.control.harness import function_dir
from tests.zeroserve.platform.conftest import Platform, stop_leaving_nothing, wait_for

IRIS_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("history")
    platform = Platform(root / "data")
    try:
        platform.start()
        with platform.client() as client:
            client.deploy(function_dir(root, "iris"))
        yield platform
    finally:
        stop_leaving_nothing([platform])


def history(platform: Platform, path: str = "/functions/iris/history", token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {platform.token if token is None else token}"}
    return httpx.get(f"{platform.url}/api/v1{path}", headers=headers, timeout=30)


def test_requests_show_up_as_rate_latency_and_replicas(platform: Platform):
    started = time.time()
    for _ in range(5):
        answer = httpx.post(platform.fn_url("iris", "v2/models/iris/infer"), json=IRIS_BODY, timeout=60)
        assert answer.status_code == 200, answer.text

    def busy_point() -> dict | None:
        points = history(platform, f"/functions/iris/history?since={started}").json()["points"]
        return next((p for p in points if p["requests_per_second"] > 0), None)
    point = wait_for(busy_point, "a point with the requests", timeout=15)
    assert point["p95_ms"] is not None and point["p95_ms"] > 0
    assert point["ready"] >= 1 and point["desired"] >= 1 and point["errors_per_second"] == 0

    whole = history(platform).json()
    assert whole["function"] == "iris" and whole["interval_seconds"] == 1.0 and whole["data_plane"] is True
    times = [p["time"] for p in whole["points"]]
    assert times == sorted(times)
    [last] = history(platform, "/functions/iris/history?limit=1").json()["points"]
    assert last["time"] >= times[-1]
    newest = times[-1]  # a point is never answered twice to a client that asks for those after its newest
    later = history(platform, f"/functions/iris/history?since={newest}").json()["points"]
    assert all(p["time"] > newest for p in later), (newest, later)


def test_mistakes_get_a_clear_4xx(platform: Platform):
    unknown = history(platform, "/functions/nope/history")
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    bad_since = history(platform, "/functions/iris/history?since=yesterday")
    assert bad_since.status_code in (400, 422) and "since" in bad_since.json()["error"]
    too_many = history(platform, "/functions/iris/history?limit=0")
    assert too_many.status_code in (400, 422) and "limit" in too_many.json()["error"]
    refused = history(platform, token="wrong")
    assert refused.status_code == 401 and "error" in refused.json()


def test_a_read_token_for_the_function_is_enough(platform: Platform):
    with platform.client() as client:
        token = client.create_token("read", ["iris"])["token"]
    assert history(platform, token=token).status_code == 200
    with platform.client() as client:
        client.deploy(function_dir(platform.data_dir.parent, "other"))
    refused = history(platform, "/functions/other/history", token=token)
    assert refused.status_code == 403 and "other" in refused.json()["error"]
