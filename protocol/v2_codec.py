"""V2 infer bodies <-> numpy, JSON and binary extension alike; the hot path of every inference.

A body is JSON, or (binary tensor extension) a JSON header of `Inference-Header-Content-Length`
bytes followed by the inputs' raw bytes in input order, each input saying how many it owns with
`parameters.binary_data_size`. Plain `json` plus explicit checks: every fault becomes a `BadRequest`
that names the field and the rule. JSON is read and written by `protocol.strict_json` (RFC 8259: no
NaN or Infinity, nesting bounded by MAX_JSON_DEPTH); non-finite output values are written as null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol import strict_json
from protocol.inference_errors import BadRequest, TensorError, Unsupported
from protocol.tensors import (
    check_shape,
    datatype_of,
    decode_binary_data,
    decode_json_data,
    encode_binary_data,
    encode_json_data,
    json_numbers,
    numpy_dtype,
)

_SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


@dataclass(slots=True)
class RequestedOutput:
    name: str
    # None: follow the request-level `binary_data_output` parameter.
    binary: bool | None = None


@dataclass(slots=True)
class InferRequest:
    """A decoded V2 infer request: inputs as numpy arrays, in request order."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[RequestedOutput] | None = None
    binary_data_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def output_names(self) -> tuple[str, ...] | None:
        return None if self.outputs is None else tuple(o.name for o in self.outputs)


@dataclass(slots=True)
class EncodedResponse:
    """Body parts to write in order; `header_length` is set when binary data follows the JSON."""

    parts: list[bytes | memoryview]
    header_length: int | None

    def body(self) -> bytes:
        return b"".join(self.parts)


def parse_header_length(value: str | None, body_length: int) -> int | None:
    """The `Inference-Header-Content-Length` header: None (all JSON) or the JSON header's size."""
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        raise BadRequest(f"Inference-Header-Content-Length must be an integer, got {value!r}") from None
    if not 0 <= length <= body_length:
        raise BadRequest(
            f"Inference-Header-Content-Length is {length} but the body has {body_length} bytes"
        )
    return length


def load_json_object(raw: bytes | memoryview, what: str = "request body") -> dict[str, Any]:
    try:
        value = strict_json.loads(raw)
    except strict_json.JsonRuleError as exc:
        raise BadRequest(f"{what}: {exc}") from None
    except ValueError as exc:  # syntax, and bytes that are not UTF-8/16/32 (UnicodeDecodeError)
        raise BadRequest(f"malformed JSON in {what}: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Body (+ the header length of the binary extension, if any) -> `InferRequest`."""
    view = memoryview(body)
    json_end = len(view) if header_length is None else header_length
    doc = load_json_object(view[:json_end], "inference request")
    binary = view[json_end:]

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"id must be a string, got {type(request_id).__name__}")
    parameters = _parameters(doc.get("parameters"), "parameters")
    binary_data_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_data_output, bool):
        raise BadRequest("parameters.binary_data_output must be true or false")

    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list):
        raise BadRequest("inputs must be a list of tensors" if "inputs" in doc else "inputs is required")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        name, array, used = _decode_input(index, raw, binary, offset)
        if name in inputs:
            raise BadRequest(f"input '{name}' is given more than once")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise BadRequest(
            f"the body has {len(binary) - offset} bytes after the JSON header that no input's "
            "binary_data_size accounts for"
        )
    return InferRequest(
        inputs=inputs,
        id=request_id,
        outputs=_requested_outputs(doc.get("outputs")),
        binary_data_output=binary_data_output,
        parameters=parameters,
    )


def _decode_input(index: int, raw: object, binary: memoryview, offset: int
                  ) -> tuple[str, np.ndarray, int]:
    if not isinstance(raw, dict):
        raise BadRequest(f"inputs[{index}] must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{index}].name must be a non-empty string")
    tensor = f"input '{name}'"
    for key in ("shape", "datatype"):
        if key not in raw:
            raise TensorError(f"{tensor}: {key} is required")
    datatype = raw["datatype"]
    numpy_dtype(datatype, tensor)
    shape = check_shape(raw["shape"], tensor)
    parameters = _parameters(raw.get("parameters"), f"{tensor} parameters")
    if any(key in parameters for key in _SHARED_MEMORY):
        raise Unsupported(f"{tensor}: shared memory is not supported; send the data in the body")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in raw:
            raise TensorError(f"{tensor}: data is required (or parameters.binary_data_size for binary data)")
        return name, decode_json_data(tensor, datatype, shape, raw["data"]), 0
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise TensorError(f"{tensor}: binary_data_size must be a non-negative integer, got {size!r}")
    if "data" in raw:
        raise TensorError(f"{tensor}: has both data and binary_data_size; send one")
    if offset + size > len(binary):
        raise TensorError(
            f"{tensor}: binary_data_size is {size} but only {len(binary) - offset} binary bytes remain "
            "after the JSON header (missing binary data?)"
        )
    return name, decode_binary_data(tensor, datatype, shape, binary[offset:offset + size]), size


