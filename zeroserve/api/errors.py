"""Every control-API error is `{"error": "..."}` with the right status: never FastAPI's 422 shape.

Validation errors become 400 naming the field; the registry's and traffic rules' refusals keep their
messages (which name the function, revision and rule) and get their status here, by type (the registry
and the deploy service know nothing of HTTP). A deploy target (Knative, ...) that cannot take a change
is a 409 naming the target and what to do (no kubeconfig, an unreachable API server, Knative not
installed, RBAC): the change was rolled back. Anything unexpected is a 500 with a request id, logged
with its traceback but never sent to the client.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deploy.results import DeployResult
from deploy.targets import TargetError, TargetRefused
from revisions.archive import ArchiveError
from revisions.errors import ConflictError, NotFoundError, RegistryError
from revisions.traffic import TrafficError

logger = logging.getLogger("zeroserve.api")

# A deploy's outcome as an HTTP status: a failed build or a refused deploy is the uploader's to fix.
_DEPLOY_STATUS = {"created": 201, "unchanged": 200, "failed": 400}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        self.status = status
        self.message = message
        self.headers = headers
        super().__init__(message)


def registry_status(exc: RegistryError) -> int:
    """404 for what does not exist, 409 for what the state does not allow, 400 for any other refusal."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return 400


def deploy_status(result: DeployResult) -> int:
    return _DEPLOY_STATUS[result.status]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, describe_validation(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"not found: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, str(detail), getattr(exc, "headers", None))

    async def on_registry(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RegistryError)
        return error_response(registry_status(exc), str(exc))

    async def on_bad_input(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc))

    async def on_target(_request: Request, exc: Exception) -> JSONResponse:
        # Not the caller's input: the target (a cluster) refused or could not be reached; nothing changed.
        return error_response(409, f"{exc}; nothing was changed")

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        logger.error("request %s %s failed (request id %s)", request.method, request.url.path, request_id,
                     exc_info=exc)
        return error_response(500, f"internal error (request id {request_id}); see the platform log")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RegistryError, on_registry)
    app.add_exception_handler(TrafficError, on_bad_input)
    app.add_exception_handler(ArchiveError, on_bad_input)
    app.add_exception_handler(TargetRefused, on_bad_input)
    app.add_exception_handler(TargetError, on_target)
    app.add_exception_handler(Exception, on_unexpected)
