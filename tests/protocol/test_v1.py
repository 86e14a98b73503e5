"""KServe V1: instances (rows) and inputs (columns), datatypes from metadata or inferred."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protocol.inference_errors import BadRequest, TensorError
from protocol.v1 import (
    DEFAULT_INPUT_NAME,
    PredictRequest,
    PredictResponse,
    decode_predict_request,
    encode_predict_response,
)
from protocol.v2 import MetadataTensor

IRIS = [MetadataTensor(name="input", datatype="FP32", shape=[-1, 4])]
TWO = [MetadataTensor(name="a", datatype="INT32", shape=[-1]), MetadataTensor(name="b", datatype="BYTES", shape=[-1])]


def test_instances_rows_for_a_single_input_model_use_its_datatype() -> None:
    decoded = decode_predict_request(b'{"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]}', IRIS)
    assert decoded.format == "instances"
    assert decoded.inputs["input"].dtype == np.float32 and decoded.inputs["input"].shape == (2, 4)


def test_instances_objects_for_several_inputs() -> None:
    decoded = decode_predict_request(b'{"instances": [{"a": 1, "b": "x"}, {"b": "y", "a": 2}]}', TWO)
    assert decoded.inputs["a"].dtype == np.int32 and decoded.inputs["a"].tolist() == [1, 2]
    assert decoded.inputs["b"].tolist() == [b"x", b"y"]


def test_columnar_inputs_and_undeclared_datatypes_are_inferred() -> None:
    decoded = decode_predict_request(b'{"inputs": {"a": [1, 2], "f": [0.5], "s": ["t"], "k": [true]}}', [])
    assert decoded.format == "inputs"
    assert [decoded.inputs[n].dtype for n in "afsk"] == [np.int64, np.float64, object, np.bool_]
    single = decode_predict_request(b'{"inputs": [[1.0, 2.0]]}', [])
    assert list(single.inputs) == [DEFAULT_INPUT_NAME] and single.inputs[DEFAULT_INPUT_NAME].shape == (1, 2)


def test_responses_rows_and_columns() -> None:
    one = {"y": np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)}
    assert json.loads(encode_predict_response("instances", one)) == {"predictions": [[1.0, 2.0], [3.0, 4.0]]}
    assert PredictResponse.model_validate_json(encode_predict_response("instances", one)).predictions is not None
    assert PredictRequest.model_validate_json(b'{"instances": [[1, 2]]}').instances == [[1, 2]]
    two = {"y": np.array([1, 2]), "s": np.array([b"a", b"b"], dtype=object)}
    assert json.loads(encode_predict_response("instances", two)) == {
        "predictions": [{"y": 1, "s": "a"}, {"y": 2, "s": "b"}]}
    assert json.loads(encode_predict_response("inputs", two)) == {"outputs": {"y": [1, 2], "s": ["a", "b"]}}
    assert json.loads(encode_predict_response("inputs", one)) == {"outputs": [[1.0, 2.0], [3.0, 4.0]]}
    with pytest.raises(TensorError, match="different numbers of rows"):
        encode_predict_response("instances", {"y": np.zeros(2), "z": np.zeros(3)})


@pytest.mark.parametrize(
    ("body", "declared", "fault"),
    [
        (b"{}", IRIS, "exactly one of"),
        (b'{"instances": [], "inputs": []}', IRIS, "exactly one of"),
        (b'{"instances": []}', IRIS, "non-empty list"),
        (b'{"instances": [[1, 2], {"a": 1}]}', TWO, "mixes objects"),
        (b'{"instances": [[1, 2]]}', TWO, "several inputs"),
        (b'{"instances": [{"a": 1, "b": "x"}, {"a": 2}]}', TWO, "every row needs"),
        (b'{"instances": [["a", "b", "c", "d"]]}', IRIS, "string 'a'"),
        (b'{"inputs": {}}', IRIS, "at least one input"),
        (b"nope", IRIS, "malformed JSON"),
    ],
)
def test_bad_v1_requests(body: bytes, declared: list[MetadataTensor], fault: str) -> None:
    with pytest.raises(BadRequest, match=fault):
        decode_predict_request(body, declared)
