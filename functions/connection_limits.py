"""What one client may hold on a server's port: header size and count, time to send a request head, idle
keep-alive time, open connections. `zeroserve up` takes each from its settings; `zeroserve serve` uses
these defaults. The HTTP protocol that enforces them is `functions.http_protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    # Request line + headers of one request, in bytes; more gets 431 (414 when the target alone is too long).
    max_header_bytes: int = 64 * 1024
    # Header fields in one request; more gets 431 (Apache's LimitRequestFields).
    max_headers: int = 100
    # Seconds for a whole request head to arrive, counted from the connection's start (first request) or
    # from its first byte (later requests); then 408 and close, or a plain close if nothing arrived.
    header_timeout: float = 10.0
    # Seconds an idle keep-alive connection stays open after a response (uvicorn's default).
    keep_alive_timeout: float = 5.0
    # Open client connections; one more is answered 503 and closed.
    max_connections: int = 1000
