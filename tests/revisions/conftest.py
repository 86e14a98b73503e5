"""Fixtures for the builder, store and archive tests: real function directories, a real S3 (moto's
server over HTTP on 127.0.0.1), and artifact stores of both kinds.

Nothing here is autouse: other tests in this directory (registry, traffic) are not affected.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from revisions.store import ArtifactStore, LocalArtifactStore

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret"}
REGION = "us-east-1"


def write_onnx_model(path: Path, *, bias: float = 0.5) -> None:
    """y = x @ W + b with x: float[N, 4] -> y: float[N, 3]; a fixed W so the bytes are reproducible."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(np.full(3, bias, dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="zs-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


SAMPLE_REQUEST = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                              "data": [1.0, 2.0, 3.0, 4.0, 0.5, 0.5, 0.5, 0.5]}]}

HANDLER_SOURCE = '''
import numpy as np


class Model:
    inputs = [{"name": "text", "datatype": "FP32", "shape": [-1, 2]}]
    outputs = [{"name": "doubled", "datatype": "FP32", "shape": [-1, 2]}]

    def predict(self, inputs):
        return {"doubled": np.asarray(inputs["text"], dtype=np.float32) * 2}
'''

RAISING_HANDLER_SOURCE = '''
class Model:
    inputs = [{"name": "text", "datatype": "FP32", "shape": [-1, 2]}]
    outputs = [{"name": "doubled", "datatype": "FP32", "shape": [-1, 2]}]

    def predict(self, inputs):
        raise RuntimeError("the handler is broken on purpose")
'''

HANDLER_SAMPLE = {"inputs": [{"name": "text", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}


def make_onnx_function(directory: Path, *, name: str = "linear", comment: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_onnx_model(directory / "model.onnx")
    (directory / "sample.json").write_text(json.dumps(SAMPLE_REQUEST))
    (directory / "function.yaml").write_text(
        f"{comment}name: {name}\nmodel: model.onnx\nsample: sample.json\nscaling:\n  window: 60s\n"
    )
    return directory


def make_handler_function(directory: Path, *, name: str = "doubler", source: str = HANDLER_SOURCE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "handler.py").write_text(source)
    (directory / "sample.json").write_text(json.dumps(HANDLER_SAMPLE))
    (directory / "function.yaml").write_text(f"name: {name}\nhandler: handler:Model\nsample: sample.json\n")
    return directory


@pytest.fixture
def onnx_function(tmp_path: Path) -> Path:
    return make_onnx_function(tmp_path / "linear")


@pytest.fixture
def handler_function(tmp_path: Path) -> Path:
    return make_handler_function(tmp_path / "doubler")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, over real HTTP, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS)


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> Iterator[tuple[Any, str]]:
    """A fresh bucket per test (moto keeps state for the whole server), emptied and removed after."""
    client = s3_client(moto_endpoint)
    bucket = f"zs-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield client, bucket
    finally:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)


@pytest.fixture(params=["local", "s3"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each store test runs against the local store and against S3 on moto's server."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    from revisions.store_s3 import S3ArtifactStore

    client, bucket = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(bucket, "zeroserve/artifacts", client=client)


@pytest.fixture
def function_factory() -> SimpleNamespace:
    """The makers above, for tests that build variants (test modules do not import conftest)."""
    return SimpleNamespace(
        onnx=make_onnx_function, handler=make_handler_function, write_onnx_model=write_onnx_model,
        raising_handler_source=RAISING_HANDLER_SOURCE, credentials=FAKE_CREDENTIALS,
    )
