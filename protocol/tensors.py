"""Tensor codecs between numpy and the Open Inference Protocol's two encodings.

* JSON: `data` as a nested or flat list in row-major order (`decode_json_data`, `encode_json_data`).
  JSON has no NaN or Infinity (RFC 8259): a non-finite float is written as null, and null in FP16,
  FP32 or FP64 data is read as NaN (MLServer's rule); numbers beyond a float type's range are refused.
* The binary tensor extension: raw little-endian bytes after the JSON header; BYTES elements each
  as a 4-byte little-endian length followed by the bytes (`decode_binary_data`, `encode_binary_data`).

Codecs know nothing about HTTP (MLServer's split): they take names, datatypes, shapes and buffers
and raise `TensorError` naming the tensor and the fault.
"""

from __future__ import annotations

import math
import re
import struct
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from protocol.inference_errors import TensorError

# Explicit little-endian dtypes: the binary extension is little-endian whatever the host is.
DATATYPE_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
DATATYPES: tuple[str, ...] = tuple(DATATYPE_DTYPES)
_INTEGER_DATATYPES = frozenset(d for d in DATATYPES if d.startswith(("INT", "UINT")))
_FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
_LENGTH = struct.Struct("<I")
# IEEE 754 +-infinity as little-endian bytes (the float dtypes above are little-endian), by itemsize.
_INFINITY_BYTES = {2: re.compile(rb"\x00[\x7c\xfc]"), 4: re.compile(rb"\x00\x00\x80[\x7f\xff]"),
                   8: re.compile(rb"\x00{6}\xf0[\x7f\xff]")}
_SMALL_ARRAY = 256
# Casting 1e39 to FP32 overflows; the request gets a 400 naming the tensor, so numpy's warning would
# only be noise in the replica's log (np.errstate around each cast costs more than the cast).
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, __name__)
MAX_RANK = 32
MAX_DIMENSION = 2**62


def numpy_dtype(datatype: str, tensor: str = "tensor") -> np.dtype:
    """The numpy dtype of an OIP datatype; BYTES tensors are object arrays of `bytes`."""
    try:
        return DATATYPE_DTYPES[datatype]
    except (KeyError, TypeError):
        raise TensorError(
            f"{tensor}: unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}"
        ) from None


def datatype_of(array: np.ndarray, tensor: str = "tensor") -> str:
    """The OIP datatype that carries `array` (str/bytes/object arrays travel as BYTES)."""
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "iu" and size in (1, 2, 4, 8):
        return f"{'UINT' if kind == 'u' else 'INT'}{size * 8}"
    if kind == "f" and size in (2, 4, 8):
        return f"FP{size * 8}"
    if kind in "OSU":
        return "BYTES"
    raise TensorError(f"{tensor}: numpy dtype {array.dtype} has no Open Inference Protocol datatype")


def check_shape(shape: object, tensor: str = "tensor") -> tuple[int, ...]:
    """A request shape: a list of non-negative integers (JSON booleans are not integers).

    Bounded by what numpy can represent, so a shape like [0, 2**64] (zero elements, legal-looking)
    is refused here instead of failing inside numpy.
    """
    if not isinstance(shape, list):
        raise TensorError(f"{tensor}: shape must be a list of non-negative integers, got {shape!r}")
    if len(shape) > MAX_RANK:
        raise TensorError(f"{tensor}: shape has {len(shape)} dimensions; at most {MAX_RANK} are supported")
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise TensorError(f"{tensor}: shape {shape} has {dim!r}; dimensions are non-negative integers")
        if dim > MAX_DIMENSION:
            raise TensorError(f"{tensor}: dimension {dim} in shape {shape} exceeds {MAX_DIMENSION}")
    return tuple(shape)


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


# --- JSON -----------------------------------------------------------------------------------------

def decode_json_data(tensor: str, datatype: str, shape: Sequence[int], data: object) -> np.ndarray:
    """`data` (nested or flat list) -> array of `shape`; rejects values the datatype cannot hold."""
    numpy_dtype(datatype, tensor)  # an unknown datatype is the first fault to report
    count = element_count(shape)
    if not isinstance(data, list):
        raise TensorError(f"{tensor}: data must be a JSON array, got {type(data).__name__}")
    if datatype == "BYTES":
        flat = _flatten_bytes(tensor, data)
        if len(flat) != count:
            raise TensorError(
                f"{tensor}: shape {list(shape)} needs {count} elements but data has {len(flat)}"
            )
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array.reshape(shape)
    values = coerce_json_array(tensor, datatype, data)
    if values.size != count:
        raise TensorError(f"{tensor}: shape {list(shape)} needs {count} elements but data has {values.size}")
    return values.reshape(shape)


