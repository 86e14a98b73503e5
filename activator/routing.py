"""From a request's Host or path to a function (and tag), per the function URL contract.

  http://<fn>.<domain>/...          http://<tag>-<fn>.<domain>/...      (port ignored)
  http://<any host>/fn/<fn>/...     http://<any host>/fn/<tag>-<fn>/... (prefix stripped)

A label like `canary-iris` is a function when one has exactly that name, else tag `canary` of `iris`.
The scheme itself (building, reading and bounding labels) is `protocol.function_urls`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from activator.contracts import RouteResolver
from protocol.asgi import Scope
from protocol.function_urls import PATH_PREFIX, host_label, label_splits, path_label
from protocol.manifest import check_dns1035

__all__ = ["RouteError", "Target", "host_header", "host_label", "is_function_request", "resolve_label",
           "target_of"]


class RouteError(Exception):
    """A request that names no servable function; `status` and `message` go back to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    label: str  # "<fn>" or "<tag>-<fn>" as the request spelled it
    raw_path: bytes  # the path the replica sees
    prefix: bytes  # b"/fn/<label>" when routed by path, else b""


def host_header(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"host":
            return value
    return b""


def is_function_request(scope: Scope, domain: str) -> bool:
    """Whether the activator serves this request (cheap: no registry lookups)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    return raw_path.startswith(PATH_PREFIX) or host_label(host_header(scope["headers"]), domain) is not None


def target_of(scope: Scope, domain: str) -> Target:
    """The function label and forwarded path of a request; a function Host wins over a /fn/ path."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    label = host_label(host_header(scope["headers"]), domain)
    if label is not None:
        return Target(label=label, raw_path=raw_path, prefix=b"")
    by_path = path_label(raw_path)
    if by_path is not None:
        segment, function_path = by_path
        label = unquote(segment.decode("latin-1"))
        if not label:
            raise RouteError(404, "the path names no function: use /fn/<function>/...")
        return Target(label=label, raw_path=function_path, prefix=PATH_PREFIX + segment)
    raise RouteError(
        404,
        f"no function in host or path: use http://<function>.{domain}/ or /fn/<function>/",
    )


def resolve_label(resolver: RouteResolver, label: str) -> tuple[str, str | None]:
    """(function, tag) named by `label`; RouteError 404 naming the unknown function or tag, or 400
    when `label` cannot name one (`/fn/%2e%2e/`, `Iris`: names and tags are DNS-1035 labels)."""
    if resolver.has_function(label):
        return label, None
    try:  # only off the hot path: every served label is a function's name or "<tag>-<name>"
        check_dns1035(label, "function")
    except ValueError as exc:
        raise RouteError(400, f"{exc} (function URLs name '<function>' or '<tag>-<function>')") from None
    unknown_tag: tuple[str, str] | None = None
    for tag, function in label_splits(label):
        if resolver.has_function(function):
            if resolver.has_tag(function, tag):
                return function, tag
            unknown_tag = unknown_tag or (function, tag)
    if unknown_tag is not None:
        function, tag = unknown_tag
        raise RouteError(404, f"tag '{tag}' not found for function '{function}'")
    raise RouteError(404, f"function '{label}' not found")
