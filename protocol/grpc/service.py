"""The `inference.GRPCInferenceService` method table, served at the specification's paths.

The messages are registered as `zeroserve.oip.*` (see grpc_predict_v2.proto for why), so the service is not
taken from generated stubs: each method is registered here by its wire path, with its message classes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias

import grpc

from protocol.grpc import grpc_predict_v2_pb2 as pb

SERVICE = "inference.GRPCInferenceService"

# method -> (request class, response class), in the specification's order.
METHODS: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class InferenceService(Protocol):
    """What a server implements: one coroutine per method (grpc.aio's unary-unary handler signature)."""

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse: ...

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse: ...

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse: ...

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context
                             ) -> pb.ServerMetadataResponse: ...

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context
                            ) -> pb.ModelMetadataResponse: ...

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse: ...


def method_path(method: str) -> str:
    return f"/{SERVICE}/{method}"


def generic_handler(service: InferenceService) -> grpc.GenericRpcHandler:
    """The handler to add to a grpc.aio server: every method of the table, bound to `service`."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method, (request_class, response_class) in METHODS.items():
        behaviour: Callable[[Any, Context], Awaitable[Any]] = getattr(service, method)
        handlers[method] = grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
