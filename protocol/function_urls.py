"""The function-URL scheme, in one place: how a URL is built, read back and bounded.

    http://<fn>.<domain>[:port]/           http://<tag>-<fn>.<domain>[:port]/
    http://<host>[:port]/fn/<fn>/          http://<host>[:port]/fn/<tag>-<fn>/

The control API builds a function's URLs (`function_urls`), the activator reads the label back out of a
request's Host or path (`host_label`, `path_label`, `label_splits`: on the hot path, so plain bytes and
str work), and the traffic rules refuse a tag whose label would not fit in a DNS label (`label_of`,
`MAX_HOST_LABEL`).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

PATH_PREFIX = b"/fn/"
# RFC 1035: a DNS label has at most 63 characters, and '<tag>-<function>' is one label of the host.
MAX_HOST_LABEL = 63


def label_of(function: str, tag: str | None = None) -> str:
    """The label a URL names: `<function>`, or `<tag>-<function>` for a tag's own URL."""
    return function if tag is None else f"{tag}-{function}"


def label_splits(label: str) -> list[tuple[str, str]]:
    """Every (tag, function) a label `<tag>-<function>` may stand for, splitting at each '-' from the left.

    `canary-my-model` gives ('canary', 'my-model') then ('canary-my', 'model'): which one is meant is the
    caller's to decide (the first whose function exists and has that tag). A list found with str.find,
    not a generator over characters: tag URLs are on the hot path.
    """
    splits = []
    index = label.find("-", 1)  # from 1: the tag is never empty
    while 0 < index < len(label) - 1:  # and neither is the function
        splits.append((label[:index], label[index + 1:]))
        index = label.find("-", index + 1)
    return splits


def host_label(host: bytes, domain: str) -> str | None:
    """`iris` for Host `iris.localhost:8080` with domain `localhost`; None when not a function host.

    `domain` is lower case without a trailing dot. The port is ignored; a host with more than one label
    below the domain, or an IPv6 literal, is not a function host.
    """
    name = host.decode("latin-1").lower()
    if name.startswith("["):  # an IPv6 literal is never a function host
        return None
    head, colon, port = name.rpartition(":")
    if colon and port.isdigit():
        name = head
    name = name.rstrip(".")
    suffix = "." + domain
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    if not label or "." in label:
        return None
    return label


def path_label(raw_path: bytes) -> tuple[bytes, bytes] | None:
    """(`<label>` segment as sent, the path the function sees) for `/fn/<label>/...`; None for other paths.

    The segment is still percent-encoded; the function's path is b"/" when nothing follows the label.
    """
    if not raw_path.startswith(PATH_PREFIX):
        return None
    segment, slash, rest = raw_path[len(PATH_PREFIX):].partition(b"/")
    return segment, slash + rest or b"/"


class FunctionUrls(BaseModel):
    """Where a function answers (docs/architecture.md, Function URLs)."""

    url: str = Field(description="the function's host URL: http://<function>.<domain>:<port>/")
    path_url: str = Field(description="the same function under the platform's own host: <base>/fn/<function>/")
    tags: dict[str, str] = Field(description="tag -> its host URL, http://<tag>-<function>.<domain>:<port>/")


def function_urls(base_url: str, domain: str, function: str, tags: Iterable[str] = ()) -> FunctionUrls:
    """The URLs of `function` on a platform reached at `base_url` (scheme, host, port) serving `domain`."""
    base = base_url.rstrip("/")
    scheme, _, rest = base.partition("://")
    port = rest.rsplit(":", 1)[1] if ":" in rest else ""
    suffix = f":{port}" if port else ""
    return FunctionUrls(
        url=f"{scheme}://{label_of(function)}.{domain}{suffix}/",
        path_url=f"{base}{PATH_PREFIX.decode()}{function}/",
        tags={tag: f"{scheme}://{label_of(function, tag)}.{domain}{suffix}/" for tag in tags},
    )
