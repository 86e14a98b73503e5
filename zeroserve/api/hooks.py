"""Webhooks: deploy on a push to a repository hosted elsewhere (GitHub-style push events).

    PUT  /api/v1/functions/{fn}/webhook-secret    (bearer token) set or generate the function's secret
    DELETE /api/v1/functions/{fn}/webhook-secret  (bearer token) stop accepting its webhooks
    POST /api/v1/hooks/git?function={fn}          (no token: the X-Hub-Signature-256 HMAC is the auth)

The POST is verified before anything else is read or fetched: no secret or a bad signature is a 401.
A verified push to the deploy branch fetches `repository.clone_url` at `after` and deploys it through
`deploy_git`, the same path as `git push`. The answer is 202 at once (hosts time webhooks out after a
few seconds; the deploy goes on and shows up in the function's events), or, with `?wait=true`, the
deploy's result: 201 created, 200 unchanged, 400 failed build.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploy.git.webhook import (
    MAX_SECRET_LENGTH,
    MIN_SECRET_LENGTH,
    SIGNATURE_HEADER,
    FetchError,
    WebhookError,
    WebhookSecrets,
    fetch_commit,
    parse_push_event,
    verify_signature,
)
from deploy.results import DeployResult
from protocol import strict_json
from zeroserve.api.context import ControlContext
from zeroserve.api.errors import ApiError, deploy_status
from zeroserve.api.json_bodies import StrictJsonRoute
from zeroserve.api.names import FunctionName, checked_name
from zeroserve.api.schemas import (
    WebhookAccepted,
    WebhookDeployAnswer,
    WebhookIgnored,
    WebhookPing,
    WebhookSecret,
    WebhookSecretDeleted,
)

logger = logging.getLogger("zeroserve.hooks")

MAX_EVENT_BYTES = 5 << 20  # GitHub caps payloads at 25 MB, but a push event of one branch is far smaller
HOOK_PATH = "/hooks/git"


class WebhookSecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(None, min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH,
                               description="the shared secret; omit it to have one generated")


_WEBHOOK_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": WebhookPing | WebhookDeployAnswer,
          "description": "A ping event; or, with ?wait=true, a deploy that changed nothing"},
    201: {"model": WebhookDeployAnswer, "description": "With ?wait=true: the deploy created a revision"},
}


def build_router(ctx: ControlContext) -> APIRouter:
    """The token-protected part: managing a function's webhook secret."""
    router = APIRouter(tags=["webhooks"], route_class=StrictJsonRoute)
    secrets = WebhookSecrets(ctx.settings.webhook_secrets_dir)

    @router.put("/functions/{function}/webhook-secret",
                summary="Set (or generate) the secret that signs this function's webhook events")
    async def put_secret(function: FunctionName, request: Request) -> WebhookSecret:
        # A secret may be set before the function exists: its first deploy may come from the webhook.
        raw = await request.body()
        try:
            document = _loads(raw, "invalid request: the body is not JSON") if raw.strip() else {}
            body = WebhookSecretBody.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                                 for e in exc.errors())
            raise ApiError(400, f"invalid request: {problems}") from None
        try:
            secret = await ctx.deployer.run_blocking(secrets.set, function, body.secret)
        except WebhookError as exc:
            raise ApiError(400, str(exc)) from None
        return WebhookSecret(function=function, secret=secret, signature_header=SIGNATURE_HEADER,
                             url=f"{ctx.base_url().rstrip('/')}/api/v1{HOOK_PATH}?function={function}",
                             content_type="application/json", events=["push"])

    @router.delete("/functions/{function}/webhook-secret", summary="Stop accepting this function's webhooks")
    async def delete_secret(function: FunctionName) -> WebhookSecretDeleted:
        if not await ctx.deployer.run_blocking(secrets.delete, function):
            raise ApiError(404, f"function {function} has no webhook secret")
        return WebhookSecretDeleted(function=function, deleted=True)

    return router


