"""Bearer-token authentication for the control API.

The token is compared in constant time and never logged or echoed; a missing or wrong token is a 401
before the route runs, so a refused request changes nothing.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from zeroserve.api.errors import ApiError


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class TokenAuth:
    """A FastAPI dependency checking `Authorization: Bearer <token>`."""

    def __init__(self, token: str):
        self._expected = token.encode()

    async def __call__(self, request: Request) -> None:
        presented = bearer_token(request.headers.get("authorization"))
        if presented is None:
            raise ApiError(401, "unauthorized: send 'Authorization: Bearer <token>' (the token is in DATA/token)")
        if not hmac.compare_digest(presented.encode(), self._expected):
            raise ApiError(401, "unauthorized: the bearer token is not valid")


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` as its bearer token (constant-time)."""
    presented = bearer_token(authorization)
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())
