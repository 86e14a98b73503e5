"""The activator's gRPC front: the Open Inference Protocol's `inference.GRPCInferenceService` for every function.

Each call becomes the REST request it stands for (V2 with the binary tensor extension) and goes through
the activator itself, as an ASGI call: the same routing, token check, throttler, queue, cold start, metrics,
tracing and replica connection pool as REST, so a gRPC call to a function at zero waits and succeeds. The
answer comes back as the gRPC message, or as the gRPC code protocol.grpc.status maps its HTTP status to
(with the same message); `zeroserve-revision` (and `zeroserve-cold-start`, `zeroserve-request-id`) travel
as trailing metadata (sent with the status: no extra HTTP/2 frame, unlike initial metadata, which cost the
front a tenth of its throughput at c=32).

Routing is by the model name in the request: `<fn>` or `<tag>-<fn>`, exactly a function URL's label.
grpcio's Python server does not expose a call's :authority, so Host-style routing is not offered; see
docs/grpc.md. Replicas speak only HTTP/1.1 over their Unix sockets: nothing changes on the cold-start path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import grpc

from activator.app import Activator
from activator.routing import RouteError
from protocol.asgi import Message, Scope
from protocol.grpc import grpc_predict_v2_pb2 as pb
from protocol.grpc.service import Context, generic_handler
from protocol.grpc.status import grpc_code
from protocol.grpc.tensors import rest_infer_body
from protocol.inference_errors import BadRequest, InferenceError
from protocol.tensors import check_shape, decode_json_data, encode_binary_data
from protocol.v2_codec import load_json_object, parse_header_length

log = logging.getLogger("zeroserve.activator")

SERVER_NAME = "zeroserve"
SERVER_VERSION = "0.1.0"
# Response headers the client gets as trailing metadata.
_METADATA_HEADERS = (b"zeroserve-revision", b"zeroserve-cold-start", b"zeroserve-request-id", b"traceparent")
# Request metadata that is gRPC's own, or that the REST request this call becomes sets itself.
_NOT_FORWARDED = frozenset({"content-type", "content-length", "te", "host", "user-agent",
                            "inference-header-content-length"})
# As large as the runtime takes (functions/grpc_server.py); gRPC's default is 4 MiB.
MAX_MESSAGE_BYTES = 64 << 20
SERVER_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                  ("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)]


class _Answer:
    """The REST answer of one call, as the activator sends it through ASGI."""

    __slots__ = ("status", "headers", "chunks")

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body:
                self.chunks.append(body)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def body(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple((key.decode("latin-1"), value.decode("latin-1")) for key, value in self.headers
                     if key in _METADATA_HEADERS)


class ActivatorInferenceService:
    """The six methods: health and server metadata answer here; the model methods go through the activator."""

    def __init__(self, activator: Activator):
        self.activator = activator

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=not self.activator.closed)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context
                             ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        answer = await self._call(context, "GET", request.name, request.version, "ready", None)
        if answer.status == 503:
            try:
                doc = _json_answer(answer)
            except InferenceError:
                doc = {}
            if "ready" in doc:  # the model answered "not ready" (503 {"ready": false}): this method's answer
                context.set_trailing_metadata(answer.metadata())
                return pb.ModelReadyResponse(ready=False)
        await self._check(context, answer)
        return pb.ModelReadyResponse(ready=bool(_json_answer(answer).get("ready")))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        answer = await self._call(context, "GET", request.name, request.version, "", None)
        await self._check(context, answer)
        doc = _json_answer(answer)
        response = pb.ModelMetadataResponse(name=str(doc.get("name", "")), versions=doc.get("versions") or [],
                                            platform=str(doc.get("platform", "")))
        for key, tensors in (("inputs", response.inputs), ("outputs", response.outputs)):
            for tensor in doc.get(key) or ():
                tensors.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        return response

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        try:
            parts, header_length = rest_infer_body(request)  # a bad tensor is refused here, before a replica wakes
        except InferenceError as exc:
            await context.abort(grpc_code(exc.status), exc.message)
        headers = [(b"inference-header-content-length", b"%d" % header_length)]
        answer = await self._call(context, "POST", request.model_name, request.model_version, "infer",
                                  (b"".join(parts), headers))
        await self._check(context, answer)
        try:
            return _infer_response(answer)
        except InferenceError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"the replica's answer could not be read: {exc.message}")

    async def _call(self, context: Context, method: str, label: str, version: str, action: str,
                    body: tuple[bytes, list[tuple[bytes, bytes]]] | None) -> _Answer:
        """The REST request for `label`'s model, through the activator; errors of routing abort the call."""
        try:
            function, _ = self.activator.function_of(label)
        except RouteError as error:
            await context.abort(grpc_code(error.status), f"model '{label}': {error.message}")
        path = f"/fn/{quote(label, safe='')}/v2/models/{quote(function, safe='')}"
        if version:
            path += f"/versions/{quote(version, safe='')}"
        if action:
            path += f"/{action}"
        headers = _forwarded_metadata(context)
        data = b""
        if body is not None:
            data, extra = body
            headers += [*extra, (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(len(data)).encode())]
        scope: Scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "2", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode("ascii"), "query_string": b"", "root_path": "",
            "headers": headers, "client": _peer_address(context.peer()), "server": None,
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            await asyncio.Future()  # "until the client goes away": the call's cancellation ends this
            return {"type": "http.disconnect"}

        answer = _Answer()
        await self.activator(scope, receive, answer.send)
        return answer

    async def _check(self, context: Context, answer: _Answer) -> None:
        """Send the answer's metadata; abort the call with the error an HTTP error status stands for."""
        metadata = answer.metadata()
        context.set_trailing_metadata(metadata)
        if answer.status < 400:
            return
        try:
            message = str(_json_answer(answer).get("error") or f"HTTP {answer.status}")
        except InferenceError:
            message = f"HTTP {answer.status}: {answer.body[:200]!r}"
        await context.abort(grpc_code(answer.status, retry_after=answer.header(b"retry-after") is not None), message,
                            metadata)