def build_public_router(ctx: ControlContext) -> APIRouter:
    """The webhook itself: no bearer token, the signature over the body authenticates it."""
    router = APIRouter(tags=["webhooks"], route_class=StrictJsonRoute)
    secrets = WebhookSecrets(ctx.settings.webhook_secrets_dir)

    # Answers are JSONResponses (the status depends on the event): the models document them.
    @router.post(HOOK_PATH, status_code=202, summary="Deploy from a signed GitHub-style push event",
                 openapi_extra={"security": []}, response_model=WebhookAccepted | WebhookIgnored,
                 response_description="Accepted: the deploy runs on (follow it in the function's events); "
                                      "or ignored: not a push to the deploy branch",
                 responses=_WEBHOOK_ANSWERS)
    async def git_webhook(request: Request, function: str | None = None, wait: bool = False) -> JSONResponse:
        raw = await _read_bounded(request)
        payload = _decode(raw, request.headers.get("content-type", ""))
        name = function if function is not None else _repository_name(payload)
        checked_name(name, "webhook: function")
        secret = await ctx.deployer.run_blocking(secrets.get, name)
        if secret is None:
            raise ApiError(401, f"webhook: function {name} has no webhook secret; set one with "
                                f"PUT /api/v1/functions/{name}/webhook-secret")
        if not verify_signature(secret, raw, request.headers.get(SIGNATURE_HEADER)):
            raise ApiError(401, f"webhook: the {SIGNATURE_HEADER} signature does not match the body "
                                f"(HMAC-SHA256 with the secret of {name})")
        event_type = request.headers.get("x-github-event", "push")
        if event_type == "ping":
            return JSONResponse({"ok": True, "function": name}, status_code=200)
        if event_type != "push":
            return _ignored(name, f"'{event_type}' events are not deployed; only push events are")
        try:
            event = parse_push_event(payload)
        except WebhookError as exc:
            raise ApiError(400, f"webhook: {exc}") from None
        deploy_ref = f"refs/heads/{ctx.settings.deploy_branch}"
        if event.ref != deploy_ref or event.deleted:
            what = "a deletion" if event.deleted else event.ref
            return _ignored(name, f"{what} is not a push to the deploy branch {deploy_ref}; nothing deployed")

        task = asyncio.create_task(_fetch_and_deploy(ctx, name, event.clone_url, event.after, event.ref))
        ctx.deployer.keep(task)
        if not wait:
            return JSONResponse({"status": "accepted", "function": name, "commit": event.after,
                                 "message": f"deploying {name} at {event.after[:12]}; follow it with "
                                            f"GET /api/v1/functions/{name}/events"}, status_code=202)
        result = await asyncio.shield(task)
        return JSONResponse({**result.to_json(), "commit": event.after, "log": result.log},
                            status_code=deploy_status(result))

    return router


async def _fetch_and_deploy(ctx: ControlContext, function: str, url: str, commit: str,
                            ref: str) -> DeployResult:
    workdir = Path(tempfile.mkdtemp(prefix="webhook-", dir=_scratch(ctx)))
    try:
        try:
            repo = await ctx.deployer.run_blocking(fetch_commit, url, commit, ref, workdir)
        except FetchError as exc:
            message = f"webhook deploy failed: {exc}"
            await ctx.deployer.run_blocking(ctx.registry.record_build_failure, function, message)
            return DeployResult("failed", message, function=function)
        result = await ctx.deployer.deploy_git(repo, commit, function=function)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    logger.info("webhook deploy of %s at %s: %s", function, commit[:12], result.message)
    return result


async def _read_bounded(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_EVENT_BYTES:
        raise ApiError(413, f"webhook: the event is {declared} bytes; the limit is {MAX_EVENT_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_EVENT_BYTES:
            raise ApiError(413, f"webhook: the event exceeds the limit of {MAX_EVENT_BYTES} bytes")
    return bytes(body)


def _decode(raw: bytes, content_type: str) -> Any:
    """The event: a JSON body, or GitHub's form encoding (`payload=<json>`). It is read before the
    signature is checked (it may name the function, hence the secret), so strictly: bounded nesting, no NaN.
    """
    fault = "webhook: the body is not a JSON push event"
    if "application/x-www-form-urlencoded" in content_type:
        try:
            return _loads(parse_qs(raw.decode("utf-8")).get("payload", [""])[0], fault)
        except UnicodeDecodeError:
            raise ApiError(400, fault) from None
    return _loads(raw, fault)


def _loads(raw: bytes | str, fault: str) -> Any:
    """RFC 8259 JSON with the nesting limit (protocol.strict_json); else ApiError 400 saying `fault`."""
    try:
        return strict_json.loads(raw)
    except strict_json.JsonRuleError as exc:
        raise ApiError(400, f"{fault}: {exc}") from None
    except ValueError:
        raise ApiError(400, fault) from None


def _repository_name(payload: Any) -> str:
    repository = payload.get("repository") if isinstance(payload, dict) else None
    name = repository.get("name") if isinstance(repository, dict) else None
    if not isinstance(name, str):
        raise ApiError(400, "webhook: name the function with ?function=<name> "
                            "(the event's repository.name is missing)")
    return name


def _ignored(function: str, message: str) -> JSONResponse:
    return JSONResponse({"status": "ignored", "function": function, "message": message}, status_code=202)


def _scratch(ctx: ControlContext) -> Path:
    path = ctx.settings.scratch_dir
    path.mkdir(parents=True, exist_ok=True)
    return path
