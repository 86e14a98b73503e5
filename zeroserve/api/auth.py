"""Bearer-token authentication and scope checks for the control API.

Every route behind `TokenAuth` needs a token: the operator's admin token (DATA/token) or a scoped one
(`zeroserve token create`, zeroserve/credentials.py). Which scope a request needs follows from the
route it matched, so a route added later is covered without a list to keep in step:

- a route with `{function}` in its path: GET reads it, any other method deploys to it (traffic, tags,
  rollback, promote...), except deleting the function and its webhook secret, which are admin's;
- `POST /functions` (an upload) needs a deploy token here and, once the upload is unpacked, one
  that covers the function its function.yaml names (`check_upload`);
- `GET /functions` and `GET /events` read every function (a read token naming none), or
  `GET /events?function=F` reads F;
- anything else (tokens, webhook secrets...) is admin's.

A missing or unknown token is a 401, a token beyond its scope a 403 naming the token and its scope,
both before the route runs, so a refused request changes nothing and learns nothing. Tokens are
compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path

from fastapi import Request

from protocol.manifest import ManifestError, clip, load_yaml, read_manifest_text
from protocol.tokens import Action, Grant, refusal
from zeroserve.api.errors import ApiError
from zeroserve.credentials import CredentialError, Credentials

_UNDER_PREFIX = re.compile(r"^/api/v\d+")
# Routes with {function} that only the admin may call, whatever the method.
_ADMIN_ONLY = {("DELETE", "/functions/{function}")}
_ADMIN_SUFFIXES = ("/webhook-secret",)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def required_access(method: str, route_path: str, function: str | None,
                    event_function: str | None = None) -> tuple[Action, str | None]:
    """(the action, the function it concerns or None for the platform) a request needs; see the docstring."""
    path = _UNDER_PREFIX.sub("", route_path)
    if function is not None:
        if (method, path) in _ADMIN_ONLY or path.endswith(_ADMIN_SUFFIXES):
            return "admin", function
        return ("read" if method in ("GET", "HEAD") else "deploy"), function
    if method in ("GET", "HEAD") and path == "/functions":
        return "read", None
    if method in ("GET", "HEAD") and path == "/events":
        return "read", event_function
    return "admin", None


class TokenAuth:
    """A FastAPI dependency: who is asking (`request.state.grant`), and may they call this route."""

    def __init__(self, credentials: Credentials):
        self._credentials = credentials

    async def __call__(self, request: Request) -> None:
        try:
            grant = self._credentials.identify(bearer_token(request.headers.get("authorization")))
        except CredentialError as refused:
            raise ApiError(refused.status, refused.message) from None
        request.state.grant = grant
        if grant.is_admin:
            return
        route = request.scope.get("route")
        route_path = getattr(route, "path", request.url.path)
        function = request.path_params.get("function")
        if request.method == "POST" and _UNDER_PREFIX.sub("", route_path) == "/functions":
            if grant.scope == "deploy":
                return  # which function it deploys is known once the upload is unpacked: check_upload
            raise ApiError(403, f"forbidden: {grant.describe()} cannot deploy functions; that needs a deploy "
                                "token for the function (or an admin token)")
        action, subject = required_access(request.method, route_path, function,
                                          request.query_params.get("function"))
        if not grant.allows(action, subject):
            raise ApiError(403, refusal(grant, action, subject, f"{request.method} {request.url.path}"))


def check_upload(request: Request, source_dir: Path) -> None:
    """After an upload is unpacked: a scoped token may deploy only the functions it names.

    The name is read as the deploy will read it (the bounded manifest reader). A manifest with no
    readable name is let through: its build fails on that, records nothing for any function, and the
    uploader gets the manifest's own message.
    """
    grant: Grant | None = getattr(request.state, "grant", None)
    if grant is None or grant.is_admin:
        return
    name = _manifest_name(source_dir)
    if name is not None and not grant.allows("deploy", name):
        raise ApiError(403, refusal(grant, "deploy", clip(name, 64), f"deploy function '{clip(name, 64)}'"))


def _manifest_name(source_dir: Path) -> str | None:
    try:
        text, _ = read_manifest_text(source_dir)
        data = load_yaml(text)
    except (ManifestError, OSError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` as its bearer token (constant-time)."""
    presented = bearer_token(authorization)
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())
