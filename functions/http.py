"""The few ASGI pieces the runtime needs: headers, a size-limited body, and responses.

Plain ASGI rather than a framework keeps the per-request cost near zero and every error in the
`{"error": "..."}` shape (frameworks answer 422s and HTML 404s of their own).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from protocol import strict_json
from protocol.asgi import Receive, Scope, Send
from protocol.inference_errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
BINARY_TYPE = (b"content-type", b"application/octet-stream")


class ClientDisconnected(Exception):
    """The client went away before sending its whole body; there is no one to answer."""


def header(scope: Scope, name: bytes) -> str | None:
    """First value of a request header; `name` in lower case (ASGI lower-cases header names)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing (413) more than `limit` bytes before reading them all."""
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BadRequest(f"Content-Length must be an integer, got {declared!r}") from None
        if length > limit:
            raise PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return _decode_content(body, header(scope, b"content-encoding"), limit)


def _decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """gzip/deflate request bodies (tritonclient's request_compression_algorithm), size-limited."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    name = encoding.strip().lower()
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(name)
    if wbits is None:
        raise UnsupportedMediaType(f"Content-Encoding '{encoding}' is not supported; use gzip, deflate or identity")
    decoder = zlib.decompressobj(wbits)
    try:
        # max_length bounds the output, so a small "zip bomb" cannot expand past the limit.
        decoded = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"request body is not valid {name} data: {exc}") from None
    if len(decoded) > limit or decoder.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed request body exceeds the limit of {limit} bytes")
    return decoded


async def send_response(send: Send, status: int, parts: Sequence[bytes | memoryview], headers: Headers) -> None:
    # One body message: joining costs one copy, fewer sends cost more on small responses.
    body = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def json_body(value: Any) -> bytes:
    return strict_json.dumps(value)  # RFC 8259: a NaN here is a bug, not a body to send


async def send_json(send: Send, status: int, value: Any, headers: Headers) -> None:
    await send_response(send, status, [json_body(value)], [JSON_TYPE, *headers])