def coerce_json_array(tensor: str, datatype: str, data: list) -> np.ndarray:
    """A (possibly nested) JSON list as an array of `datatype`, keeping its natural nesting as shape.

    numpy infers the element kind first, so a string, null or fraction where an integer belongs is
    caught here instead of being silently converted (np.asarray(["1"], dtype=float32) would be).
    """
    dtype = numpy_dtype(datatype, tensor)
    if datatype == "BYTES":
        raise TensorError(f"{tensor}: BYTES data cannot be coerced to numbers")
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise TensorError(f"{tensor}: data is a ragged nested list; rows must have equal lengths") from None
    if raw.size == 0:
        return np.zeros(raw.shape, dtype=dtype)
    kind = raw.dtype.kind
    if kind == "O" and datatype in _FLOAT_DATATYPES:
        # null reads as NaN; numpy made objects of it (or of ints beyond int64).
        floats = _floats_with_nulls(tensor, datatype, raw)
        if floats is not None:
            raw, kind = floats, "f"
    if datatype in _INTEGER_DATATYPES and kind in "fO":
        # numpy turns [0, 2**63] into float64 (losing digits) and [2**64] into objects: look again.
        exact = _exact_integers(tensor, datatype, data)
        if exact is not None:
            return exact
    if kind in "OUS":
        raise TensorError(f"{tensor}: {datatype} data must hold only {_expected(datatype)}; found {_stray(data)}")
    if datatype == "BOOL":
        if kind == "b":
            return raw
        if kind in "iu" and bool(((raw == 0) | (raw == 1)).all()):
            return raw.astype(np.bool_)
        raise TensorError(f"{tensor}: BOOL data must hold only true/false")
    if datatype in _INTEGER_DATATYPES:
        if kind not in "iu":
            found = "booleans" if kind == "b" else "numbers with a fraction or exponent"
            raise TensorError(f"{tensor}: {datatype} data must hold only integers; found {found}")
        info = np.iinfo(dtype)
        low, high = raw.min(), raw.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise TensorError(f"{tensor}: {bad} is out of range for {datatype} [{info.min}, {info.max}]")
        return raw.astype(dtype, copy=False)
    # Floats accept integers: JSON writers drop the ".0" of whole numbers.
    if kind not in "iuf":
        raise TensorError(f"{tensor}: {datatype} data must hold only numbers; found booleans")
    values = raw.astype(dtype, copy=False)
    # 1e999 parses as infinity and 1e39 overflows FP32: JSON carries no infinities, so refuse them.
    if _has_infinity(values):
        raise TensorError(f"{tensor}: a value is out of range for {datatype} (largest magnitude "
                          f"{float(np.finfo(dtype).max):g}); send infinities with the binary tensor extension")
    return values


def _has_infinity(values: np.ndarray) -> bool:
    """Whether a float array holds +-inf.

    On small arrays (most requests) a ufunc reduction costs several times the whole cast, so the raw
    bytes are searched for infinity's bit pattern first; a hit may straddle two elements, so it is
    confirmed by np.isinf.
    """
    if values.size <= _SMALL_ARRAY and values.flags.c_contiguous:
        if _INFINITY_BYTES[values.dtype.itemsize].search(values.data) is None:
            return False
    return bool(np.isinf(values).any())


def _floats_with_nulls(tensor: str, datatype: str, raw: np.ndarray) -> np.ndarray | None:
    """Float data holding nulls (as NaN) and numbers; None when something else is there too."""
    flat = raw.ravel().tolist()
    if not all(v is None or type(v) is float or type(v) is int for v in flat):
        return None
    try:
        floats = np.array([math.nan if v is None else float(v) for v in flat], dtype=np.float64)
    except OverflowError:
        raise TensorError(f"{tensor}: an integer is out of range for {datatype}") from None
    return floats.reshape(raw.shape)


def _exact_integers(tensor: str, datatype: str, data: list) -> np.ndarray | None:
    """Python ints beyond int64 checked and converted exactly; None when not all values are ints."""
    values = np.asarray(data, dtype=object)
    flat = values.ravel().tolist()
    if not all(type(v) is int for v in flat):
        return None
    info = np.iinfo(DATATYPE_DTYPES[datatype])
    low, high = min(flat), max(flat)
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise TensorError(f"{tensor}: {bad} is out of range for {datatype} [{info.min}, {info.max}]")
    return np.array(flat, dtype=DATATYPE_DTYPES[datatype]).reshape(values.shape)


