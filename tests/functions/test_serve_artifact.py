"""`zeroserve serve --artifact URI`: the runtime outside the platform, as a real process.

The artifact is examples/iris put into a real store (a local directory, or S3 on moto's server over
HTTP); the runtime fetches it by digest, verifies every file, and serves V1 + V2. A tampered file is
refused by name before anything is loaded, and nothing is left behind in TMPDIR.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from revisions.digest import DIGEST_ALGORITHM
from revisions.store import LocalArtifactStore
from revisions.store_s3 import S3ArtifactStore
from tests.functions.artifact_runtime import (
    REPO,
    S3_CREDENTIALS,
    ZEROSERVE,
    artifact_uri,
    put_function,
    run_to_exit,
    running,
    runtime_env,
)
from tests.polling import wait_for
from tests.revisions.conftest import moto_endpoint, s3_bucket  # noqa: F401  (fixtures: moto's S3 on 127.0.0.1)

IRIS = REPO / "examples" / "iris"
SAMPLE = json.loads((IRIS / "sample.json").read_text())
PREFIX = "zeroserve/artifacts"


def leftovers(tmp_dir: Path) -> list[str]:
    return sorted(p.name for p in tmp_dir.glob("zeroserve-runtime-*"))


def check_serves_iris(url: str, revision: str | None = None) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v2/health/ready").status_code == 200
        response = client.post("/v2/models/iris/infer", json=SAMPLE)
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert output["name"] == "probabilities" and output["shape"] == [2, 3]
        if revision:
            assert response.headers["zeroserve-revision"] == revision
        v1 = client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert v1.status_code == 200 and len(v1.json()["predictions"][0]) == 3


def test_serves_a_revision_from_a_file_store_and_cleans_up(tmp_path: Path) -> None:
    store = tmp_path / "store"
    digest = put_function(LocalArtifactStore(store), IRIS)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = runtime_env(scratch, K_REVISION="iris-00003")
    with running([str(ZEROSERVE), "serve", "--artifact", artifact_uri(f"file://{store}", digest), "--port", "0"],
                 env) as runtime:
        assert "every file verified" in runtime.text
        assert "revision iris-00003" in runtime.text  # K_REVISION (set by Knative) names the revision
        check_serves_iris(runtime.url, revision="iris-00003")
        assert len(leftovers(scratch)) == 1
    wait_for(lambda: not leftovers(scratch), "the runtime's private directory to be removed on SIGTERM", timeout=10)


def test_serves_a_revision_from_s3_on_port_from_env(tmp_path: Path, moto_endpoint: str,  # noqa: F811
                                                    s3_bucket) -> None:  # noqa: F811
    client, bucket = s3_bucket
    digest = put_function(S3ArtifactStore(bucket, PREFIX, client=client), IRIS)
    # Knative sets PORT; the runtime listens there when --port is not given (0: any free port, for the test).
    env = runtime_env(tmp_path, **S3_CREDENTIALS, AWS_ENDPOINT_URL=moto_endpoint, PORT="0")
    with running([str(ZEROSERVE), "serve", "--artifact", artifact_uri(f"s3://{bucket}/{PREFIX}", digest)],
                 env) as runtime:
        assert f"from s3://{bucket}/{PREFIX}" in runtime.text
        check_serves_iris(runtime.url)


def _tamper_local(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    store = LocalArtifactStore(tmp_path / "store")
    digest = put_function(store, IRIS)
    model = store.objects_root / digest.partition(":")[2] / "model.onnx"
    model.chmod(0o600)
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    return artifact_uri(f"file://{store.root}", digest), runtime_env(tmp_path)


def _tamper_s3(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    endpoint = request.getfixturevalue("moto_endpoint")
    client, bucket = request.getfixturevalue("s3_bucket")
    digest = put_function(S3ArtifactStore(bucket, PREFIX, client=client), IRIS)
    key = f"{PREFIX}/objects/{DIGEST_ALGORITHM}/{digest.partition(':')[2]}/model.onnx"
    client.put_object(Bucket=bucket, Key=key, Body=b"not the model that was digested")
    return (artifact_uri(f"s3://{bucket}/{PREFIX}", digest),
            runtime_env(tmp_path, **S3_CREDENTIALS, ZEROSERVE_S3_ENDPOINT_URL=endpoint))


@pytest.mark.parametrize("tamper", [_tamper_local, _tamper_s3], ids=["file", "s3"])
def test_a_tampered_artifact_is_refused_naming_the_file(tmp_path: Path, request: pytest.FixtureRequest,
                                                         tamper) -> None:
    uri, env = tamper(tmp_path, request)
    result = run_to_exit([str(ZEROSERVE), "serve", "--artifact", uri, "--port", "0"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "model.onnx: content does not match its recorded sha256" in result.stderr
    assert uri.rpartition("@")[2] in result.stderr  # the digest
    assert "zeroserve: serving" not in result.stdout  # nothing was served
    assert "Traceback" not in result.stderr
    assert not leftovers(tmp_path)


def test_an_artifact_missing_from_the_store_is_named(tmp_path: Path) -> None:
    store = tmp_path / "store"
    LocalArtifactStore(store)
    digest = f"{DIGEST_ALGORITHM}:{'ab' * 32}"
    result = run_to_exit([str(ZEROSERVE), "serve", "--artifact", artifact_uri(f"file://{store}", digest)],
                         runtime_env(tmp_path))
    assert result.returncode == 1
    assert f"artifact {digest} is not in the store file://{store}" in result.stderr
    missing = run_to_exit([str(ZEROSERVE), "serve", "--artifact", f"file://{tmp_path}/nowhere@{digest}"],
                          runtime_env(tmp_path))
    assert missing.returncode == 1 and "no such directory" in missing.stderr
    assert not (tmp_path / "nowhere").exists()  # a read never creates a store


def test_an_unreachable_s3_endpoint_fails_naming_the_store(tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    digest = f"{DIGEST_ALGORITHM}:{'cd' * 32}"
    env = runtime_env(tmp_path, **S3_CREDENTIALS, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    result = run_to_exit([str(ZEROSERVE), "serve", "--artifact", f"s3://models/zs@{digest}"], env)
    assert result.returncode == 1
    assert f"artifact store s3://models/zs (endpoint http://127.0.0.1:{port})" in result.stderr
    assert "Traceback" not in result.stderr and not leftovers(tmp_path)


@pytest.mark.parametrize(("value", "message"), [
    ("", "the artifact URI is empty"),
    ("s3://models/zeroserve", "names no digest"),
    ("s3://models/zeroserve@sha256:1234", "is not a revision digest"),
    (f"http://example.com/a@sha256:{'0' * 64}", "use s3://bucket/prefix or file:///path"),
    (f"file://relative/dir@sha256:{'0' * 64}", "needs an absolute path"),
    (f"s3://Bad_Bucket/p@sha256:{'0' * 64}", "is not an S3 bucket name"),
])
def test_bad_artifact_uris_are_usage_errors(tmp_path: Path, value: str, message: str) -> None:
    result = run_to_exit([str(ZEROSERVE), "serve", "--artifact", value], runtime_env(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    if not value:
        assert "ZEROSERVE_ARTIFACT" in result.stderr  # what the runtime image reads it from


def test_dir_and_artifact_are_exclusive(tmp_path: Path) -> None:
    result = run_to_exit([str(ZEROSERVE), "serve", str(IRIS), "--artifact", f"file:///x@sha256:{'0' * 64}"],
                         runtime_env(tmp_path))
    assert result.returncode == 2 and "either a function directory or --artifact" in result.stderr
    assert run_to_exit([str(ZEROSERVE), "serve"], runtime_env(tmp_path)).returncode == 2


def test_serve_dir_still_works_and_takes_port_from_env(tmp_path: Path) -> None:
    with running([str(ZEROSERVE), "serve", str(IRIS)], runtime_env(tmp_path, PORT="0")) as runtime:
        check_serves_iris(runtime.url)
