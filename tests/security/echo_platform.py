"""A real `zeroserve up` serving `echo`, a Python function that returns its inputs as outputs (and,
given an input named `nonfinite`, an output holding NaN, +Infinity and -Infinity), with plain-socket
HTTP for paths no client library may normalise and a strict JSON reader for the answers.
"""

from __future__ import annotations

import http.client
import json
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.polling import wait_for
from tests.zeroserve.control.harness import PlatformProcess

FUNCTION = "echo"
V2_INFER = f"/fn/{FUNCTION}/v2/models/{FUNCTION}/infer"
V1_PREDICT = f"/fn/{FUNCTION}/v1/models/{FUNCTION}:predict"

ECHO_HANDLER = textwrap.dedent('''
    """Echoes every input as an output of the same name; `nonfinite` asks for NaN and infinities."""
    import numpy as np


    class Echo:
        def predict(self, inputs):
            outputs = dict(inputs)
            if "nonfinite" in inputs:
                outputs["nonfinite"] = np.array([1.5, np.nan, np.inf, -np.inf], dtype=np.float32)
            return outputs
''')


def echo_function_dir(parent: Path) -> Path:
    directory = parent / "echo-function"
    directory.mkdir()
    (directory / "handler.py").write_text(ECHO_HANDLER)
    (directory / "sample.json").write_text(
        '{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}')
    (directory / "function.yaml").write_text(yaml.safe_dump(
        {"name": FUNCTION, "handler": "handler:Echo", "sample": "sample.json"}))
    return directory


@contextmanager
def running_echo_platform(parent: Path, env: dict[str, str] | None = None) -> Iterator[PlatformProcess]:
    """Start the platform, deploy `echo` and wait until it answers (the first request starts a replica);
    stop the platform afterwards."""
    platform = PlatformProcess(parent / "data", env).start()
    try:
        with platform.client() as client:
            result = client.deploy(echo_function_dir(parent))
        assert result.get("status") == "created", result
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
        wait_for(lambda: httpx.post(platform.url + V2_INFER, json=body, timeout=60).status_code == 200,
                 "the echo function to answer", timeout=120, interval=0.5)
        yield platform
    finally:
        platform.stop()


def raw_request(url: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request over a plain socket, the path sent byte for byte (no dot-segment or %-normalising)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def strict_json(body: bytes) -> Any:
    """Parse as a strict client would (JavaScript's JSON.parse, Go, Rust): NaN/Infinity are not JSON."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a response body is not JSON (RFC 8259): {body[:200]!r}")
    return json.loads(body, parse_constant=refuse)


def json_error(status: int, headers: dict[str, str], body: bytes) -> str:
    """The message of a `{"error": ...}` JSON answer."""
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:200])
    document = strict_json(body)
    assert "error" in document and set(document) <= {"error", "request_id"}, document
    return document["error"]


def tracebacks(platform: PlatformProcess) -> list[str]:
    """Log lines of the platform (and of its replicas, which share its output) that show a traceback."""
    return [line for line in platform.output if "Traceback" in line or "RecursionError" in line]
