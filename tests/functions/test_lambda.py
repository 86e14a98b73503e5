"""The Lambda handler answers function-URL events (payload 2.0, base64 bodies) as HTTP does."""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from protocol.v2_codec import decode_infer_response, encode_infer_request

from .conftest import EXAMPLES

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.0, 2.2, 5.0, 1.5]], dtype=np.float32)


@pytest.fixture(scope="module")
def lambda_handler():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZEROSERVE_FUNCTION_DIR", str(EXAMPLES / "iris"))
        patch.setenv("ZEROSERVE_REVISION", "iris-00001")
        sys.modules.pop("functions.lambda_handler", None)
        module = importlib.import_module("functions.lambda_handler")
        try:
            yield module.handler
        finally:
            module.app.runner.close()
            sys.modules.pop("functions.lambda_handler", None)


def function_url_event(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict:
    """What a Lambda function URL delivers: API Gateway HTTP API payload format 2.0."""
    domain = "abcdefghij.lambda-url.eu-west-1.on.aws"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": domain, "x-forwarded-proto": "https", "x-forwarded-port": "443",
                    **{k.lower(): v for k, v in headers.items()}},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij", "domainName": domain, "domainPrefix": "abcdefghij",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "pytest"},
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:03:00:00 +0000", "timeEpoch": 1795143600000,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def http_post(host_port: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(host_port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def lambda_body(result: dict) -> bytes:
    return base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"].encode()


@pytest.mark.parametrize("binary", [False, True])
def test_function_url_event_gets_the_same_answer_as_http(lambda_handler, iris_server, binary: bool) -> None:
    encoded = encode_infer_request({"input": ROWS}, binary=binary, request_id="lambda-1", binary_data_output=binary)
    headers = {} if encoded.header_length is None else {"Inference-Header-Content-Length": str(encoded.header_length)}
    result = lambda_handler(function_url_event("POST", "/v2/models/iris/infer", encoded.body(), headers),
                            SimpleNamespace(aws_request_id="r1"))
    status, http_headers, http_body = http_post(iris_server.host_port, "/v2/models/iris/infer", encoded.body(),
                                                headers)
    assert result["statusCode"] == status == 200
    assert result["headers"]["zeroserve-revision"] == "iris-00001"
    assert result["isBase64Encoded"] == binary  # binary responses travel base64-encoded through Lambda
    header_length = result["headers"].get("inference-header-content-length")
    assert header_length == http_headers.get("inference-header-content-length")
    assert lambda_body(result) == http_body
    outputs = decode_infer_response(lambda_body(result), int(header_length) if header_length else None)
    assert outputs["probabilities"].shape == (2, 3)


def test_function_url_errors_and_v1(lambda_handler) -> None:
    missing = lambda_handler(function_url_event("POST", "/v2/models/nope/infer", b"{}", {}), None)
    assert missing["statusCode"] == 404 and "model 'nope'" in json.loads(missing["body"])["error"]
    v1 = lambda_handler(function_url_event("POST", "/v1/models/iris:predict",
                                           json.dumps({"instances": ROWS.tolist()}).encode(), {}), None)
    assert v1["statusCode"] == 200 and len(json.loads(v1["body"])["predictions"]) == 2
    ready = lambda_handler(function_url_event("GET", "/v2/health/ready", b"", {}), None)
    assert ready["statusCode"] == 200 and json.loads(ready["body"]) == {"ready": True}
