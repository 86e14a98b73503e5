"""Names in control-API paths: a function, revision or tag is a DNS-1035 label, checked before the route.

An invalid name (`%2e%2e`, `Iris`, 300 characters) is a 400 naming the rule, so it never reaches a
query or a path on disk; a valid name of nothing is the route's 404 naming it (the registry's
NotFoundError). Routes take these as `function: FunctionName` and so on; the bearer-token check, a
router dependency, runs first, so a caller without the token learns nothing from the answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from protocol.manifest import check_dns1035
from zeroserve.api.errors import ApiError


def checked_name(value: str, what: str) -> str:
    """`value` when it is a DNS-1035 label; else ApiError 400 naming `what` and the rule."""
    try:
        return check_dns1035(value, what)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def _function(function: Annotated[str, Path(description="function name (a DNS-1035 label)")]) -> str:
    return checked_name(function, "function")


def _revision(revision: Annotated[str, Path(description="revision name, e.g. iris-00002")]) -> str:
    return checked_name(revision, "revision")


def _tag(tag: Annotated[str, Path(description="tag name (a DNS-1035 label)")]) -> str:
    return checked_name(tag, "tag")


FunctionName = Annotated[str, Depends(_function)]
RevisionName = Annotated[str, Depends(_revision)]
TagName = Annotated[str, Depends(_tag)]
