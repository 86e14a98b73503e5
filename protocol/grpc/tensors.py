"""ModelInferRequest/ModelInferResponse <-> numpy, sharing the REST codecs' rules and messages.

Inputs come as `raw_input_contents` (one buffer per input, in input order: what tritonclient sends) or as
typed `contents` (the repeated field of the datatype); FP16 has no typed field and travels raw. Raw
buffers are read exactly as the binary tensor extension's (`protocol.tensors.decode_binary_data`: same
little-endian layout, same BYTES framing, same messages). Outputs always go back as `raw_output_contents`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from protocol.grpc import grpc_predict_v2_pb2 as pb
from protocol.inference_errors import BadRequest, TensorError, Unsupported
from protocol.tensors import (
    DATATYPE_DTYPES,
    check_shape,
    datatype_of,
    decode_binary_data,
    element_count,
    encode_binary_data,
    numpy_dtype,
)
from protocol.v2_codec import EncodedResponse, InferRequest, RequestedOutput
from protocol.v2_codec import encode_infer_request as encode_rest_request

# The typed field of each datatype (InferTensorContents); FP16 has none.
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


def parameter_value(parameter: pb.InferParameter) -> bool | int | str | None:
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def decode_infer_request(request: pb.ModelInferRequest) -> InferRequest:
    """The request's tensors as numpy arrays, checked like a REST body; BadRequest/TensorError name the fault."""
    raw = _raw_contents(request)
    inputs: dict[str, np.ndarray] = {}
    for index, tensor_pb in enumerate(request.inputs):
        tensor, shape = _input_header(index, tensor_pb, inputs)
        has_contents = tensor_pb.HasField("contents")
        if raw:
            if has_contents:
                raise TensorError(f"{tensor}: has contents while the request uses raw_input_contents; send one")
            inputs[tensor_pb.name] = _decode_raw(tensor, tensor_pb.datatype, shape, raw[index])
        elif has_contents:
            inputs[tensor_pb.name] = _decode_contents(tensor, tensor_pb.datatype, shape, tensor_pb.contents)
        else:
            raise TensorError(f"{tensor}: no data; send contents or raw_input_contents")
    parameters: dict[str, Any] = {key: parameter_value(value) for key, value in request.parameters.items()}
    return InferRequest(inputs=inputs, id=request.id or None, outputs=_requested_outputs(request),
                        binary_data_output=True, parameters=parameters)


def rest_infer_body(request: pb.ModelInferRequest) -> tuple[list[bytes | memoryview], int]:
    """The V2 REST body (binary tensor extension) a ModelInferRequest stands for, and its JSON header's length;
    every output asked for in binary. Checked as `decode_infer_request` checks, with the same errors.

    Raw contents go through as they are: the binary extension has their very layout (BYTES framing included),
    so the activator's gRPC front builds the body without making arrays. Typed contents are made raw first.
    """
    raw = _raw_contents(request)
    if not raw:
        decoded = decode_infer_request(request)
        encoded = encode_infer_request_body(decoded)
        return encoded.parts, encoded.header_length or 0
    entries: list[dict[str, Any]] = []
    seen: dict[str, object] = {}
    for index, tensor_pb in enumerate(request.inputs):
        tensor, shape = _input_header(index, tensor_pb, seen)
        seen[tensor_pb.name] = None
        if tensor_pb.HasField("contents"):
            raise TensorError(f"{tensor}: has contents while the request uses raw_input_contents; send one")
        buffer = raw[index]
        if tensor_pb.datatype == "BYTES":
            _decode_raw(tensor, "BYTES", shape, buffer)  # the framing and the element count
        else:
            _check_raw_size(tensor, tensor_pb.datatype, shape, buffer)
        entries.append({"name": tensor_pb.name, "shape": list(shape), "datatype": tensor_pb.datatype,
                        "parameters": {"binary_data_size": len(buffer)}})
    doc: dict[str, Any] = {"inputs": entries, "parameters": {"binary_data_output": True}}
    if request.id:
        doc["id"] = request.id
    outputs = _requested_outputs(request)
    if outputs is not None:
        doc["outputs"] = [{"name": o.name, "parameters": {"binary_data": True}} for o in outputs]
    header = json.dumps(doc, separators=(",", ":")).encode()
    return [header, *raw], len(header)


def encode_infer_request_body(request: InferRequest) -> EncodedResponse:
    return encode_rest_request(request.inputs, binary=True, request_id=request.id, outputs=request.outputs,
                               binary_data_output=True)


def _raw_contents(request: pb.ModelInferRequest) -> Any:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} buffers for {len(request.inputs)} inputs; "
                         "send one per input, in input order")
    return raw


