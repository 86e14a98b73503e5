"""Bad input gets the right 4xx and {"error": "..."} naming the fault; fuzzed bodies never get a 5xx."""

from __future__ import annotations

import asyncio
import gzip
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.app import FunctionApp, create_app
from protocol.tensors import DATATYPES

from .conftest import EXAMPLES, FIXTURE_FUNCTIONS, asgi_client

LIMIT = 4096
ROW = [5.1, 3.5, 1.4, 0.2]


def infer_body(**tensor: object) -> bytes:
    spec = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW, **tensor}
    return json.dumps({"inputs": [spec]}).encode()


def binary_request(doc: dict, blob: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(doc).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


@pytest.fixture(scope="module")
def iris_app() -> FunctionApp:
    app = create_app(EXAMPLES / "iris", revision="iris-00001", max_body_bytes=LIMIT)
    yield app
    app.runner.close()


def call(app: FunctionApp, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    async def go():
        async with asgi_client(app) as client:
            return await client.request(method, path, content=body, headers=headers or {})
    return asyncio.run(go())


INFER = "/v2/models/iris/infer"
_missing_bytes = binary_request(
    {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]},
    b"\x00" * 8)
_extra_bytes = binary_request({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}]},
                              b"\x00" * 3)

CASES = [
    # (id, method, path, body, headers, status, fragment of the error)
    ("malformed-json", "POST", INFER, b'{"inputs": [', {}, 400, "malformed JSON"),
    ("not-an-object", "POST", INFER, b"[1, 2]", {}, 400, "must be a JSON object"),
    ("no-inputs", "POST", INFER, b"{}", {}, 400, "inputs is required"),
    ("unknown-input", "POST", INFER, infer_body(name="petals"), {}, 400, "unknown input 'petals' for model 'iris'"),
    ("missing-input", "POST", INFER, b'{"inputs": []}', {}, 400, "model 'iris' needs input 'input'"),
    ("wrong-datatype", "POST", INFER, infer_body(datatype="FP64"), {}, 400,
     "input 'input' has datatype FP64 but model 'iris' expects FP32"),
    ("wrong-shape", "POST", INFER, infer_body(shape=[1, 2, 2]), {}, 400, "input 'input' has shape [1, 2, 2]"),
    ("data-vs-shape", "POST", INFER, infer_body(shape=[2, 4]), {}, 400,
     "input 'input': shape [2, 4] needs 8 elements but data has 4"),
    ("string-in-data", "POST", INFER, infer_body(data=[1, 2, "three", 4]), {}, 400, "string 'three'"),
    ("unknown-datatype", "POST", INFER, infer_body(datatype="FLOAT"), {}, 400, "unknown datatype 'FLOAT'"),
    ("negative-dim", "POST", INFER, infer_body(shape=[-1, 4]), {}, 400, "non-negative"),
    ("huge-dim", "POST", INFER, infer_body(shape=[0, 2**64], data=[]), {}, 400, "dimension 18446744073709551616"),
    ("missing-binary", "POST", INFER, *_missing_bytes, 400, "missing binary data"),
    ("extra-binary", "POST", INFER, *_extra_bytes, 400, "3 bytes after the JSON header"),
    ("header-length-text", "POST", INFER, infer_body(), {"Inference-Header-Content-Length": "ten"}, 400,
     "Inference-Header-Content-Length must be an integer"),
    ("header-length-past-body", "POST", INFER, infer_body(), {"Inference-Header-Content-Length": "99999"}, 400,
     "but the body has"),
    ("unknown-output", "POST", INFER, json.dumps({"inputs": json.loads(infer_body())["inputs"],
                                                  "outputs": [{"name": "logits"}]}).encode(), {}, 400,
     "unknown output 'logits'"),
    ("duplicate-input", "POST", INFER, json.dumps({"inputs": json.loads(infer_body())["inputs"] * 2}).encode(), {},
     400, "input 'input' is given more than once"),
    ("too-large", "POST", INFER, b" " * (LIMIT + 1), {}, 413, f"limit of {LIMIT} bytes"),
    ("gzip-bomb", "POST", INFER, gzip.compress(b" " * (LIMIT * 4)), {"Content-Encoding": "gzip"}, 413,
     "decompressed request body exceeds"),
    ("bad-gzip", "POST", INFER, b"not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip data"),
    ("unknown-encoding", "POST", INFER, infer_body(), {"Content-Encoding": "br"}, 415, "Content-Encoding 'br'"),
    ("shared-memory", "POST", INFER, infer_body(parameters={"shared_memory_region": "r0"}), {}, 501,
     "shared memory is not supported"),
    ("unknown-model", "POST", "/v2/models/resnet/infer", infer_body(), {}, 404, "model 'resnet' is not served here"),
    ("unserved-version", "POST", "/v2/models/iris/versions/3/infer", infer_body(), {}, 501,
     "version '3' is not served here"),
    ("unknown-route", "GET", "/v3/anything", b"", {}, 404, "no route for /v3/anything"),
    ("wrong-method", "GET", INFER, b"", {}, 405, "GET is not allowed on /v2/models/iris/infer; use POST"),
    ("wrong-method-health", "DELETE", "/v2/health/ready", b"", {}, 405, "use GET"),
    ("v1-empty-instances", "POST", "/v1/models/iris:predict", b'{"instances": []}', {}, 400, "non-empty list"),
    ("v1-both-forms", "POST", "/v1/models/iris:predict", b'{"instances": [[1]], "inputs": [[1]]}', {}, 400,
     "exactly one of"),
    ("v1-wrong-width", "POST", "/v1/models/iris:predict", b'{"instances": [[1, 2, 3]]}', {}, 400,
     "input 'input' has shape [1, 3]"),
    ("v1-unknown-model", "POST", "/v1/models/resnet:predict", b'{"instances": [[1]]}', {}, 404, "model 'resnet'"),
    ("v1-malformed", "POST", "/v1/models/iris:predict", b"instances=1", {}, 400, "malformed JSON"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "fragment"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_gets_a_named_4xx_error(iris_app, method, path, body, headers, status, fragment) -> None:
    response = call(iris_app, method, path, body, headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert list(payload) == ["error"] and fragment in payload["error"], payload
    assert response.headers["content-type"] == "application/json"
    assert response.headers["zeroserve-revision"] == "iris-00001"
    if status == 405:
        assert response.headers["allow"] in ("GET", "POST")


def test_the_same_app_answers_good_requests(iris_app) -> None:
    response = call(iris_app, "POST", INFER, infer_body())
    assert response.status_code == 200 and response.json()["outputs"][0]["shape"] == [1, 3]


def test_model_failure_is_a_500_with_request_id_and_no_traceback(caplog) -> None:
    app = create_app(FIXTURE_FUNCTIONS / "raising")
    try:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}).encode()
        response = call(app, "POST", "/v2/models/raising/infer", body)
    finally:
        app.runner.close()
    assert response.status_code == 500
    error = response.json()["error"]
    assert "handler 'handler:Broken' raised ValueError: weights are missing" in error
    assert "request id" in error and "Traceback" not in error and "File " not in error
    request_id = error.rsplit("request id ", 1)[1].rstrip(")")
    assert any(request_id in record.getMessage() for record in caplog.records)


def test_not_ready_answers_503_on_probes_and_inference(iris_app) -> None:
    iris_app.ready = False
    try:
        assert call(iris_app, "GET", "/v2/health/ready").status_code == 503
        assert call(iris_app, "GET", "/v2/health/ready").json() == {"ready": False}
        assert call(iris_app, "GET", "/healthz").status_code == 503
        assert call(iris_app, "GET", "/v2/models/iris/ready").json() == {"name": "iris", "ready": False}
        response = call(iris_app, "POST", INFER, infer_body())
        assert response.status_code == 503 and response.json() == {"error": "model 'iris' is not ready"}
        assert call(iris_app, "GET", "/v2/health/live").json() == {"live": True}
    finally:
        iris_app.ready = True


# --- fuzzing ----------------------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
                | st.text(max_size=5))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)
