"""Events: deploys, failed builds, traffic changes, rollouts, deletes -- newest last."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from zeroserve.api.context import ControlContext


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["events"])
    registry, run = ctx.registry, ctx.deployer.run_blocking

    @router.get("/events", summary="Events of every function (or of one, with ?function=)")
    async def events(function: str | None = None, limit: int = Query(100, ge=1, le=10_000),
                     after: int | None = Query(None, ge=0, description="only events with a larger id")
                     ) -> list[dict[str, Any]]:
        records = await run(lambda: registry.events(function, limit=limit, after=after))
        return [e.to_json() for e in records]

    @router.get("/functions/{function}/events", summary="Events of one function")
    async def function_events(function: str, limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        records = await run(lambda: registry.events(function, limit=limit))
        return [e.to_json() for e in records]

    return router
