"""Tensor codecs: every datatype round-trips through JSON (flat and nested) and the binary extension."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protocol.inference_errors import TensorError
from protocol.tensors import (
    DATATYPE_DTYPES,
    DATATYPES,
    coerce_json_array,
    datatype_of,
    decode_binary_data,
    decode_json_data,
    deserialize_bytes_tensor,
    encode_binary_data,
    encode_json_data,
    serialize_bytes_tensor,
)

NUMERIC = [d for d in DATATYPES if d != "BYTES"]
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)


def numeric_arrays(datatype: str):
    dtype = DATATYPE_DTYPES[datatype]
    if datatype.startswith("FP"):
        # JSON (and Python's json) carry finite floats; NaN/inf are not JSON numbers.
        elements = st.floats(allow_nan=False, allow_infinity=False, width=dtype.itemsize * 8)
        return hnp.arrays(dtype, shapes, elements=elements)
    return hnp.arrays(dtype, shapes)


def bytes_arrays():
    texts = st.text(max_size=6)
    return shapes.flatmap(lambda shape: st.lists(texts, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))
                          .map(lambda items: _object_array([t.encode() for t in items], shape)))


def _object_array(items: list, shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def _json_trip(data: list) -> list:
    return json.loads(json.dumps(data))


@pytest.mark.parametrize("datatype", NUMERIC)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_numeric_round_trip_json_flat_nested_and_binary(datatype: str, data: st.DataObject) -> None:
    array = data.draw(numeric_arrays(datatype))
    assert datatype_of(array) == datatype
    flat = _json_trip(encode_json_data("t", array))
    assert np.array_equal(decode_json_data("t", datatype, array.shape, flat), array)
    nested = _json_trip(array.tolist())
    decoded = decode_json_data("t", datatype, array.shape, nested)
    assert decoded.dtype == DATATYPE_DTYPES[datatype] and np.array_equal(decoded, array)
    raw = bytes(encode_binary_data("t", array))
    assert len(raw) == array.size * array.dtype.itemsize
    assert np.array_equal(decode_binary_data("t", datatype, array.shape, memoryview(raw)), array)


@settings(max_examples=40, deadline=None)
@given(array=bytes_arrays())
def test_bytes_round_trip_json_and_binary(array: np.ndarray) -> None:
    assert datatype_of(array) == "BYTES"
    flat = _json_trip(encode_json_data("t", array))
    decoded = decode_json_data("t", "BYTES", array.shape, flat)
    assert decoded.shape == array.shape and decoded.tolist() == array.tolist()
    raw = bytes(encode_binary_data("t", array))
    back = decode_binary_data("t", "BYTES", array.shape, memoryview(raw))
    assert back.tolist() == array.tolist()


def test_bytes_binary_layout_is_uint32_le_length_then_bytes() -> None:
    array = _object_array([b"ab", b"", "\u00e9".encode()], (3,))
    raw = serialize_bytes_tensor(array)
    assert raw == b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"
    assert deserialize_bytes_tensor(raw).tolist() == [b"ab", b"", b"\xc3\xa9"]
    # Non-UTF-8 bytes survive the binary extension untouched.
    raw = serialize_bytes_tensor(_object_array([b"\xff\x00"], (1,)))
    assert deserialize_bytes_tensor(raw).tolist() == [b"\xff\x00"]


def test_binary_decode_is_zero_copy_when_aligned() -> None:
    body = np.arange(6, dtype="<f4").tobytes()
    view = memoryview(body)
    array = decode_binary_data("t", "FP32", (2, 3), view)
    assert np.shares_memory(array, np.frombuffer(body, dtype="<f4"))
    # At an odd offset the codec copies to an aligned array rather than hand kernels unaligned data.
    unaligned = decode_binary_data("t", "FP32", (2, 3), memoryview(b"x" + body)[1:])
    assert unaligned.flags.aligned and unaligned.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_str_and_unicode_arrays_travel_as_bytes() -> None:
    assert datatype_of(np.array(["a", "b"])) == "BYTES"
    assert encode_json_data("t", np.array(["x", "\u00e9"], dtype=object)) == ["x", "\u00e9"]


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "fault"),
    [
        ("FP32", [2], [1.0], "needs 2 elements but data has 1"),
        ("FP32", [2, 2], [[1, 2], [3]], "ragged"),
        ("INT32", [2], [1, 2.5], "only integers"),
        ("INT8", [1], [200], "out of range for INT8"),
        ("UINT8", [1], [-1], "out of range for UINT8"),
        ("UINT64", [1], [2**64], "out of range for UINT64"),
        ("INT64", [2], [1, 2**70], "out of range for INT64"),
        ("FP32", [1], [2**140], "out of range for FP32"),
        ("FP32", [1], [1e39], "out of range for FP32"),
        ("FP64", [2], [1.0, 1e999], "out of range for FP64"),
        ("FP16", [1], [70000], "out of range for FP16"),
        ("FP32", [2], [1, "2"], "string '2'"),
        ("INT64", [1], [None], "null"),
        ("FP64", [2], [None, "x"], "null"),
        ("INT64", [1], [True], "booleans"),
        ("BOOL", [2], [True, 2], "true/false"),
        ("BYTES", [1], [3], "only strings"),
        ("FP32", [1], 1.0, "must be a JSON array"),
        ("FP31", [1], [1.0], "unknown datatype 'FP31'"),
    ],
)
def test_bad_json_data_names_tensor_and_fault(datatype: str, shape: list[int], data: object, fault: str) -> None:
    with pytest.raises(TensorError) as info:
        decode_json_data("input 'x'", datatype, shape, data)
    assert "input 'x'" in str(info.value) and fault in str(info.value)


def test_bool_accepts_zero_and_one_and_floats_accept_integers() -> None:
    assert decode_json_data("t", "BOOL", [3], [1, 0, True]).tolist() == [True, False, True]
    assert decode_json_data("t", "FP16", [2], [1, 2]).dtype == np.float16
    assert coerce_json_array("t", "INT64", [[1, 2], [3, 4]]).shape == (2, 2)
    assert decode_json_data("t", "FP32", [0, 3], []).shape == (0, 3)


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "fault"),
    [
        ("FP32", [2], b"\x00" * 7, "needs 8 bytes"),
        ("BYTES", [1], b"\x05\x00\x00\x00ab", "declares 5 bytes"),
        ("BYTES", [1], b"\x01\x00", "inside an element's 4-byte length"),
        ("BYTES", [2], b"\x01\x00\x00\x00a", "needs 2 BYTES elements"),
    ],
)
def test_bad_binary_data(datatype: str, shape: list[int], raw: bytes, fault: str) -> None:
    with pytest.raises(TensorError, match=fault):
        decode_binary_data("input 'x'", datatype, shape, memoryview(raw))


def test_non_utf8_bytes_cannot_be_json_and_say_how_to_fix() -> None:
    with pytest.raises(TensorError, match="binary_data"):
        encode_json_data("output 'y'", _object_array([b"\xff"], (1,)))
