"""protocol/grpc: the messages on the wire against tritonclient's own, the tensor codecs, the status table."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as triton_pb

from protocol.grpc import grpc_predict_v2_pb2 as pb
from protocol.grpc.status import grpc_code
from protocol.grpc.tensors import (
    CONTENTS_FIELD,
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
    rest_infer_body,
)
from protocol.inference_errors import BadRequest, TensorError
from protocol.tensors import DATATYPE_DTYPES
from protocol.v2_codec import decode_infer_request as decode_rest_request

ARRAYS = {
    "BOOL": np.array([[True, False]]), "UINT8": np.array([0, 255], np.uint8), "UINT16": np.array([65535], np.uint16),
    "UINT32": np.array([2**32 - 1], np.uint32), "UINT64": np.array([2**64 - 1], np.uint64),
    "INT8": np.array([-128, 127], np.int8), "INT16": np.array([-32768], np.int16),
    "INT32": np.array([-(2**31)], np.int32), "INT64": np.array([[2**62]], np.int64),
    "FP16": np.array([1.5, -0.25], np.float16), "FP32": np.array([[1.25, -2.0, 3.5]], np.float32),
    "FP64": np.array([1e300], np.float64), "BYTES": np.array([b"", b"a\x00b", "\u00e9".encode()], dtype=object),
}


def test_our_messages_and_tritonclients_share_one_wire_and_one_process() -> None:
    # Both are imported in this process: the messages' package differs, so protobuf's pool holds both.
    ours = encode_infer_request("m", {"x": ARRAYS["FP32"]}, request_id="7", outputs=["y"])
    theirs = triton_pb.ModelInferRequest.FromString(ours.SerializeToString())
    assert (theirs.model_name, theirs.id, theirs.inputs[0].name) == ("m", "7", "x")
    assert list(theirs.inputs[0].shape) == [1, 3]
    assert theirs.raw_input_contents[0] == ARRAYS["FP32"].tobytes() and theirs.outputs[0].name == "y"
    back = pb.ModelInferResponse.FromString(triton_pb.ModelInferResponse(
        model_name="m", outputs=[triton_pb.ModelInferResponse.InferOutputTensor(name="y", datatype="INT8", shape=[2])],
        raw_output_contents=[b"\x01\xff"]).SerializeToString())
    assert decode_infer_response(back)["y"].tolist() == [1, -1]


@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_raw_contents_round_trip_every_datatype(datatype: str) -> None:
    array = ARRAYS[datatype]
    decoded = decode_infer_request(encode_infer_request("m", {"t": array})).inputs["t"]
    assert decoded.shape == array.shape and decoded.tolist() == array.tolist()
    assert decoded.dtype == DATATYPE_DTYPES[datatype]
    response = encode_infer_response("m", {"t": decoded})
    assert response.outputs[0].datatype == datatype
    assert decode_infer_response(response)["t"].tolist() == array.tolist()


@pytest.mark.parametrize("datatype", list(CONTENTS_FIELD))
def test_typed_contents_every_datatype_that_has_a_field(datatype: str) -> None:
    array = ARRAYS[datatype]
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="t", datatype=datatype, shape=array.shape)
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.ravel().tolist())
    decoded = decode_infer_request(request).inputs["t"]
    assert decoded.dtype == DATATYPE_DTYPES[datatype] and decoded.tolist() == array.tolist()


@pytest.mark.parametrize(("build", "message"), [
    (lambda t: None, "input 't': no data; send contents or raw_input_contents"),
    (lambda t: t.contents.fp32_contents.extend([1.0]), "input 't': FP16 has no typed contents field; send it in "
                                                      "raw_input_contents"),
])
def test_fp16_travels_raw_only(build, message: str) -> None:
    request = pb.ModelInferRequest(model_name="m")
    build(request.inputs.add(name="t", datatype="FP16", shape=[1]))
    with pytest.raises(TensorError, match=message):
        decode_infer_request(request)


def test_typed_count_must_match_the_shape() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="t", datatype="INT64", shape=[2, 2]).contents.int64_contents.extend([1, 2, 3])
    with pytest.raises(TensorError, match=r"input 't': shape \[2, 2\] needs 4 elements but int64_contents holds 3"):
        decode_infer_request(request)


@pytest.mark.parametrize(("status", "retry_after", "code"), [
    (400, False, grpc.StatusCode.INVALID_ARGUMENT), (401, False, grpc.StatusCode.UNAUTHENTICATED),
    (404, False, grpc.StatusCode.NOT_FOUND), (413, False, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (500, False, grpc.StatusCode.INTERNAL), (501, False, grpc.StatusCode.UNIMPLEMENTED),
    (503, False, grpc.StatusCode.UNAVAILABLE), (503, True, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (504, False, grpc.StatusCode.DEADLINE_EXCEEDED), (418, False, grpc.StatusCode.INVALID_ARGUMENT),
    (599, False, grpc.StatusCode.INTERNAL),
])
def test_status_table(status: int, retry_after: bool, code: grpc.StatusCode) -> None:
    assert grpc_code(status, retry_after=retry_after) == code


@pytest.mark.parametrize("typed", [False, True])
def test_the_rest_body_a_grpc_request_stands_for(typed: bool) -> None:
    arrays = {"f": ARRAYS["FP32"], "w": ARRAYS["BYTES"], "h": ARRAYS["FP16"]}
    request = encode_infer_request("m", arrays, request_id="r1", outputs=["out"])
    if typed:  # the same tensors as typed contents (FP16 has no field: left out)
        request = pb.ModelInferRequest(model_name="m", id="r1", outputs=request.outputs)
        arrays = {"f": ARRAYS["FP32"], "w": ARRAYS["BYTES"]}
        for name, array in arrays.items():
            datatype = "FP32" if name == "f" else "BYTES"
            tensor = request.inputs.add(name=name, datatype=datatype, shape=array.shape)
            getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.ravel().tolist())
    parts, header_length = rest_infer_body(request)
    decoded = decode_rest_request(b"".join(parts), header_length)
    assert list(decoded.inputs) == list(arrays) and decoded.id == "r1"
    for name, array in arrays.items():
        assert decoded.inputs[name].dtype == array.dtype and decoded.inputs[name].tolist() == array.tolist()
    assert [(o.name, o.binary) for o in decoded.outputs or ()] == [("out", True)] and decoded.binary_data_output


def test_the_rest_body_refuses_what_decoding_refuses() -> None:
    request = encode_infer_request("m", {"f": ARRAYS["FP32"], "w": ARRAYS["BYTES"]})
    request.raw_input_contents[1] = b"\x05\x00\x00\x00ab"
    with pytest.raises(TensorError, match="input 'w': BYTES element 0 declares 5 bytes but only 2 remain"):
        rest_infer_body(request)
    request.inputs[1].name = "f"
    with pytest.raises(BadRequest, match="input 'f' is given more than once"):
        rest_infer_body(request)
