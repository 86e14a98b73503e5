"""The runtime under uvicorn in its own process, driven by tritonclient's sync HTTP client and raw HTTP."""

from __future__ import annotations

import http.client
import json
from contextlib import closing

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4], [5.9, 3.0, 4.2, 1.5]], dtype=np.float32)


@pytest.fixture(scope="module")
def iris(iris_server):
    with closing(triton.InferenceServerClient(iris_server.host_port)) as client:
        yield client


@pytest.fixture(scope="module")
def multi(multi_io_server):
    with closing(triton.InferenceServerClient(multi_io_server.host_port)) as client:
        yield client


def _iris_input(binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("input", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=binary)
    return tensor


def test_health_and_metadata(iris) -> None:
    assert iris.is_server_live() and iris.is_server_ready()
    assert iris.is_model_ready("iris") and iris.is_model_ready("iris", "iris-00001")
    metadata = iris.get_model_metadata("iris")
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert metadata["versions"] == ["iris-00001"] and metadata["platform"] == "onnx_onnxv1"
    assert "binary_tensor_data" in iris.get_server_metadata()["extensions"]


@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, True), (False, False), (True, False), (False, True)])
def test_binary_and_json_inputs_and_outputs(iris, binary_in: bool, binary_out: bool) -> None:
    result = iris.infer("iris", [_iris_input(binary_in)], request_id=f"req-{binary_in}-{binary_out}",
                        outputs=[triton.InferRequestedOutput("probabilities", binary_data=binary_out)])
    response = result.get_response()
    assert response["id"] == f"req-{binary_in}-{binary_out}" and response["model_name"] == "iris"
    assert ("parameters" in response["outputs"][0]) == binary_out
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # The committed model tells the two clearly separated species apart.
    assert probabilities.argmax(axis=1)[:2].tolist() == [0, 2]


def test_no_requested_outputs_means_all_outputs_in_binary(iris) -> None:
    result = iris.infer("iris", [_iris_input(True)])  # tritonclient then asks for binary_data_output
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 3 * 3 * 4
    assert result.as_numpy("probabilities").shape == (3, 3)


def test_mixed_binary_and_json_inputs_of_different_datatypes(multi) -> None:
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    words = np.array([b"abc", "\u00e9t\u00e9".encode()], dtype=object)
    first = triton.InferInput("values", [2, 3], "FP32")
    first.set_data_from_numpy(values, binary_data=True)
    second = triton.InferInput("words", [2], "BYTES")
    second.set_data_from_numpy(words, binary_data=False)
    outputs = [triton.InferRequestedOutput("upper", binary_data=True),
               triton.InferRequestedOutput("doubled", binary_data=False),
               triton.InferRequestedOutput("length", binary_data=True)]
    result = multi.infer("multi-io", [first, second], outputs=outputs, request_id="mixed")
    assert [o["name"] for o in result.get_response()["outputs"]] == ["upper", "doubled", "length"]
    assert result.as_numpy("doubled").tolist() == (values * 2).tolist()
    assert result.as_numpy("upper").tolist() == [b"ABC", "\u00e9t\u00e9".encode().upper()]
    assert result.as_numpy("length").tolist() == [3, 5]


def test_only_requested_outputs_are_returned(multi) -> None:
    tensor = triton.InferInput("values", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
    words = triton.InferInput("words", [1], "BYTES")
    words.set_data_from_numpy(np.array([b"x"], dtype=object))
    result = multi.infer("multi-io", [tensor, words], outputs=[triton.InferRequestedOutput("length")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["length"]


def test_unknown_model_raises_404_with_the_servers_message(iris) -> None:
    with pytest.raises(InferenceServerException) as info:
        iris.infer("no-such-model", [_iris_input(True)])
    assert info.value.status() == "404"
    assert "model 'no-such-model' is not served here" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        iris.infer("iris", [_iris_input(True)], model_version="7")
    assert info.value.status() == "501" and "version '7'" in info.value.message()


def test_gzip_compressed_request_body(iris) -> None:
    result = iris.infer("iris", [_iris_input(True)], request_compression_algorithm="gzip")
    assert result.as_numpy("probabilities").shape == (3, 3)


def _raw_post(host_port: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(host_port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_request_without_content_type_and_with_a_wrong_one(iris_server) -> None:
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                   "data": ROWS[0].tolist()}]}).encode()
    for headers in ({}, {"Content-Type": "application/octet-stream"}, {"Content-Type": "text/plain"}):
        status, response_headers, payload = _raw_post(iris_server.host_port, "/v2/models/iris/infer", body, headers)
        assert status == 200, payload
        assert response_headers["zeroserve-revision"] == "iris-00001"
        assert json.loads(payload)["outputs"][0]["shape"] == [1, 3]


def test_v1_instances_predictions_equal_the_v2_result(iris, iris_server) -> None:
    v2 = iris.infer("iris", [_iris_input(False)], outputs=[triton.InferRequestedOutput("probabilities", False)])
    body = json.dumps({"instances": ROWS.tolist()}).encode()
    status, headers, payload = _raw_post(iris_server.host_port, "/v1/models/iris:predict", body, {})
    assert status == 200 and headers["zeroserve-revision"] == "iris-00001"
    predictions = np.array(json.loads(payload)["predictions"], dtype=np.float32)
    # The same rows through the same session: equal but for float32 rounding (kernels may vary with the
    # batch a request lands in), and the same class for every row.
    np.testing.assert_allclose(predictions, v2.as_numpy("probabilities"), rtol=1e-5, atol=1e-7)
    assert predictions.argmax(axis=1).tolist() == v2.as_numpy("probabilities").argmax(axis=1).tolist()
    status, _, payload = _raw_post(iris_server.host_port, "/v1/models/iris:predict",
                                   json.dumps({"inputs": ROWS.tolist()}).encode(), {})
    assert status == 200
    np.testing.assert_allclose(np.array(json.loads(payload)["outputs"], np.float32), predictions, rtol=1e-5, atol=1e-7)


def test_v1_and_probe_routes(iris_server) -> None:
    connection = http.client.HTTPConnection(iris_server.host_port, timeout=30)
    try:
        for path, expected in [("/", {"status": "alive"}), ("/healthz", {"ready": True}),
                               ("/v1/models", {"models": ["iris"]}),
                               ("/v1/models/iris", {"name": "iris", "ready": True}),
                               ("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True})]:
            connection.request("GET", path)
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (200, expected), path
    finally:
        connection.close()
