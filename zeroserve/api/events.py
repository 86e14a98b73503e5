"""Events: deploys, failed builds, traffic changes, rollouts, deletes -- newest last."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from zeroserve.api.context import ControlContext
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName, checked_name


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["events"], route_class=StrictJsonRoute)
    registry, run = ctx.registry, ctx.deployer.run_blocking

    def events_of(function: str | None, limit: int, after: int | None) -> list[Any]:
        records = registry.events(function, limit=limit, after=after)
        if not records and function is not None and after is None:
            # A deleted function keeps its history, and a first deploy that failed left events for a
            # function never created: only a name with neither is unknown (404 naming it).
            registry.get_function(function)
        return records

    @router.get("/events", summary="Events of every function (or of one, with ?function=)")
    async def events(function: str | None = None, limit: int = Query(100, ge=1, le=10_000),
                     after: int | None = Query(None, ge=0, description="only events with a larger id")
                     ) -> list[dict[str, Any]]:
        if function is not None:
            checked_name(function, "function")
        records = await run(lambda: events_of(function, limit, after))
        return [e.to_json() for e in records]

    @router.get("/functions/{function}/events", summary="Events of one function")
    async def function_events(function: FunctionName, limit: int = Query(100, ge=1, le=10_000)
                              ) -> list[dict[str, Any]]:
        records = await run(lambda: events_of(function, limit, None))
        return [e.to_json() for e in records]

    return router
