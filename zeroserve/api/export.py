"""Export: a function as a target's own resource (`zeroserve export knative FN`), for GitOps and kubectl.

The resource is rendered by the same translation a deploy applies (deploy/targets.py's `export`), for the
function's newest revision and its current route, so `zeroserve export knative iris | kubectl apply -f -`
changes nothing on a cluster the platform deployed to. Nothing here talks to the target.
"""

from __future__ import annotations

from fastapi import APIRouter

from deploy.targets import RoutedRevision, TargetRefused
from revisions.errors import ConflictError
from revisions.registry.notices import LOCAL
from zeroserve.api.context import ControlContext
from zeroserve.api.errors import ApiError
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName, checked_name
from zeroserve.api.schemas import Export


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["functions"], route_class=StrictJsonRoute)
    registry, deployer = ctx.registry, ctx.deployer

    def export(function: str, target: str) -> Export:
        record = registry.get_function(function)  # 404 naming the function
        revisions = registry.list_revisions(function)
        if not revisions or record.route is None:
            raise ConflictError(f"export: function '{function}' has no deployed revision yet")
        newest = revisions[-1]
        routed = RoutedRevision(function, newest.name, newest.digest, newest.function_manifest,
                                tuple(record.route.targets), record.latest_revision)
        if target == LOCAL:
            raise ApiError(400, "export: the local target has nothing to export (it runs on this platform); "
                                "export knative")
        if deployer.targets is None:
            raise TargetRefused(target, "this platform deploys only to local")
        exported = deployer.targets.get(target).export(routed)
        notes = list(exported.notes)
        runs_on = routed.manifest.targets
        if target not in runs_on:
            notes.insert(0, f"function '{function}' does not run on {target} (targets: {', '.join(runs_on)}): this "
                            f"is what a deploy listing {target} would apply")
        return Export(function=function, target=target, revision=newest.name, media_type=exported.media_type,
                      content=exported.content, notes=notes)

    @router.get("/functions/{function}/export/{target}",
                summary="The function as the target's resource (Knative: the Service YAML a deploy applies)")
    async def export_function(function: FunctionName, target: str) -> Export:
        checked_name(target, "target")
        return await deployer.run_blocking(export, function, target)

    return router
