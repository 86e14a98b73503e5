"""The control API in-process (real platform object, real SQLite, ASGI transport): auth, error shapes,
uploads, and the route table the data plane reads."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from protocol.manifest import parse_manifest
from revisions.digest import digest_function
from tests.zeroserve.control.harness import change_model, function_dir
from tests.zeroserve.control.uploads import tar_gz
from zeroserve.settings import Settings, SettingsError, ensure_token
from zeroserve.up import Platform, create_platform

DIGEST = "sha256:" + "ab" * 32
DIGEST2 = "sha256:" + "cd" * 32


def with_platform(tmp_path: Path, body: Callable[[Platform, httpx.AsyncClient], Awaitable[None]],
                  **settings: object) -> None:
    async def main() -> None:
        platform = create_platform(Settings(data_dir=tmp_path / "data", **settings))
        await platform.start()
        transport = httpx.ASGITransport(app=platform.asgi_app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                await body(platform, http)
        finally:
            await platform.stop()

    asyncio.run(main())


def seed(platform: Platform, name: str = "iris") -> None:
    """Two revisions recorded straight into the registry (no build needed for API checks)."""
    manifest = parse_manifest({"name": name, "model": "model.onnx"})
    for digest in (DIGEST, DIGEST2):
        platform.registry.record_deploy(name, digest=digest, manifest=manifest, files={}, build_log="log")


def auth(platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.token}"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/api/v1/functions", {}),
        ("GET", "/api/v1/functions/iris", {}),
        ("PATCH", "/api/v1/functions/iris/traffic", {"json": {"percents": {"iris-00001": 100}}}),
        ("POST", "/api/v1/functions/iris/rollback", {}),
        ("DELETE", "/api/v1/functions/iris", {}),
        ("POST", "/api/v1/functions", {"content": b"not even a tarball"}),
        ("GET", "/api/v1/events", {}),
    ],
)
def test_missing_or_wrong_token_is_401_and_changes_nothing(tmp_path, method, path, kwargs):
    async def body(platform: Platform, http: httpx.AsyncClient) -> None:
        seed(platform)
        before = platform.registry.get_route("iris"), platform.registry.events(limit=1000)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {platform.token}"},
                        {"Authorization": f"Bearer {platform.token}x"}):
            response = await http.request(method, path, headers=headers, **kwargs)
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"] == "Bearer"
            assert set(response.json()) == {"error"} and "unauthorized" in response.json()["error"]
            assert platform.token not in response.text
        assert (platform.registry.get_route("iris"), platform.registry.events(limit=1000)) == before

    with_platform(tmp_path, body)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        ("GET", "/api/v1/functions/nope", {}, 404, "function 'nope' not found"),
        ("GET", "/api/v1/functions/iris/revisions/iris-00042", {}, 404, "revision 'iris-00042' of function 'iris'"),
        ("GET", "/api/v1/nothing-here", {}, 404, "not found: GET /api/v1/nothing-here"),
        ("DELETE", "/api/v1/events", {}, 405, "method DELETE is not allowed"),
        ("PUT", "/api/v1/functions/iris/traffic", {"json": {"targets": [{"revision": "iris-00001", "percent": "x"}]}},
         400, "targets.0.percent"),
        ("PUT", "/api/v1/functions/iris/traffic", {"json": {"targets": [], "extra": 1}}, 400, "extra"),
        ("PUT", "/api/v1/functions/iris/traffic", {"content": b"{not json", "headers": {"content-type":
                                                   "application/json"}}, 400, "invalid request"),
        ("PUT", "/api/v1/functions/iris/traffic", {"json": {"targets": [{"revision": "iris-00001", "percent": 60},
                                                                        {"revision": "iris-00002", "percent": 30}]}},
         400, "traffic: percents must sum to 100, got 90 (iris-00001=60, iris-00002=30)"),
        ("PATCH", "/api/v1/functions/iris/traffic", {"json": {"tags": {"Not_A_Label": "iris-00001"}}}, 400,
         "DNS-1035"),
        ("PATCH", "/api/v1/functions/iris/traffic", {"json": {"untag": ["ghost"]}}, 400, "tag 'ghost' does not exist"),
        ("POST", "/api/v1/functions/iris/promote", {"json": {"tag": "ghost"}}, 400, "tag 'ghost' does not exist"),
        ("POST", "/api/v1/functions/iris/rollback", {}, 200, None),
        ("GET", "/api/v1/events", {"params": {"limit": "lots"}}, 400, "limit"),
        ("POST", "/api/v1/functions", {"content": b""}, 400, "request body is empty"),
        ("POST", "/api/v1/functions", {"content": b"garbage bytes"}, 400, None),
    ],
)
def test_errors_are_json_with_the_right_status(tmp_path, method, path, kwargs, status, message):
    async def body(platform: Platform, http: httpx.AsyncClient) -> None:
        seed(platform)
        headers = {**auth(platform), **kwargs.pop("headers", {})}
        response = await http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, response.text
        if status >= 400:
            assert set(response.json()) == {"error"}, response.text  # never FastAPI's 422 "detail" shape
            assert "Traceback" not in response.text
            if message:
                assert message in response.json()["error"]

    with_platform(tmp_path, body)


def test_uploads_are_checked_before_any_build(tmp_path):
    async def body(platform: Platform, http: httpx.AsyncClient) -> None:
        evil = await http.post("/api/v1/functions", headers=auth(platform),
                               content=tar_gz({"../evil.py": b"x", "function.yaml": b"name: x"}))
        assert evil.status_code == 400 and "../evil.py" in evil.json()["error"]
        big = await http.post("/api/v1/functions", headers=auth(platform), content=b"x" * 5000)
        assert big.status_code == 413 and "limit" in big.json()["error"]
        failed = await http.post("/api/v1/functions", headers=auth(platform),
                                 content=tar_gz({"function.yaml": b"name: Bad_Name\n"}))
        assert failed.status_code == 400 and "function.yaml" in failed.json()["error"]
        assert "name" in failed.json()["error"]
        assert str(platform.settings.scratch_dir) not in failed.text  # no server paths in messages
        assert list(platform.settings.scratch_dir.iterdir()) == []  # uploads are cleaned up
        assert await platform.deployer.run_blocking(platform.registry.list_functions) == []

    with_platform(tmp_path, body, max_upload_bytes=4096)


def test_route_table_follows_every_route_change(tmp_path):
    async def body(platform: Platform, http: httpx.AsyncClient) -> None:
        table = platform.route_table
        assert table.pick("iris", None, 0.5) is None
        seed(platform)
        assert table.pick("iris", None, 0.5) == "iris-00002"
        edit = {"percents": {"iris-00001": 90, "iris-00002": 10}, "tags": {"c": "iris-00002"}}
        response = await http.patch("/api/v1/functions/iris/traffic", headers=auth(platform), json=edit)
        assert response.status_code == 200, response.text
        assert response.json()["tags"]["c"].startswith("http://c-iris.localhost:")
        assert [table.pick("iris", None, u) for u in (0.0, 0.89, 0.9, 0.999)] == ["iris-00001"] * 2 + ["iris-00002"] * 2
        assert table.pick("iris", "c", 0.0) == "iris-00002"
        rolled = await http.post("/api/v1/functions/iris/rollback", headers=auth(platform))
        assert rolled.status_code == 200 and table.pick("iris", None, 0.0) == "iris-00002"
        deleted = await http.delete("/api/v1/functions/iris", headers=auth(platform))
        assert deleted.status_code == 200 and not table.has_function("iris")
        docs = await http.get("/api/v1/docs")
        spec = await http.get("/api/v1/openapi.json")
        assert docs.status_code == 200 and spec.status_code == 200
        assert "/api/v1/functions/{function}/traffic" in spec.json()["paths"]

    with_platform(tmp_path, body)


def test_token_file_is_private_and_created_once(tmp_path):
    token = ensure_token(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / "token").st_mode)
    assert mode == 0o600 and len(token) >= 32
    assert ensure_token(tmp_path) == token


def test_settings_from_env_and_flags():
    settings = Settings.load({"ZEROSERVE_PORT": "9090", "ZEROSERVE_DATA": "/srv/zs"}, domain="example.com")
    assert (settings.port, str(settings.data_dir), settings.domain) == (9090, "/srv/zs", "example.com")
    assert Settings.load({"ZEROSERVE_PORT": "9090"}, port=7070).port == 7070
    with pytest.raises(SettingsError, match=r"port \(ZEROSERVE_PORT\)"):
        Settings.load({"ZEROSERVE_PORT": "http"})


def test_retention_deletes_unrouted_revisions_and_unused_artifacts(tmp_path):
    """Real builds: with keep_unrouted=1, the oldest unrouted revision goes, and its artifact with it."""

    async def body(platform: Platform, http: httpx.AsyncClient) -> None:
        store, registry = platform.store, platform.registry
        results = []
        for i in range(3):
            directory = function_dir(tmp_path, "iris")
            change_model(directory, f"v{i}")
            results.append(await platform.deployer.deploy_dir(directory))
        assert [r.revision for r in results] == ["iris-00001", "iris-00002", "iris-00003"]
        names = [r.name for r in await platform.deployer.run_blocking(registry.list_revisions, "iris")]
        assert names == ["iris-00002", "iris-00003"]  # routed iris-00003 + one unrouted
        assert not store.exists(results[0].digest)
        assert store.exists(results[1].digest) and store.exists(results[2].digest)
        assert "retention" in [e.kind for e in registry.events("iris")]

    with_platform(tmp_path, body, keep_unrouted=1)


def test_artifacts_of_unrecorded_builds_are_swept_at_start(tmp_path):
    """A build killed between storing its artifact and recording it leaves an orphan; a restart removes it."""

    async def deploy_then_orphan(platform: Platform, _http: httpx.AsyncClient) -> None:
        kept = await platform.deployer.deploy_dir(function_dir(tmp_path, "iris"))
        assert kept.status == "created"
        orphan = function_dir(tmp_path, "orphan")
        digested = digest_function(orphan)
        platform.store.put(digested.digest, orphan, digested.files, generated=digested.generated)
        assert set(platform.store.list_digests()) == {kept.digest, digested.digest}

    async def after_restart(platform: Platform, _http: httpx.AsyncClient) -> None:
        assert platform.store.list_digests() == [platform.registry.list_revisions("iris")[0].digest]

    with_platform(tmp_path, deploy_then_orphan)
    with_platform(tmp_path, after_restart)
