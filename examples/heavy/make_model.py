"""Build examples/heavy/model.onnx: a deliberately expensive model for showing dynamic batching.

`LAYERS` rounds of MatMul + Relu on a 1024-wide vector, then a projection to 16 outputs. One
request row costs a matrix-vector product per layer (memory-bound: the 4 MiB weight is streamed
for every row), while a batch of rows shares each pass over the weight as a matrix-matrix product,
so batching multiplies throughput. The layers share one weight matrix to keep the file near 4 MiB.
Fixed seed, nothing downloaded: `python examples/heavy/make_model.py` regenerates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 11
WIDTH = 1024
LAYERS = 96
OUTPUTS = 16


def build(rng: np.random.Generator) -> onnx.ModelProto:
    # He initialisation keeps activations from vanishing or exploding through the Relu chain.
    weight = rng.normal(0, np.sqrt(2.0 / WIDTH), size=(WIDTH, WIDTH)).astype(np.float32)
    head = rng.normal(0, np.sqrt(1.0 / WIDTH), size=(WIDTH, OUTPUTS)).astype(np.float32)
    nodes = []
    current = "input"
    for layer in range(LAYERS):
        nodes.append(helper.make_node("MatMul", [current, "weight"], [f"mm{layer}"]))
        nodes.append(helper.make_node("Relu", [f"mm{layer}"], [f"act{layer}"]))
        current = f"act{layer}"
    nodes.append(helper.make_node("MatMul", [current, "head"], ["output"]))
    graph = helper.make_graph(
        nodes,
        "heavy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", OUTPUTS])],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(head, "head")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="zeroserve-examples")
    onnx.checker.check_model(model)
    return model


def main() -> None:
    path = HERE / "model.onnx"
    onnx.save(build(np.random.default_rng(SEED)), path)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
