"""The runtime's Open Inference Protocol over gRPC: `inference.GRPCInferenceService` on a FunctionApp.

The same function, runner (and so batcher), validation and error table as the REST app (functions/app.py):
a ModelInfer is decoded by protocol.grpc.tensors, checked by functions.validation, run by `app.runner`,
and an InferenceError becomes the gRPC code protocol.grpc.status maps its HTTP status to, with the same
message. Health and metadata answer from the same state (`app.ready`, the model's metadata).

grpc.aio starts threads when the first server is created (~0.1 s of core init): `start_grpc_server` is
called in the serving process once its REST server listens, never at import, so a zygote that imports this
module forks no gRPC state and the REST ready report is not delayed.
"""

from __future__ import annotations

import logging
import uuid
from typing import NoReturn

import grpc

from functions.app import SERVER_NAME, SERVER_VERSION, FunctionApp
from functions.request_context import enter_request
from protocol.grpc import grpc_predict_v2_pb2 as pb
from protocol.grpc.service import Context, generic_handler
from protocol.grpc.status import grpc_code
from protocol.grpc.tensors import decode_infer_request, encode_infer_response
from protocol.inference_errors import InferenceError, Unavailable
from protocol.v2 import BINARY_EXTENSION

log = logging.getLogger("zeroserve.functions")

REVISION_METADATA = "zeroserve-revision"
# Tensors of a few hundred MB pass, as over REST (functions.app's body limit is 64 MiB; gRPC's default 4 MiB
# would refuse a 1 MB-per-row batch of a dozen rows).
MAX_MESSAGE_BYTES = 64 << 20
SERVER_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                  ("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)]


class RuntimeInferenceService:
    """The six methods over one FunctionApp (the model name is the function's)."""

    def __init__(self, app: FunctionApp):
        self.app = app
        self._metadata = ((REVISION_METADATA, app.revision),) if app.revision else ()

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.app.ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context
                             ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[BINARY_EXTENSION])

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        await self._check_model(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=self.app.ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        await self._check_model(request.name, request.version, context)
        app, metadata = self.app, self.app.function.metadata
        response = pb.ModelMetadataResponse(name=app.model, versions=app.versions, platform=metadata.platform)
        for tensor in metadata.inputs:
            response.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        for tensor in metadata.outputs:
            response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        return response

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        app = self.app
        rid = enter_request([(key.encode("latin-1"), value.encode("latin-1"))
                             for key, value in context.invocation_metadata() or () if isinstance(value, str)])
        try:
            app.require_ready()
            app.check_model(request.model_name, request.model_version or None)
            decoded = decode_infer_request(request)
            outputs = await app.infer(decoded.inputs, decoded.output_names)
            response = encode_infer_response(app.model, outputs, request=decoded, model_version=app.revision)
        except InferenceError as exc:
            await self._abort(context, exc, rid)
        except Exception:
            request_id = _request_id_text(rid)
            log.exception("gRPC ModelInfer %s of model '%s' failed", request_id, app.model)
            await self._abort(context, None, rid, f"internal error serving model '{app.model}' "
                                                  f"(request id {request_id})")
        context.set_trailing_metadata(self._metadata)  # with the status: no frame of its own
        return response

    async def _check_model(self, name: str, version: str, context: Context) -> None:
        try:
            self.app.check_model(name, version or None)
        except InferenceError as exc:
            await self._abort(context, exc, None)

    async def _abort(self, context: Context, exc: InferenceError | None, rid: bytes | None,
                     message: str | None = None) -> NoReturn:
        if exc is None:
            await context.abort(grpc.StatusCode.INTERNAL, message or "internal error", self._metadata)
        text = exc.message
        if exc.status >= 500 and exc.status not in (501, 503):
            request_id = _request_id_text(rid)
            log.error("gRPC request %s: %s", request_id, exc.message)
            text = f"{exc.message} (request id {request_id})"
        await context.abort(grpc_code(exc.status, retry_after=isinstance(exc, Unavailable)), text, self._metadata)


async def start_grpc_server(app: FunctionApp, address: str) -> tuple[grpc.aio.Server, int]:
    """Serve `app` over gRPC at `address` ("host:port", port 0 = any); returns the server and the bound port."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((generic_handler(RuntimeInferenceService(app)),))
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    await server.start()
    return server, port


def grpc_address(host: str, port: int) -> str:
    """host:port as gRPC spells it (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _request_id_text(rid: bytes | None) -> str:
    return rid.decode("ascii") if rid is not None else uuid.uuid4().hex[:16]
