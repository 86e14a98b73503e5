"""GET /api/v1/functions/{function}/failed-builds on a real `zeroserve up`: a failed build's log, kept.

The deploy's uploader gets the log in its answer; the same cleaned lines are what the console shows later.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from revisions.archive import pack_function_dir
from tests.zeroserve.control.harness import function_dir
from tests.zeroserve.platform.conftest import Platform, stop_leaving_nothing
from zeroserve.client import ApiError


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """iris deployed, then a deploy of iris without its model.onnx (a failed build)."""
    root = tmp_path_factory.mktemp("failed-builds")
    platform = Platform(root / "data")
    try:
        platform.start()
        with platform.client() as client:
            client.deploy(function_dir(root, "iris", scaling={"initial_scale": 0}))
            client.deploy(function_dir(root, "other", scaling={"initial_scale": 0}))
        yield platform
    finally:
        stop_leaving_nothing([platform])


def failed_builds(platform: Platform, function: str = "iris", token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {platform.token if token is None else token}"}
    return httpx.get(f"{platform.url}/api/v1/functions/{function}/failed-builds", headers=headers, timeout=30)


def test_a_failed_build_keeps_the_log_its_uploader_got(platform: Platform, tmp_path):
    assert failed_builds(platform).json() == []
    broken = function_dir(tmp_path, "iris", scaling={"initial_scale": 0})
    (broken / "model.onnx").unlink()
    upload = httpx.post(f"{platform.url}/api/v1/functions", content=pack_function_dir(broken), timeout=120,
                        headers={"Authorization": f"Bearer {platform.token}", "Content-Type": "application/gzip"})
    assert upload.status_code == 400 and "model.onnx" in upload.json()["error"], upload.text

    answer = failed_builds(platform)
    assert answer.status_code == 200, answer.text
    [failed] = answer.json()
    assert set(failed) == {"id", "time", "message", "log"}
    assert failed["message"].startswith("build failed") and "model.onnx" in failed["message"], failed
    assert failed["log"] and any("model.onnx" in line for line in failed["log"]), failed["log"]
    assert failed["log"] == upload.json()["log"]  # the lines its uploader got
    assert platform.token not in "\n".join(failed["log"])

    with platform.client() as client, pytest.raises(ApiError):
        client.deploy(broken)
    again = failed_builds(platform).json()
    assert [b["id"] for b in again] == sorted((b["id"] for b in again), reverse=True) and len(again) == 2
    assert failed_builds(platform, "other").json() == []  # another function's failures are its own


def test_a_first_deploy_refused_keeps_its_log_though_no_function_exists(platform: Platform, tmp_path):
    # Built, then refused (no knative target on this platform): the function was never created.
    elsewhere = function_dir(tmp_path, "later", targets=["local", "knative"], scaling={"initial_scale": 0})
    with platform.client() as client, pytest.raises(ApiError, match="knative"):
        client.deploy(elsewhere)
    with platform.client() as client, pytest.raises(ApiError, match="'later' not found"):
        client.describe("later")
    [refused] = failed_builds(platform, "later").json()
    assert refused["message"].startswith("deploy refused") and "knative" in refused["message"], refused
    assert any(line.startswith("[1/") for line in refused["log"]), refused["log"]  # its build's steps


def test_an_unknown_function_is_a_404_naming_it(platform: Platform):
    unknown = failed_builds(platform, "nope")
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"], unknown.text
    bad_name = failed_builds(platform, "Not_A_Name")
    assert 400 <= bad_name.status_code < 500 and "error" in bad_name.json(), bad_name.text


def test_a_read_token_for_the_function_may_read_and_one_for_another_may_not(platform: Platform):
    with platform.client() as client:
        iris_reader = client.create_token("read", ["iris"])["token"]
        other_reader = client.create_token("read", ["other"])["token"]
    assert failed_builds(platform, token=iris_reader).status_code == 200
    refused = failed_builds(platform, token=other_reader)
    assert refused.status_code == 403 and "iris" in refused.json()["error"], refused.text
    assert failed_builds(platform, token="not-a-token").status_code == 401
