"""The runtime's ASGI app: one function served over KServe V1 and Open Inference Protocol V2.

Routes (the model name is the function name):
  GET  /                      V1 server status          GET  /healthz           readiness probe
  GET  /v1/models             V1 model list             GET  /v1/models/{m}     V1 model status
  POST /v1/models/{m}:predict V1 predict (instances | inputs)
  GET  /v2                    server metadata           GET  /v2/health/live, /v2/health/ready
  GET  /v2/models/{m}[/versions/{v}]           model metadata
  GET  /v2/models/{m}[/versions/{v}]/ready     model readiness
  POST /v2/models/{m}[/versions/{v}]/infer     inference (JSON or binary tensor extension)

JSON versus binary is decided by the `Inference-Header-Content-Length` header alone: clients send no
Content-Type (tritonclient's sync client) or a wrong one (its aio client says octet-stream for JSON).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from functions.http import (
    BINARY_TYPE,
    JSON_TYPE,
    ClientDisconnected,
    Headers,
    header,
    read_body,
    send_json,
    send_response,
)
from functions.loaders import LoadedFunction, load_function
from functions.request_context import enter_request
from functions.runner import ModelRunner
from functions.validation import check_inputs, check_produced_outputs, check_requested_outputs
from protocol.asgi import Receive, Scope, Send, send_json_error, serve_lifespan
from protocol.inference_errors import (
    InferenceError,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    Unavailable,
    Unsupported,
)
from protocol.manifest import FunctionManifest, load_manifest
from protocol.v1 import (
    ModelListResponse,
    ModelStatusResponse,
    ServerStatusResponse,
    decode_predict_request,
    encode_predict_response,
)
from protocol.v2 import (
    BINARY_EXTENSION,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from protocol.v2_codec import decode_infer_request, encode_infer_response, parse_header_length

log = logging.getLogger("zeroserve.functions")

SERVER_NAME = "zeroserve"
SERVER_VERSION = "0.1.0"
DEFAULT_MAX_BODY_BYTES = 64 << 20

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


def create_app(function_dir: str | Path, *, manifest: FunctionManifest | None = None,
               revision: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FunctionApp:
    """Load the function now (a forked replica loads, then serves) and return its ASGI app."""
    function_dir = Path(function_dir)
    if manifest is None:
        manifest = load_manifest(function_dir)
    function = load_function(function_dir, manifest)
    return FunctionApp(function, manifest, revision=revision, max_body_bytes=max_body_bytes)


class FunctionApp:
    def __init__(self, function: LoadedFunction, manifest: FunctionManifest, *, revision: str | None = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.function = function
        self.manifest = manifest
        self.model = manifest.name
        self.revision = revision
        self.max_body_bytes = max_body_bytes
        self.runner = ModelRunner(function, manifest.name, manifest.batching)
        # Loaded means ready; a supervisor draining this replica sets it False so probes fail first.
        self.ready = True
        self._extra_headers: Headers = [(b"zeroserve-revision", revision.encode())] if revision else []
        self._fixed_routes: dict[str, Handler] = {
            "/": self._server_status, "/healthz": self._server_ready, "/v2": self._server_metadata,
            "/v2/health/live": self._server_live, "/v2/health/ready": self._server_ready,
            "/v1/models": self._v1_models,
        }

    @property
    def versions(self) -> list[str]:
        """Versions a client may name: the revision, when this app serves one."""
        return [self.revision] if self.revision else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self._shutdown)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _shutdown(self) -> None:
        self.ready = False
        self.runner.close()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The activator's id and traceparent, for the handler and for the lines it prints (request_context).
        rid = enter_request(scope["headers"])
        try:
            handler, allowed = self._route(scope["path"])
            if allowed and scope["method"] not in allowed:
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {scope['path']}; use {allowed[0]}")
            await handler(scope, receive, send)
        except ClientDisconnected:
            return
        except InferenceError as exc:
            headers = list(self._extra_headers)
            if isinstance(exc, MethodNotAllowed):
                headers.append((b"allow", ", ".join(self._route(scope["path"])[1]).encode()))
            if isinstance(exc, Unavailable):
                headers.append((b"retry-after", b"1"))
            if exc.status >= 500 and not isinstance(exc, (Unavailable, Unsupported)):
                request_id = _request_id_text(rid)
                log.error("request %s %s %s: %s", request_id, scope["method"], scope["path"], exc.message)
                await send_json_error(send, exc.status, f"{exc.message} (request id {request_id})", headers, rid)
                return
            await send_json_error(send, exc.status, exc.message, headers, rid)
        except Exception:
            request_id = _request_id_text(rid)
            log.exception("request %s %s %s failed", request_id, scope["method"], scope["path"])
            await send_json_error(send, 500, f"internal error serving model '{self.model}' (request id {request_id})",
                                  self._extra_headers, rid)

    # --- routing -------------------------------------------------------------------------------------

    def _route(self, path: str) -> tuple[Handler, tuple[str, ...]]:
        path = path.rstrip("/") or "/"
        fixed = self._fixed_routes.get(path)
        if fixed is not None:
            return fixed, ("GET",)
        if path.startswith("/v1/models/"):
            rest = path[len("/v1/models/"):]
            if rest.endswith(":predict"):
                return self._bind(self._v1_predict, rest[: -len(":predict")], None), ("POST",)
            return self._bind(self._v1_model_status, rest, None), ("GET",)
        if path.startswith("/v2/models/"):
            parts = path[len("/v2/models/"):].split("/")
            model, version = parts[0], None
            if len(parts) >= 3 and parts[1] == "versions":
                version, parts = parts[2], [model, *parts[3:]]
            action = parts[1] if len(parts) == 2 else None if len(parts) == 1 else "?"
            if action is None:
                return self._bind(self._v2_model_metadata, model, version), ("GET",)
            if action == "ready":
                return self._bind(self._v2_model_ready, model, version), ("GET",)
            if action == "infer":
                return self._bind(self._v2_infer, model, version), ("POST",)
        return self._not_found, ()  # any method: an unknown path is 404 whatever the method

    def _bind(self, handler: Callable[[Scope, Receive, Send], Awaitable[None]], model: str,
              version: str | None) -> Handler:
        async def bound(scope: Scope, receive: Receive, send: Send) -> None:
            self.check_model(model, version)
            await handler(scope, receive, send)
        return bound

    def check_model(self, model: str, version: str | None) -> None:
        if model != self.model:
            raise ModelNotFound(f"model '{model}' is not served here; this function serves '{self.model}'")
        if version is not None and version not in self.versions:
            served = f"; it serves version '{self.revision}'" if self.revision else " without versions"
            raise Unsupported(f"model '{self.model}' version '{version}' is not served here{served}")

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotFound(f"no route for {scope['path']}; this runtime serves /v2/... (Open Inference "
                            "Protocol) and /v1/models/... (KServe V1)")

    def require_ready(self) -> None:
        if not self.ready:
            raise Unavailable(f"model '{self.model}' is not ready")

    async def infer(self, inputs: dict[str, np.ndarray], output_names: Sequence[str] | None
                    ) -> dict[str, np.ndarray]:
        """A decoded V2 request's inputs -> its outputs, each side checked against the model's metadata: what
        REST and gRPC (functions/grpc_server.py) share once they have decoded their own wire form."""
        metadata = self.function.metadata
        check_inputs(self.model, metadata, inputs)
        check_requested_outputs(self.model, metadata, output_names)
        outputs = await self.runner.infer(inputs)
        check_produced_outputs(self.model, outputs, output_names)
        return outputs

    # --- health and metadata -------------------------------------------------------------------------

    async def _server_status(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_message(send, 200, ServerStatusResponse(status="alive"))

    async def _server_live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_message(send, 200, ServerLiveResponse(live=True))

    async def _server_ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_message(send, 200 if self.ready else 503, ServerReadyResponse(ready=self.ready))

    async def _server_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_message(send, 200, ServerMetadataResponse(
            name=SERVER_NAME, version=SERVER_VERSION, extensions=[BINARY_EXTENSION]))

    async def _v2_model_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        metadata = self.function.metadata
        await self._send_message(send, 200, ModelMetadataResponse(
            name=self.model, versions=self.versions, platform=metadata.platform,
            inputs=metadata.inputs, outputs=metadata.outputs))

    async def _v2_model_ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 200 if self.ready else 503
        await self._send_message(send, status, ModelReadyResponse(name=self.model, ready=self.ready))

    async def _v1_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_message(send, 200, ModelListResponse(models=[self.model]))

    async def _v1_model_status(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 200 if self.ready else 503
        await self._send_message(send, status, ModelStatusResponse(name=self.model, ready=self.ready))

    async def _send_message(self, send: Send, status: int, message: BaseModel,
                            headers: Headers | None = None) -> None:
        await send_json(send, status, message.model_dump(exclude_none=True),
                        self._extra_headers if headers is None else headers)

    # --- inference -----------------------------------------------------------------------------------

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.require_ready()
        body = await read_body(scope, receive, self.max_body_bytes)
        header_length = parse_header_length(header(scope, b"inference-header-content-length"), len(body))
        request = decode_infer_request(body, header_length)
        outputs = await self.infer(request.inputs, request.output_names)
        encoded = encode_infer_response(self.model, outputs, request=request, model_version=self.revision)
        headers = list(self._extra_headers)
        if encoded.header_length is None:
            headers.append(JSON_TYPE)
        else:
            headers += [BINARY_TYPE, (b"inference-header-content-length", str(encoded.header_length).encode())]
        await send_response(send, 200, encoded.parts, headers)

    async def _v1_predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.require_ready()
        body = await read_body(scope, receive, self.max_body_bytes)
        request = decode_predict_request(body, self.function.metadata.inputs)
        check_inputs(self.model, self.function.metadata, request.inputs)
        outputs = await self.runner.infer(request.inputs)
        await send_response(send, 200, [encode_predict_response(request.format, outputs)],
                            [JSON_TYPE, *self._extra_headers])


def _request_id_text(rid: bytes | None) -> str:
    """The activator's request id, or one made here (a runtime served alone gets none)."""
    return rid.decode("ascii") if rid is not None else uuid.uuid4().hex[:16]
