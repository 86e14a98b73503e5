"""The sample request of a function: for smoke tests at build time and for load tests.

Taken from the file the manifest's `sample` names, else `sample.json` if present, else generated
from the model's metadata: zeros of each input's datatype (empty strings for BYTES), with dynamic
dimensions of size 1. Zeros rather than ones because an index input (an embedding lookup, say)
is always in range at zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from functions.loaders.base import LoadError, resolve_inside
from functions.metadata import ModelMetadata
from protocol.manifest import FunctionManifest
from protocol.tensors import encode_json_data, numpy_dtype

DEFAULT_SAMPLE_FILE = "sample.json"


class SampleError(ValueError):
    """No usable sample request; the message names the file or the missing metadata."""


def sample_request(function_dir: str | Path, manifest: FunctionManifest, metadata: ModelMetadata) -> dict:
    """A V2 JSON infer request (as a dict) for this function."""
    function_dir = Path(function_dir)
    name = manifest.sample
    if name is None and (function_dir / DEFAULT_SAMPLE_FILE).is_file():
        name = DEFAULT_SAMPLE_FILE
    if name is not None:
        return _read_sample(function_dir, name)
    return generated_request(metadata, manifest.name)


def generated_request(metadata: ModelMetadata, function: str = "function") -> dict[str, Any]:
    if not metadata.inputs:
        raise SampleError(
            f"function '{function}' declares no inputs and has no {DEFAULT_SAMPLE_FILE}: add a sample "
            "request file (manifest key 'sample') or declare the handler's inputs"
        )
    inputs = []
    for spec in metadata.inputs:
        shape = [1 if dim < 0 else dim for dim in spec.shape]
        if spec.datatype == "BYTES":
            array = np.full(shape, b"", dtype=object)
        else:
            array = np.zeros(shape, dtype=numpy_dtype(spec.datatype))
        inputs.append({"name": spec.name, "shape": shape, "datatype": spec.datatype,
                       "data": encode_json_data(f"input '{spec.name}'", array)})
    return {"id": "sample", "inputs": inputs}


def _read_sample(function_dir: Path, name: str) -> dict[str, Any]:
    try:
        path = resolve_inside(function_dir, name, "sample")
    except LoadError as exc:
        raise SampleError(str(exc)) from None
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SampleError(f"sample file {name} is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise SampleError(f"sample file {name} must be a V2 infer request: an object with an 'inputs' list")
    return request