def _parameters(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object of name/value pairs")
    return value


def _requested_outputs(value: object) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest("outputs must be a list of {\"name\": ...} objects")
    outputs: list[RequestedOutput] = []
    seen: set[str] = set()
    for index, raw in enumerate(value):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise BadRequest(f"outputs[{index}] must be an object with a non-empty string name")
        name = raw["name"]
        if name in seen:
            raise BadRequest(f"output '{name}' is requested more than once")
        seen.add(name)
        parameters = _parameters(raw.get("parameters"), f"output '{name}' parameters")
        if any(key in parameters for key in _SHARED_MEMORY):
            raise Unsupported(f"output '{name}': shared memory is not supported")
        if parameters.get("classification"):
            raise Unsupported(f"output '{name}': the classification extension is not supported")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise BadRequest(f"output '{name}': parameters.binary_data must be true or false")
        outputs.append(RequestedOutput(name, binary))
    return outputs


def encode_infer_response(
    model_name: str,
    outputs: dict[str, np.ndarray],
    *,
    request: InferRequest | None = None,
    model_version: str | None = None,
) -> EncodedResponse:
    """Outputs -> response body; only the requested outputs, each as JSON or binary as asked."""
    if request is None or request.outputs is None:
        default_binary = request.binary_data_output if request is not None else False
        wanted = [RequestedOutput(name, default_binary) for name in outputs]
    else:
        wanted = [RequestedOutput(o.name, request.binary_data_output if o.binary is None else o.binary)
                  for o in request.outputs]
    doc: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = model_version
    if request is not None and request.id is not None:
        doc["id"] = request.id
    tensors = _TensorWriter()
    for want in wanted:
        array = np.asarray(outputs[want.name])
        tensor = f"output '{want.name}'"
        tensors.add({"name": want.name, "datatype": datatype_of(array, tensor), "shape": list(array.shape)},
                    array, tensor, bool(want.binary))
    doc["outputs"] = tensors.entries
    return tensors.body(doc)


def encode_infer_request(
    inputs: dict[str, np.ndarray],
    *,
    binary: bool = False,
    request_id: str | None = None,
    outputs: list[RequestedOutput] | None = None,
    binary_data_output: bool = False,
) -> EncodedResponse:
    """Client side: arrays -> a V2 infer body (used by the samples, benchmarks and tests)."""
    tensors = _TensorWriter()
    for name, value in inputs.items():
        array = np.asarray(value)
        tensor = f"input '{name}'"
        tensors.add({"name": name, "shape": list(array.shape), "datatype": datatype_of(array, tensor)},
                    array, tensor, binary)
    doc: dict[str, Any] = {"inputs": tensors.entries}
    if request_id is not None:
        doc["id"] = request_id
    if outputs is not None:
        doc["outputs"] = [
            {"name": o.name, **({"parameters": {"binary_data": o.binary}} if o.binary is not None else {})}
            for o in outputs
        ]
    if binary_data_output:
        doc["parameters"] = {"binary_data_output": True}
    return tensors.body(doc)


class _TensorWriter:
    """The tensors of one V2 body being written (request or response): their JSON entries, the binary
    blobs that follow the JSON header, and the JSON-data entries to write again if they hold NaN."""

    __slots__ = ("entries", "blobs", "json_arrays")

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.blobs: list[bytes | memoryview] = []
        self.json_arrays: list[tuple[dict[str, Any], np.ndarray]] = []

    def add(self, entry: dict[str, Any], array: np.ndarray, tensor: str, binary: bool) -> None:
        """Complete `entry` (name, datatype, shape, in the caller's order) with the array's data."""
        if binary:
            blob = encode_binary_data(tensor, array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            self.blobs.append(blob)
        else:
            entry["data"] = encode_json_data(tensor, array)
            self.json_arrays.append((entry, array))
        self.entries.append(entry)

    def body(self, doc: dict[str, Any]) -> EncodedResponse:
        """`doc` (which holds the entries) as the JSON header, then the blobs."""
        header = _dump_with_nulls(doc, self.json_arrays)
        if not self.blobs:
            return EncodedResponse([header], None)
        return EncodedResponse([header, *self.blobs], len(header))


def _dump_with_nulls(doc: dict[str, Any], json_arrays: list[tuple[dict[str, Any], np.ndarray]]) -> bytes:
    """The JSON header; tensors holding NaN or infinities are written again with null in their place."""
    try:
        return strict_json.dumps(doc)
    except ValueError:  # only non-finite floats make it fail, and only then is the data walked again
        for entry, array in json_arrays:
            entry["data"] = json_numbers(array.ravel())
        return strict_json.dumps(doc)


def decode_infer_response(body: bytes, header_length: int | None = None) -> dict[str, np.ndarray]:
    """Client side: a V2 infer response body -> {output name: array}."""
    view = memoryview(body)
    json_end = len(view) if header_length is None else header_length
    doc = load_json_object(view[:json_end], "inference response")
    binary, offset = view[json_end:], 0
    arrays: dict[str, np.ndarray] = {}
    for raw in doc.get("outputs", []):
        tensor = f"output '{raw['name']}'"
        shape = check_shape(raw["shape"], tensor)
        size = (raw.get("parameters") or {}).get("binary_data_size")
        if size is None:
            arrays[raw["name"]] = decode_json_data(tensor, raw["datatype"], shape, raw["data"])
        else:
            arrays[raw["name"]] = decode_binary_data(tensor, raw["datatype"], shape,
                                                     binary[offset:offset + size])
            offset += size
    return arrays