dims = st.integers(-2, 6) | st.sampled_from([0, 0, 2**31, 2**63, 2**64, 10**30]) | json_scalars
tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(["input", "x", ""]) | json_scalars},
    optional={
        "shape": st.lists(dims, max_size=4) | json_values,
        "datatype": st.sampled_from([*DATATYPES, "FP8", ""]) | json_scalars,
        "data": st.lists(json_values, max_size=8) | st.lists(st.floats(allow_nan=False), min_size=4, max_size=4)
        | json_values,
        "parameters": st.fixed_dictionaries({}, optional={
            "binary_data_size": st.integers(-4, 40) | json_scalars,
            "binary_data": st.booleans() | json_scalars,
            "shared_memory_region": st.text(max_size=3),
        }) | json_values,
    },
)
documents = st.fixed_dictionaries({}, optional={
    "id": json_scalars,
    "inputs": st.lists(tensors, max_size=3) | json_values,
    "outputs": st.lists(tensors, max_size=3) | json_values,
    "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": st.booleans() | json_scalars})
    | json_values,
    "instances": json_values,
})
bodies = (documents.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=64)
          | st.tuples(documents, st.binary(max_size=48)).map(lambda p: json.dumps(p[0]).encode() + p[1]))
header_sets = st.fixed_dictionaries({}, optional={
    "Inference-Header-Content-Length": st.integers(-5, 400).map(str)
    | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=4),
    "Content-Type": st.sampled_from(["application/json", "application/octet-stream", "text/plain", ""]),
    "Content-Encoding": st.sampled_from(["gzip", "deflate", "identity", "br"]),
})
paths = st.sampled_from([INFER, "/v2/models/iris/versions/iris-00001/infer", "/v1/models/iris:predict",
                         "/v2/models/iris", "/v2/models/other/infer", "/v2", "/"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(path=paths, method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]), body=bodies, headers=header_sets)
def test_fuzzed_requests_never_get_a_5xx(iris_app, path, method, body, headers) -> None:
    response = call(iris_app, method, path, body if method != "GET" else b"", headers)
    assert response.status_code < 500 or response.status_code == 501, (response.status_code, response.text)
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}
    else:
        assert response.headers["content-type"] in ("application/json", "application/octet-stream")


def test_fuzz_corpus_includes_valid_inference(iris_app) -> None:
    """The fuzzer's space contains successes: a valid binary request is one of its shapes."""
    body, headers = binary_request(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]},
        np.array(ROW, dtype="<f4").tobytes())
    response = call(iris_app, "POST", INFER, body, headers)
    assert response.status_code == 200
