"""ONNX models on ONNX Runtime: CUDA first when the manifest asks for a GPU and one is there."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from functions.loaders.base import LoadedFunction, LoadError
from functions.metadata import MetadataTensor, ModelMetadata
from protocol.manifest import Resources

if TYPE_CHECKING:
    from onnxruntime import NodeArg  # imported when a model loads, not when this module does

log = logging.getLogger("zeroserve.functions")

_ONNX_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def choose_providers(resources: Resources, available: list[str]) -> list[str]:
    if resources.gpu and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxFunction(LoadedFunction):
    def __init__(self, path: Path, resources: Resources, display_name: str):
        import onnxruntime as ort

        self.source = f"model {display_name}"
        options = ort.SessionOptions()
        if resources.threads is not None:
            options.intra_op_num_threads = resources.threads
            options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        providers = choose_providers(resources, available)
        if resources.gpu and providers[0] != "CUDAExecutionProvider":
            log.warning("%s: resources.gpu is set but CUDAExecutionProvider is not available (have %s); "
                        "running on CPU", self.source, ", ".join(available))
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own pybind types (Fail, InvalidGraph, ...)
            raise LoadError(f"model file {display_name} could not be loaded by ONNX Runtime: {exc}") from None
        log.info("%s runs on %s (threads: %s)", self.source, self._session.get_providers()[0],
                 resources.threads or "onnxruntime default")
        self.provider = self._session.get_providers()[0]
        try:
            inputs = [_spec(arg) for arg in self._session.get_inputs()]
            outputs = [_spec(arg) for arg in self._session.get_outputs()]
        except KeyError as exc:
            raise LoadError(f"model file {display_name}: unsupported tensor type {exc}") from None
        self.metadata = ModelMetadata(platform="onnx_onnxv1", inputs=inputs, outputs=outputs)
        self._string_inputs = {t.name for t in inputs if t.datatype == "BYTES"}
        self._output_names = [t.name for t in outputs]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {
            # ORT str()s bytes objects ("b'x'") in string tensors; it wants Python str.
            name: _texts(value) if name in self._string_inputs else value
            for name, value in inputs.items()
        }
        results = self._session.run(self._output_names, feed)
        return dict(zip(self._output_names, results, strict=True))


def _spec(arg: NodeArg) -> MetadataTensor:
    shape = [dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (arg.shape or [])]
    return MetadataTensor(name=arg.name, datatype=_ONNX_DATATYPES[arg.type], shape=shape)


def _texts(array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    out.ravel()[:] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.ravel()]
    return out
