"""Events: deploys, failed builds, traffic changes, rollouts, deletes -- newest last."""

from __future__ import annotations

from fastapi import APIRouter, Query

from revisions.records import EventRecord
from zeroserve.api.context import ControlContext
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName, checked_name


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["events"], route_class=StrictJsonRoute)
    registry, run = ctx.registry, ctx.deployer.run_blocking

    def events_of(function: str | None, limit: int, after: int | None) -> list[EventRecord]:
        records = registry.events(function, limit=limit, after=after)
        if not records and function is not None and after is None:
            # A deleted function keeps its history, and a first deploy that failed left events for a
            # function never created: only a name with neither is unknown (404 naming it).
            registry.get_function(function)
        return records

    @router.get("/events", summary="Events of every function (or of one, with ?function=)")
    async def events(function: str | None = None, limit: int = Query(100, ge=1, le=10_000),
                     after: int | None = Query(None, ge=0, description="only events with a larger id")
                     ) -> list[EventRecord]:
        if function is not None:
            checked_name(function, "function")
        return await run(lambda: events_of(function, limit, after))

    @router.get("/functions/{function}/events", summary="Events of one function")
    async def function_events(function: FunctionName, limit: int = Query(100, ge=1, le=10_000)
                              ) -> list[EventRecord]:
        return await run(lambda: events_of(function, limit, None))

    return router
