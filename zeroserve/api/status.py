"""Scale status per function: what the autoscaler sees and decided, per revision (`zeroserve status`)."""

from __future__ import annotations

from fastapi import APIRouter

from zeroserve.api.context import ControlContext
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName
from zeroserve.api.schemas import ScaleStatus


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["status"], route_class=StrictJsonRoute)

    @router.get("/functions/{function}/status",
                summary="Per revision: ready/desired replicas, panic mode, stable/panic load, queue, last decision")
    async def status(function: FunctionName) -> ScaleStatus:
        ctx.registry.get_function(function)  # 404 naming the function when it does not exist
        if ctx.scale_status is None:
            return ScaleStatus(function=function, revisions=[], data_plane=False)
        return ScaleStatus.model_validate({**ctx.scale_status(function), "data_plane": True})

    return router