def _expected(datatype: str) -> str:
    if datatype == "BOOL":
        return "true/false"
    return "integers" if datatype in _INTEGER_DATATYPES else "numbers"


def _stray(data: list) -> str:
    """Name the first value that is not a number, for the error message."""
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
        elif value is None:
            return "null"
        elif isinstance(value, str):
            return f"string {value[:40]!r}"
        elif isinstance(value, dict):
            return "an object"
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**64:
            return f"{value} (too large for 64 bits)"
    return "values of mixed kinds"


def _flatten_bytes(tensor: str, data: list) -> list[bytes]:
    flat: list[bytes] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            if not isinstance(value, str):
                raise TensorError(f"{tensor}: BYTES data must hold only strings; found {type(value).__name__}")
            try:
                flat.append(value.encode("utf-8"))
            except UnicodeEncodeError:  # "\ud800": an escape JSON allows, naming no character
                raise TensorError(f"{tensor}: BYTES element {len(flat)} holds an unpaired surrogate "
                                  "(\\ud800-\\udfff), which is not text; send raw bytes as binary data") from None
        else:
            stack.pop()
    return flat


def encode_json_data(tensor: str, array: np.ndarray) -> list:
    """Array -> flat JSON list (the response carries the shape; flat is what Triton sends)."""
    if array.dtype.kind in "OSU":
        return [_as_text(tensor, value) for value in array.ravel()]
    # NaN and infinities stay floats here: writers catch them when dumping (free while there are
    # none) and redo the tensor with `json_numbers`.
    return array.ravel().tolist()


def json_numbers(array: np.ndarray) -> Any:
    """A numeric array as (nested) lists for JSON: NaN and infinities become null (RFC 8259 has neither)."""
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            values = array.astype(object)
            values[~finite] = None
            return values.tolist()
    return array.tolist()


def _as_text(tensor: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TensorError(
                f"{tensor}: holds bytes that are not UTF-8 text; request it as binary data "
                '(outputs: [{"name": ..., "parameters": {"binary_data": true}}])'
            ) from None
    return str(value)


# --- binary extension ------------------------------------------------------------------------------

def decode_binary_data(tensor: str, datatype: str, shape: Sequence[int], buffer: memoryview) -> np.ndarray:
    """Raw bytes -> array of `shape` without copying where alignment allows (np.frombuffer)."""
    dtype = numpy_dtype(datatype, tensor)
    count = element_count(shape)
    if datatype == "BYTES":
        return deserialize_bytes_tensor(buffer, tensor, count).reshape(shape)
    expected = count * dtype.itemsize
    if len(buffer) != expected:
        raise TensorError(
            f"{tensor}: shape {list(shape)} of {datatype} needs {expected} bytes but binary_data_size "
            f"is {len(buffer)}"
        )
    array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    if not array.flags.aligned:
        # Inputs sit at arbitrary offsets in the body; kernels may assume natural alignment.
        array = array.copy()
    return array


def encode_binary_data(tensor: str, array: np.ndarray) -> bytes | memoryview:
    """Array -> the bytes the binary extension carries; a view for contiguous little-endian arrays."""
    if array.dtype.kind in "OSU":
        return serialize_bytes_tensor(array, tensor)
    datatype = datatype_of(array, tensor)
    contiguous = np.ascontiguousarray(array, dtype=DATATYPE_DTYPES[datatype])
    return contiguous.reshape(-1).view(np.uint8).data  # a memoryview of the array's bytes, no copy


def serialize_bytes_tensor(array: np.ndarray, tensor: str = "tensor") -> bytes:
    """BYTES elements, row-major, each as a uint32 little-endian length then the bytes."""
    parts: list[bytes] = []
    for value in array.ravel():
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview, np.bytes_)):
            value = bytes(value)
        else:
            value = str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(value)))
        parts.append(value)
    return b"".join(parts)


def deserialize_bytes_tensor(buffer: memoryview | bytes, tensor: str = "tensor", count: int | None = None
                             ) -> np.ndarray:
    """Inverse of `serialize_bytes_tensor`: a flat object array of `bytes`."""
    view = memoryview(buffer)
    items: list[bytes] = []
    offset, end = 0, len(view)
    while offset < end:
        if end - offset < 4:
            raise TensorError(f"{tensor}: BYTES data ends inside an element's 4-byte length")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise TensorError(
                f"{tensor}: BYTES element {len(items)} declares {length} bytes but only {end - offset} remain"
            )
        items.append(bytes(view[offset:offset + length]))
        offset += length
    if count is not None and len(items) != count:
        raise TensorError(f"{tensor}: shape needs {count} BYTES elements but the data holds {len(items)}")
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array
