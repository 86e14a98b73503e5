"""Request bodies a load test sends: the function's own sample, or one made from its model metadata.

Everything here is plain data in, plain data out (no HTTP), so the harness and the locustfile agree on
the bytes: the harness fetches metadata and writes the V2 request to the report folder, and the
locustfile reads that file and derives the V1 body from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from protocol.inference_errors import InferenceError
from protocol.tensors import check_shape, decode_json_data, encode_json_data, numpy_dtype


class RequestBodyError(ValueError):
    """A sample request or metadata that cannot be sent; the message names the file, tensor or field."""


def read_v2_request(path: str | Path) -> dict[str, Any]:
    """A V2 infer request from a JSON file, checked tensor by tensor before any load is sent."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RequestBodyError(f"sample {path}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestBodyError(f"sample {path}: not valid JSON: {exc}") from None
    check_v2_request(document, source=f"sample {path}")
    return document


def check_v2_request(document: object, source: str = "request") -> None:
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list) \
            or not document["inputs"]:
        raise RequestBodyError(
            f"{source}: must be a V2 infer request, an object with a non-empty 'inputs' list")
    for index, tensor in enumerate(document["inputs"]):
        _decode_input(tensor, f"{source}: inputs[{index}]")


def request_from_metadata(metadata: object, function: str) -> dict[str, Any]:
    """A V2 request from `GET .../v2/models/<fn>` metadata: zeros of each input, dynamic dims of size 1.

    Zeros (the runtime's own choice for smoke tests) because an index input such as an embedding lookup
    is always in range at zero.
    """
    if not isinstance(metadata, dict) or not isinstance(metadata.get("inputs"), list):
        raise RequestBodyError(f"metadata of '{function}': no 'inputs' list (is this a V2 model endpoint?)")
    if not metadata["inputs"]:
        raise RequestBodyError(
            f"function '{function}' declares no inputs in its metadata: "
            "pass a sample request with --sample FILE")
    inputs = []
    for index, spec in enumerate(metadata["inputs"]):
        where = f"metadata of '{function}': inputs[{index}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestBodyError(f"{where}: needs a 'name'")
        dims = spec.get("shape")
        if not isinstance(dims, list) or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
            raise RequestBodyError(f"{where} ('{spec['name']}'): shape must be a list of integers")
        shape = [1 if dim < 0 else dim for dim in dims]
        datatype = spec.get("datatype")
        try:
            if datatype == "BYTES":
                array = np.full(shape, b"", dtype=object)
            else:
                array = np.zeros(shape, dtype=numpy_dtype(str(datatype), spec["name"]))
            data = encode_json_data(spec["name"], array)
        except InferenceError as exc:
            raise RequestBodyError(f"{where}: {exc.message}") from None
        inputs.append({"name": spec["name"], "shape": shape, "datatype": datatype, "data": data})
    return {"id": "loadtest", "inputs": inputs}


def v1_body(v2_request: dict[str, Any]) -> dict[str, Any]:
    """The same tensors as a V1 `{"instances": [...]}` body: one row per element of the first dimension.

    A single input travels as plain rows; several inputs as one object per row keyed by input name
    (both are KServe V1's row format).
    """
    columns: dict[str, list[Any]] = {}
    for index, tensor in enumerate(v2_request["inputs"]):
        array = _decode_input(tensor, f"inputs[{index}]")  # checks shape against data
        if array.ndim == 0:
            raise RequestBodyError(
                f"inputs[{index}] ('{tensor['name']}'): a scalar has no rows for V1 instances")
        # The values as written, regrouped by shape: a float32 round trip would turn 5.1 into 5.0999999.
        columns[tensor["name"]] = _nest(_flatten(tensor["data"]), list(array.shape))
    lengths = {len(rows) for rows in columns.values()}
    if len(lengths) != 1:
        raise RequestBodyError("inputs have different first dimensions; V1 instances need one row count")
    if len(columns) == 1:
        return {"instances": next(iter(columns.values()))}
    count = lengths.pop()
    return {"instances": [{name: rows[i] for name, rows in columns.items()} for i in range(count)]}


def _decode_input(tensor: object, where: str) -> np.ndarray:
    if not isinstance(tensor, dict):
        raise RequestBodyError(f"{where}: must be an object with name, shape, datatype and data")
    missing = [key for key in ("name", "shape", "datatype", "data") if key not in tensor]
    if missing:
        raise RequestBodyError(f"{where}: missing {', '.join(missing)}")
    try:
        shape = check_shape(tensor["shape"], str(tensor["name"]))
        return decode_json_data(str(tensor["name"]), str(tensor["datatype"]), shape, tensor["data"])
    except InferenceError as exc:
        raise RequestBodyError(f"{where}: {exc.message}") from None


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [value for item in data for value in _flatten(item)]


def _nest(flat: list[Any], shape: list[int]) -> list[Any]:
    if len(shape) == 1:
        return flat
    size = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * size:(i + 1) * size], shape[1:]) for i in range(shape[0])]
