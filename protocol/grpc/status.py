"""The error table of the inference protocols, as gRPC status codes.

REST answers every failure with an HTTP status (protocol.inference_errors, the activator's refusals); gRPC
answers with the code this table maps that status to, and the same message. One table, so a client sees the
same fault whichever protocol and whichever hop (runtime or activator) refused it.
"""

from __future__ import annotations

import grpc

_BY_HTTP_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,     # malformed request, tensor that does not fit the model
    401: grpc.StatusCode.UNAUTHENTICATED,      # auth: token function called without a valid token
    403: grpc.StatusCode.PERMISSION_DENIED,    # a token that does not cover the function
    404: grpc.StatusCode.NOT_FOUND,            # unknown function, tag, model or revision
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,   # gRPC's code for a message over the size limit
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,             # the model raised on a valid request
    501: grpc.StatusCode.UNIMPLEMENTED,        # shared memory, classification, another model version
    502: grpc.StatusCode.UNAVAILABLE,          # the replica dropped the connection before answering
    503: grpc.StatusCode.UNAVAILABLE,          # no revision receiving traffic, start failed, shutting down
    504: grpc.StatusCode.DEADLINE_EXCEEDED,    # no free replica (or no answer) within timeout_seconds
}


def grpc_code(http_status: int, *, retry_after: bool = False) -> grpc.StatusCode:
    """The gRPC code of an HTTP error status. A 503 that asks the client to come back later (Retry-After:
    the revision's queue is full, the model's queue is full) is RESOURCE_EXHAUSTED: the load, not the server,
    is the fault, and backing off is the cure."""
    if http_status == 503 and retry_after:
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    code = _BY_HTTP_STATUS.get(http_status)
    if code is not None:
        return code
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= http_status < 500 else grpc.StatusCode.INTERNAL
