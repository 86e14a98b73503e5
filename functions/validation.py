"""Check a decoded request against the model's metadata before it reaches the model or a batch.

Every request is validated on its own, so one bad request is answered 400 and never joins (and
never fails) a batch of good ones. Models that declare no metadata (plain Python handlers) skip
these checks: their own `predict` is the judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from functions.metadata import ModelMetadata
from protocol.inference_errors import BadRequest, TensorError
from protocol.tensors import datatype_of


def check_inputs(model: str, metadata: ModelMetadata, inputs: dict[str, np.ndarray]) -> None:
    if not metadata.inputs:
        return
    declared = {t.name: t for t in metadata.inputs}
    for name, array in inputs.items():
        spec = declared.get(name)
        if spec is None:
            raise BadRequest(f"unknown input '{name}' for model '{model}'; it takes {_names(declared)}")
        tensor = f"input '{name}'"
        datatype = datatype_of(array, tensor)
        if datatype != spec.datatype:
            raise TensorError(f"{tensor} has datatype {datatype} but model '{model}' expects {spec.datatype}")
        if not _shape_fits(array.shape, spec.shape):
            raise TensorError(
                f"{tensor} has shape {list(array.shape)} but model '{model}' expects {spec.shape} (-1: any size)"
            )
    missing = [name for name in declared if name not in inputs]
    if missing:
        raise BadRequest(f"model '{model}' needs input{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(m) for m in missing)}")
    if metadata.batchable and len({array.shape[0] for array in inputs.values()}) > 1:
        rows = {name: array.shape[0] for name, array in inputs.items()}
        raise BadRequest(f"inputs of model '{model}' must have the same first (batch) dimension; got {rows}")


def check_requested_outputs(model: str, metadata: ModelMetadata, names: Sequence[str] | None) -> None:
    if names is None or not metadata.outputs:
        return
    declared = {t.name for t in metadata.outputs}
    for name in names:
        if name not in declared:
            raise BadRequest(f"unknown output '{name}' requested from model '{model}'; it has {_names(declared)}")


def check_produced_outputs(model: str, produced: dict[str, np.ndarray], names: Sequence[str] | None) -> None:
    """For models without declared outputs: a requested output the model did not return."""
    if names is None:
        return
    for name in names:
        if name not in produced:
            raise BadRequest(f"unknown output '{name}' requested from model '{model}'; it returned "
                             f"{_names(produced)}")


def _shape_fits(shape: tuple[int, ...], declared: list[int]) -> bool:
    return len(shape) == len(declared) and all(d in (-1, s) for s, d in zip(shape, declared, strict=True))


def _names(names: Iterable[object]) -> str:
    listed = ", ".join(f"'{n}'" for n in names)
    return listed or "none"
