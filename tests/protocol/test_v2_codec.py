"""V2 infer bodies: JSON, binary extension and mixed requests; responses as asked; faults named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protocol.inference_errors import BadRequest, TensorError, Unsupported
from protocol.v2 import InferenceRequest, InferenceResponse
from protocol.v2_codec import (
    RequestedOutput,
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
    parse_header_length,
)


def binary_body(doc: dict, *blobs: bytes) -> tuple[bytes, int]:
    header = json.dumps(doc).encode()
    return header + b"".join(blobs), len(header)


def test_json_request_with_id_outputs_and_parameters() -> None:
    body = json.dumps({
        "id": "42",
        "parameters": {"binary_data_output": True, "custom": 1},
        "inputs": [{"name": "a", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
                   {"name": "b", "shape": [3], "datatype": "BOOL", "data": [True, False, True]}],
        "outputs": [{"name": "y", "parameters": {"binary_data": False}}, {"name": "z"}],
    }).encode()
    request = decode_infer_request(body)
    assert request.id == "42" and request.binary_data_output and request.parameters["custom"] == 1
    assert request.inputs["a"].dtype == np.uint32 and request.inputs["a"].tolist() == [[1, 2], [3, 4]]
    assert request.inputs["b"].tolist() == [True, False, True]
    assert request.outputs == [RequestedOutput("y", False), RequestedOutput("z", None)]
    assert request.output_names == ("y", "z")


def test_mixed_binary_and_json_inputs_in_order() -> None:
    floats = np.arange(6, dtype="<f4")
    words = b"\x03\x00\x00\x00abc\x00\x00\x00\x00"
    body, length = binary_body({"inputs": [
        {"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
        {"name": "n", "shape": [1], "datatype": "INT64", "data": [7]},
        {"name": "w", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(words)}},
    ]}, floats.tobytes(), words)
    request = decode_infer_request(body, parse_header_length(str(length), len(body)))
    assert request.inputs["x"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert request.inputs["n"].tolist() == [7]
    assert request.inputs["w"].tolist() == [b"abc", b""]


def test_response_json_and_binary_outputs_as_requested() -> None:
    request = decode_infer_request(json.dumps({
        "id": "r1", "inputs": [],
        "outputs": [{"name": "b", "parameters": {"binary_data": True}}, {"name": "a"}],
    }).encode())
    outputs = {"a": np.array([[1.5, 2.5]], dtype=np.float32), "b": np.array([1, 2], dtype=np.int16),
               "c": np.zeros(1)}
    encoded = encode_infer_response("m", outputs, request=request, model_version="m-00001")
    assert encoded.header_length is not None
    doc = json.loads(encoded.body()[:encoded.header_length])
    assert doc["id"] == "r1" and doc["model_version"] == "m-00001"
    assert [o["name"] for o in doc["outputs"]] == ["b", "a"]  # requested order, "c" left out
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 4} and "data" not in doc["outputs"][0]
    assert doc["outputs"][1]["data"] == [1.5, 2.5] and doc["outputs"][1]["datatype"] == "FP32"
    back = decode_infer_response(encoded.body(), encoded.header_length)
    assert back["b"].tolist() == [1, 2] and back["a"].tolist() == [[1.5, 2.5]]


def test_request_level_binary_output_and_all_json_by_default() -> None:
    outputs = {"y": np.array(["hi"], dtype=object)}
    plain = encode_infer_response("m", outputs)
    assert plain.header_length is None
    assert json.loads(plain.body())["outputs"][0] == {"name": "y", "datatype": "BYTES", "shape": [1], "data": ["hi"]}
    request = decode_infer_request(b'{"inputs": [], "parameters": {"binary_data_output": true}}')
    binary = encode_infer_response("m", outputs, request=request)
    assert binary.body()[binary.header_length:] == b"\x02\x00\x00\x00hi"


@pytest.mark.parametrize("binary", [False, True])
def test_client_encoding_round_trips_through_server_decoding(binary: bool) -> None:
    inputs = {"f": np.random.default_rng(0).random((3, 2)).astype(np.float32),
              "s": np.array([b"x", b"yz"], dtype=object)}
    encoded = encode_infer_request(inputs, binary=binary, request_id="7",
                                   outputs=[RequestedOutput("o", True)], binary_data_output=True)
    request = decode_infer_request(encoded.body(), encoded.header_length)
    assert request.id == "7" and request.outputs == [RequestedOutput("o", True)] and request.binary_data_output
    assert np.array_equal(request.inputs["f"], inputs["f"]) and request.inputs["s"].tolist() == [b"x", b"yz"]


@pytest.mark.parametrize(
    ("body", "header_length", "error", "fault"),
    [
        (b"{nope", None, BadRequest, "malformed JSON"),
        (b"[1]", None, BadRequest, "must be a JSON object"),
        (b"{}", None, BadRequest, "inputs is required"),
        (b'{"inputs": {}}', None, BadRequest, "inputs must be a list"),
        (b'{"inputs": [1]}', None, BadRequest, "inputs[0] must be an object"),
        (b'{"inputs": [{"shape": [1]}]}', None, BadRequest, "inputs[0].name"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}', None, TensorError, "shape is required"),
        (b'{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]}', None, TensorError,
         "non-negative"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}', None, TensorError, "data is required"),
        (b'{"id": 5, "inputs": []}', None, BadRequest, "id must be a string"),
        (b'{"inputs": [], "outputs": [{"name": "y"}, {"name": "y"}]}', None, BadRequest, "more than once"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},'
         b' {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}', None, BadRequest, "more than once"),
        (b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}'
         b"\x00\x00\x00\x00", 100, TensorError, "missing binary data"),
        (b'{"inputs": []}' b"junk", 14, BadRequest, "4 bytes after the JSON header"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "parameters": '
         b'{"shared_memory_region": "r"}}]}', None, Unsupported, "shared memory"),
        (b'{"inputs": [], "outputs": [{"name": "y", "parameters": {"classification": 2}}]}', None, Unsupported,
         "classification"),
        (b'{"inputs": [], "parameters": {"binary_data_output": "yes"}}', None, BadRequest, "true or false"),
    ],
)
def test_bad_requests_name_the_fault(body: bytes, header_length: int | None, error: type, fault: str) -> None:
    with pytest.raises(error) as info:
        decode_infer_request(body, header_length)
    assert fault in str(info.value)


@pytest.mark.parametrize(("value", "fault"), [("abc", "must be an integer"), ("-1", "but the body has"),
                                              ("99", "but the body has")])
def test_header_length_checks(value: str, fault: str) -> None:
    with pytest.raises(BadRequest, match=fault):
        parse_header_length(value, 10)
    assert parse_header_length(None, 10) is None and parse_header_length(" 4 ", 10) == 4


def test_codec_output_matches_the_documented_pydantic_messages() -> None:
    """The hot path skips pydantic; the messages in protocol.v2 still describe what it reads and writes."""
    request = encode_infer_request({"x": np.ones((2, 2), np.float32)}, request_id="d1")
    documented = InferenceRequest.model_validate_json(request.body())
    assert documented.id == "d1" and documented.inputs[0].shape == [2, 2]
    response = encode_infer_response("m", {"y": np.zeros(3, np.int8)}, request=decode_infer_request(request.body()))
    parsed = InferenceResponse.model_validate_json(response.body())
    assert parsed.model_name == "m" and parsed.id == "d1" and parsed.outputs[0].datatype == "INT8"
