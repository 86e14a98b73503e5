"""The platform's port against hostile or broken HTTP, with raw sockets: header limits (431), malformed
requests (400), slow heads (408 and close), idle keep-alive, the connection cap (503), all as JSON, while
normal requests keep working. One real `zeroserve up` per setting group; `zeroserve serve` shares the
protocol and gets a smoke check of its own.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functions.conftest import serve_function
from tests.polling import wait_for
from tests.zeroserve.control.harness import REPO, PlatformProcess

HEADER_TIMEOUT = 1.0
KEEP_ALIVE_TIMEOUT = 1.0
# Closes may come this much after their timeout on a busy shared machine; today's code never closes at all.
SLACK = 3.0
MAX_CONNECTIONS = 4


# -- raw HTTP -----------------------------------------------------------------------------------


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(url: str) -> socket.socket:
    return socket.create_connection(address(url), timeout=10)


def read_to_close(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (a reset after its answer counts as a close)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(url: str, request: bytes) -> bytes:
    """Send `request` (the server may answer and stop reading before it is all sent) and read to close."""
    with connect(url) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_to_close(sock)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), raw[:300]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    return int(lines[0].split()[1]), headers, body[:length]


def json_error(raw: bytes, status: int) -> str:
    """The answer is `status` with a JSON `{"error": ...}` body; returns the message."""
    got, headers, body = parse(raw)
    assert got == status, raw[:500]
    assert headers["content-type"] == "application/json", headers
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error, body
    return error


def get(path: str, *extra: bytes, token: str | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}".encode())
    return b"\r\n".join([*lines, *extra]) + b"\r\n\r\n"


class Responses:
    """Responses with a content-length read one by one from a keep-alive connection (pipelined ones may
    arrive in one read; what belongs to the next stays buffered)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def _more(self, what: str) -> None:
        self.sock.settimeout(10)
        chunk = self.sock.recv(65536)
        assert chunk, f"closed {what}: {self.buffer[:300]!r}"
        self.buffer += chunk

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more("before a response head")
        status, headers, _ = parse(self.buffer)
        end = self.buffer.index(b"\r\n\r\n") + 4 + int(headers["content-length"])
        while len(self.buffer) < end:
            self._more("mid-body")
        body, self.buffer = self.buffer[self.buffer.index(b"\r\n\r\n") + 4:end], self.buffer[end:]
        return status, headers, body


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response, on a connection where no other is expected before the next request."""
    return Responses(sock).next()


# -- platforms -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """Short timeouts, default header limits."""
    running = PlatformProcess(tmp_path_factory.mktemp("ingress") / "data", env={
        "ZEROSERVE_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "ZEROSERVE_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE_TIMEOUT)})
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def capped_platform(tmp_path: Path) -> Iterator[PlatformProcess]:
    """A few connections at most, held open long enough to fill them."""
    running = PlatformProcess(tmp_path / "data", env={
        "ZEROSERVE_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "ZEROSERVE_KEEP_ALIVE_TIMEOUT": "60",
        "ZEROSERVE_HEADER_TIMEOUT": "60"})
    running.start()
    try:
        yield running
    finally:
        running.stop()


# -- header limits and malformed requests ----------------------------------------------------------


def test_a_100_kb_header_is_refused_with_431(platform: PlatformProcess) -> None:
    raw = exchange(platform.url, get("/api/v1/functions", b"X-Big: " + b"a" * 100_000))
    assert "larger than 65536 bytes" in json_error(raw, 431)


def test_a_header_sent_in_pieces_without_end_is_refused_at_the_limit(platform: PlatformProcess) -> None:
    # llhttp would keep accumulating one endless header: the limit must count what arrives, not only
    # the headers the parser has finished.
    with connect(platform.url) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 1 << 20:
                sock.sendall(b"b" * 8192)
                sent += 8192
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = read_to_close(sock)
    assert "larger than 65536 bytes" in json_error(raw, 431)


def test_5000_headers_are_refused_with_431(platform: PlatformProcess) -> None:
    headers = [f"X-H{i}: {i}".encode() for i in range(5000)]
    raw = exchange(platform.url, get("/api/v1/functions", *headers))
    assert json_error(raw, 431) == "more than 100 request headers"


def test_a_request_target_beyond_the_limit_is_refused_with_414(platform: PlatformProcess) -> None:
    raw = exchange(platform.url, get("/" + "a" * 70_000))
    assert "longer than 65536 bytes" in json_error(raw, 414)


@pytest.mark.parametrize(("request_bytes", "says"), [
    (b"HELLO WORLD\r\n\r\n", "Invalid method"),
    (b"GET / HTTP/9.9\r\n\r\n", "HTTP version"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "header"),
    (b"GET /\x01 HTTP/1.1\r\n\r\n", "url"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), "Invalid method"),  # a TLS ClientHello
    (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "Content-Length"),
], ids=["garbage-line", "version", "header-line", "control-char", "tls-hello", "content-length"])
def test_a_malformed_request_gets_400_json_naming_the_fault(platform: PlatformProcess, request_bytes: bytes,
                                                           says: str) -> None:
    message = json_error(exchange(platform.url, request_bytes), 400)
    assert message.startswith("malformed HTTP request: ") and says.lower() in message.lower(), message


def test_requests_within_the_limits_still_work(platform: PlatformProcess) -> None:
    # 90 headers and a 40 KB cookie: under both limits.
    headers = [f"X-H{i}: {i}".encode() for i in range(88)] + [b"Cookie: c=" + b"c" * 40_000]
    with connect(platform.url) as sock:
        sock.sendall(get("/api/v1/functions", *headers, token=platform.token))
        status, _, body = read_response(sock)
        assert (status, json.loads(body)) == (200, [])
        # Pipelined and keep-alive requests on the same connection.
        sock.sendall(get("/api/v1/functions", token=platform.token) + get("/fn/nothing-here/"))
        responses = Responses(sock)
        assert responses.next()[0] == 200
        status, _, body = responses.next()
        assert status == 404 and "nothing-here" in json.loads(body)["error"], body


def test_100_continue_is_sent_before_the_body_and_the_answer_follows(platform: PlatformProcess) -> None:
    # Responses leave as one write (head with body); an interim 100 Continue must not wait for the body.
    with connect(platform.url) as sock:
        sock.sendall(b"POST /api/v1/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                     b"Content-Type: application/gzip\r\nContent-Length: 10\r\n"
                     + f"Authorization: Bearer {platform.token}\r\n\r\n".encode())
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"not a tar!")
        status, headers, body = read_response(sock)
        assert 400 <= status < 500 and "error" in json.loads(body), body


def test_settings_name_the_connection_limit_that_is_wrong() -> None:
    from functions.connection_limits import ConnectionLimits
    from zeroserve.settings import Settings, SettingsError

    assert Settings.load(env={}).connection_limits == ConnectionLimits()
    loaded = Settings.load(env={"ZEROSERVE_MAX_HEADERS": "50", "ZEROSERVE_HEADER_TIMEOUT": "2.5"}, max_connections=7)
    assert (loaded.max_headers, loaded.header_timeout, loaded.max_connections) == (50, 2.5, 7)
    with pytest.raises(SettingsError, match=r"max_connections \(ZEROSERVE_MAX_CONNECTIONS\)"):
        Settings.load(env={"ZEROSERVE_MAX_CONNECTIONS": "0"})
    with pytest.raises(SettingsError, match=r"keep_alive_timeout \(ZEROSERVE_KEEP_ALIVE_TIMEOUT\)"):
        Settings.load(env={"ZEROSERVE_KEEP_ALIVE_TIMEOUT": "soon"})


# -- timeouts ----------------------------------------------------------------------------------------


def test_trickled_headers_are_cut_off_at_the_header_timeout(platform: PlatformProcess) -> None:
    """Three clients each send one header line every 0.2 s, forever: each is answered 408 and closed
    within the header timeout (plus slack), not kept while it keeps trickling."""
    selector = selectors.DefaultSelector()
    answers: dict[socket.socket, bytes] = {}
    closed_after: dict[socket.socket, float] = {}
    started = time.monotonic()
    sockets = [connect(platform.url) for _ in range(3)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /api/v1/functions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            answers[sock] = b""
        line = 0
        while len(closed_after) < len(sockets) and time.monotonic() - started < HEADER_TIMEOUT + SLACK:
            for key, _ in selector.select(timeout=0.2):  # the trickle's pace, and the wait for answers
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                answers[sock] += chunk
                if not chunk:
                    closed_after[sock] = time.monotonic() - started
                    selector.unregister(sock)
            line += 1
            for sock in sockets:
                if sock not in closed_after:
                    try:
                        sock.send(f"X-Trickle-{line}: {line}\r\n".encode())
                    except OSError:
                        pass  # closed by the server: the next select reports it
        assert len(closed_after) == len(sockets), f"still open after {HEADER_TIMEOUT + SLACK}s: {answers}"
        for sock in sockets:
            assert "did not arrive within 1s" in json_error(answers[sock], 408)
            assert closed_after[sock] >= HEADER_TIMEOUT * 0.9
    finally:
        selector.close()
        for sock in sockets:
            sock.close()


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(platform: PlatformProcess) -> None:
    with connect(platform.url) as sock:
        started = time.monotonic()
        assert read_to_close(sock, timeout=HEADER_TIMEOUT + SLACK) == b""  # closed, nothing to answer
        assert HEADER_TIMEOUT * 0.9 <= time.monotonic() - started < HEADER_TIMEOUT + SLACK


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(platform: PlatformProcess) -> None:
    with connect(platform.url) as sock:
        sock.sendall(get("/api/v1/functions", token=platform.token))
        assert read_response(sock)[0] == 200
        idle_since = time.monotonic()
        try:
            leftover = read_to_close(sock, timeout=KEEP_ALIVE_TIMEOUT + SLACK)
        except TimeoutError:
            pytest.fail(f"the idle connection was still open {KEEP_ALIVE_TIMEOUT + SLACK}s after its response")
        assert leftover == b""
        assert KEEP_ALIVE_TIMEOUT * 0.9 <= time.monotonic() - idle_since < KEEP_ALIVE_TIMEOUT + SLACK


# -- the connection cap ------------------------------------------------------------------------------


def test_connections_beyond_the_cap_get_503_json_and_room_frees_up(capped_platform: PlatformProcess) -> None:
    url, token = capped_platform.url, capped_platform.token
    held = [connect(url) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # each answered once: accepted and counted, now idle in keep-alive
            sock.sendall(get("/api/v1/functions", token=token))
            assert read_response(sock)[0] == 200
        raw = exchange(url, get("/api/v1/functions", token=token))
        message = json_error(raw, 503)
        assert "too many open connections" in message
        assert parse(raw)[1]["retry-after"] == "1"
        # The held connections still work.
        held[0].sendall(get("/api/v1/functions", token=token))
        assert read_response(held[0])[0] == 200
        # One leaves; a new connection is served again once the server has seen it go.
        held.pop().close()

        def served() -> bool:
            return parse(exchange(url, get("/api/v1/functions", b"Connection: close", token=token)))[0] == 200

        wait_for(served, "a new connection served after one of the held ones closed", timeout=10)
    finally:
        for sock in held:
            sock.close()


# -- `zeroserve serve` uses the same protocol --------------------------------------------------------


def test_zeroserve_serve_answers_malformed_and_oversized_requests_in_json() -> None:
    with serve_function(REPO / "examples" / "iris") as served:
        assert "Invalid method" in json_error(exchange(served.url, b"HELLO\r\n\r\n"), 400)
        headers = [f"X-H{i}: {i}".encode() for i in range(5000)]
        assert json_error(exchange(served.url, get("/v2/models/iris", *headers)), 431)
        with connect(served.url) as sock:
            sock.sendall(get("/v2/models/iris"))
            assert read_response(sock)[0] == 200
