"""The ASGI seam: the callable's types, the `{"error": ...}` answer and the lifespan loop, in one place.

Types are spelled as starlette, uvicorn and mangum spell them: scopes and messages are MutableMappings
(servers pass dicts), so an app annotated with these types is an ASGIApp to all three. The activator,
the function runtime, the platform's dispatcher and the git remote share them, and answer errors with
`send_json_error`. Plain ASGI, no framework: this is the data plane's hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from json.encoder import encode_basestring_ascii
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = Iterable[tuple[bytes, bytes]]

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def error_json(message: str, request_id: bytes | None = None) -> bytes:
    """`{"error":"<message>"}`: compact, ASCII-escaped JSON (RFC 8259), as `json.dumps` would escape it,
    with `"request_id"` when one is given (hex digits: nothing to escape).

    Written out rather than `json.dumps({"error": message})`: the C string escaper alone is a fifth of
    the cost, and this runs on every refused request of the data plane.
    """
    error = b'{"error":' + encode_basestring_ascii(message).encode("ascii")
    return error + b"}" if request_id is None else error + b',"request_id":"' + request_id + b'"}'


async def send_json_error(send: Send, status: int, message: str, headers: Headers = (),
                          request_id: bytes | None = None) -> int:
    """Answer `status` with `{"error": message}` (application/json; `"request_id"` too when given),
    `headers` after the content headers; returns `status`, so a handler can `return await
    send_json_error(...)` its status."""
    body = error_json(message, request_id)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [JSON_CONTENT_TYPE, (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return status


async def serve_lifespan(receive: Receive, send: Send,
                         on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """The ASGI lifespan protocol for an app with nothing to start: startup completes at once, and
    shutdown completes once `on_shutdown` (if any) has finished."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
