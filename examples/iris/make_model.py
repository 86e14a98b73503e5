"""Build examples/iris/model.onnx: a small MLP classifier (4 FP32 features -> 3 class probabilities).

Deterministic (fixed numpy seed) and offline: the weights are fitted here, with plain numpy, to
synthetic data shaped like Fisher's iris measurements, so the model answers sensibly and nothing is
downloaded. Run `python examples/iris/make_model.py` to regenerate the committed model.onnx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 7
HIDDEN = 16
CLASSES = ("setosa", "versicolor", "virginica")
# Per-class mean and spread of sepal length, sepal width, petal length, petal width (cm).
CLASS_MEANS = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]], dtype=np.float32)
CLASS_STDS = np.array([[0.35, 0.38, 0.17, 0.1], [0.5, 0.3, 0.47, 0.2], [0.63, 0.32, 0.55, 0.27]], dtype=np.float32)


def synthetic_iris(rng: np.random.Generator, per_class: int = 200) -> tuple[np.ndarray, np.ndarray]:
    features = np.concatenate(
        [rng.normal(m, s, size=(per_class, 4)) for m, s in zip(CLASS_MEANS, CLASS_STDS, strict=True)]
    )
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    return features.astype(np.float32), labels


def train(features: np.ndarray, labels: np.ndarray, rng: np.random.Generator, steps: int = 2000
          ) -> list[np.ndarray]:
    """Full-batch gradient descent on softmax cross-entropy; small enough to run in a second."""
    w1 = rng.normal(0, 0.5, size=(4, HIDDEN)).astype(np.float32)
    b1 = np.zeros(HIDDEN, dtype=np.float32)
    w2 = rng.normal(0, 0.5, size=(HIDDEN, len(CLASSES))).astype(np.float32)
    b2 = np.zeros(len(CLASSES), dtype=np.float32)
    onehot = np.eye(len(CLASSES), dtype=np.float32)[labels]
    lr = 0.05
    for _ in range(steps):
        hidden = np.maximum(features @ w1 + b1, 0)
        logits = hidden @ w2 + b2
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        grad_logits = (probs - onehot) / len(features)
        grad_hidden = (grad_logits @ w2.T) * (hidden > 0)
        w2 -= lr * hidden.T @ grad_logits
        b2 -= lr * grad_logits.sum(axis=0)
        w1 -= lr * features.T @ grad_hidden
        b1 -= lr * grad_hidden.sum(axis=0)
    return [w1, b1, w2, b2]


def build(weights: list[np.ndarray]) -> onnx.ModelProto:
    w1, b1, w2, b2 = weights
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "iris",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(CLASSES)])],
        initializer=[
            numpy_helper.from_array(a, name) for a, name in zip(weights, ("w1", "b1", "w2", "b2"), strict=True)
        ],
    )
    # IR 8 / opset 17: loadable by every ONNX Runtime this project supports.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="zeroserve-examples")
    model.doc_string = "Iris classifier; outputs probabilities for " + ", ".join(CLASSES)
    onnx.checker.check_model(model)
    return model


def main() -> None:
    rng = np.random.default_rng(SEED)
    features, labels = synthetic_iris(rng)
    weights = train(features, labels, rng)
    hidden = np.maximum(features @ weights[0] + weights[1], 0)
    accuracy = float(((hidden @ weights[2] + weights[3]).argmax(axis=1) == labels).mean())
    onnx.save(build(weights), HERE / "model.onnx")
    print(f"wrote {HERE / 'model.onnx'} (training accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
