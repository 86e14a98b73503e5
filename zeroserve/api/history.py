"""A function's load and scale over the last minutes: `GET /functions/{function}/history` (the console's chart).

One point a second from zeroserve/scale_history.py: requests/s, 5xx/s, p95 latency, ready and requested
replicas, panic mode. `?since=` (seconds since the epoch) answers only newer points, so a page that polls
fetches each point once; `?limit=N` only the newest N (the functions list asks for 1). A `read` token for
the function is enough (GET on a `{function}` path).
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from zeroserve.api.context import ControlContext
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName
from zeroserve.scale_history import KEEP_POINTS


class HistoryPoint(BaseModel):
    time: float = Field(description="seconds since the epoch")
    requests_per_second: float = Field(description="requests answered in the second before, any status")
    errors_per_second: float = Field(description="5xx answers among them")
    p95_ms: float | None = Field(description="95th percentile latency (arrival to response headers, queueing "
                                             "included) of that second's requests; null when there were none")
    ready: int = Field(description="ready replicas, all revisions")
    desired: int = Field(description="replicas asked of the supervisor, all revisions")
    panicking: bool = Field(description="whether any revision's autoscaler was in panic mode")


class FunctionHistory(BaseModel):
    function: str
    interval_seconds: float = Field(description="seconds between points")
    data_plane: bool = Field(description="false while only the control plane runs (no points)")
    points: list[HistoryPoint] = Field(description="oldest first, at most the last ten minutes")


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["status"], route_class=StrictJsonRoute)
    run = ctx.deployer.run_blocking

    @router.get("/functions/{function}/history",
                summary="Requests/s, p95 latency, ready vs desired replicas and panic mode, one point a second")
    async def history(function: FunctionName,
                      since: float | None = Query(None, ge=0, description="only points after this time "
                                                                          "(seconds since the epoch)"),
                      limit: int | None = Query(None, ge=1, le=KEEP_POINTS, description="only the newest points")
                      ) -> FunctionHistory:
        await run(ctx.registry.get_function, function)  # 404 naming the function when it does not exist
        store = ctx.scale_history
        if store is None:
            return FunctionHistory(function=function, interval_seconds=0, data_plane=False, points=[])
        kept = store.points(function, since)
        points = [HistoryPoint.model_validate(p.to_json()) for p in (kept[-limit:] if limit else kept)]
        return FunctionHistory(function=function, interval_seconds=store.interval, data_plane=True, points=points)

    return router
