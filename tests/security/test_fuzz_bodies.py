"""Fuzzed infer bodies (V1 and V2) never get a 5xx and every answer is RFC 8259 JSON.

At the codec level (many examples): decoding a body either works or raises an InferenceError of a
4xx (501 for unsupported features), never anything else; echoing what was decoded writes strict JSON.
Through a real `zeroserve up` (a modest number): the same bodies at the echo function's URL.
Bodies are JSON text built with what Python's `json` lets through and strict JSON does not: NaN and
Infinity literals, unpaired surrogate escapes, numbers beyond any float, deep nesting, cut-off text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol.inference_errors import InferenceError
from protocol.tensors import DATATYPES
from protocol.v1 import decode_predict_request, encode_predict_response
from protocol.v2_codec import decode_infer_request, encode_infer_response
from tests.security.echo_platform import V1_PREDICT, V2_INFER, running_echo_platform, strict_json
from tests.zeroserve.control.harness import PlatformProcess

# Any code point, unpaired surrogates included (json.dumps escapes them as \udXXX).
texts = st.text(st.characters(codec=None, categories=None, exclude_categories=()), max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([10**400, -(10**400)])
           | st.floats(allow_nan=True, allow_infinity=True) | texts)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(texts, inner, max_size=4), max_leaves=24)
numbers = st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**65), 2**65) | st.none(),
                   max_size=6)
tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "nonfinite", "input"]) | scalars},
    optional={
        "shape": st.lists(st.integers(-1, 6) | st.sampled_from([2**62, 2**64]), max_size=4) | values,
        "datatype": st.sampled_from([*DATATYPES, "FP8"]) | scalars,
        "data": numbers | st.lists(numbers, max_size=3) | values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-2, 40) | scalars,
                                                          "binary_data": st.booleans() | scalars}) | values,
    },
)
documents = st.fixed_dictionaries({}, optional={
    "id": scalars,
    "inputs": st.lists(tensors, max_size=3) | st.dictionaries(st.sampled_from(["x", "input"]), values, max_size=2)
    | values,
    "instances": st.lists(numbers | values, max_size=4) | values,
    "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["x", "nonfinite"]) | scalars},
                                              optional={"parameters": values}), max_size=2) | values,
    "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": st.booleans() | scalars}) | values,
})


def _text(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()  # allow_nan: NaN/Infinity literals; ensure_ascii: \ud800 escapes


def _nest(pair: tuple[bytes, int]) -> bytes:
    body, depth = pair
    return b"[" * depth + body + b"]" * depth


json_bodies = documents.map(_text)
bodies = (json_bodies
          | st.tuples(json_bodies, st.integers(30, 3000)).map(_nest)
          | st.tuples(json_bodies, st.integers(0, 200)).map(lambda p: p[0][: p[1]])  # cut off
          | st.tuples(json_bodies, st.binary(max_size=40)).map(lambda p: p[0] + p[1])
          | st.binary(max_size=64))
header_lengths = st.none() | st.integers(0, 400)

DEEP = b"[" * 50_000
SURROGATE = b'{"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "data": ["\\udc80"]}]}'
NONFINITE = b'{"inputs": [{"name": "nonfinite", "shape": [1], "datatype": "FP32", "data": [1]}]}'


def _client_error(exc: InferenceError) -> bool:
    return exc.status < 500 or exc.status == 501


@settings(max_examples=600, deadline=None)
@given(body=bodies, header_length=header_lengths)
@example(body=DEEP, header_length=None)
@example(body=SURROGATE, header_length=None)
@example(body=NONFINITE.replace(b"[1]", b"[NaN]"), header_length=None)
def test_v2_codec_decodes_or_refuses_with_a_4xx_and_echoes_strict_json(body: bytes, header_length: int | None
                                                                       ) -> None:
    if header_length is not None and header_length > len(body):
        header_length = len(body)
    try:
        request = decode_infer_request(body, header_length)
    except InferenceError as exc:
        assert _client_error(exc), exc
        return
    if request.outputs is not None and not set(request.output_names or ()) <= set(request.inputs):
        return  # the runtime answers 400 for an output the model did not produce (functions.validation)
    try:
        encoded = encode_infer_response("m", request.inputs, request=request)
    except InferenceError as exc:
        assert _client_error(exc), exc
        return
    strict_json(encoded.body()[: encoded.header_length])


@settings(max_examples=600, deadline=None)
@given(body=bodies)
@example(body=DEEP)
@example(body=b'{"instances": [["\\ud800"]]}')
@example(body=b'{"instances": [[1, Infinity]]}')
def test_v1_codec_decodes_or_refuses_with_a_4xx_and_echoes_strict_json(body: bytes) -> None:
    try:
        request = decode_predict_request(body, [])
        answer = encode_predict_response(request.format, request.inputs)  # null in, NaN echoed, null out
    except InferenceError as exc:
        assert _client_error(exc), exc
        return
    strict_json(answer)


# -- through a real platform ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    with running_echo_platform(tmp_path_factory.mktemp("fuzz-bodies")) as proc:
        yield proc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from([V2_INFER, V1_PREDICT]), body=bodies)
@example(path=V2_INFER, body=DEEP)
@example(path=V1_PREDICT, body=DEEP)
@example(path=V2_INFER, body=SURROGATE)
@example(path=V2_INFER, body=NONFINITE)
def test_fuzzed_bodies_through_the_platform_never_get_a_5xx(platform: PlatformProcess, path: str,
                                                            body: bytes) -> None:
    response = httpx.post(platform.url + path, content=body, timeout=60)
    assert response.status_code < 500 or response.status_code == 501, (response.status_code, response.text[:300])
    document = strict_json(response.content)
    if response.status_code >= 400:
        assert "error" in document and set(document) <= {"error", "request_id"}, document
