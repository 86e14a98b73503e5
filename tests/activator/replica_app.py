"""A tiny replica for the activator's tests: plain ASGI on a Unix socket, run as its own process.

  python tests/activator/replica_app.py --uds PATH --replica-id r1

GET  /echo            JSON of what arrived (method, path, query, headers, body size) and who answered
GET  /slow?ms=N       answers after N ms
GET  /hold?id=X       answers once /release?id=X was called
POST /upload?id=X     streams the body in, answers its size, sha256 and chunk count; /progress?id=X
                      reports the bytes received so far
GET  /download?bytes=N[&id=X]  streams N bytes; with id, stops after the first 64 KiB until /release?id=X
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
from urllib.parse import parse_qs

CHUNK = 64 * 1024
REPLICA_ID = os.environ.get("REPLICA_ID", "replica")
_released: dict[str, asyncio.Event] = {}
_progress: dict[str, int] = {}


def _event(key: str) -> asyncio.Event:
    return _released.setdefault(key, asyncio.Event())


async def _json(send, payload: dict, status: int = 200) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    key = query.get("id", "")
    if path == "/upload":
        digest, size, chunks = hashlib.sha256(), 0, 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                digest.update(chunk)
                size += len(chunk)
                chunks += 1
                _progress[key] = size
            if not message.get("more_body"):
                break
        await _json(send, {"bytes": size, "chunks": chunks, "sha256": digest.hexdigest(),
                           "replica": REPLICA_ID})
        return
    body_size = 0
    while True:  # drain any body
        message = await receive()
        body_size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if path == "/progress":
        await _json(send, {"bytes": _progress.get(key, 0)})
    elif path == "/release":
        _event(key).set()
        await _json(send, {"released": key})
    elif path == "/hold":
        await _event(key).wait()
        await _json(send, {"replica": REPLICA_ID, "held": key})
    elif path == "/slow":
        await asyncio.sleep(float(query.get("ms", "0")) / 1000)
        await _json(send, {"replica": REPLICA_ID})
    elif path == "/download":
        total = int(query.get("bytes", "0"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        sent = 0
        block = b"z" * CHUNK
        while sent < total:
            size = min(CHUNK, total - sent)
            await send({"type": "http.response.body", "body": block[:size], "more_body": True})
            sent += size
            if key and sent == size:
                await _event(key).wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        await _json(send, {
            "replica": REPLICA_ID,
            "method": scope["method"],
            "path": path,
            "raw_path": scope.get("raw_path", b"").decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_bytes": body_size,
        }, status=int(query.get("status", "200")))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--uds", required=True)
    parser.add_argument("--replica-id", default="replica")
    args = parser.parse_args()
    global REPLICA_ID
    REPLICA_ID = args.replica_id
    uvicorn.run(app, uds=args.uds, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
