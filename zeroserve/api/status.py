"""Scale status per function: what the autoscaler sees and decided, per revision (`zeroserve status`), and
each other target's scale per revision (Knative: each Revision's desired and actual replicas; Lambda: the
function's State and LastUpdateStatus, provisioned and reserved concurrency, each version's share of `live`)."""

from __future__ import annotations

from fastapi import APIRouter

from revisions.registry.notices import LOCAL
from zeroserve.api.context import ControlContext
from zeroserve.api.functions import function_targets
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName
from zeroserve.api.schemas import ScaleStatus


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["status"], route_class=StrictJsonRoute)
    run = ctx.deployer.run_blocking

    @router.get("/functions/{function}/status",
                summary="Per revision: ready/desired replicas, panic mode, stable/panic load, queue, last decision; "
                        "each target's desired/actual scale")
    async def status(function: FunctionName) -> ScaleStatus:
        revisions = await run(ctx.registry.list_revisions, function)  # 404 naming the function when it does not exist
        targets = function_targets(revisions)
        remote = [] if targets == [LOCAL] or ctx.deployer.targets is None else \
            await run(ctx.deployer.targets.status, targets, function)
        if ctx.scale_status is None:
            return ScaleStatus(function=function, revisions=[], data_plane=False, targets=remote)
        return ScaleStatus.model_validate({**ctx.scale_status(function), "data_plane": True, "targets": remote})

    return router
