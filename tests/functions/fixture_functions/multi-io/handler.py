import numpy as np


class Model:
    inputs = [
        {"name": "values", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "words", "datatype": "BYTES", "shape": [-1]},
    ]
    outputs = [
        {"name": "doubled", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "upper", "datatype": "BYTES", "shape": [-1]},
        {"name": "length", "datatype": "INT64", "shape": [-1]},
    ]

    def predict(self, inputs):
        words = inputs["words"]
        upper = np.empty(words.shape, dtype=object)
        upper[:] = [w.upper() for w in words]
        return {
            "doubled": inputs["values"] * 2,
            "upper": upper,
            "length": np.array([len(w) for w in words], dtype=np.int64),
        }
