"""Serves the console's static files at /console/ in front of another ASGI app (the control plane).

The files are read once, at start, from the package's `static/` folder into a table keyed by name: a
request is answered from that table or not at all, so no path a client sends ever reaches the file
system (no traversal to guard against). The files need no token, since they hold no data; every
datum the page shows comes from /api/v1 with the token the user signs in with. Every answer carries a
strict Content-Security-Policy (scripts only from these files, no inline script, no framing) and
`X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from protocol.asgi import ASGIApp, Receive, Scope, Send, send_json_error

CONSOLE_PATH = "/console/"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


def load_static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, content type) for every file shipped in zeroserve/console/static/ (flat)."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("zeroserve.console").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in _TYPES:
            files[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    if "index.html" not in files:
        raise RuntimeError("the console's index.html is missing from zeroserve/console/static/ (a broken install)")
    return files


class ConsoleRoute:
    """`GET /console/` (index.html) and `GET /console/<file>`; `/console` redirects; the rest goes to `app`."""

    def __init__(self, app: ASGIApp, files: dict[str, tuple[bytes, str]] | None = None):
        self.app = app
        self.files = load_static_files() if files is None else files
        # Strong validators: a reload after an upgrade fetches the new files, an unchanged one gets 304.
        self.etags = {name: b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
                      for name, (body, _) in self.files.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == CONSOLE_PATH.rstrip("/"):
            await send({"type": "http.response.start", "status": 308,
                        "headers": [(b"location", CONSOLE_PATH.encode()), (b"content-length", b"0"),
                                    *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": b""})
        elif path.startswith(CONSOLE_PATH):
            await self._serve(scope, send, path[len(CONSOLE_PATH):] or "index.html")
        else:
            await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, send: Send, name: str) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await send_json_error(send, 405, f"method {scope['method']} not allowed on the console's files: "
                                             "use GET", [(b"allow", b"GET, HEAD"), *SECURITY_HEADERS])
            return
        found = self.files.get(name)
        if found is None:
            shown = name if len(name) <= 80 and name.isprintable() else name[:80].encode("unicode_escape").decode()
            await send_json_error(send, 404, f"console: no file '{shown}' (the console is at {CONSOLE_PATH})",
                                  SECURITY_HEADERS)
            return
        body, content_type = found
        etag = self.etags[name]
        if_none_match = next((v for k, v in scope.get("headers", ()) if k == b"if-none-match"), None)
        if if_none_match == etag:
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag), *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                                (b"etag", etag), *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
