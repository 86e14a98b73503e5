"""What the registry tells the deploy targets about a route change, inside the transaction that makes it.

A function that runs on more than this machine (function.yaml `targets`) keeps a copy of its route
elsewhere: a Knative Service's `spec.traffic`, a Lambda alias. After storing a route change (or deleting
a function) and before committing, the registry calls its route observer with a `RouteNotice`; an
observer that raises rolls the change back, so a route changes on every target or on none. Observers
run while the registry holds its write lock: they must be quick (one API call per target) and must
not call the registry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from revisions.registry import tables
from revisions.traffic import TrafficTarget

LOCAL = "local"


@dataclass(frozen=True)
class RouteNotice:
    """A function's route as just stored (or its deletion), with where each of its revisions runs."""

    function: str
    reason: str  # deploy, traffic, promote, rollback, rollout, resync, delete
    targets: tuple[TrafficTarget, ...]  # the route now; empty for a deleted function or one without a route
    latest_ready: str | None  # what '@latest' in the route means
    # Where the function runs: its newest revision's `targets` (the latest deploy's intent).
    function_targets: tuple[str, ...] = (LOCAL,)
    # Every revision of the function -> the targets it was deployed to.
    revision_targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    deleted: bool = False
    # The newest revision's function.yaml (as stored): what is function-wide on a target, such as a
    # Lambda alias' auth and concurrency, comes from the latest deploy.
    manifest: Mapping[str, Any] = field(default_factory=dict)


RouteObserver = Callable[[RouteNotice], None]


def route_notice(conn: sqlite3.Connection, function: str, reason: str, *, deleted: bool = False) -> RouteNotice:
    """The notice for `function` as the transaction on `conn` sees it (read before deleting the rows)."""
    revisions = tables.list_revisions(conn, function)
    revision_targets = {r.name: tuple(r.manifest.get("targets") or (LOCAL,)) for r in revisions}
    newest = revisions[-1].name if revisions else None  # list_revisions orders by number
    route = None if deleted else tables.load_route(conn, function)
    return RouteNotice(
        function=function, reason=reason, targets=tuple(route.targets) if route is not None else (),
        latest_ready=tables.latest_ready(conn, function),
        function_targets=revision_targets[newest] if newest is not None else (LOCAL,),
        revision_targets=revision_targets, deleted=deleted,
        manifest=revisions[-1].manifest if revisions else {},
    )


__all__ = ["LOCAL", "RouteNotice", "RouteObserver", "route_notice"]
