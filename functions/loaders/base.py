"""The shape every loader returns, and the error every loader raises."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from functions.metadata import ModelMetadata


class LoadError(Exception):
    """A function that cannot be loaded; the message names the file or handler and the fault."""


class LoadedFunction(ABC):
    """A model ready to run: `predict` is called from worker threads, never on the event loop."""

    metadata: ModelMetadata
    # What runs, for messages: "model model.onnx" or "handler handler:Echo".
    source: str

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by name -> outputs by name."""

    def close(self) -> None:  # noqa: B027 - optional hook, most models hold nothing to release
        """Release what the model holds; the default holds nothing worth releasing early."""


def resolve_inside(function_dir: Path, relative: str, key: str) -> Path:
    """`relative` under `function_dir`, refusing anything (symlinks included) that escapes it."""
    root = function_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise LoadError(f"{key} '{relative}' resolves outside the function directory")
    if not path.is_file():
        raise LoadError(f"{key} '{relative}' does not exist in {function_dir}")
    return path
