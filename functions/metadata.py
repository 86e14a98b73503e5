"""What a loaded model says about itself: its inputs and outputs, and the framework behind it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from protocol.tensors import DATATYPES
from protocol.v2 import MetadataTensor

__all__ = ["MetadataTensor", "ModelMetadata", "tensor_specs"]


@dataclass(frozen=True)
class ModelMetadata:
    """Inputs/outputs as the V2 metadata endpoint reports them; empty lists when undeclared."""

    platform: str
    inputs: list[MetadataTensor] = field(default_factory=list)
    outputs: list[MetadataTensor] = field(default_factory=list)

    def input(self, name: str) -> MetadataTensor | None:
        return next((t for t in self.inputs if t.name == name), None)

    @property
    def batchable(self) -> bool:
        """Every input has a dynamic first dimension, so requests can be stacked along it."""
        return bool(self.inputs) and all(t.shape and t.shape[0] == -1 for t in self.inputs)


def tensor_specs(declared: object, where: str) -> list[MetadataTensor]:
    """User-declared tensors (dicts or MetadataTensor-like objects) -> validated `MetadataTensor`s.

    Raises ValueError naming `where` and the fault, so a handler's bad declaration fails its load.
    """
    if declared is None:
        return []
    if isinstance(declared, (str, bytes, Mapping)) or not isinstance(declared, Iterable):
        raise ValueError(f"{where} must be a list of {{name, datatype, shape}}")
    specs: list[MetadataTensor] = []
    for index, item in enumerate(declared):
        raw = item if isinstance(item, Mapping) else {
            key: getattr(item, key, None) for key in ("name", "datatype", "shape")
        }
        name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}[{index}].name must be a non-empty string")
        if datatype not in DATATYPES:
            raise ValueError(f"{where}[{index}] ('{name}').datatype {datatype!r} is not one of {list(DATATYPES)}")
        if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
        ):
            raise ValueError(f"{where}[{index}] ('{name}').shape must be a list of integers, -1 for any size")
        specs.append(MetadataTensor(name=name, datatype=datatype, shape=list(shape)))
    return specs
