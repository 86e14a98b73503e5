"""Function logs: what a function's replicas wrote to stdout and stderr (`zeroserve logs FN [-f]`).

`GET /functions/{function}/logs` answers the newest lines (all revisions, or `?revision=`), read since
a duration ago (`?since=10m`); with `?follow=true` it streams them as NDJSON, one `LogLine` per line,
then every new line as it is written, until the client goes away (like `kubectl logs -f`). A `read`
token for the function is enough (zeroserve/api/auth.py: GET on a `{function}` path).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from deploy.local.replica_logs import FunctionLogs
from protocol.durations import parse_duration
from revisions.errors import NotFoundError
from zeroserve.api.context import ControlContext
from zeroserve.api.errors import ApiError
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName, checked_name

NDJSON = "application/x-ndjson"
MAX_TAIL = 10_000


class LogLineView(BaseModel):
    time: float = Field(description="seconds since the epoch, when the platform read the line")
    revision: str
    replica: str = Field(description="the replica that wrote it, e.g. iris-00001-r3 ('zeroserve' for notices)")
    stream: Literal["stdout", "stderr"]
    line: str
    request_id: str | None = Field(None, description="the request being served when it was written (its "
                                                     "zeroserve-request-id; a batch's ids joined by commas)")


class FunctionLogLines(BaseModel):
    function: str
    lines: list[LogLineView]


def build_router(ctx: ControlContext) -> APIRouter:
    router = APIRouter(tags=["logs"], route_class=StrictJsonRoute)
    run = ctx.deployer.run_blocking

    @router.get("/functions/{function}/logs", response_model=FunctionLogLines,
                summary="Lines a function's replicas wrote to stdout and stderr; ?follow=true streams new ones",
                response_description="The lines, oldest first; with `follow=true` an NDJSON stream of `LogLine` "
                                     "objects (the same fields) that stays open and carries each new line.")
    async def logs(function: FunctionName,
                   revision: str | None = Query(None, description="only this revision's lines"),
                   since: str | None = Query(None, description="only lines from this long ago: 30s, 10m, 1h"),
                   tail: int = Query(1000, ge=0, le=MAX_TAIL, description="at most this many of the newest lines"),
                   follow: bool = Query(False, description="stream the lines, then new ones as they come")
                   ) -> FunctionLogLines | StreamingResponse:
        store = ctx.function_logs
        cutoff = None if since is None else time.time() - _since_seconds(since)
        if revision is not None:
            checked_name(revision, "revision")
        await run(_check_exists, ctx, function, revision, [] if store is None else store.revisions(function))
        if store is None:  # the control plane alone: no replicas, no lines
            return FunctionLogLines(function=function, lines=[])
        if not follow:
            lines = store.read(function, revision, since=cutoff, tail=tail)
            return FunctionLogLines(function=function, lines=[LogLineView(**line.to_json()) for line in lines])
        return StreamingResponse(_follow(store, function, revision, cutoff, tail), media_type=NDJSON)

    return router


def _since_seconds(since: str) -> float:
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise ApiError(400, f"since: {exc}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ApiError(400, f"since: '{since}' is not a duration of zero or more, such as '10m'")
    return seconds


def _check_exists(ctx: ControlContext, function: str, revision: str | None, kept: list[str]) -> None:
    """404 naming what does not exist: the function (unless it left logs behind, as a deleted one does), or
    the revision; `kept`: the revisions with logs."""
    try:
        if revision is None:
            if not kept:
                ctx.registry.get_function(function)
        elif revision not in kept:
            ctx.registry.get_revision(function, revision)
    except NotFoundError as exc:
        raise ApiError(404, str(exc)) from None


async def _follow(store: FunctionLogs, function: str, revision: str | None, since: float | None,
                  tail: int) -> AsyncIterator[bytes]:
    follower = store.follow(function, revision)  # first: a line written meanwhile is in one or the other
    try:
        for line in store.read(function, revision, since=since, tail=tail):
            yield (json.dumps(line.to_json()) + "\n").encode()
        async for line in follower:
            yield (json.dumps(line.to_json()) + "\n").encode()
    finally:
        store.unfollow(follower)
