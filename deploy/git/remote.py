"""The git remote: `http://HOST:PORT/git/<fn>.git`, git's smart HTTP protocol served by `git http-backend`.

    zeroserve init iris              # remote `zeroserve` + a deploy token handed to git by a credential helper
    git push zeroserve main          # builds, records a revision, moves traffic; the log as remote: lines
    git clone http://x:TOKEN@127.0.0.1:8080/git/iris.git

Only three paths exist under a repository, the smart protocol's: `info/refs?service=...`,
`git-upload-pack` (clone, fetch) and `git-receive-pack` (push). The function name must be a DNS-1035
label, so no request can name a file outside DATA/git; anything else is a 400 or 404 before git runs.

Authentication is HTTP basic with a token as the password (any user name), or a bearer token; the
platform decides what that token may do (`GitAccess`): the admin token anything, a `deploy` token
push and fetch of its functions' repositories, a `read` token fetch. Without a valid token: 401 with
`WWW-Authenticate: Basic realm="zeroserve"`; with one that does not cover the request: 403 naming its
scope; either way nothing is created.
A repository is created by the first push (its `info/refs?service=git-receive-pack` request).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

from deploy.git.cgi import run_cgi
from deploy.git.push import PushReceiver
from deploy.git.repos import Repositories, RepositoryError, git_environment
from protocol.asgi import ASGIApp, Receive, Scope, Send, send_json_error

logger = logging.getLogger("zeroserve.git")

PREFIX = "/git/"
REALM = 'Basic realm="zeroserve"'
SERVICES = ("git-upload-pack", "git-receive-pack")
# What git http-backend, receive-pack and the hook inherit of the platform's environment: what git needs,
# and none of the platform's own settings or credentials.
_BACKEND_ENV_NAMES = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME"})
# (the Authorization header or None, the function, whether it is a push) -> None when allowed, else
# (401 or 403, why). The platform passes one in (zeroserve/credentials.py); no token is held here.
GitAccess = Callable[[str | None, str, bool], tuple[int, str] | None]
_PATH = re.compile(r"^(?P<name>[^/]+?)(?:\.git)?/(?P<what>info/refs|git-upload-pack|git-receive-pack)$")


class GitRemote:
    """The ASGI app for everything under /git/; `mount(app)` puts it in front of another app."""

    def __init__(self, repos: Repositories, access: GitAccess, pushes: PushReceiver, *,
                 max_push_bytes: int | None = None, git_binary: str = "git"):
        self.repos = repos
        self.pushes = pushes
        self.max_push_bytes = max_push_bytes
        self._access = access
        self._git = shutil.which(git_binary) or git_binary

    def mount(self, fallback: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith(PREFIX):
                await self(scope, receive, send)
            else:
                await fallback(scope, receive, send)

        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            name, what, repo_dir = await self._route(scope)
        except _Refused as refused:
            await _error(scope, send, refused.status, f"git remote: {refused}", refused.headers)
            return
        if what == "git-receive-pack":
            await asyncio.to_thread(self.repos.install_hook, repo_dir)
            async with self.pushes.session(name, repo_dir) as session:
                await self._backend(scope, receive, send, f"/{name}.git/{what}", session.backend_env,
                                    self.max_push_bytes)
            return
        await self._backend(scope, receive, send, f"/{name}.git/{what}", {}, None)

    async def _route(self, scope: Scope) -> tuple[str, str, Path]:
        """(function, smart-protocol path, repository) of a request git may serve; _Refused otherwise."""
        path: str = scope["path"]
        raw_path: bytes = scope.get("raw_path") or path.encode()
        # Encoded slashes and dots are how traversal hides from routers; a git client never sends them.
        if re.search(rb"%(2f|5c|2e)", raw_path, re.IGNORECASE) or "\\" in path:
            raise _Refused(400, "encoded '/', '\\' or '.' in the path is not allowed")
        match = _PATH.match(path[len(PREFIX):])
        if match is None:
            raise _Refused(404, f"no such path {path!r}; repositories are {PREFIX}<function>.git")
        name, what = match["name"], match["what"]
        try:
            repo_dir = self.repos.path_for(name)
        except RepositoryError as exc:
            raise _Refused(400, str(exc)) from None
        method = scope["method"]
        service = what if what != "info/refs" else _service(scope)
        allowed = ("GET", "HEAD") if what == "info/refs" else ("POST",)
        if method not in allowed:
            raise _Refused(405, f"{method} is not allowed on {what}")
        if service is None:
            raise _Refused(400, "only git's smart HTTP protocol is served "
                                "(info/refs?service=git-upload-pack or git-receive-pack)")
        authorization = _header(scope, b"authorization")
        denied = self._access(authorization, name, service == "git-receive-pack")
        if denied is not None:
            status, why = denied
            if status != 401:
                raise _Refused(status, why)
            presented = f" ({why})" if authorization is not None else ""
            raise _Refused(401, f"authentication required: use the platform token or a deploy token for {name} "
                                f"as the password (zeroserve init sets one up with a credential helper){presented}",
                           [(b"www-authenticate", REALM.encode())])
        if service == "git-receive-pack" and what == "info/refs":
            try:  # the first request of a push: the repository is created here
                return name, what, await asyncio.to_thread(self.repos.ensure, name)
            except (RepositoryError, OSError) as exc:
                logger.error("creating the repository of %s failed: %s", name, exc)
                raise _Refused(500, f"could not create the repository of {name}") from None
        if not (repo_dir / "HEAD").is_file():
            raise _Refused(404, f"function {name} has no repository yet; "
                                f"push to {PREFIX}{name}.git to create it")
        return name, what, repo_dir

    async def _backend(self, scope: Scope, receive: Receive, send: Send, path_info: str,
                       extra: dict[str, str], max_body: int | None) -> None:
        client = scope.get("client") or ("", 0)
        env = {name: value for name, value in git_environment().items()
               if name in _BACKEND_ENV_NAMES or name.startswith(("GIT_", "LC_"))}
        env.update({
            "GIT_PROJECT_ROOT": str(self.repos.root.resolve()),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path_info,
            "REQUEST_METHOD": scope["method"],
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "REMOTE_USER": "zeroserve",
            "REMOTE_ADDR": str(client[0]),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            **extra,
        })
        for header, variable in ((b"content-type", "CONTENT_TYPE"), (b"content-length", "CONTENT_LENGTH"),
                                 (b"content-encoding", "HTTP_CONTENT_ENCODING"),
                                 (b"git-protocol", "HTTP_GIT_PROTOCOL")):  # http-backend checks it
            value = _header(scope, header)
            if value is not None:
                env[variable] = value
        await run_cgi([self._git, "http-backend"], env, receive, send, max_body=max_body)


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers


def _service(scope: Scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("service", [])
    return values[0] if len(values) == 1 and values[0] in SERVICES else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _error(scope: Scope, send: Send, status: int, message: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """`{"error": ...}`, except to git itself, which prints a text/plain body to the user as remote: lines."""
    if not (_header(scope, b"user-agent") or "").startswith("git/"):
        await send_json_error(send, status, message, headers or ())
        return
    body = (message + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["GitRemote", "PREFIX", "REALM"]
