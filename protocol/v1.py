"""KServe V1 (TensorFlow Serving style) messages and their codec to and from numpy.

Two request forms: row-wise `{"instances": [...]}` answered with `{"predictions": [...]}`, and
columnar `{"inputs": ...}` answered with `{"outputs": ...}`. A row is the input itself for a
single-input model, or an object keyed by input name. V1 carries no datatypes, so they come from
the model's metadata; where a model declares none they are inferred from the JSON values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from protocol import strict_json
from protocol.inference_errors import BadRequest, TensorError
from protocol.tensors import coerce_json_array, decode_json_data, encode_json_data, json_numbers
from protocol.v2 import MetadataTensor
from protocol.v2_codec import load_json_object

# Name given to the single input of a model that declares no inputs.
DEFAULT_INPUT_NAME = "input"

RequestFormat = Literal["instances", "inputs"]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    instances: list[Any] | None = None
    inputs: Any = None


class PredictResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    predictions: list[Any] | None = None
    outputs: Any = None


class ServerStatusResponse(BaseModel):
    status: str


class ModelListResponse(BaseModel):
    models: list[str]


class ModelStatusResponse(BaseModel):
    name: str
    ready: bool


@dataclass(slots=True)
class DecodedPredict:
    format: RequestFormat
    inputs: dict[str, np.ndarray]


def decode_predict_request(body: bytes, declared: Sequence[MetadataTensor]) -> DecodedPredict:
    doc = load_json_object(body, "predict request")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances == has_inputs:
        raise BadRequest('a V1 predict request needs exactly one of "instances" or "inputs"')
    types = {t.name: t.datatype for t in declared}
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("instances must be a non-empty list of rows")
        if all(isinstance(row, dict) for row in instances):
            columns = _columns_from_rows(instances)
        elif any(isinstance(row, dict) for row in instances):
            raise BadRequest("instances mixes objects and plain rows; use one form for every row")
        else:
            columns = {_single_input_name(declared, "instances"): instances}
        return DecodedPredict("instances", _arrays(columns, types))
    inputs = doc["inputs"]
    if isinstance(inputs, dict):
        if not inputs:
            raise BadRequest("inputs must name at least one input")
        columns = inputs
    else:
        columns = {_single_input_name(declared, "inputs"): inputs}
    return DecodedPredict("inputs", _arrays(columns, types))


def _columns_from_rows(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names = list(rows[0])
    for index, row in enumerate(rows):
        if set(row) != set(names):
            raise BadRequest(f"instances[{index}] has keys {sorted(row)}; every row needs {sorted(names)}")
    return {name: [row[name] for row in rows] for name in names}


def _single_input_name(declared: Sequence[MetadataTensor], form: str) -> str:
    if len(declared) > 1:
        names = ", ".join(t.name for t in declared)
        raise BadRequest(f"the model takes several inputs ({names}): {form} must be objects keyed by input name")
    return declared[0].name if declared else DEFAULT_INPUT_NAME


def _arrays(columns: dict[str, Any], types: dict[str, str]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name, data in columns.items():
        tensor = f"input '{name}'"
        datatype = types.get(name) or _inferred_datatype(tensor, data)
        if not isinstance(data, list):
            data = [data]
        if datatype == "BYTES":
            shape = _nested_shape(data)
            arrays[name] = decode_json_data(tensor, datatype, shape, data)
        else:
            arrays[name] = coerce_json_array(tensor, datatype, data)
    return arrays


def _inferred_datatype(tensor: str, data: object) -> str:
    try:
        kind = np.asarray(data).dtype.kind
    except (ValueError, TypeError, OverflowError):
        raise TensorError(f"{tensor}: data is a ragged nested list; rows must have equal lengths") from None
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64", "U": "BYTES"}.get(kind, "FP64")


def _nested_shape(data: list) -> list[int]:
    shape: list[int] = []
    level: Any = data
    while isinstance(level, list):
        shape.append(len(level))
        level = level[0] if level else None
    return shape


def encode_predict_response(form: RequestFormat, outputs: dict[str, np.ndarray]) -> bytes:
    """Outputs -> `{"predictions": rows}` or `{"outputs": columns}` for the request's form.

    NaN and infinities are written as null (JSON has neither), as V2 JSON outputs do.
    """
    try:
        return strict_json.dumps(_predict_body(form, outputs, np.ndarray.tolist))
    except ValueError:  # a non-finite float; only then walk the outputs again to replace them
        return strict_json.dumps(_predict_body(form, outputs, json_numbers))


def _predict_body(form: RequestFormat, outputs: dict[str, np.ndarray], numbers: Callable[[np.ndarray], Any]
                  ) -> dict[str, Any]:
    values = {name: _json_value(name, np.asarray(array), numbers) for name, array in outputs.items()}
    if form == "inputs":
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": _rows(outputs, values)}


def _json_value(name: str, array: np.ndarray, numbers: Callable[[np.ndarray], Any]) -> Any:
    if array.dtype.kind not in "OSU":
        return numbers(array)
    flat = encode_json_data(f"output '{name}'", array)
    texts = np.empty(len(flat), dtype=object)
    texts[:] = flat
    return texts.reshape(array.shape).tolist()


def _rows(outputs: dict[str, np.ndarray], values: dict[str, Any]) -> list[dict[str, Any]]:
    lengths = {name: (np.shape(array)[0] if np.ndim(array) else None) for name, array in outputs.items()}
    if None in lengths.values() or len(set(lengths.values())) != 1:
        raise TensorError(
            f"outputs have different numbers of rows ({lengths}); use the columnar \"inputs\" form"
        )
    count = next(iter(lengths.values()))
    assert count is not None  # every output has rows: checked above
    return [{name: column[i] for name, column in values.items()} for i in range(count)]