def _input_header(index: int, tensor_pb: Any, seen: Mapping[str, object]) -> tuple[str, tuple[int, ...]]:
    """An input's name, datatype and shape checked: (its name for messages, its shape)."""
    name = tensor_pb.name
    if not name:
        raise BadRequest(f"inputs[{index}].name must be a non-empty string")
    if name in seen:
        raise BadRequest(f"input '{name}' is given more than once")
    tensor = f"input '{name}'"
    if any(key in tensor_pb.parameters for key in _SHARED_MEMORY):
        raise Unsupported(f"{tensor}: shared memory is not supported; send the data in the request")
    numpy_dtype(tensor_pb.datatype, tensor)
    return tensor, check_shape(list(tensor_pb.shape), tensor)


def _requested_outputs(request: pb.ModelInferRequest) -> list[RequestedOutput] | None:
    if not request.outputs:
        return None
    outputs: list[RequestedOutput] = []
    seen: set[str] = set()
    for index, output in enumerate(request.outputs):
        if not output.name:
            raise BadRequest(f"outputs[{index}].name must be a non-empty string")
        if output.name in seen:
            raise BadRequest(f"output '{output.name}' is requested more than once")
        seen.add(output.name)
        if any(key in output.parameters for key in _SHARED_MEMORY):
            raise Unsupported(f"output '{output.name}': shared memory is not supported")
        if "classification" in output.parameters and parameter_value(output.parameters["classification"]):
            raise Unsupported(f"output '{output.name}': the classification extension is not supported")
        outputs.append(RequestedOutput(output.name, True))
    return outputs


def _decode_raw(tensor: str, datatype: str, shape: tuple[int, ...], buffer: bytes) -> np.ndarray:
    if datatype != "BYTES":
        _check_raw_size(tensor, datatype, shape, buffer)
    return decode_binary_data(tensor, datatype, shape, memoryview(buffer))


def _check_raw_size(tensor: str, datatype: str, shape: tuple[int, ...], buffer: bytes) -> None:
    """The size rule in this protocol's words (the REST codec speaks of binary_data_size)."""
    expected = element_count(shape) * DATATYPE_DTYPES[datatype].itemsize
    if len(buffer) != expected:
        raise TensorError(f"{tensor}: shape {list(shape)} of {datatype} needs {expected} bytes but its "
                          f"raw_input_contents holds {len(buffer)}")


def _decode_contents(tensor: str, datatype: str, shape: tuple[int, ...], contents: pb.InferTensorContents
                     ) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise TensorError(f"{tensor}: {datatype} has no typed contents field; send it in raw_input_contents")
    values = getattr(contents, field)
    count = element_count(shape)
    if len(values) != count:
        raise TensorError(f"{tensor}: shape {list(shape)} needs {count} elements but {field} holds {len(values)}")
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    dtype = DATATYPE_DTYPES[datatype]
    wide = np.array(values, dtype=np.float64 if dtype.kind == "f" else np.int64 if dtype.kind == "i"
                    else np.uint64 if dtype.kind == "u" else np.bool_)
    if dtype.kind in "iu" and dtype.itemsize < 8 and wide.size:
        info = np.iinfo(dtype)
        low, high = int(wide.min()), int(wide.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise TensorError(f"{tensor}: {bad} is out of range for {datatype} ({info.min}..{info.max})")
    return wide.astype(dtype, copy=False).reshape(shape)


def encode_infer_response(model_name: str, outputs: dict[str, np.ndarray], *, request: InferRequest | None = None,
                          model_version: str | None = None) -> pb.ModelInferResponse:
    """Outputs -> ModelInferResponse with raw_output_contents; only the requested outputs, in request order."""
    names = list(outputs) if request is None or request.outputs is None else [o.name for o in request.outputs]
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version or "",
                                     id=(request.id if request is not None else None) or "")
    for name in names:
        array = np.asarray(outputs[name])
        tensor = f"output '{name}'"
        response.outputs.add(name=name, datatype=datatype_of(array, tensor), shape=array.shape)
        response.raw_output_contents.append(bytes(encode_binary_data(tensor, array)))
    return response


def decode_infer_response(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Client side (tests, benchmarks): a ModelInferResponse -> {output name: array}."""
    arrays: dict[str, np.ndarray] = {}
    for index, output in enumerate(response.outputs):
        tensor = f"output '{output.name}'"
        shape = check_shape(list(output.shape), tensor)
        if response.raw_output_contents:
            arrays[output.name] = decode_binary_data(tensor, output.datatype, shape,
                                                     memoryview(response.raw_output_contents[index]))
        else:
            arrays[output.name] = _decode_contents(tensor, output.datatype, shape, output.contents)
    return arrays


def encode_infer_request(model_name: str, inputs: dict[str, np.ndarray], *, request_id: str = "",
                         outputs: list[str] | None = None) -> pb.ModelInferRequest:
    """Client side (tests, benchmarks): arrays -> a ModelInferRequest with raw_input_contents."""
    request = pb.ModelInferRequest(model_name=model_name, id=request_id)
    for name, value in inputs.items():
        array = np.asarray(value)
        tensor = f"input '{name}'"
        request.inputs.add(name=name, datatype=datatype_of(array, tensor), shape=array.shape)
        request.raw_input_contents.append(bytes(encode_binary_data(tensor, array)))
    for name in outputs or ():
        request.outputs.add(name=name)
    return request
