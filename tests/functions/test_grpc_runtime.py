"""The runtime's gRPC server (functions/grpc_server.py) in its own process, driven by tritonclient.grpc (sync and
aio) and by raw calls with the repository's messages where tritonclient cannot say it (typed contents, metadata)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from protocol.grpc import grpc_predict_v2_pb2 as pb
from protocol.grpc.service import METHODS, method_path
from protocol.grpc.tensors import decode_infer_response
from tests.functions.artifact_runtime import running
from tests.functions.conftest import EXAMPLES, FIXTURE_FUNCTIONS, READY, serve_function
from tests.polling import wait_for

GRPC_READY = re.compile(r"^zeroserve: serving gRPC .* at (127\.0\.0\.1:\d+)$", re.M)
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4]], dtype=np.float32)


def grpc_address(served) -> str:
    match = wait_for(lambda: GRPC_READY.search(served.text), "the runtime's gRPC ready line", timeout=30)
    return match.group(1)


@pytest.fixture(scope="module")
def multi_io() -> Iterator[str]:
    with serve_function(FIXTURE_FUNCTIONS / "multi-io", "--grpc-port", "0", "--revision", "multi-io-00001") as served:
        yield grpc_address(served)


@pytest.fixture(scope="module")
def client(multi_io: str) -> Iterator[triton.InferenceServerClient]:
    with closing(triton.InferenceServerClient(multi_io)) as connected:
        yield connected


def raw_call(address: str, method: str, request: object) -> tuple[object, grpc.Call]:
    request_class, response_class = METHODS[method]
    with grpc.insecure_channel(address) as channel:
        stub = channel.unary_unary(method_path(method), request_serializer=request_class.SerializeToString,
                                   response_deserializer=response_class.FromString)
        return stub.with_call(request, timeout=30)


def multi_io_inputs(words: list[bytes], rows: int = 2) -> list[triton.InferInput]:
    values = triton.InferInput("values", [rows, 3], "FP32")
    values.set_data_from_numpy(np.arange(rows * 3, dtype=np.float32).reshape(rows, 3))
    text = triton.InferInput("words", [len(words)], "BYTES")
    text.set_data_from_numpy(np.array(words, dtype=object))
    return [values, text]


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("multi-io") and client.is_model_ready("multi-io", "multi-io-00001")
    server = client.get_server_metadata()
    assert (server.name, list(server.extensions)) == ("zeroserve", ["binary_tensor_data"])
    metadata = client.get_model_metadata("multi-io", as_json=True)
    assert metadata["name"] == "multi-io" and metadata["versions"] == ["multi-io-00001"]
    assert metadata["platform"] == "python"
    assert metadata["inputs"] == [{"name": "values", "datatype": "FP32", "shape": ["-1", "3"]},
                                  {"name": "words", "datatype": "BYTES", "shape": ["-1"]}]
    assert [o["name"] for o in metadata["outputs"]] == ["doubled", "upper", "length"]


def test_infer_raw_contents_with_bytes(client: triton.InferenceServerClient) -> None:
    result = client.infer("multi-io", multi_io_inputs([b"ab", "c\u00e9".encode()]), request_id="req-1")
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("req-1", "multi-io", "multi-io-00001")
    np.testing.assert_array_equal(result.as_numpy("doubled"), np.arange(6, dtype=np.float32).reshape(2, 3) * 2)
    assert result.as_numpy("upper").tolist() == [b"AB", "C\u00e9".encode().upper()]
    assert result.as_numpy("length").tolist() == [2, 3]


def test_requested_outputs_only_in_request_order(client: triton.InferenceServerClient) -> None:
    result = client.infer("multi-io", multi_io_inputs([b"x", b"yz"]),
                          outputs=[triton.InferRequestedOutput("length"), triton.InferRequestedOutput("upper")])
    assert [o.name for o in result.get_response().outputs] == ["length", "upper"]
    assert result.as_numpy("doubled") is None


def test_typed_contents_and_revision_metadata(multi_io: str) -> None:
    request = pb.ModelInferRequest(model_name="multi-io")
    values = request.inputs.add(name="values", datatype="FP32", shape=[1, 3])
    values.contents.fp32_contents.extend([1.5, 2.0, -3.0])
    words = request.inputs.add(name="words", datatype="BYTES", shape=[1])
    words.contents.bytes_contents.append(b"typed")
    response, call = raw_call(multi_io, "ModelInfer", request)
    assert isinstance(response, pb.ModelInferResponse)
    outputs = decode_infer_response(response)
    assert outputs["doubled"].tolist() == [[3.0, 4.0, -6.0]] and outputs["upper"].tolist() == [b"TYPED"]
    assert ("zeroserve-revision", "multi-io-00001") in tuple(call.trailing_metadata())


@pytest.mark.parametrize(("mutate", "code", "message"), [
    (lambda r: setattr(r, "model_name", "iris"), grpc.StatusCode.NOT_FOUND,
     "model 'iris' is not served here; this function serves 'multi-io'"),
    (lambda r: setattr(r, "model_version", "multi-io-00009"), grpc.StatusCode.UNIMPLEMENTED,
     "version 'multi-io-00009' is not served here"),
    (lambda r: r.inputs[0].shape.__setitem__(1, 4), grpc.StatusCode.INVALID_ARGUMENT,
     "input 'values': shape [1, 4] of FP32 needs 16 bytes but its raw_input_contents holds 12"),
    (lambda r: r.inputs[1].ClearField("datatype"), grpc.StatusCode.INVALID_ARGUMENT,
     "input 'words': unknown datatype ''"),
    (lambda r: r.raw_input_contents.pop(), grpc.StatusCode.INVALID_ARGUMENT,
     "raw_input_contents has 1 buffers for 2 inputs"),
    (lambda r: r.inputs[1].contents.bytes_contents.append(b"x"), grpc.StatusCode.INVALID_ARGUMENT,
     "input 'words': has contents while the request uses raw_input_contents"),
    (lambda r: r.outputs.add(name="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "unknown output 'nope' requested from model 'multi-io'"),
])
def test_bad_requests_get_the_code_of_the_rest_error_table(multi_io: str, mutate, code: grpc.StatusCode,
                                                           message: str) -> None:
    request = pb.ModelInferRequest(model_name="multi-io")
    request.inputs.add(name="values", datatype="FP32", shape=[1, 3])
    request.raw_input_contents.append(np.ones((1, 3), np.float32).tobytes())
    request.inputs.add(name="words", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(b"\x01\x00\x00\x00a")
    mutate(request)
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(multi_io, "ModelInfer", request)
    assert caught.value.code() == code
    assert message in caught.value.details()


def test_typed_contents_out_of_range_names_the_tensor(multi_io: str) -> None:
    request = pb.ModelInferRequest(model_name="multi-io")
    tensor = request.inputs.add(name="values", datatype="INT8", shape=[2])
    tensor.contents.int_contents.extend([1, 300])
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(multi_io, "ModelInfer", request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "input 'values': 300 is out of range for INT8 (-128..127)"


def test_unknown_model_metadata_is_not_found(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("iris")
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert "this function serves 'multi-io'" in caught.value.message()


def test_aio_client_concurrent_calls(multi_io: str) -> None:
    async def run() -> list[list[int]]:
        client = triton_aio.InferenceServerClient(multi_io)
        try:
            results = await asyncio.gather(*(client.infer("multi-io", multi_io_inputs([b"w" * n], rows=1),
                                                          request_id=str(n)) for n in range(1, 9)))
            return [r.as_numpy("length").tolist() for r in results]
        finally:
            await client.close()

    assert asyncio.run(run()) == [[n] for n in range(1, 9)]


def test_a_raising_model_is_internal_with_its_message() -> None:
    with serve_function(FIXTURE_FUNCTIONS / "raising", "--grpc-port", "0") as served:
        address = grpc_address(served)
        with closing(triton.InferenceServerClient(address)) as client:
            tensor = triton.InferInput("x", [2], "FP32")
            tensor.set_data_from_numpy(np.zeros(2, np.float32))
            with pytest.raises(InferenceServerException) as caught:
                client.infer("raising", [tensor])
    assert caught.value.status() == "StatusCode.INTERNAL"
    assert "raised ValueError: weights are missing (request id " in caught.value.message()


def test_onnx_model_over_grpc_matches_rest() -> None:
    with serve_function(EXAMPLES / "iris", "--grpc-port", "0") as served:
        address = grpc_address(served)
        with closing(triton.InferenceServerClient(address)) as client:
            tensor = triton.InferInput("input", list(ROWS.shape), "FP32")
            tensor.set_data_from_numpy(ROWS)
            probabilities = client.infer("iris", [tensor]).as_numpy("probabilities")
    assert probabilities.shape == (2, 3) and probabilities.argmax(axis=1).tolist() == [0, 2]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_zeroserve_serve_takes_grpc_port_too() -> None:
    command = [sys.executable, "-m", "zeroserve.cli", "serve", str(EXAMPLES / "echo-python"), "--port", "0",
               "--grpc-port", "0"]
    with running(command, {**os.environ, "PYTHONUNBUFFERED": "1"}, ready=READY, stop_timeout=10) as served:
        with closing(triton.InferenceServerClient(grpc_address(served))) as client:
            assert client.get_model_metadata("echo-python").name == "echo-python"


def test_what_a_zygote_imports_loads_no_grpc() -> None:
    # grpc's core starts threads; a zygote that had them would fork replicas with a broken copy (docs/grpc.md).
    check = ("import sys; from deploy.local.zygote import PREIMPORTS, preimport; import deploy.local.replica, "
             "functions.server; errors = preimport(PREIMPORTS['default']); "
             "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')), errors)")
    output = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert output.stdout.strip() == "[] {}", output.stdout + output.stderr
