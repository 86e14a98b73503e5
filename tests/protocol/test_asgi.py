"""The ASGI seam's helpers: the `{"error": ...}` answer and the lifespan loop, driven as a server would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from protocol.asgi import Message, error_json, send_json_error, serve_lifespan


@pytest.mark.parametrize("message", [
    "function 'iris' not found", 'a "quoted" \\ path', "naïve ünïcode ✓ 𝄞", "control \x00\x1f\n\t", "",
])
def test_error_json_is_strict_json_of_the_message(message: str) -> None:
    body = error_json(message)
    assert json.loads(body) == {"error": message}
    assert body == json.dumps({"error": message}, separators=(",", ":")).encode()  # ASCII-escaped, compact
    body.decode("ascii")


def test_send_json_error_sends_status_content_headers_then_the_body() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    extra = [(b"retry-after", b"1")]
    assert asyncio.run(send_json_error(send, 503, "busy", extra)) == 503
    start, body = sent
    assert start == {"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"16"), (b"retry-after", b"1")]}
    assert body == {"type": "http.response.body", "body": b'{"error":"busy"}', "more_body": False}


def test_serve_lifespan_completes_startup_and_shuts_down_after_the_hook() -> None:
    events: list[str] = []
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> Message:
        return await incoming.get()

    async def send(message: Message) -> None:
        events.append(message["type"])

    async def on_shutdown() -> None:
        events.append("hook")

    async def main() -> None:
        loop = asyncio.create_task(serve_lifespan(receive, send, on_shutdown))
        await incoming.put({"type": "lifespan.startup"})
        await incoming.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(loop, 5)

    asyncio.run(main())
    assert events == ["lifespan.startup.complete", "hook", "lifespan.shutdown.complete"]
