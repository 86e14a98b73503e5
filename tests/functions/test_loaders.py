"""Loaders: metadata read from the model, user code loaded by path (never shadowing the platform),
torch imported only for torch functions, and load failures that name the file or handler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from functions.loaders import LoadError, load_function
from functions.loaders.onnx_model import choose_providers
from functions.loaders.python_handler import unique_module_name
from protocol.inference_errors import BadRequest, InferenceFailed
from protocol.manifest import Resources, load_manifest

from .conftest import EXAMPLES, FIXTURE_FUNCTIONS, REPO


def load(function_dir: Path):
    return load_function(function_dir, load_manifest(function_dir))


def write_function(directory: Path, manifest: str, files: dict[str, str | bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "function.yaml").write_text(manifest)
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return directory


def test_onnx_metadata_comes_from_the_model_with_dynamic_dims_as_minus_one() -> None:
    function = load(EXAMPLES / "iris")
    assert [(t.name, t.datatype, t.shape) for t in function.metadata.inputs] == [("input", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, t.shape) for t in function.metadata.outputs] == [("probabilities", "FP32", [-1, 3])]
    assert function.metadata.batchable and function.source == "model model.onnx"
    out = function.predict({"input": np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)})
    assert out["probabilities"].shape == (1, 3)


def test_onnx_string_tensors_and_thread_settings(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])], "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["n"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    directory = write_function(tmp_path / "strings", "name: strings\nmodel: m.onnx\nresources: {threads: 1}\n",
                               {"m.onnx": model.SerializeToString()})
    function = load(directory)
    assert function.metadata.inputs[0].datatype == "BYTES" and function.metadata.inputs[0].shape == [-1]
    out = function.predict({"text": np.array([b"caf\xc3\xa9", b"x"], dtype=object)})
    assert out["same"].tolist() == ["caf\u00e9", "x"]  # bytes in, text out: BYTES either way on the wire


def test_cuda_is_chosen_only_when_asked_and_available() -> None:
    assert choose_providers(Resources(gpu=True), ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == \
        "CUDAExecutionProvider"
    assert choose_providers(Resources(gpu=True), ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(Resources(gpu=False), ["CUDAExecutionProvider", "CPUExecutionProvider"]) == \
        ["CPUExecutionProvider"]


def test_gpu_request_without_cuda_falls_back_to_cpu_and_says_so(tmp_path: Path, caplog) -> None:
    directory = write_function(tmp_path / "g", "name: g\nmodel: model.onnx\nresources: {gpu: true}\n",
                               {"model.onnx": (EXAMPLES / "iris" / "model.onnx").read_bytes()})
    with caplog.at_level("INFO", logger="zeroserve.functions"):
        function = load(directory)
    assert function.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert any("runs on" in r.getMessage() for r in caplog.records)


def test_user_protocol_and_functions_modules_never_shadow_the_platform() -> None:
    import functions as platform_functions
    import protocol as platform_protocol

    function = load(FIXTURE_FUNCTIONS / "shadowing")
    out = function.predict({"x": np.array([1, 2], dtype=np.int64)})
    assert out["y"].tolist() == [11, 12] and out["datatype"].tolist() == ["INT64"]
    assert sys.modules["protocol"] is platform_protocol and sys.modules["functions"] is platform_functions
    assert Path(platform_protocol.__file__).parent == REPO / "protocol"
    assert unique_module_name(FIXTURE_FUNCTIONS / "shadowing", "handler") in sys.modules


def test_a_handler_module_named_protocol_loads_under_its_own_name(tmp_path: Path) -> None:
    import protocol as platform_protocol

    directory = write_function(tmp_path / "p", "name: p\nhandler: protocol:Model\n", {"protocol.py": (
        "class Model:\n    def predict(self, inputs):\n        return {'y': inputs['x'] + 1}\n")})
    function = load(directory)
    assert function.predict({"x": np.array([1])})["y"].tolist() == [2]
    assert sys.modules["protocol"] is platform_protocol
    from protocol.v2_codec import decode_infer_request  # the platform's submodules still import

    assert decode_infer_request(b'{"inputs": []}').inputs == {}


def test_shadowing_holds_in_a_fresh_process() -> None:
    result = subprocess.run([sys.executable, "-m", "functions.smoke", str(FIXTURE_FUNCTIONS / "shadowing")],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"ok": true' in result.stdout


def test_handler_forms_object_module_and_declared_metadata_method(tmp_path: Path) -> None:
    module_level = write_function(tmp_path / "m", "name: m\nhandler: pkg.mod:predictor\n", {
        "pkg/__init__.py": "",
        "pkg/mod.py": "import numpy as np\n"
                      "class _P:\n"
                      "    def inputs(self):\n"
                      "        return [{'name': 'a', 'datatype': 'INT32', 'shape': [-1]}]\n"
                      "    def predict(self, inputs):\n"
                      "        return {'b': [1, 2]}\n"
                      "predictor = _P()\n"})
    function = load(module_level)
    assert function.metadata.inputs[0].name == "a" and function.metadata.outputs == []
    assert function.predict({"a": np.zeros(2, np.int32)})["b"].tolist() == [1, 2]  # lists become arrays


@pytest.mark.parametrize(
    ("files", "handler", "fault"),
    [
        ({}, "handler:Model", "neither handler.py nor handler/__init__.py exists"),
        ({"handler.py": "x = 1\n"}, "handler:Model", "module 'handler' has no attribute 'Model'"),
        ({"handler.py": "raise ImportError('no torch here')\n"}, "handler:Model",
         "importing handler.py raised ImportError: no torch here"),
        ({"handler.py": "class Model:\n    def load(self):\n        raise OSError('weights.bin missing')\n"
                        "    def predict(self, i):\n        return i\n"}, "handler:Model",
         "handler 'handler:Model': load() raised OSError: weights.bin missing"),
        ({"handler.py": "class Model:\n    pass\n"}, "handler:Model", "has no callable predict"),
        ({"handler.py": "class Model:\n    inputs = [{'name': 'x', 'datatype': 'FP128', 'shape': [1]}]\n"
                        "    def predict(self, i):\n        return i\n"}, "handler:Model", "'FP128' is not one of"),
    ],
)
def test_python_load_failures_name_the_handler(tmp_path: Path, files: dict, handler: str, fault: str) -> None:
    directory = write_function(tmp_path / "bad", f"name: bad\nhandler: {handler}\n", files)
    with pytest.raises(LoadError) as info:
        load(directory)
    assert fault in str(info.value)


def test_python_handler_wrong_return_type_is_reported(tmp_path: Path) -> None:
    directory = write_function(tmp_path / "r", "name: r\nhandler: handler:Model\n", {
        "handler.py": "class Model:\n    def predict(self, inputs):\n        return [1, 2]\n"})
    with pytest.raises(InferenceFailed, match="predict\\(\\) returned list; it must return a dict of arrays"):
        load(directory).predict({})


@pytest.mark.parametrize(
    ("model_bytes", "fault"),
    [(b"this is not a protobuf", "model file model.onnx could not be loaded by ONNX Runtime"),
     (None, "model 'model.onnx' does not exist")],
)
def test_onnx_load_failures_name_the_model_file(tmp_path: Path, model_bytes: bytes | None, fault: str) -> None:
    files = {} if model_bytes is None else {"model.onnx": model_bytes}
    directory = write_function(tmp_path / "bad", "name: bad\nmodel: model.onnx\n", files)
    with pytest.raises(LoadError, match=fault):
        load(directory)


def test_model_paths_cannot_escape_the_function_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((EXAMPLES / "iris" / "model.onnx").read_bytes())
    directory = write_function(tmp_path / "fn", "name: fn\nmodel: link.onnx\n", {})
    (directory / "link.onnx").symlink_to(outside)
    with pytest.raises(LoadError, match="resolves outside the function directory"):
        load(directory)


def test_manifest_env_is_applied_before_the_handler_loads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("H1_TEST_SCALE", raising=False)
    directory = write_function(tmp_path / "e", "name: e\nhandler: handler:Model\nenv: {H1_TEST_SCALE: 3}\n", {
        "handler.py": "import os\nSCALE = int(os.environ['H1_TEST_SCALE'])\n"
                      "class Model:\n    def predict(self, inputs):\n        return {'y': inputs['x'] * SCALE}\n"})
    assert load(directory).predict({"x": np.array([2])})["y"].tolist() == [6]
    monkeypatch.delenv("H1_TEST_SCALE", raising=False)


def test_torch_is_imported_only_by_torch_functions() -> None:
    code = ("import sys; from functions.loaders import load_function; from protocol.manifest import load_manifest;"
            "d = sys.argv[1]; load_function(d, load_manifest(d)); print('torch' in sys.modules)")
    onnx_run = subprocess.run([sys.executable, "-c", code, str(EXAMPLES / "iris")], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    assert onnx_run.stdout.strip() == "False", onnx_run.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_model_with_metadata_in_the_archive() -> None:
    import torch

    function = load(EXAMPLES / "torch-linear")
    assert function.metadata.platform == "pytorch_torchscript"
    assert [(t.name, t.datatype, t.shape) for t in function.metadata.inputs] == [("features", "FP32", [-1, 4])]
    features = np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], dtype=np.float32)
    read_only = np.frombuffer(features.tobytes(), dtype=np.float32).reshape(2, 4)  # as decoded from a body
    scores = function.predict({"features": read_only})["scores"]
    module = torch.jit.load(str(EXAMPLES / "torch-linear" / "model.pt"))
    expected = module(torch.from_numpy(features)).detach().numpy()
    # One TorchScript module, two calls: equal up to float32 rounding (thread splits may reorder sums).
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch 2.x deprecates scripting; we serve it
def test_torchscript_without_metadata_names_outputs_like_triton(tmp_path: Path) -> None:
    import torch

    class Pair(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return a + b, a * b

    directory = tmp_path / "pair"
    directory.mkdir()
    torch.jit.save(torch.jit.script(Pair()), str(directory / "model.pt"))
    (directory / "function.yaml").write_text("name: pair\nmodel: model.pt\n")
    function = load(directory)
    assert function.metadata.inputs == []
    out = function.predict({"b": np.array([3.0]), "a": np.array([2.0])})
    assert out["output__0"].tolist() == [5.0] and out["output__1"].tolist() == [6.0]
    with pytest.raises(BadRequest, match="missing 'b'"):
        function.predict({"a": np.array([1.0])})


def _graph_signature(model: onnx.ModelProto) -> dict:
    """What makes two models the same network: ops and their wiring, I/O names and shapes, parameters."""
    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {
        "nodes": [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node],
        "inputs": [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in model.graph.input],
        "outputs": [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in model.graph.output],
        "initializers": [(t.name, t.data_type, list(t.dims)) for t in model.graph.initializer],
        "opsets": [(o.domain, o.version) for o in model.opset_import],
        "ir_version": model.ir_version,
    }


def test_iris_example_is_reproducible_from_its_script() -> None:
    """make_model.py rebuilds the committed model from its fixed seed: the same graph, weights and answers.

    Training is 2000 float32 gradient steps, whose rounding follows the machine's BLAS kernels and
    summation order, so weights retrained on another CPU differ from the committed ones in the last
    digits (about 1e-5). The checks are ones such differences cannot break: an identical graph, weights
    within 1e-3, probabilities within 1e-3 and the same predicted class wherever the committed model is
    not at a near-tie.
    """
    import importlib.util

    import onnxruntime as ort

    spec = importlib.util.spec_from_file_location("_iris_make_model", EXAMPLES / "iris" / "make_model.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(script.SEED)
    features, labels = script.synthetic_iris(rng)
    rebuilt = script.build(script.train(features, labels, rng))
    committed = onnx.load(str(EXAMPLES / "iris" / "model.onnx"))

    assert _graph_signature(rebuilt) == _graph_signature(committed)
    for ours, theirs in zip(rebuilt.graph.initializer, committed.graph.initializer, strict=True):
        np.testing.assert_allclose(onnx.numpy_helper.to_array(ours), onnx.numpy_helper.to_array(theirs),
                                   rtol=1e-3, atol=1e-3, err_msg=ours.name)

    def probabilities(model: onnx.ModelProto, rows: np.ndarray) -> np.ndarray:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": rows})[0]

    sample = json.loads((EXAMPLES / "iris" / "sample.json").read_text())["inputs"][0]
    sample_rows = np.array(sample["data"], dtype=np.float32).reshape(sample["shape"])
    rows = np.concatenate([sample_rows, features])
    ours, theirs = probabilities(rebuilt, rows), probabilities(committed, rows)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    assert ours[:len(sample_rows)].argmax(axis=1).tolist() == theirs[:len(sample_rows)].argmax(axis=1).tolist()
    top_two = np.sort(theirs, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-2  # a near-tie may go either way on another CPU
    assert clear.mean() > 0.9, "the committed model should be decisive on most of its training data"
    assert np.array_equal(ours[clear].argmax(axis=1), theirs[clear].argmax(axis=1))
