"""TorchScript models. `torch` is imported here only, so other runtimes never pay for it.

TorchScript keeps argument names but not datatypes or shapes, so a model may carry its tensor
metadata inside the archive as the extra file `metadata.json` (`{"inputs": [...], "outputs": [...]}`,
written with `torch.jit.save(..., _extra_files=...)`). Without it, inputs are matched to `forward`'s
arguments by name and outputs are named `output__0`, `output__1`, ... (Triton's convention).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from functions.loaders.base import LoadedFunction, LoadError
from functions.metadata import ModelMetadata, tensor_specs
from protocol.inference_errors import BadRequest
from protocol.manifest import Resources

log = logging.getLogger("zeroserve.functions")

METADATA_FILE = "metadata.json"


class TorchFunction(LoadedFunction):
    def __init__(self, path: Path, resources: Resources, display_name: str):
        import torch

        self._torch = torch
        self.source = f"model {display_name}"
        if resources.threads is not None:
            torch.set_num_threads(resources.threads)
        self.device = "cuda" if resources.gpu and torch.cuda.is_available() else "cpu"
        if resources.gpu and self.device == "cpu":
            log.warning("%s: resources.gpu is set but CUDA is not available to torch; running on CPU", self.source)
        extra = {METADATA_FILE: ""}
        try:
            with warnings.catch_warnings():
                # torch 2.x deprecates TorchScript in favour of torch.export; TorchScript is the format served.
                warnings.simplefilter("ignore", DeprecationWarning)
                self._module = torch.jit.load(str(path), map_location=self.device, _extra_files=extra)
        except Exception as exc:  # torch raises RuntimeError/ValueError variants for bad archives
            raise LoadError(f"model file {display_name} could not be loaded as TorchScript: {exc}") from None
        self._module.eval()
        log.info("%s runs on %s", self.source, self.device)
        self._arg_names = [a.name for a in self._module.forward.schema.arguments[1:]]
        declared = _declared_metadata(extra[METADATA_FILE], display_name)
        try:
            inputs = tensor_specs(declared.get("inputs"), f"{display_name} {METADATA_FILE} inputs")
            outputs = tensor_specs(declared.get("outputs"), f"{display_name} {METADATA_FILE} outputs")
        except ValueError as exc:
            raise LoadError(str(exc)) from None
        self.metadata = ModelMetadata(platform="pytorch_torchscript", inputs=inputs, outputs=outputs)
        self._output_names = [t.name for t in outputs]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        missing = [name for name in self._arg_names if name not in inputs]
        if missing:
            raise BadRequest(f"{self.source}: forward() takes {', '.join(self._arg_names)}; missing "
                             f"{', '.join(repr(m) for m in missing)}")
        # from_numpy shares memory and refuses read-only arrays (np.frombuffer on a request body).
        tensors = [torch.from_numpy(inputs[n] if inputs[n].flags.writeable else inputs[n].copy()).to(self.device)
                   for n in self._arg_names]
        with torch.inference_mode():
            result = self._module(*tensors)
        return self._outputs(result)

    def _outputs(self, result: Any) -> dict[str, np.ndarray]:
        if isinstance(result, dict):
            return {str(k): v.detach().cpu().numpy() for k, v in result.items()}
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        names = self._output_names if len(self._output_names) == len(values) else [
            f"output__{i}" for i in range(len(values))]
        return {name: value.detach().cpu().numpy() for name, value in zip(names, values, strict=True)}


def _declared_metadata(text: str | bytes, display_name: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        declared = json.loads(text)
    except ValueError as exc:
        raise LoadError(f"model file {display_name}: {METADATA_FILE} is not valid JSON: {exc}") from None
    if not isinstance(declared, dict):
        raise LoadError(f"model file {display_name}: {METADATA_FILE} must be an object with inputs/outputs")
    return declared
