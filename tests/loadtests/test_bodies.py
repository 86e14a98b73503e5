"""Request bodies: the function's sample checked up front, generation from metadata, the V1 form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.bodies import RequestBodyError, read_v2_request, request_from_metadata, v1_body

REPO = Path(__file__).resolve().parents[2]


def test_the_iris_sample_is_read_and_becomes_v1_rows() -> None:
    request = read_v2_request(REPO / "examples" / "iris" / "sample.json")
    assert v1_body(request) == {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.6, 2.4]]}


def test_flat_data_is_reshaped_for_v1() -> None:
    request = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}]}
    assert v1_body(request) == {"instances": [[1, 2], [3, 4]]}


def test_several_inputs_become_one_object_per_row_and_bytes_become_text() -> None:
    request = {"inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "world"]},
        {"name": "k", "shape": [2, 1], "datatype": "INT32", "data": [[1], [2]]},
    ]}
    assert v1_body(request) == {"instances": [{"text": "hello", "k": [1]}, {"text": "world", "k": [2]}]}


def test_metadata_gives_zeros_with_dynamic_dimensions_of_one() -> None:
    metadata = {"name": "iris", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]},
                                           {"name": "ids", "datatype": "INT64", "shape": [-1]},
                                           {"name": "text", "datatype": "BYTES", "shape": [1]}]}
    request = request_from_metadata(metadata, "iris")
    assert request["inputs"] == [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.0, 0.0, 0.0, 0.0]},
        {"name": "ids", "shape": [1], "datatype": "INT64", "data": [0]},
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]},
    ]


@pytest.mark.parametrize(("metadata", "message"), [
    ({"name": "f", "inputs": []}, "function 'f' declares no inputs in its metadata: pass a sample request"),
    ({"error": "no such model"}, "metadata of 'f': no 'inputs' list"),
    ({"inputs": [{"name": "x", "datatype": "FP99", "shape": [1]}]}, "inputs[0]: x: unknown datatype 'FP99'"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": "1"}]}, "inputs[0] ('x'): shape must be a list"),
    ({"inputs": [{"datatype": "FP32", "shape": [1]}]}, "inputs[0]: needs a 'name'"),
])
def test_unusable_metadata_is_refused_naming_the_input(metadata: dict, message: str) -> None:
    with pytest.raises(RequestBodyError) as info:
        request_from_metadata(metadata, "f")
    assert message in str(info.value), str(info.value)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"instances": [[1, 2]]}', "must be a V2 infer request"),
    ('{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32"}]}', "inputs[0]: missing data"),
    ('{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}',
     "inputs[0]: x: shape [3] needs 3 elements but data has 2"),
])
def test_a_bad_sample_file_is_refused_before_any_load(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "sample.json"
    path.write_text(content)
    with pytest.raises(RequestBodyError) as info:
        read_v2_request(path)
    assert str(info.value).startswith(f"sample {path}: ") and message in str(info.value), str(info.value)


def test_a_missing_sample_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RequestBodyError, match="cannot read it"):
        read_v2_request(tmp_path / "nope.json")


def test_generated_requests_are_json_serialisable() -> None:
    request = request_from_metadata({"inputs": [{"name": "x", "datatype": "FP16", "shape": [-1, 2]}]}, "f")
    assert json.loads(json.dumps(request)) == request
