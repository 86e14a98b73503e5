"""Function URL events as Lambda delivers them (payload format 2.0), and reading a handler's answer."""

from __future__ import annotations

import base64
from typing import Any

DOMAIN = "abcdefghij.lambda-url.us-east-1.on.aws"


def function_url_event(method: str, path: str, body: bytes | str | None = None,
                       headers: dict[str, str] | None = None, *, base64_body: bool = True) -> dict[str, Any]:
    """A Function URL request. Lambda base64-encodes a body it does not take for text (binary, or any body
    without a text content type); a JSON body with content-type application/json arrives as a plain string."""
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": DOMAIN, "x-forwarded-proto": "https", "x-forwarded-port": "443",
                    "x-amzn-trace-id": "Root=1-6743c2f0-0123456789abcdef01234567",
                    **{k.lower(): v for k, v in (headers or {}).items()}},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij", "domainName": DOMAIN, "domainPrefix": "abcdefghij",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                     "userAgent": "pytest"},
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "routeKey": "$default", "stage": "$default",
            "time": "30/Nov/2026:14:00:00 +0000", "timeEpoch": 1795960800000,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        raw = body.encode() if isinstance(body, str) else body
        if base64_body:
            event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        else:
            event["body"] = raw.decode()
    return event


def answer_body(result: dict[str, Any]) -> bytes:
    """The body of a handler's answer (mangum base64-encodes what is not text)."""
    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
