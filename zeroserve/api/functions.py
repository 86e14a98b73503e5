"""Functions and revisions: deploy (upload a function directory as tar.gz), list, describe, delete."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from deploy.results import DeployResult
from revisions.archive import extract_archive_file
from revisions.registry import FunctionRecord, RevisionRecord
from revisions.registry.notices import LOCAL
from zeroserve.api.auth import check_upload
from zeroserve.api.context import ControlContext
from zeroserve.api.errors import ApiError, deploy_status
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName, RevisionName
from zeroserve.api.schemas import (
    Deleted,
    DeployAnswer,
    FailedBuild,
    FunctionDetail,
    FunctionView,
    RevisionDetail,
    RevisionSummary,
    TargetState,
)

NDJSON = "application/x-ndjson"
_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "description": "The function directory as tar.gz (what `zeroserve deploy DIR` uploads).",
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
    },
}
_DEPLOY_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": DeployAnswer, "description": "Content unchanged: no new revision."},
    400: {"description": "Bad archive or failed build: `{\"error\"}` naming the file and the fault."},
}


def function_targets(revisions: list[RevisionRecord]) -> list[str]:
    """Where a function runs: its newest revision's `targets` (the latest deploy's intent)."""
    return list(revisions[-1].manifest.get("targets") or [LOCAL]) if revisions else [LOCAL]


def function_urls(ctx: ControlContext, record: FunctionRecord) -> dict[str, Any]:
    tags = [t.tag for t in record.route.targets if t.tag] if record.route else []
    return ctx.function_urls(record.name, tags)


async def _deploy_upload(ctx: ControlContext, request: Request) -> Response:
    """Unpack the uploaded directory into scratch, then build it: one JSON answer, or the log as NDJSON."""
    workdir = Path(tempfile.mkdtemp(prefix="upload-", dir=_scratch(ctx)))
    try:
        source = await _receive_function_dir(ctx, request, workdir)
        check_upload(request, source)  # a scoped token deploys only the functions it names (403)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(_deploy_stream(ctx, source, workdir), media_type=NDJSON)
    try:
        result = await ctx.deployer.deploy_dir(source)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return JSONResponse({**result.to_json(), "log": result.log}, status_code=deploy_status(result))


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["functions"], route_class=StrictJsonRoute)
    registry, deployer = ctx.registry, ctx.deployer

    @router.get("/functions", summary="List functions")
    async def list_functions() -> list[FunctionView]:
        records = await deployer.run_blocking(registry.list_functions)
        return [FunctionView.of(r, function_urls(ctx, r)) for r in records]

    # The answer is a JSONResponse (its status is the deploy's) or an NDJSON stream: the model documents it.
    @router.post("/functions", summary="Deploy a function (upload its directory as tar.gz)", status_code=201,
                 response_model=DeployAnswer, openapi_extra=_UPLOAD_DOC, responses=_DEPLOY_ANSWERS,
                 response_description="A new revision (JSON); with `Accept: application/x-ndjson`, a stream of "
                                      "`{\"type\": \"log\", \"line\"}` lines and a final "
                                      "`{\"type\": \"result\"}`.")
    async def deploy(request: Request) -> Response:
        return await _deploy_upload(ctx, request)

    @router.get("/functions/{function}", summary="Describe a function: route, URLs, revisions, each target's state")
    async def describe(function: FunctionName) -> FunctionDetail:
        record = await deployer.run_blocking(registry.get_function, function)
        revisions = await deployer.run_blocking(registry.list_revisions, function)
        summaries = [RevisionSummary.of(r) for r in revisions]
        targets = function_targets(revisions)
        states = [] if deployer.targets is None or targets == [LOCAL] else \
            await deployer.run_blocking(deployer.targets.describe, targets, function)
        return FunctionDetail.of(record, function_urls(ctx, record), revisions=summaries, targets=targets,
                                 target_states=[TargetState.model_validate(s) for s in states])

    @router.delete("/functions/{function}", summary="Delete a function, its revisions and unused artifacts")
    async def delete(function: FunctionName) -> Deleted:
        removal = await deployer.delete_function(function)
        # The function's git repository goes with it (FunctionName checked the name: no path tricks).
        await asyncio.to_thread(shutil.rmtree, ctx.settings.git_dir / f"{function}.git", True)
        return Deleted(deleted=function, revisions=removal.revisions)

    @router.get("/functions/{function}/revisions", summary="List a function's revisions")
    async def revisions(function: FunctionName) -> list[RevisionSummary]:
        records = await deployer.run_blocking(registry.list_revisions, function)
        return [RevisionSummary.of(r) for r in records]

    @router.get("/functions/{function}/revisions/{revision}", summary="Describe a revision, with its build log")
    async def revision(function: FunctionName, revision: RevisionName) -> RevisionDetail:
        record = await deployer.run_blocking(registry.get_revision, function, revision)
        return RevisionDetail.of(record)

    # A read token for the function is enough (GET on a {function} path, zeroserve/api/auth.py).
    @router.get("/functions/{function}/failed-builds",
                summary="A function's failed builds and refused deploys (newest 10), newest first, with their logs")
    async def failed_builds(function: FunctionName) -> list[FailedBuild]:
        records = await deployer.run_blocking(registry.failed_builds, function)
        return [FailedBuild.of(r) for r in records]

    return router


def _scratch(ctx: ControlContext) -> Path:
    path = ctx.settings.scratch_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _receive_function_dir(ctx: ControlContext, request: Request, workdir: Path) -> Path:
    """Spool the upload to disk (bounded), then unpack it safely; 413 / 400 before any build starts."""
    limit = ctx.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"upload is {declared} bytes; the limit is {limit} (max_upload_bytes)")
    archive = workdir / "upload.tar.gz"
    size = 0
    with open(archive, "wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"upload exceeds the limit of {limit} bytes (max_upload_bytes)")
            out.write(chunk)
    if size == 0:
        raise ApiError(400, "deploy: the request body is empty; upload the function directory as tar.gz")
    source = workdir / "function"
    await ctx.deployer.run_blocking(extract_archive_file, archive, source)
    archive.unlink()
    return source


async def _deploy_stream(ctx: ControlContext, source: Path, workdir: Path) -> AsyncIterator[bytes]:
    """NDJSON: one `{"type": "log"}` object per build-log line as it happens, then the result.

    The deploy runs as its own task: a client that disconnects stops watching, not the deploy.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_line(line: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, {"type": "log", "line": line})

    async def run() -> None:
        try:
            result = await ctx.deployer.deploy_dir(source, on_line)
            status = deploy_status(result)
        except Exception as exc:  # reported in the stream; the status line was sent long ago
            result, status = DeployResult("failed", f"deploy failed: {exc}"), 500
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        final = {"type": "result" if result.ok else "error", "http_status": status, **result.to_json()}
        # After every log line already queued by the build thread (call_soon_threadsafe keeps order).
        loop.call_soon(queue.put_nowait, final)

    ctx.deployer.keep(asyncio.create_task(run()))
    while True:
        item = await queue.get()
        yield (json.dumps(item) + "\n").encode()
        if item["type"] != "log":
            return
