"""The console's static route: what it serves, with which headers, and what it refuses (no browser needed)."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser

import httpx
import pytest

from zeroserve.console.app import CONTENT_SECURITY_POLICY, ConsoleRoute, load_static_files


async def _fallback(scope, receive, send) -> None:
    """What sits behind the console on the platform's port (the control API): answers 418 to tell it apart."""
    await send({"type": "http.response.start", "status": 418, "headers": []})
    await send({"type": "http.response.body", "body": b"fallback"})


def request(method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=ConsoleRoute(_fallback))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, path, headers=headers)
    return asyncio.run(call())


def test_index_and_files_are_served_with_strict_headers():
    files = load_static_files()  # from the installed package's data, as the platform reads them
    assert {"index.html", "app.js", "app.css", "api.js", "chart.js"} <= set(files)
    for path in ("/console/", "/console/index.html", "/console/app.js", "/console/app.css"):
        response = request("GET", path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
    assert request("GET", "/console/app.js").headers["content-type"].startswith("text/javascript")
    assert request("GET", "/console/").text.startswith("<!doctype html>")


def test_console_without_slash_redirects_and_the_rest_passes_through():
    redirect = request("GET", "/console")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/console/"
    assert request("GET", "/api/v1/functions").status_code == 418  # not the console's: the app behind it
    assert request("GET", "/consoles/app.js").status_code == 418


def test_unchanged_files_answer_304():
    etag = request("GET", "/console/app.js").headers["etag"]
    assert request("GET", "/console/app.js", {"if-none-match": etag}).status_code == 304


@pytest.mark.parametrize("path", [
    "/console/%2e%2e/token", "/console/%2e%2e%2f%2e%2e%2fzeroserve%2fup.py", "/console/..%2Fapp.py",
    "/console//etc/passwd", "/console/static/app.js", "/console/app.py", "/console/__init__.py", "/console/nope.js",
    "/console/%00",
])
def test_nothing_outside_the_shipped_files_is_served(path: str):
    response = request("GET", path)
    assert response.status_code == 404, (path, response.text)
    assert response.headers["content-type"] == "application/json"
    assert "console: no file" in response.json()["error"]


def test_other_methods_are_refused_in_json():
    response = request("POST", "/console/app.js")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
    assert "POST" in response.json()["error"]


class _Markup(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, event-handler attributes, style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.scripts: list[str] = []
        self.labels: set[str] = set()
        self.inputs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            self.scripts.append(named.get("src") or "")
            if not named.get("src"):
                self.inline.append("<script> without src")
        self.inline += [f"{tag} {name}=" for name, _ in attrs if name.startswith("on") or name == "style"]
        if tag == "label" and named.get("for"):
            self.labels.add(str(named["for"]))
        if tag == "input":
            self.inputs.append(str(named.get("id")))


def test_the_page_needs_no_inline_script_and_labels_its_inputs():
    files = load_static_files()
    markup = _Markup()
    markup.feed(files["index.html"][0].decode())
    assert markup.inline == []
    assert markup.scripts == ["app.js"]  # a module; it imports the rest from the same origin
    assert set(markup.inputs) <= markup.labels, "every input has a <label for>"
    for name, (body, _) in files.items():
        if name.endswith(".js"):
            text = body.decode()
            # Text from the API is never parsed as markup, nor run.
            assert not re.search(r"\.innerHTML|outerHTML|insertAdjacentHTML|eval\(", text), name
            assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"{name} loads nothing from elsewhere"
            assert not re.search(r"[?&]token=", text), f"{name} puts no token in a URL"
