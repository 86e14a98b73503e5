"""The runtime outside the platform never hands the store's credentials to the function's code.

In a Knative pod the S3 credentials arrive as environment variables (from a Kubernetes Secret). The
runtime fetches with them, then execs the server with a fresh environment, so the function's code
finds them neither in os.environ nor in /proc/self/environ (which keeps a process's *initial*
environment whatever os.environ says later); it does get its own `env` and Knative's K_REVISION.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from revisions.store_s3 import S3ArtifactStore
from tests.functions.artifact_runtime import S3_CREDENTIALS, ZEROSERVE, artifact_uri, put_function, running, runtime_env
from tests.revisions.conftest import moto_endpoint, s3_bucket  # noqa: F401  (fixtures: moto's S3 on 127.0.0.1)

PROBE = '''
import os

import numpy as np


class Probe:
    inputs = [{"name": "x", "datatype": "FP32", "shape": [-1]}]
    outputs = [{"name": "seen", "datatype": "INT64", "shape": [5]}]

    def predict(self, inputs):
        with open("/proc/self/environ", "rb") as handle:
            initial = handle.read()
        return {"seen": np.array([
            "AWS_SECRET_ACCESS_KEY" in os.environ, b"testing-secret" in initial,
            "ZEROSERVE_S3_ENDPOINT_URL" in os.environ or b"ZEROSERVE_S3_ENDPOINT_URL" in initial,
            os.environ.get("GREETING") == "hello", os.environ.get("K_REVISION") == "probe-00001",
        ], dtype=np.int64)}
'''


def test_function_code_never_sees_the_store_credentials(tmp_path: Path, moto_endpoint: str,  # noqa: F811
                                                        s3_bucket) -> None:  # noqa: F811
    function = tmp_path / "probe"
    function.mkdir()
    (function / "handler.py").write_text(PROBE)
    (function / "function.yaml").write_text("name: probe\nhandler: handler:Probe\nenv: {GREETING: hello}\n")
    client, bucket = s3_bucket
    digest = put_function(S3ArtifactStore(bucket, "zs", client=client), function)
    env = runtime_env(tmp_path, **S3_CREDENTIALS, ZEROSERVE_S3_ENDPOINT_URL=moto_endpoint, K_REVISION="probe-00001")
    with running([str(ZEROSERVE), "serve", "--artifact", artifact_uri(f"s3://{bucket}/zs", digest), "--port", "0"],
                 env) as runtime:
        response = httpx.post(f"{runtime.url}/v2/models/probe/infer", timeout=30, json={
            "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]})
        assert response.status_code == 200, response.text
        secret_in_environ, secret_in_initial, endpoint_seen, own_env, revision = response.json()["outputs"][0]["data"]
        assert (secret_in_environ, secret_in_initial, endpoint_seen) == (0, 0, 0)
        assert (own_env, revision) == (1, 1)  # the function's own env and Knative's contract do arrive
