"""`functions.server`: serving on a Unix socket, the ready line, and refusing a broken function."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from .conftest import EXAMPLES, REPO, serve_function


def test_serves_on_a_unix_socket_with_revision_header() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        socket_path = Path(scratch) / "replica.sock"
        with serve_function(EXAMPLES / "echo-python", "--uds", str(socket_path), "--revision", "echo-00007",
                            ready_url=f"unix:{socket_path}") as served:
            assert "function 'echo-python' revision echo-00007 (handler 'handler:Echo')" in "".join(served.output)
            transport = httpx.HTTPTransport(uds=str(socket_path))
            with httpx.Client(transport=transport, base_url="http://replica") as client:
                response = client.post("/v2/models/echo-python/infer", json={"inputs": [
                    {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2.5]}]})
                assert response.status_code == 200
                assert response.headers["zeroserve-revision"] == "echo-00007"
                outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
                assert outputs == {"output": [1.5, 2.5], "sum": [4.0]}
                assert client.get("/v2/models/echo-python/versions/echo-00007/ready").json()["ready"] is True


def test_a_broken_function_exits_1_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: broken\nmodel: model.onnx\n")
    result = subprocess.run([sys.executable, "-m", "functions.server", str(tmp_path), "--port", "0"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "cannot serve" in result.stderr and "model 'model.onnx' does not exist" in result.stderr
