"""A Python client of the control API (what the CLI uses; scripts may too).

    client = ControlClient.from_env()
    result = client.deploy("examples/iris", on_line=print)
    client.edit_traffic("iris", percents={"iris-00001": 90, "iris-00002": 10})

Every refusal raises `ApiError` carrying the server's status and `{"error"}` message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from zeroserve.datadir import DEFAULT_DATA_DIR, TOKEN_FILE

# httpx and ssl are imported when a client is created, not with this module: `zeroserve --help` and the
# commands that never call the platform must not pay for them (tests/zeroserve/control/test_cli_imports.py).
if TYPE_CHECKING:
    import ssl

    import httpx

DEFAULT_SERVER = "http://127.0.0.1:8080"
API = "/api/v1"


class ApiError(Exception):
    """A request the platform refused or could not answer; `status` is 0 when it was not reached."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)


def resolve_server(server: str | None) -> str:
    return (server or os.environ.get("ZEROSERVE_URL") or DEFAULT_SERVER).rstrip("/")


def resolve_token(token: str | None, data_dir: str | Path | None = None) -> str | None:
    """--token, else ZEROSERVE_TOKEN, else the token file of the local data dir (--data / ZEROSERVE_DATA)."""
    if token:
        return token
    if os.environ.get("ZEROSERVE_TOKEN"):
        return os.environ["ZEROSERVE_TOKEN"]
    directory = Path(data_dir or os.environ.get("ZEROSERVE_DATA") or DEFAULT_DATA_DIR)
    try:
        return (directory / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class ControlClient:
    def __init__(self, server: str, token: str | None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server + API, headers=headers, timeout=timeout,
                                  transport=transport, verify=_tls_verification(self.server))

    @classmethod
    def from_env(cls, server: str | None = None, token: str | None = None,
                 data_dir: str | Path | None = None) -> ControlClient:
        return cls(resolve_server(server), resolve_token(token, data_dir))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ functions

    def deploy(self, function_dir: str | Path, on_line: Callable[[str], None] | None = None,
               *, timeout: float = 900.0) -> dict[str, Any]:
        """Upload a function directory and follow its build; returns the final result object.

        A failed build raises ApiError with the server's message (naming the file and the fault).
        """
        from revisions.archive import pack_function_dir

        body = pack_function_dir(Path(function_dir))
        headers = {"Content-Type": "application/gzip", "Accept": "application/x-ndjson"}
        result: dict[str, Any] | None = None
        with self._call_stream("POST", "/functions", content=body, headers=headers, timeout=timeout) as lines:
            for item in lines:
                if item.get("type") == "log":
                    if on_line is not None:
                        on_line(str(item.get("line", "")))
                else:
                    result = item
        if result is None:
            raise ApiError(0, "deploy: the platform closed the stream before the result (check its log)")
        if result.get("type") == "error":
            raise ApiError(int(result.get("http_status", 400)), str(result.get("error") or result.get("message")))
        return result

    def list_functions(self) -> list[dict[str, Any]]:
        return self._call("GET", "/functions")

    def describe(self, function: str) -> dict[str, Any]:
        return self._call("GET", f"/functions/{_seg(function)}")

    def delete(self, function: str) -> dict[str, Any]:
        return self._call("DELETE", f"/functions/{_seg(function)}")

    def revisions(self, function: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/functions/{_seg(function)}/revisions")

    def revision(self, function: str, revision: str) -> dict[str, Any]:
        return self._call("GET", f"/functions/{_seg(function)}/revisions/{_seg(revision)}")

    def export(self, function: str, target: str) -> dict[str, Any]:
        """The function as `target`'s resource (`content`, e.g. a Knative Service's YAML) and `notes`."""
        return self._call("GET", f"/functions/{_seg(function)}/export/{_seg(target)}")

    # -------------------------------------------------------------------------------------- traffic

    def traffic(self, function: str) -> dict[str, Any]:
        return self._call("GET", f"/functions/{_seg(function)}/traffic")

    def set_traffic(self, function: str, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._call("PUT", f"/functions/{_seg(function)}/traffic", json={"targets": list(targets)})

    def edit_traffic(self, function: str, *, percents: Mapping[str, int] | None = None,
                     tags: Mapping[str, str] | None = None, untag: Sequence[str] = ()) -> dict[str, Any]:
        body = {"percents": None if percents is None else dict(percents), "tags": dict(tags or {}),
                "untag": list(untag)}
        return self._call("PATCH", f"/functions/{_seg(function)}/traffic", json=body)

    def tag(self, function: str, tag: str, revision: str) -> dict[str, Any]:
        return self._call("PUT", f"/functions/{_seg(function)}/tags/{_seg(tag)}", json={"revision": revision})

    def untag(self, function: str, tag: str) -> dict[str, Any]:
        return self._call("DELETE", f"/functions/{_seg(function)}/tags/{_seg(tag)}")

    def rollback(self, function: str) -> dict[str, Any]:
        return self._call("POST", f"/functions/{_seg(function)}/rollback")

    def promote(self, function: str, tag: str) -> dict[str, Any]:
        return self._call("POST", f"/functions/{_seg(function)}/promote", json={"tag": tag})

    def status(self, function: str) -> dict[str, Any]:
        return self._call("GET", f"/functions/{_seg(function)}/status")

    def events(self, function: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if function:
            params["function"] = function
        return self._call("GET", "/events", params=params)

    def logs(self, function: str, *, revision: str | None = None, since: str | None = None,
             tail: int = 1000) -> list[dict[str, Any]]:
        """The newest lines a function's replicas wrote (oldest first): time, revision, replica, stream, line,
        request_id."""
        params = _log_params(revision, since, tail)
        return self._call("GET", f"/functions/{_seg(function)}/logs", params=params)["lines"]

    def follow_logs(self, function: str, *, revision: str | None = None, since: str | None = None,
                    tail: int = 1000) -> _LineStream:
        """`with client.follow_logs("iris") as lines: for line in lines: ...`: the newest lines, then each new
        one as it is written, until the platform stops or the loop is left."""
        params = {**_log_params(revision, since, tail), "follow": "true"}
        return self._call_stream("GET", f"/functions/{_seg(function)}/logs", timeout=None, params=params,
                                 what="the log stream")

    # --------------------------------------------------------------------------------------- tokens

    def create_token(self, scope: str, functions: Sequence[str] = (), *, name: str | None = None,
                     expires_in: float | None = None) -> dict[str, Any]:
        """A new scoped token; the answer's `token` is the secret, shown this once."""
        body = {"scope": scope, "functions": list(functions), "name": name, "expires_in": expires_in}
        return self._call("POST", "/tokens", json=body)

    def tokens(self) -> list[dict[str, Any]]:
        return self._call("GET", "/tokens")

    def revoke_token(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/tokens/{_seg(name)}")

    # ------------------------------------------------------------------------------------ transport

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the platform at {self.server}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, error_message(response))
        return response.json()

    def _call_stream(self, method: str, path: str, *, timeout: float | None, what: str = "the deploy",
                     **kwargs: Any) -> _LineStream:
        return _LineStream(self, method, path, timeout, kwargs, what)


class _LineStream:
    """Context manager over an NDJSON response: yields one object per line, as lines arrive."""

    def __init__(self, client: ControlClient, method: str, path: str, timeout: float | None, kwargs: dict[str, Any],
                 what: str = "the deploy"):
        self._client, self._method, self._path, self._timeout, self._kwargs = client, method, path, timeout, kwargs
        self._what = what  # what was going on, for the message when the connection is lost
        self._context: Any = None

    def __enter__(self) -> Iterator[dict[str, Any]]:
        import httpx

        http = self._client._http
        try:
            self._context = http.stream(self._method, self._path, timeout=httpx.Timeout(self._timeout, connect=10),
                                        **self._kwargs)
            response = self._context.__enter__()
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the platform at {self._client.server}: {exc}") from None
        if response.status_code >= 400:
            response.read()
            message = error_message(response)
            self._context.__exit__(None, None, None)
            raise ApiError(response.status_code, message)
        return self._lines(response)

    def _lines(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        import httpx

        try:
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"lost the connection to the platform during {self._what}: {exc}") from None

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def _tls_verification(server: str) -> ssl.SSLContext | bool:
    """Certificate checks for `server`: the CA bundle for https; none to load for plain http.

    Loading the CA bundle costs every CLI command tens of milliseconds, and a plain-http platform never
    uses it (requests go to relative paths, redirects are not followed). Its context trusts no CA, so any
    TLS connection it might still make fails verification instead of passing unverified.
    """
    import ssl

    if server.lower().startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


def error_message(response: httpx.Response) -> str:
    """What an error answer says: its `{"error": ...}` message, else the status and the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _log_params(revision: str | None, since: str | None, tail: int) -> dict[str, Any]:
    params: dict[str, Any] = {"tail": tail}
    if revision:
        params["revision"] = revision
    if since:
        params["since"] = since
    return params


def _seg(value: str) -> str:
    """A path segment; names are DNS labels, but never let one add path parts."""
    return quote(value, safe="")
