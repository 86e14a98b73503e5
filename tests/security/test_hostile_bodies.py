"""Hostile or broken bodies and names at the platform's port, against a real `zeroserve up`.

Deep nesting is a 400 naming the nesting limit (never a RecursionError traceback); NaN and Infinity
are not JSON, in requests (400 naming the rule) or responses (null); names that cannot be a function,
revision or tag are a 400 naming the rule and unknown ones a 404 naming them, on every named route;
/metrics needs the token unless the metrics_public setting says otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from protocol.strict_json import MAX_JSON_DEPTH
from tests.security.echo_platform import (
    FUNCTION,
    V1_PREDICT,
    V2_INFER,
    json_error,
    raw_request,
    running_echo_platform,
    strict_json,
    tracebacks,
)
from tests.zeroserve.control.harness import PlatformProcess


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    with running_echo_platform(tmp_path_factory.mktemp("hostile-bodies")) as proc:
        yield proc


def auth(platform: PlatformProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.token}", "Content-Type": "application/json"}


def v2_body(data: str, datatype: str = "FP32", shape: str = "[2]", name: str = "x") -> bytes:
    return f'{{"inputs": [{{"name": "{name}", "shape": {shape}, "datatype": "{datatype}", "data": {data}}}]}}'.encode()


# -- deep nesting ---------------------------------------------------------------------------------

DEEP = [
    pytest.param(b"[" * 50_000, id="50k-open-brackets"),
    pytest.param(v2_body("[" * 200 + "1" + "]" * 200, shape="[1]"), id="deep-tensor-data"),
    pytest.param(b'{"inputs": [], "parameters": ' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}", id="deep-parameters"),
]


@pytest.mark.parametrize("path", [V2_INFER, V1_PREDICT])
@pytest.mark.parametrize("body", DEEP)
def test_deeply_nested_infer_bodies_are_a_400_naming_the_limit(platform: PlatformProcess, path: str,
                                                               body: bytes) -> None:
    status, headers, answer = raw_request(platform.url, "POST", path, body)
    assert status == 400, answer[:300]
    message = json_error(status, headers, answer)
    assert "nesting limit" in message and f"{MAX_JSON_DEPTH} deep" in message, message
    assert tracebacks(platform) == []


@pytest.mark.parametrize(("method", "path", "headers"), [
    ("PUT", f"/api/v1/functions/{FUNCTION}/traffic", "token"),
    ("PUT", f"/api/v1/functions/{FUNCTION}/webhook-secret", "token"),
    ("POST", f"/api/v1/hooks/git?function={FUNCTION}", "none"),  # unauthenticated: parsed before the signature
])
def test_deeply_nested_control_bodies_are_a_400_naming_the_limit(platform: PlatformProcess, method: str,
                                                                 path: str, headers: str) -> None:
    body = b'{"targets": ' + b"[" * 50_000
    status, answer_headers, answer = raw_request(platform.url, method, path, body,
                                                 auth(platform) if headers == "token" else {})
    message = json_error(status, answer_headers, answer)
    assert status == 400 and "nesting limit" in message and f"{MAX_JSON_DEPTH} deep" in message, message
    assert tracebacks(platform) == []


# -- NaN and Infinity -----------------------------------------------------------------------------

@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_in_requests_are_a_400_naming_the_rule(platform: PlatformProcess,
                                                                         constant: str) -> None:
    for path, body in ((V2_INFER, v2_body(f"[1, {constant}]")),
                       (V1_PREDICT, f'{{"instances": [[1, {constant}]]}}'.encode())):
        status, headers, answer = raw_request(platform.url, "POST", path, body)
        message = json_error(status, headers, answer)
        assert status == 400 and f"{constant} is not a JSON value" in message and "RFC 8259" in message, message
    status, headers, answer = raw_request(platform.url, "PATCH", f"/api/v1/functions/{FUNCTION}/traffic",
                                          f'{{"percents": {{"{FUNCTION}-00001": {constant}}}}}'.encode(),
                                          auth(platform))
    message = json_error(status, headers, answer)
    assert status == 400 and f"{constant} is not a JSON value" in message, message


def test_numbers_beyond_a_float_type_are_a_400(platform: PlatformProcess) -> None:
    for data, datatype in (("[1, 1e999]", "FP64"), ("[1, 1e39]", "FP32")):
        status, headers, answer = raw_request(platform.url, "POST", V2_INFER, v2_body(data, datatype))
        message = json_error(status, headers, answer)
        assert status == 400 and f"out of range for {datatype}" in message, message


def test_non_finite_outputs_are_valid_json_null_and_exact_in_binary(platform: PlatformProcess) -> None:
    status, _, answer = raw_request(platform.url, "POST", V2_INFER, v2_body("[1.5, null]", name="nonfinite"))
    assert status == 200, answer[:300]
    (output,) = strict_json(answer)["outputs"]
    assert output["name"] == "nonfinite" and output["data"] == [1.5, None, None, None]

    status, _, answer = raw_request(platform.url, "POST", V1_PREDICT, b'{"inputs": {"nonfinite": [1.0]}}')
    assert status == 200, answer[:300]
    assert strict_json(answer) == {"outputs": [1.5, None, None, None]}

    # null in float data reads as NaN (and a NaN output writes as null): a response can be sent back.
    status, _, answer = raw_request(platform.url, "POST", V2_INFER, v2_body("[2.5, null]", "FP64"))
    assert status == 200 and strict_json(answer)["outputs"][0]["data"] == [2.5, None], answer[:300]

    # The binary extension carries every value as it is.
    header = json.dumps({"inputs": [{"name": "nonfinite", "shape": [1], "datatype": "FP32", "data": [0]}],
                         "outputs": [{"name": "nonfinite", "parameters": {"binary_data": True}}]}).encode()
    status, headers, answer = raw_request(platform.url, "POST", V2_INFER, header,
                                          {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200, answer[:300]
    length = int(headers["inference-header-content-length"])
    assert strict_json(answer[:length])["outputs"][0]["parameters"] == {"binary_data_size": 16}
    values = np.frombuffer(answer[length:], dtype="<f4")
    assert values[0] == 1.5 and math.isnan(values[1]) and values[2] == math.inf and values[3] == -math.inf


# -- names ----------------------------------------------------------------------------------------

INVALID_NAMES = ["%2e%2e", "..", "Echo", "a_b", "-echo", "echo-", "e" * 64, "%00", "a%20b"]
UNKNOWN = "nosuch"
TRAFFIC = json.dumps({"targets": [{"latest": True, "percent": 100}]})
# (method, path with {fn}, body): every control-API route that names a function.
FUNCTION_ROUTES = [
    ("GET", "/api/v1/functions/{fn}", None),
    ("DELETE", "/api/v1/functions/{fn}", None),
    ("GET", "/api/v1/functions/{fn}/revisions", None),
    ("GET", "/api/v1/functions/{fn}/revisions/echo-00001", None),
    ("GET", "/api/v1/functions/{fn}/events", None),
    ("GET", "/api/v1/events?function={fn}", None),
    ("GET", "/api/v1/functions/{fn}/status", None),
    ("GET", "/api/v1/functions/{fn}/traffic", None),
    ("PUT", "/api/v1/functions/{fn}/traffic", TRAFFIC),
    ("PATCH", "/api/v1/functions/{fn}/traffic", "{}"),
    ("PUT", "/api/v1/functions/{fn}/tags/canary", '{"revision": "@latest"}'),
    ("DELETE", "/api/v1/functions/{fn}/tags/canary", None),
    ("POST", "/api/v1/functions/{fn}/rollback", None),
    ("POST", "/api/v1/functions/{fn}/promote", '{"tag": "canary"}'),
    ("PUT", "/api/v1/functions/{fn}/webhook-secret", None),
    ("DELETE", "/api/v1/functions/{fn}/webhook-secret", None),
]


def control(platform: PlatformProcess, method: str, path: str, body: str | None) -> tuple[int, str]:
    status, headers, answer = raw_request(platform.url, method, path, body.encode() if body else None,
                                          auth(platform))
    return status, json_error(status, headers, answer) if status >= 400 else ""


@pytest.mark.parametrize(("method", "route", "body"), FUNCTION_ROUTES)
def test_invalid_function_names_are_a_400_naming_the_rule_on_every_route(
        platform: PlatformProcess, method: str, route: str, body: str | None) -> None:
    for name in INVALID_NAMES:
        status, message = control(platform, method, route.format(fn=name), body)
        assert status == 400 and "DNS-1035" in message and "function" in message, (name, status, message)


# PUT webhook-secret may come before the function's first deploy (its first push may be the webhook).
@pytest.mark.parametrize(("method", "route", "body"),
                         [r for r in FUNCTION_ROUTES if r[:2] != ("PUT", "/api/v1/functions/{fn}/webhook-secret")])
def test_unknown_functions_are_a_404_naming_them_on_every_route(
        platform: PlatformProcess, method: str, route: str, body: str | None) -> None:
    status, message = control(platform, method, route.format(fn=UNKNOWN), body)
    assert status == 404 and f"{UNKNOWN}" in message, (status, message)


@pytest.mark.parametrize(("method", "route", "body", "what"), [
    ("GET", "/api/v1/functions/echo/revisions/{name}", None, "revision"),
    ("PUT", "/api/v1/functions/echo/tags/{name}", '{"revision": "@latest"}', "tag"),
    ("DELETE", "/api/v1/functions/echo/tags/{name}", None, "tag"),
])
def test_revision_and_tag_names_are_checked_too(platform: PlatformProcess, method: str, route: str,
                                                body: str | None, what: str) -> None:
    for name in INVALID_NAMES:
        status, message = control(platform, method, route.format(name=name), body)
        assert status == 400 and "DNS-1035" in message and what in message, (name, status, message)
    if method != "PUT":  # PUT of a new tag creates it
        status, message = control(platform, method, route.format(name="echo-00042"), body)
        assert status == 404 and "'echo-00042'" in message and "'echo'" in message, (status, message)


def test_function_urls_with_invalid_names_are_a_400_and_unknown_ones_a_404(platform: PlatformProcess) -> None:
    for name in ("%2e%2e", "Echo", "a_b", "e" * 64, "%00"):
        status, headers, answer = raw_request(platform.url, "GET", f"/fn/{name}/v2/health/ready")
        message = json_error(status, headers, answer)
        assert status == 400 and "DNS-1035" in message, (name, status, message)
    status, headers, answer = raw_request(platform.url, "GET", "/v2/health/ready", headers={"Host": "a_b.localhost"})
    assert status == 400 and "DNS-1035" in json_error(status, headers, answer)
    status, headers, answer = raw_request(platform.url, "GET", f"/fn/{UNKNOWN}/v2/health/ready")
    assert status == 404 and f"'{UNKNOWN}' not found" in json_error(status, headers, answer)


# -- /metrics -------------------------------------------------------------------------------------

def test_metrics_need_the_platform_token_unless_metrics_public(platform: PlatformProcess, tmp_path: Path) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {platform.token}"}):
        status, answer_headers, answer = raw_request(platform.url, "GET", "/metrics", headers=headers)
        message = json_error(status, answer_headers, answer)
        assert status == 401 and "Bearer" in message and answer_headers.get("www-authenticate") == "Bearer"
        assert FUNCTION.encode() not in answer
    status, _, answer = raw_request(platform.url, "GET", "/metrics", headers=auth(platform))
    assert status == 200 and f'revision="{FUNCTION}-00001"'.encode() in answer, answer[:500]

    public = PlatformProcess(tmp_path / "data", {"ZEROSERVE_METRICS_PUBLIC": "true"}).start()
    try:
        status, headers, answer = raw_request(public.url, "GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain"), answer[:300]
    finally:
        public.stop()
