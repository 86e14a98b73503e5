"""A Python-handler function: echoes its input back, and reports the row sums.

The runtime instantiates `Echo`, calls `load()` once before serving, then `predict()` per request
(or per batch). `inputs`/`outputs` declare the metadata the V2 metadata endpoint reports and the
runtime validates requests against.
"""

from __future__ import annotations

import os

import numpy as np


class Echo:
    inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}]
    outputs = [
        {"name": "output", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "sum", "datatype": "FP32", "shape": [-1]},
    ]

    def __init__(self) -> None:
        self.scale = 1.0

    def load(self) -> None:
        # Anything slow (reading weights, warming caches) belongs here, not in predict().
        self.scale = float(os.environ.get("ECHO_SCALE", "1"))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = inputs["input"] * np.float32(self.scale)
        return {"output": values, "sum": values.sum(axis=1)}
