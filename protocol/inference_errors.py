"""Errors of the inference protocols (V1 and V2), each carrying the HTTP status it maps to.

Codecs raise these without knowing about HTTP; the transport turns `status` and `message` into the
`{"error": "..."}` body both protocols define. Messages name the tensor, model or field at fault and
the rule broken, because that text is all a client ever sees.
"""

from __future__ import annotations


class InferenceError(Exception):
    """Base class; `status` is the HTTP status the error answers with."""

    status: int = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(InferenceError):
    """The request is malformed or does not fit the model (unknown input, wrong datatype, ...)."""

    status = 400


class NotFound(InferenceError):
    """No such route."""

    status = 404


class ModelNotFound(NotFound):
    """A route for a model this server does not serve."""


class MethodNotAllowed(InferenceError):
    status = 405


class PayloadTooLarge(InferenceError):
    status = 413


class UnsupportedMediaType(InferenceError):
    """A Content-Encoding the runtime cannot decode."""

    status = 415


class InferenceFailed(InferenceError):
    """The model (or user code) failed on a request that was valid; a server-side fault."""

    status = 500


class Unsupported(InferenceError):
    """A protocol feature or version this runtime does not serve (shared memory, other versions)."""

    status = 501


class Unavailable(InferenceError):
    """Not ready, draining or overloaded: the client may retry later."""

    status = 503


class TensorError(BadRequest):
    """A tensor whose datatype, shape or data is wrong; the message names the tensor."""
