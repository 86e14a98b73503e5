"""A function for load tests: about 20 ms per request and one request at a time per replica.

Its cost is a sleep, not CPU, so a few locust users build real concurrency even on a 2-core laptop,
and what the chart shows is the autoscaler rather than a CPU-starved machine.
"""

from __future__ import annotations

import time

import numpy as np


class Sleepy:
    inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    outputs = [{"name": "output", "datatype": "FP32", "shape": [-1, 4]}]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(0.02)
        return {"output": inputs["input"]}
