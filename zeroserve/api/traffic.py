"""Traffic: the route of a function (get, replace, edit), tags, rollback and promote."""

from __future__ import annotations

from fastapi import APIRouter

from revisions.registry import RouteRecord
from zeroserve.api.context import ControlContext
from zeroserve.api.errors import ApiError
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName, TagName
from zeroserve.api.schemas import PromoteBody, TagBody, TrafficBody, TrafficEditBody, TrafficView


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["traffic"], route_class=StrictJsonRoute)
    registry, run = ctx.registry, ctx.deployer.run_blocking

    def answer(function: str, route: RouteRecord | None) -> TrafficView:
        tags = [t.tag for t in route.targets if t.tag] if route else []
        return TrafficView(function=function, traffic=route, rollout=registry.get_rollout(function),
                           **ctx.function_urls(function, tags))

    @router.get("/functions/{function}/traffic", summary="The current route, rollout and URLs")
    async def get_traffic(function: FunctionName) -> TrafficView:
        return await run(lambda: answer(function, registry.get_route(function)))

    @router.put("/functions/{function}/traffic", summary="Replace the route (Knative spec.traffic)")
    async def put_traffic(function: FunctionName, body: TrafficBody) -> TrafficView:
        return await run(lambda: answer(function, registry.set_traffic(function, body.targets)))

    @router.patch("/functions/{function}/traffic", summary="Edit the route: percents, tags, untags (kn style)")
    async def patch_traffic(function: FunctionName, body: TrafficEditBody) -> TrafficView:
        return await run(lambda: answer(function, registry.edit_traffic(
            function, percents=body.percents, tags=body.tags, untag=body.untag)))

    @router.put("/functions/{function}/tags/{tag}", summary="Point a tag at a revision (0 % unless routed)")
    async def put_tag(function: FunctionName, tag: TagName, body: TagBody) -> TrafficView:
        return await run(lambda: answer(function, registry.edit_traffic(function, tags={tag: body.revision})))

    @router.delete("/functions/{function}/tags/{tag}", summary="Remove a tag")
    async def delete_tag(function: FunctionName, tag: TagName) -> TrafficView:
        def untag() -> TrafficView:
            route = registry.get_route(function)  # 404 naming the function when there is none
            if route is None or all(t.tag != tag for t in route.targets):
                raise ApiError(404, f"tag '{tag}' not found for function '{function}'")
            return answer(function, registry.edit_traffic(function, untag=[tag]))

        return await run(untag)

    @router.post("/functions/{function}/rollback", summary="Back to the previous route")
    async def rollback(function: FunctionName) -> TrafficView:
        return await run(lambda: answer(function, registry.rollback(function)))

    @router.post("/functions/{function}/promote", summary="All traffic to the revision a tag names")
    async def promote(function: FunctionName, body: PromoteBody) -> TrafficView:
        return await run(lambda: answer(function, registry.promote(function, body.tag)))

    return router
