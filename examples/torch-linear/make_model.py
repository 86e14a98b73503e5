"""Build examples/torch-linear/model.pt: a TorchScript linear layer (4 -> 2) with a fixed seed.

The tensor metadata (names, datatypes, shapes) travels inside the archive as the extra file
`metadata.json`, since TorchScript itself records no datatypes; the runtime reads it back.
Run `python examples/torch-linear/make_model.py` to regenerate the committed model.pt.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SEED = 3

METADATA = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 2]}],
}


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


def main() -> None:
    torch.manual_seed(SEED)
    module = torch.jit.script(Linear().eval())
    path = HERE / "model.pt"
    torch.jit.save(module, str(path), _extra_files={"metadata.json": json.dumps(METADATA)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
