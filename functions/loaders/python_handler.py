"""Plain Python handlers: `handler: module:attr` in function.yaml.

`attr` is a class (instantiated with no arguments), or any object or module with
`predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]`, and optionally `load()` (called
once before serving) and `inputs`/`outputs` metadata (a list of {name, datatype, shape}, or a method
returning one).

The module is loaded from its file under a unique module name, never through `sys.path` lookup, so a
user's `protocol.py` or `functions.py` can never stand in for the platform's packages. The function
directory is *appended* to `sys.path` so a handler can import its sibling modules; the platform's
packages come earlier on the path and keep precedence.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from functions.loaders.base import LoadedFunction, LoadError, resolve_inside
from functions.metadata import ModelMetadata, tensor_specs
from protocol.inference_errors import InferenceFailed


class PythonFunction(LoadedFunction):
    def __init__(self, function_dir: Path, handler: str):
        self.source = f"handler '{handler}'"
        module_name, _, attr = handler.partition(":")
        module = _import_by_path(function_dir, module_name, self.source)
        try:
            target = getattr(module, attr)
        except AttributeError:
            raise LoadError(f"{self.source}: module '{module_name}' has no attribute '{attr}'") from None
        if inspect.isclass(target):
            target = _call(lambda: target(), f"{self.source}: {attr}()")
        load = getattr(target, "load", None)
        if callable(load):
            _call(load, f"{self.source}: load()")
        predict = getattr(target, "predict", None)
        if not callable(predict):
            raise LoadError(f"{self.source}: has no callable predict(inputs)")
        self._predict = predict
        try:
            inputs = tensor_specs(_declared(target, "inputs", self.source), f"{self.source} inputs")
            outputs = tensor_specs(_declared(target, "outputs", self.source), f"{self.source} outputs")
        except ValueError as exc:
            raise LoadError(str(exc)) from None
        self.metadata = ModelMetadata(platform="python", inputs=inputs, outputs=outputs)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._predict(inputs)
        if not isinstance(result, Mapping):
            raise InferenceFailed(
                f"{self.source}: predict() returned {type(result).__name__}; it must return a dict of arrays"
            )
        outputs: dict[str, np.ndarray] = {}
        for name, value in result.items():
            if not isinstance(name, str):
                raise InferenceFailed(f"{self.source}: predict() returned a non-string output name {name!r}")
            try:
                outputs[name] = value if isinstance(value, np.ndarray) else np.asarray(value)
            except (ValueError, TypeError) as exc:
                raise InferenceFailed(f"{self.source}: output '{name}' is not array-like: {exc}") from None
        return outputs


def unique_module_name(function_dir: Path, module_name: str) -> str:
    digest = hashlib.sha256(str(function_dir.resolve()).encode()).hexdigest()[:12]
    return f"_zeroserve_fn_{digest}_{module_name.replace('.', '_')}"


def _import_by_path(function_dir: Path, module_name: str, source: str) -> ModuleType:
    relative = Path(*module_name.split("."))
    candidates = [relative.with_suffix(".py"), relative / "__init__.py"]
    existing = [c for c in candidates if (function_dir / c).is_file()]
    if not existing:
        raise LoadError(f"{source}: neither {candidates[0]} nor {candidates[1]} exists in {function_dir}")
    try:
        path = resolve_inside(function_dir, str(existing[0]), "handler")
    except LoadError as exc:
        raise LoadError(f"{source}: {exc}") from None
    unique = unique_module_name(function_dir, module_name)
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{source}: {path.name} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    root = str(function_dir.resolve())
    if root not in sys.path:
        sys.path.append(root)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[unique]
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise LoadError(f"{source}: importing {existing[0]} raised {type(exc).__name__}: {exc}") from None
    return module


def _call(fn: Any, what: str) -> Any:
    try:
        return fn()
    except Exception as exc:
        raise LoadError(f"{what} raised {type(exc).__name__}: {exc}") from None


def _declared(target: object, key: str, source: str) -> object:
    value = getattr(target, key, None)
    if callable(value):
        value = _call(value, f"{source}: {key}()")
    return value
