"""Retention: which of a function's revisions may be deleted (pure; `Registry.apply_retention` deletes them).

Kept always: every revision the route, an active rollout or the rollout's base can send traffic to, and
the newest revision. Of the rest (unrouted), the newest `keep_unrouted` are kept too.
"""

from __future__ import annotations

from collections.abc import Sequence

from revisions.route_decisions import RouteState
from revisions.traffic import referenced_revisions

DEFAULT_KEEP_UNROUTED = 5


def protected_revisions(state: RouteState) -> set[str]:
    """Revisions that can receive traffic now or once the active rollout ends (either way)."""
    route, plan, latest = state.route, state.rollout, state.latest_ready
    names = set() if route is None else referenced_revisions(route.targets, latest)
    if plan is not None:
        names |= {plan.revision} | referenced_revisions(plan.base, latest)
    return names


def revisions_to_delete(newest_first: Sequence[str], protected: set[str], keep_unrouted: int) -> list[str]:
    """The unrouted revisions beyond the newest `keep_unrouted` (newest first, as given)."""
    kept = protected | set(newest_first[:1])
    unrouted = [name for name in newest_first if name not in kept]
    return unrouted[max(0, keep_unrouted):]
