"""The Lambda handler of the runtime image, with the revision's artifact on moto's S3 over real HTTP.

The handler's init fetches examples/iris by digest, verifies it and loads it once; then real Function
URL events (payload 2.0) go through mangum: KServe V1 JSON, V2 JSON, V2 with the binary tensor
extension (base64-encoded both ways), and errors that must come back as 4xx JSON. The module-level init
that Lambda's runtime client performs is exercised in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploy.aws_lambda.runtime import LambdaInitError, LambdaRuntime, prepare
from protocol.v2_codec import decode_infer_response, encode_infer_request
from revisions.digest import DIGEST_ALGORITHM
from revisions.store_s3 import S3ArtifactStore
from tests.deploy.aws_lambda.conftest import CREDENTIALS, REGION, aws_client
from tests.deploy.aws_lambda.events import answer_body, function_url_event
from tests.functions.artifact_runtime import REPO, artifact_uri, put_function, runtime_env

IRIS = REPO / "examples" / "iris"
PREFIX = "zeroserve/artifacts"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4]], dtype=np.float32)
PROCESS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
                       "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"], "AWS_REGION": REGION}


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str) -> Iterator[tuple[Any, str]]:
    client = aws_client("s3", moto_endpoint)
    name = f"zs-lambda-{Path(__file__).stem.replace('_', '-')}"
    client.create_bucket(Bucket=name)
    yield client, name


@pytest.fixture(scope="module")
def iris_artifact(bucket: tuple[Any, str]) -> str:
    client, name = bucket
    digest = put_function(S3ArtifactStore(name, PREFIX, client=client), IRIS)
    return artifact_uri(f"s3://{name}/{PREFIX}", digest)


@pytest.fixture(scope="module")
def runtime(iris_artifact: str, moto_endpoint: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaRuntime]:
    with pytest.MonkeyPatch.context() as patch:  # boto3's chain reads the process environment, as on Lambda
        for name, value in PROCESS_CREDENTIALS.items():
            patch.setenv(name, value)
        environ = {"ZEROSERVE_ARTIFACT": iris_artifact, "ZEROSERVE_REVISION": "iris-00007",
                   "ZEROSERVE_S3_ENDPOINT_URL": moto_endpoint, "TMPDIR": str(tmp_path_factory.mktemp("lambda-tmp"))}
        prepared = prepare(environ)
        try:
            yield prepared
        finally:
            prepared.close()


def invoke(runtime: LambdaRuntime, event: dict[str, Any]) -> dict[str, Any]:
    return runtime.handler(event, None)


def test_v2_json_infer_through_a_function_url_event(runtime: LambdaRuntime) -> None:
    sample = (IRIS / "sample.json").read_text()
    result = invoke(runtime, function_url_event("POST", "/v2/models/iris/infer", sample,
                                                {"content-type": "application/json"}, base64_body=False))
    assert result["statusCode"] == 200
    assert result["headers"]["zeroserve-revision"] == "iris-00007"
    assert result["isBase64Encoded"] is False  # JSON answers travel as text
    answer = json.loads(answer_body(result))
    (output,) = answer["outputs"]
    assert answer["model_name"] == "iris" and answer["id"] == "iris-sample"
    assert output["name"] == "probabilities" and output["shape"] == [2, 3]
    assert np.allclose(np.asarray(output["data"]).reshape(2, 3).sum(axis=1), 1.0, atol=1e-5)


def test_v1_json_predict_through_a_function_url_event(runtime: LambdaRuntime) -> None:
    body = json.dumps({"instances": ROWS.tolist()})
    result = invoke(runtime, function_url_event("POST", "/v1/models/iris:predict", body))  # base64, as Lambda may
    assert result["statusCode"] == 200, answer_body(result)
    predictions = json.loads(answer_body(result))["predictions"]
    assert len(predictions) == 2 and all(len(p) == 3 and abs(sum(p) - 1) < 1e-5 for p in predictions)


def test_v2_binary_extension_base64_both_ways(runtime: LambdaRuntime) -> None:
    encoded = encode_infer_request({"input": ROWS}, binary=True, request_id="lambda-binary", binary_data_output=True)
    headers = {"Inference-Header-Content-Length": str(encoded.header_length)}
    result = invoke(runtime, function_url_event("POST", "/v2/models/iris/infer", encoded.body(), headers))
    assert result["statusCode"] == 200, answer_body(result)
    assert result["isBase64Encoded"] is True  # binary answers travel base64-encoded through Lambda
    header_length = int(result["headers"]["inference-header-content-length"])
    outputs = decode_infer_response(answer_body(result), header_length)
    json_result = invoke(runtime, function_url_event("POST", "/v2/models/iris/infer", json.dumps(
        {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": ROWS.ravel().tolist()}]})))
    json_outputs = json.loads(answer_body(json_result))["outputs"][0]["data"]
    assert outputs["probabilities"].shape == (2, 3)
    assert np.allclose(outputs["probabilities"].ravel(), json_outputs, atol=1e-6)


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), [
    ("POST", "/v2/models/iris/infer", json.dumps({"inputs": [{"name": "petals", "shape": [1, 4], "datatype": "FP32",
                                                             "data": [1, 2, 3, 4]}]}), 400, "petals"),
    ("POST", "/v2/models/iris/infer", "{not json", 400, ""),
    ("POST", "/v2/models/nope/infer", "{}", 404, "model 'nope'"),
    ("GET", "/v2/models/iris/infer", None, 405, "POST"),
])
def test_a_bad_request_gets_a_4xx_json_error(runtime: LambdaRuntime, method: str, path: str, body: str | None,
                                             status: int, fragment: str) -> None:
    result = invoke(runtime, function_url_event(method, path, body))
    assert result["statusCode"] == status
    assert result["headers"]["content-type"].startswith("application/json")
    error = json.loads(answer_body(result))["error"]
    assert fragment in error and "Traceback" not in error


def test_the_lifespan_is_off_so_invocations_leave_the_model_loaded(runtime: LambdaRuntime) -> None:
    # With mangum's default lifespan every invocation would run startup and shutdown around the request
    # (mangum #342), and this app's shutdown closes the model: the second request would fail.
    assert runtime.handler.lifespan == "off"
    for _ in range(3):
        assert invoke(runtime, function_url_event("GET", "/v2/health/ready"))["statusCode"] == 200
    assert runtime.app.ready
    sample = (IRIS / "sample.json").read_text()
    assert invoke(runtime, function_url_event("POST", "/v2/models/iris/infer", sample))["statusCode"] == 200


def test_a_tampered_artifact_fails_the_init_naming_the_file(bucket: tuple[Any, str], moto_endpoint: str,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, name = bucket
    prefix = "zeroserve/tampered"
    digest = put_function(S3ArtifactStore(name, prefix, client=client), IRIS)
    client.put_object(Bucket=name, Key=f"{prefix}/objects/{DIGEST_ALGORITHM}/{digest.partition(':')[2]}/model.onnx",
                      Body=b"not the model that was digested")
    for key, value in PROCESS_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    environ = {"ZEROSERVE_ARTIFACT": artifact_uri(f"s3://{name}/{prefix}", digest),
               "ZEROSERVE_S3_ENDPOINT_URL": moto_endpoint, "TMPDIR": str(tmp_path)}
    with pytest.raises(LambdaInitError) as failed:
        prepare(environ)
    assert "model.onnx: content does not match its recorded sha256" in str(failed.value)
    assert digest in str(failed.value)
    assert list(tmp_path.iterdir()) == []  # nothing left in /tmp for the next init


@pytest.mark.parametrize(("value", "fragment"), [
    ("", "ZEROSERVE_ARTIFACT: the artifact URI is empty"),
    ("s3://models/zeroserve", "ZEROSERVE_ARTIFACT: artifact URI 's3://models/zeroserve' names no digest"),
])
def test_a_missing_or_bad_artifact_uri_fails_the_init_naming_the_variable(value: str, fragment: str,
                                                                          tmp_path: Path) -> None:
    with pytest.raises(LambdaInitError, match=fragment):
        prepare({"ZEROSERVE_ARTIFACT": value, "TMPDIR": str(tmp_path)})
    assert list(tmp_path.iterdir()) == []


HANDLE_ONE = """
import json, sys
import deploy.aws_lambda.handler as lambda_handler
from tests.deploy.aws_lambda.events import function_url_event
result = lambda_handler.handler(function_url_event("POST", "/v2/models/iris/infer", sys.stdin.read()), None)
print(json.dumps({"status": result["statusCode"], "revision": result["headers"].get("zeroserve-revision")}))
"""


def test_importing_the_handler_module_is_the_init_in_a_fresh_process(iris_artifact: str, moto_endpoint: str,
                                                                     tmp_path: Path) -> None:
    env = runtime_env(tmp_path, **PROCESS_CREDENTIALS, AWS_ENDPOINT_URL=moto_endpoint,
                      ZEROSERVE_ARTIFACT=iris_artifact, ZEROSERVE_REVISION="iris-00007", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", HANDLE_ONE], input=(IRIS / "sample.json").read_text(), env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": 200, "revision": "iris-00007"}
    assert "zeroserve: iris iris-00007 fetched sha256:" in result.stderr and "every file verified" in result.stderr

    broken = runtime_env(tmp_path, **PROCESS_CREDENTIALS, AWS_ENDPOINT_URL=moto_endpoint, PYTHONPATH=str(REPO),
                         ZEROSERVE_ARTIFACT=iris_artifact.replace(iris_artifact[-64:], "0" * 64))
    failed = subprocess.run([sys.executable, "-c", "import deploy.aws_lambda.handler"], env=broken, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0
    assert "LambdaInitError" in failed.stderr and "is not in the store s3://" in failed.stderr