def _json_answer(answer: _Answer) -> dict[str, Any]:
    return load_json_object(answer.body, "the replica's answer")


def _infer_response(answer: _Answer) -> pb.ModelInferResponse:
    """A V2 REST infer answer (binary extension) -> ModelInferResponse, the raw bytes taken over as they are."""
    body = answer.body
    value = answer.header(b"inference-header-content-length")
    header_length = parse_header_length(None if value is None else value.decode("latin-1"), len(body))
    view = memoryview(body)
    json_end = len(view) if header_length is None else header_length
    doc = load_json_object(view[:json_end], "the replica's answer")
    response = pb.ModelInferResponse(model_name=str(doc.get("model_name", "")),
                                     model_version=str(doc.get("model_version") or ""), id=str(doc.get("id") or ""))
    offset = json_end
    for raw in doc.get("outputs") or ():
        name, datatype = raw["name"], raw["datatype"]
        tensor = f"output '{name}'"
        shape = check_shape(raw["shape"], tensor)
        response.outputs.add(name=name, datatype=datatype, shape=shape)
        size = (raw.get("parameters") or {}).get("binary_data_size")
        if size is None:  # JSON data (a replica that ignored binary_data): the raw bytes are made here
            array = decode_json_data(tensor, datatype, shape, raw["data"])
            response.raw_output_contents.append(bytes(encode_binary_data(tensor, array)))
            continue
        if not isinstance(size, int) or offset + size > len(view):
            raise BadRequest(f"{tensor}: binary_data_size {size!r} does not fit the body")
        response.raw_output_contents.append(body[offset:offset + size])
        offset += size
    return response


def _forwarded_metadata(context: Context) -> list[tuple[bytes, bytes]]:
    """The call's text metadata as request headers (authorization for `auth: token` functions, traceparent,
    the caller's own): what a REST client would have sent. Binary (-bin) and gRPC's own keys stay here."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in context.invocation_metadata() or ():
        if not isinstance(value, str) or key.startswith(("grpc-", ":")) or key in _NOT_FORWARDED:
            continue
        try:
            headers.append((key.encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            continue
    return headers


def _peer_address(peer: str | None) -> tuple[str, int] | None:
    """grpc's peer ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000") as ASGI's client (host, port)."""
    if not peer or not peer.startswith(("ipv4:", "ipv6:")):
        return None
    host, _, port = peer.split(":", 1)[1].rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


class GrpcFront:
    """The gRPC server in front of the activator, on the platform's event loop (grpc.aio)."""

    def __init__(self, activator: Activator, host: str, port: int):
        self.activator = activator
        self.host = host
        self.port = port
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; OSError naming the address when it cannot bind (a port in use)."""
        server = grpc.aio.server(options=SERVER_OPTIONS)
        server.add_generic_rpc_handlers((generic_handler(ActivatorInferenceService(self.activator)),))
        address = self.address
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address} (--grpc-port): {exc}") from None
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {address} (--grpc-port): is the port in use?")
        self.port = bound
        await server.start()
        self._server = server

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls; calls in flight get `grace` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

