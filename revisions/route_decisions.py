"""Route decisions: what a deploy, a traffic change, a promote, a rollback and a rollout tick do to a route.

Pure functions over the records the registry loads (`RouteState`, the route history) and an injected
`now`; no I/O and no clock reads. The registry loads a function's state, calls one decision and stores
the `RouteDecision` it returns in the same transaction, so the rules read (and are tested) without SQL.
A refusal raises: `TrafficError` names the traffic rule broken, `ConflictError` what the state lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from protocol.manifest import Traffic
from revisions.errors import ConflictError
from revisions.records import RouteRecord
from revisions.traffic import (
    RolloutPlan,
    TrafficError,
    TrafficTarget,
    describe_split,
    edit_targets,
    freeze_latest,
    needs_rollout,
    promote_tag,
    referenced_revisions,
    route_after_deploy,
    validate_targets,
)


@dataclass(frozen=True)
class RouteState:
    """One function as the decisions see it, read in one snapshot."""

    function: str
    route: RouteRecord | None = None
    rollout: RolloutPlan | None = None
    revisions: frozenset[str] = frozenset()  # every revision of the function
    ready: frozenset[str] = frozenset()  # those that are Ready
    latest_ready: str | None = None  # the newest Ready revision (what '@latest' means)


@dataclass(frozen=True)
class RouteChange:
    """A route to store: settled (a new row of route history) or a rollout step (the current route only)."""

    targets: tuple[TrafficTarget, ...]
    reason: str
    settled: bool = True
    restores: int | None = None  # a rollback: the history version it restores


@dataclass(frozen=True)
class EventNote:
    """An event a decision records with its change (the registry adds the time and the function)."""

    revision: str | None
    kind: str
    message: str


@dataclass(frozen=True)
class RouteDecision:
    """What to store, in this order: stop the active rollout, start a new one, change the route, record."""

    change: RouteChange | None
    stop_rollout: bool = False
    start_rollout: RolloutPlan | None = None
    events: tuple[EventNote, ...] = ()


# ------------------------------------------------------------------------------------------------ deploys


def decide_deploy(state: RouteState, revision: str, policy: Traffic, now: float) -> RouteDecision:
    """The route once `revision` (new and Ready) is deployed with the manifest's traffic `policy`.

    `state` is the function before the deploy. '@latest' targets are frozen to the revision they named,
    an active rollout is superseded, and a `rollout_duration` over an existing route starts a rollout.
    """
    percent = 100 if policy.percent is None else policy.percent
    base = freeze_latest(state.route.targets, state.latest_ready) if state.route is not None else []
    after = replace(state, revisions=state.revisions | {revision}, ready=state.ready | {revision},
                    latest_ready=revision)
    events: list[EventNote] = []
    if state.rollout is not None:
        events.append(_cancelled(state.rollout, f"superseded by the deploy of {revision}", now))
    plan = None
    if needs_rollout(percent, policy.rollout_duration, bool(base)):
        plan = RolloutPlan(state.function, revision, percent, policy.tag, tuple(base), now, policy.rollout_duration)
        change = RouteChange(validated(after, plan.route_at(now)), f"rollout of {revision}: {plan.percent_at(now)}%",
                             settled=False)
        events.append(EventNote(revision, "rollout-start",
                                f"rolling out {revision} to {percent}% over {policy.rollout_duration:g}s"))
    else:
        targets = route_after_deploy(base, revision, percent, policy.tag)
        change = RouteChange(validated(after, targets), f"deploy of {revision}")
    events.append(EventNote(revision, "traffic", f"traffic: {describe_split(change.targets)}"))
    return RouteDecision(change, stop_rollout=state.rollout is not None, start_rollout=plan, events=tuple(events))


def is_routed(state: RouteState, revision: str) -> bool:
    """Whether the route can send requests to `revision` (tags included, '@latest' resolved)."""
    return state.route is not None and revision in referenced_revisions(state.route.targets, state.latest_ready)


# ------------------------------------------------------------------------------------------ manual changes


def decide_set_traffic(state: RouteState, targets: Sequence[TrafficTarget], now: float) -> RouteDecision:
    """Replace the route (Knative's `spec.traffic`)."""
    return _manual_change(state, targets, "traffic", now)


def decide_edit(state: RouteState, now: float, *, percents: Mapping[str, int] | None = None,
                tags: Mapping[str, str] | None = None, untag: Sequence[str] = ()) -> RouteDecision:
    """A kn-style edit (`--traffic REV=PCT`, `--tag TAG=REV`, `--untag TAG`) of the current route."""
    current = _current_route(state)
    targets = edit_targets(state.function, current.targets, percents=percents, tags=tags, untag=untag)
    return _manual_change(state, targets, "traffic", now)


def decide_promote(state: RouteState, tag: str, now: float) -> RouteDecision:
    """All traffic to the revision `tag` names; other tags stay as 0 % pins."""
    current = _current_route(state)
    return _manual_change(state, promote_tag(state.function, current.targets, tag), f"promote {tag}", now)


def _manual_change(state: RouteState, targets: Sequence[TrafficTarget], reason: str, now: float) -> RouteDecision:
    """A change by hand settles the route and stops any rollout (the user's word wins)."""
    change = RouteChange(validated(state, targets), reason)
    events = [] if state.rollout is None else [_cancelled(state.rollout, f"overridden by {reason}", now)]
    events.append(EventNote(None, "traffic", f"{reason}: {describe_split(change.targets)}"))
    return RouteDecision(change, stop_rollout=state.rollout is not None, events=tuple(events))


# ----------------------------------------------------------------------------------------------- rollback


def decide_rollback(state: RouteState, history: Sequence[RouteRecord], now: float) -> RouteDecision:
    """Back to the previous route: the one before the current, skipping routes already rolled back.

    During a rollout, the route before the deploy that started it. `history` is the function's route
    history (any order).
    """
    current = _current_route(state)
    events: list[EventNote] = []
    if state.rollout is not None:
        events.append(_cancelled(state.rollout, "rolled back", now))
        targets: Sequence[TrafficTarget] = state.rollout.base
        restores, reason = None, f"rollback: cancelled the rollout of {state.rollout.revision}"
        if not targets:
            raise ConflictError(f"rollback: function '{state.function}' has no route before {state.rollout.revision}")
    else:
        previous = previous_route(current, history)
        if previous is None:
            raise ConflictError(f"rollback: function '{state.function}' has no earlier route to go back to")
        targets, restores = previous.targets, previous.version
        reason = f"rollback to route {restores}"
    try:
        change = RouteChange(validated(state, targets), reason, restores=restores)
    except TrafficError as exc:
        raise ConflictError(f"rollback: the previous route cannot be restored: {exc}") from None
    events.append(EventNote(None, "rollback", f"{reason}: {describe_split(change.targets)}"))
    return RouteDecision(change, stop_rollout=state.rollout is not None, events=tuple(events))


def previous_route(current: RouteRecord, history: Sequence[RouteRecord]) -> RouteRecord | None:
    """The history row a rollback from `current` restores, or None when there is none.

    The walk starts below the current version; from a route a rollback wrote, below the version that
    rollback restored (so rolling back again goes one further); from a rollout that stopped part-way
    (version None), below nothing (its base is the newest row).
    """
    by_version = {row.version: row for row in history}
    head = by_version.get(current.version) if current.version is not None else None
    if current.version is None:
        below = max((v for v in by_version if v is not None), default=0) + 1
    elif head is not None and head.restores is not None:
        below = head.restores
    else:
        below = current.version
    earlier = [row for row in history if row.version is not None and row.version < below]
    return max(earlier, key=lambda row: row.version or 0, default=None)


# ----------------------------------------------------------------------------------------------- rollouts


def decide_rollout_tick(state: RouteState, now: float) -> RouteDecision | None:
    """Move the function's rollout to its split at `now`; None when the route is already there.

    A rollout whose route cannot be valid any more (a revision of its base is gone) stops rather than
    guess: the decision then changes no route (`change` is None).
    """
    plan = state.rollout
    if plan is None:
        return None
    try:
        targets = validated(state, plan.route_at(now))
    except TrafficError as exc:
        return RouteDecision(None, stop_rollout=True, events=(_cancelled(plan, f"cannot continue: {exc}", now),))
    if plan.done_at(now):
        done = f"rollout of {plan.revision} complete"
        return RouteDecision(RouteChange(targets, done), stop_rollout=True,
                             events=(EventNote(plan.revision, "rollout-done", f"{done}: {describe_split(targets)}"),))
    if state.route is not None and tuple(state.route.targets) == tuple(targets):
        return None
    return RouteDecision(RouteChange(targets, f"rollout of {plan.revision}: {plan.percent_at(now)}%", settled=False))


# ---------------------------------------------------------------------------------------------- helpers


def validated(state: RouteState, targets: Sequence[TrafficTarget]) -> tuple[TrafficTarget, ...]:
    """`targets` checked against the traffic rules and the function's revisions; normalised."""
    for t in targets:
        if t.revision is not None and t.revision in state.revisions and t.revision not in state.ready:
            raise TrafficError(f"traffic: revision '{t.revision}' is not Ready and cannot take traffic")
    return validate_targets(state.function, targets, state.revisions, has_ready_revision=bool(state.ready))


def _current_route(state: RouteState) -> RouteRecord:
    if state.route is None:
        raise ConflictError(f"traffic: function '{state.function}' has no route yet")
    return state.route


def _cancelled(plan: RolloutPlan, why: str, now: float) -> EventNote:
    return EventNote(plan.revision, "rollout-cancelled",
                     f"rollout of {plan.revision} stopped at {plan.percent_at(now)}%: {why}")
