"""RFC 8259 in and out: nesting limit, no NaN/Infinity, non-finite tensors as null, surrogates refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from protocol import strict_json
from protocol.inference_errors import BadRequest, TensorError
from protocol.strict_json import MAX_JSON_DEPTH, JsonRuleError
from protocol.tensors import DATATYPE_DTYPES, decode_json_data
from protocol.v1 import decode_predict_request, encode_predict_response
from protocol.v2_codec import (
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
)


def strict_loads(body: bytes) -> object:
    """What a strict client (JavaScript's JSON.parse, Go, Rust) accepts: no NaN/Infinity constants."""
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a response body is not JSON")
    return json.loads(body, parse_constant=refuse)


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def test_nesting_up_to_the_limit_parses_and_one_more_is_refused_naming_the_limit() -> None:
    assert strict_json.loads(nested(MAX_JSON_DEPTH)) is not None
    for body in (nested(MAX_JSON_DEPTH + 1), b"[" * 50_000, ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * 65).encode()):
        with pytest.raises(JsonRuleError, match=f"nested more than {MAX_JSON_DEPTH} deep.*nesting limit"):
            strict_json.loads(body)


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"s": "[" * 500 + "\\\"]" + "{" * 500, "t": ["]" * 200]})
    assert strict_json.loads(text.encode())["s"].startswith("[[[")
    # Closing brackets in a string must not hide real depth either.
    hidden = '["' + "]" * 100 + '", ' + "[" * 70 + "1" + "]" * 70 + "]"
    with pytest.raises(JsonRuleError, match="nesting limit"):
        strict_json.loads(hidden.encode())


def test_utf16_bodies_are_measured_by_their_text() -> None:
    assert strict_json.loads(json.dumps([["\u5b5b"]]).encode("utf-16")) == [["\u5b5b"]]
    with pytest.raises(JsonRuleError):
        strict_json.loads(nested(MAX_JSON_DEPTH + 1).decode().encode("utf-16"))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused_naming_the_rule(constant: str) -> None:
    with pytest.raises(JsonRuleError, match=f"{constant} is not a JSON value.*RFC 8259"):
        strict_json.loads(f'{{"a": [1, {constant}]}}'.encode())


def test_dumps_refuses_non_finite_floats() -> None:
    assert strict_json.dumps({"a": [1, 2.5]}) == b'{"a":[1,2.5]}'
    with pytest.raises(ValueError):
        strict_json.dumps([math.inf])


V2_DEEP = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ' + nested(70) + b"}]}"


@pytest.mark.parametrize("body", [b"[" * 50_000, V2_DEEP, nested(MAX_JSON_DEPTH + 1)])
def test_v2_and_v1_answer_deep_nesting_with_a_400_naming_the_limit(body: bytes) -> None:
    with pytest.raises(BadRequest, match=f"inference request: .*{MAX_JSON_DEPTH} deep.*nesting limit"):
        decode_infer_request(body)
    with pytest.raises(BadRequest, match=f"predict request: .*{MAX_JSON_DEPTH} deep.*nesting limit"):
        decode_predict_request(body, [])


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_v2_and_v1_refuse_nan_and_infinity_literals(constant: str) -> None:
    body = f'{{"inputs": [{{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, {constant}]}}]}}'
    with pytest.raises(BadRequest, match=f"inference request: {constant} is not a JSON value"):
        decode_infer_request(body.encode())
    with pytest.raises(BadRequest, match=f"predict request: {constant} is not a JSON value"):
        decode_predict_request(f'{{"instances": [[1, {constant}]]}}'.encode(), [])


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_null_in_float_data_reads_as_nan(datatype: str) -> None:
    array = decode_json_data("input 'x'", datatype, (2, 2), [[1.5, None], [None, 2]])
    assert array.dtype == DATATYPE_DTYPES[datatype]
    assert np.isnan(array).tolist() == [[False, True], [True, False]] and array[0, 0] == 1.5


def test_non_finite_outputs_are_written_as_null_in_json_and_exactly_in_binary() -> None:
    values = np.array([[1.5, np.nan], [np.inf, -np.inf]], dtype=np.float32)
    body = encode_infer_response("m", {"y": values}).body()
    doc = strict_loads(body)
    assert doc["outputs"][0]["data"] == [1.5, None, None, None]
    # A client reads null back as NaN; binary data carries every value as it is.
    assert np.isnan(decode_infer_response(body)["y"][0, 1])
    request = decode_infer_request(encode_infer_request({"x": np.zeros(1, np.float32)}, binary_data_output=True)
                                   .body())
    encoded = encode_infer_response("m", {"y": values}, request=request)
    exact = decode_infer_response(encoded.body(), encoded.header_length)["y"]
    assert exact[1, 0] == np.inf and exact[1, 1] == -np.inf and np.isnan(exact[0, 1])


def test_v1_non_finite_outputs_are_null_in_rows_and_columns() -> None:
    values = np.array([[np.nan, 1.0], [2.0, np.inf]])
    assert strict_loads(encode_predict_response("instances", {"y": values})) == {
        "predictions": [[None, 1.0], [2.0, None]]}
    assert strict_loads(encode_predict_response("inputs", {"y": values, "z": np.array([1, 2])})) == {
        "outputs": {"y": [[None, 1.0], [2.0, None]], "z": [1, 2]}}


def test_client_side_requests_with_nan_are_valid_json_and_read_back_as_nan() -> None:
    body = encode_infer_request({"x": np.array([np.nan, 1.0], dtype=np.float64)}).body()
    assert strict_loads(body)["inputs"][0]["data"] == [None, 1.0]
    assert np.isnan(decode_infer_request(body).inputs["x"][0])


def test_unpaired_surrogates_in_bytes_data_are_a_400() -> None:
    body = b'{"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["ok", "\\ud800"]}]}'
    with pytest.raises(TensorError, match="input 's': BYTES element 1 holds an unpaired surrogate"):
        decode_infer_request(body)
