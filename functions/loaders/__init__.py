"""Load a function directory into something that predicts: ONNX Runtime, TorchScript or Python."""

from __future__ import annotations

import os
from pathlib import Path

from functions.loaders.base import LoadedFunction, LoadError, resolve_inside
from functions.metadata import ModelMetadata
from protocol.manifest import FunctionManifest

__all__ = ["LoadError", "LoadedFunction", "ModelMetadata", "load_function"]


def load_function(function_dir: Path, manifest: FunctionManifest) -> LoadedFunction:
    """Load the model or handler that `manifest` names; raises `LoadError` naming what failed.

    The manifest's `env` is applied to this process first: a handler's import and `load()` may read
    it, and a runtime process serves exactly one function.
    """
    function_dir = Path(function_dir)
    os.environ.update(manifest.env)
    if manifest.runtime == "python":
        from functions.loaders.python_handler import PythonFunction

        assert manifest.handler is not None  # parse_manifest guarantees it for runtime python
        return PythonFunction(function_dir, manifest.handler)
    if manifest.model is None:
        raise LoadError(f"model: required for runtime '{manifest.runtime}'")
    path = resolve_inside(function_dir, manifest.model, "model")
    if manifest.runtime == "onnx":
        from functions.loaders.onnx_model import OnnxFunction

        return OnnxFunction(path, manifest.resources, manifest.model)
    if manifest.runtime == "torch":
        from functions.loaders.torchscript import TorchFunction

        return TorchFunction(path, manifest.resources, manifest.model)
    raise LoadError(f"runtime: '{manifest.runtime}' is not one of onnx, torch, python")
