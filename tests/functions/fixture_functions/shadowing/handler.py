import helpers  # a sibling module: the function directory is on sys.path (after the platform)
import numpy as np

from protocol.tensors import datatype_of  # the platform's protocol package, not ./protocol.py


class Model:
    inputs = [{"name": "x", "datatype": "INT64", "shape": [-1]}]

    def predict(self, inputs):
        x = inputs["x"]
        return {"y": x + helpers.OFFSET, "datatype": np.array([datatype_of(x)], dtype=object)}
