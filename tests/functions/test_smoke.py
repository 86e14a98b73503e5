"""`python -m functions.smoke DIR`: one JSON line, exit 0 or 1, errors that name the file or handler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from functions.loaders import load_function
from functions.samples import SampleError, sample_request
from functions.smoke import smoke_test
from protocol.manifest import load_manifest

from .conftest import EXAMPLES, FIXTURE_FUNCTIONS, REPO

IDENTITY = "class M:\n    def predict(self, i):\n        return i\n"


def run_smoke(function_dir: Path) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "functions.smoke", str(function_dir)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be one JSON line: {result.stdout!r} (stderr {result.stderr!r})"
    return result.returncode, json.loads(lines[0])


def test_smoke_of_a_good_function_prints_timings_and_outputs() -> None:
    code, report = run_smoke(EXAMPLES / "iris")
    assert code == 0 and report["ok"] is True
    assert report["outputs"] == {"probabilities": [[2, 3], "FP32"]}
    assert report["load_ms"] > 0 and report["infer_ms"] > 0


def test_smoke_of_a_raising_handler_names_the_handler_and_exception() -> None:
    code, report = run_smoke(FIXTURE_FUNCTIONS / "raising")
    assert code == 1 and report == {
        "ok": False, "error": "handler 'handler:Broken' raised ValueError: weights are missing"}


def test_smoke_of_a_corrupt_model_names_the_model_file(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: corrupt\nmodel: weights/model.onnx\n")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.onnx").write_bytes(b"\x08\x07garbage")
    code, report = run_smoke(tmp_path)
    assert code == 1 and report["ok"] is False
    assert report["error"].startswith("model file weights/model.onnx could not be loaded")


def test_user_prints_do_not_break_the_one_line_contract(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: chatty\nhandler: handler:Model\n")
    (tmp_path / "handler.py").write_text(
        "print('loading...')\n"
        "class Model:\n"
        "    inputs = [{'name': 'x', 'datatype': 'INT8', 'shape': [-1, 2]}]\n"
        "    def predict(self, inputs):\n"
        "        print('predicting')\n"
        "        return {'y': inputs['x']}\n")
    code, report = run_smoke(tmp_path)
    assert code == 0 and report["outputs"] == {"y": [[1, 2], "INT8"]}  # generated: dynamic dims -> 1


@pytest.mark.parametrize(
    ("files", "fault"),
    [
        ({"function.yaml": "name: Bad_Name\n"}, "name: name 'Bad_Name' must be a DNS-1035 label"),
        ({"function.yaml": "name: s\nhandler: h:M\nsample: missing.json\n", "h.py": IDENTITY},
         "sample 'missing.json' does not exist"),
        ({"function.yaml": "name: s\nhandler: h:M\n", "sample.json": "{not json", "h.py": IDENTITY},
         "sample file sample.json is not valid JSON"),
        ({"function.yaml": "name: s\nhandler: h:M\n", "h.py": IDENTITY}, "declares no inputs and has no sample.json"),
        ({"function.yaml": "name: s\nmodel: m.onnx\n", "sample.json": '{"inputs": [{"name": "input", "shape": [1, 2],'
          ' "datatype": "FP32", "data": [1, 2]}]}'}, None),
    ],
)
def test_smoke_failures_in_process(tmp_path: Path, files: dict[str, str], fault: str | None) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    if fault is None:  # the iris model with a sample of the wrong width
        (tmp_path / "m.onnx").write_bytes((EXAMPLES / "iris" / "model.onnx").read_bytes())
        fault = "sample request of 's' does not fit the model: input 'input' has shape [1, 2]"
    report = smoke_test(tmp_path)
    assert report["ok"] is False and fault in report["error"], report


def test_generated_sample_uses_zeros_of_each_datatype_with_dynamic_dims_of_one(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: g\nhandler: h:M\n")
    (tmp_path / "h.py").write_text(
        "class M:\n"
        "    inputs = [{'name': 'ids', 'datatype': 'INT64', 'shape': [-1, 3]},\n"
        "              {'name': 'flag', 'datatype': 'BOOL', 'shape': [2]},\n"
        "              {'name': 'text', 'datatype': 'BYTES', 'shape': [-1]}]\n"
        "    def predict(self, i):\n        return i\n")
    manifest = load_manifest(tmp_path)
    request = sample_request(tmp_path, manifest, load_function(tmp_path, manifest).metadata)
    assert request["inputs"] == [
        {"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [0, 0, 0]},
        {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [False, False]},
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]},
    ]


def test_manifest_sample_takes_precedence_and_must_stay_inside(tmp_path: Path) -> None:
    manifest = load_manifest(EXAMPLES / "iris")
    metadata = load_function(EXAMPLES / "iris", manifest).metadata
    assert sample_request(EXAMPLES / "iris", manifest, metadata)["id"] == "iris-sample"
    (tmp_path / "function.yaml").write_text("name: x\nmodel: m.onnx\nsample: link.json\n")
    (tmp_path / "link.json").symlink_to(EXAMPLES / "iris" / "sample.json")
    with pytest.raises(SampleError, match="resolves outside"):
        sample_request(tmp_path, load_manifest(tmp_path), metadata)
