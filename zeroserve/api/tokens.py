"""Scoped API tokens (admin only): create (the secret is in this one answer), list, revoke.

    POST   /api/v1/tokens          {"scope": "deploy", "functions": ["demo"], "name": "ci", "expires_in": 2592000}
    GET    /api/v1/tokens          name, scope, functions, created, last used, expiry; never a secret or hash
    DELETE /api/v1/tokens/{name}   refused from the next request on
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from protocol.tokens import MAX_FUNCTIONS, Scope, check_token_name
from revisions.registry import TokenRecord
from zeroserve.api.context import ControlContext
from zeroserve.api.errors import ApiError
from zeroserve.api.json_bodies import StrictJsonRoute


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Scope = Field(description="read | deploy | invoke | admin")
    functions: list[str] = Field(default_factory=list, max_length=MAX_FUNCTIONS,
                                 description="the functions it covers; none: every function (read, invoke)")
    name: str | None = Field(None, max_length=63, description="unique; generated when absent")
    expires_in: float | None = Field(None, gt=0, description="seconds until it expires; none: never")


class TokenView(BaseModel):
    name: str
    scope: Scope
    functions: list[str]
    created: float
    expires: float | None
    last_used: float | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenView:
        return cls(name=record.name, scope=record.scope, functions=list(record.functions), created=record.created,
                   expires=record.expires, last_used=record.last_used)


class CreatedToken(TokenView):
    token: str = Field(description="the secret: shown in this answer only (the platform keeps its hash)")


class RevokedToken(BaseModel):
    revoked: str


def _token_name(name: Annotated[str, Path(description="the token's name")]) -> str:
    try:
        return check_token_name(name)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["tokens"], route_class=StrictJsonRoute)
    credentials, run = ctx.credentials, ctx.deployer.run_blocking

    @router.post("/tokens", status_code=201, summary="Create a scoped token (its secret is shown once)")
    async def create(body: TokenBody) -> CreatedToken:
        def make() -> CreatedToken:
            try:
                new = credentials.create(scope=body.scope, functions=body.functions, name=body.name,
                                         expires_in=body.expires_in)
            except ValueError as exc:
                raise ApiError(400, f"invalid token: {exc}") from None
            return CreatedToken(**TokenView.of(new.record).model_dump(), token=new.secret)

        return await run(make)

    @router.get("/tokens", summary="List tokens: name, scope, functions, created, last used, expiry")
    async def list_tokens() -> list[TokenView]:
        return [TokenView.of(r) for r in await run(credentials.list)]

    @router.delete("/tokens/{name}", summary="Revoke a token")
    async def revoke(name: Annotated[str, Depends(_token_name)]) -> RevokedToken:
        record = await run(credentials.revoke, name)
        return RevokedToken(revoked=record.name)

    return router
