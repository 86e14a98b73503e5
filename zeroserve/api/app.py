"""The control-plane ASGI app: everything under /api/v1, OpenAPI at /api/v1/docs and /api/v1/openapi.json."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from zeroserve.api import events, export, functions, history, hooks, logs, status, tokens, traffic
from zeroserve.api.auth import TokenAuth
from zeroserve.api.context import ControlContext
from zeroserve.api.errors import install_error_handlers
from zeroserve.api.schemas import Health

API_PREFIX = "/api/v1"


def create_control_app(ctx: ControlContext) -> FastAPI:
    app = FastAPI(
        title="zeroserve control plane",
        version="1",
        description="Deploy functions, inspect revisions, split traffic. Every route needs "
                    "`Authorization: Bearer <token>`: the admin token in DATA/token, or a scoped token "
                    "(read, deploy, invoke) from POST /api/v1/tokens.",
        docs_url=f"{API_PREFIX}/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
        redoc_url=None,
    )
    install_error_handlers(app)
    auth = [Depends(TokenAuth(ctx.credentials))]  # who asks, and does their token's scope cover the route
    for module in (functions, traffic, events, status, history, logs, export, hooks, tokens):
        app.include_router(module.build_router(ctx), prefix=API_PREFIX, dependencies=auth)
    # The git webhook authenticates by its HMAC signature, not the bearer token.
    app.include_router(hooks.build_public_router(ctx), prefix=API_PREFIX)

    @app.get(f"{API_PREFIX}/healthz", tags=["health"], summary="Liveness (no token needed)")
    async def healthz() -> Health:
        return Health(ok=True)

    return app
