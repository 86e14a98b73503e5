"""Routes and traffic: Knative's rules for splitting a function's requests between its revisions.

Everything here is pure (no I/O, no clock reads): `revisions.route_decisions` composes these rules into
what a deploy, a traffic change, a rollback or a rollout tick does (the registry stores the result), the
control API reports their messages, and the data plane resolves requests through a `RouteTable` built
from a snapshot. Every rejected change raises `TrafficError` whose message names the rule
it breaks, so a user reading "traffic: percents must sum to 100, got 90 (...)" knows what to fix.

`TrafficTarget` and `RolloutPlan` are pydantic dataclasses: the registry stores, and the control API
reads and answers, exactly their fields (`targets_to_json`, `to_jsonable_python`). `ResolvedRoute`, read
on every request, is a plain dataclass (see `pick`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic
from pydantic import ConfigDict, Field, TypeAdapter

from protocol.function_urls import MAX_HOST_LABEL, label_of
from protocol.manifest import check_dns1035

LATEST = "@latest"
# Knative accepts both spellings on the command line (kn uses "@latest").
_LATEST_ALIASES = frozenset({LATEST, "latest"})
# A gradual rollout never moves more often than this: each step must be observable by the data plane and
# the autoscaler (which ticks every 2 s) before the next one.
MIN_ROLLOUT_STEP_SECONDS = 1.0
ROUTE_SLOTS = 100


class TrafficError(ValueError):
    """A route change that breaks a rule; the message starts with 'traffic:' and names the rule."""


@pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrafficTarget:
    """One entry of a route, as in Knative's `spec.traffic[]`: a revision (or the latest ready one), its
    share, and an optional tag. The control API reads and answers exactly this shape.

    Only the types are checked here; the rules (percents 0..100 summing to 100, unique tags, revisions
    that exist) are `validate_targets`', whose messages name the rule.
    """

    revision: str | None = Field(default=None, description="revision name, e.g. iris-00002")
    latest: bool = Field(default=False, description="the latest ready revision instead of a fixed one")
    percent: int = Field(default=0, description="share of the function's requests, 0..100; all targets sum to 100")
    tag: str | None = Field(default=None, description="a name giving the target its own URL: <tag>-<function>")

    @property
    def ref(self) -> str:
        """What the target points at, as users write it: a revision name or '@latest'."""
        return LATEST if self.latest else str(self.revision)

    @classmethod
    def to(cls, ref: str, percent: int = 0, tag: str | None = None) -> TrafficTarget:
        """A target for a revision name or '@latest'/'latest'."""
        if ref in _LATEST_ALIASES:
            return cls(latest=True, percent=percent, tag=tag)
        return cls(revision=ref, percent=percent, tag=tag)


_TARGETS = TypeAdapter(list[TrafficTarget])


def targets_to_json(targets: Sequence[TrafficTarget]) -> list[dict[str, Any]]:
    """A route's targets as JSON values (what the registry stores and the API answers)."""
    return _TARGETS.dump_python(list(targets), mode="json")


def targets_from_json(data: Sequence[Mapping[str, Any]]) -> list[TrafficTarget]:
    return _TARGETS.validate_python(data)


def describe_split(targets: Sequence[TrafficTarget]) -> str:
    """'iris-00001=90, iris-00002=10 (canary)' -- how messages and events show a route."""
    parts = []
    for t in sorted(targets, key=_order):
        text = f"{t.ref}={t.percent}"
        if t.tag:
            text += f" ({t.tag})"
        parts.append(text)
    return ", ".join(parts) or "(no targets)"


# --------------------------------------------------------------------------------------------- validation


def check_tag(function: str, tag: str) -> str:
    """A tag becomes the host label '<tag>-<function>', so both must be valid DNS-1035 labels."""
    try:
        check_dns1035(tag, "tag")
    except ValueError as exc:
        raise TrafficError(f"traffic: {exc}") from None
    host = label_of(function, tag)
    if len(host) > MAX_HOST_LABEL:
        raise TrafficError(
            f"traffic: tag '{tag}' makes the host label '{host}' {len(host)} characters long; "
            f"'<tag>-<function>' must stay within {MAX_HOST_LABEL}"
        )
    return tag


def validate_targets(
    function: str,
    targets: Sequence[TrafficTarget],
    revisions: Collection[str],
    *,
    has_ready_revision: bool = True,
) -> tuple[TrafficTarget, ...]:
    """Check a complete route against Knative's rules; return it normalised.

    Normalising drops untagged 0 % targets (they route nothing and have no URL) and merges untagged
    targets that name the same revision, so equal routes compare equal.
    """
    if not targets:
        raise TrafficError(f"traffic: a route needs at least one target (function '{function}')")
    for t in targets:
        if t.latest and t.revision is not None:
            raise TrafficError(f"traffic: a target names either a revision or latest, not both ({t.revision})")
        if not t.latest and not t.revision:
            raise TrafficError("traffic: every target must name a revision or latest")
        if isinstance(t.percent, bool) or not isinstance(t.percent, int) or not 0 <= t.percent <= 100:
            raise TrafficError(f"traffic: percent must be a whole number from 0 to 100, got {t.percent!r} ({t.ref})")
        if t.revision is not None and t.revision not in revisions:
            raise TrafficError(f"traffic: unknown revision '{t.revision}' of function '{function}'")
        if t.latest and not has_ready_revision:
            raise TrafficError(f"traffic: {LATEST} needs a ready revision, and '{function}' has none")
    seen_tags: set[str] = set()
    for t in targets:
        if t.tag is None:
            continue
        check_tag(function, t.tag)
        if t.tag in seen_tags:
            raise TrafficError(f"traffic: tag '{t.tag}' is used more than once; tags must be unique")
        seen_tags.add(t.tag)
    total = sum(t.percent for t in targets)
    if total != 100:
        raise TrafficError(f"traffic: percents must sum to 100, got {total} ({describe_split(targets)})")
    return normalise(targets)


def normalise(targets: Sequence[TrafficTarget]) -> tuple[TrafficTarget, ...]:
    merged: list[TrafficTarget] = []
    untagged_at: dict[str, int] = {}
    for t in targets:
        if t.tag is None:
            if t.percent == 0:
                continue
            if t.ref in untagged_at:
                i = untagged_at[t.ref]
                merged[i] = replace(merged[i], percent=merged[i].percent + t.percent)
                continue
            untagged_at[t.ref] = len(merged)
        merged.append(t)
    return tuple(sorted(merged, key=_order))


def _order(target: TrafficTarget) -> tuple[str, str]:
    """Routes are kept sorted (by revision, then tag) so equal routes compare and print equal."""
    return (target.ref, target.tag or "")


def referenced_revisions(targets: Sequence[TrafficTarget], latest_ready: str | None) -> set[str]:
    """Revision names a route can send requests to (tags included, @latest resolved)."""
    names = {t.revision for t in targets if t.revision is not None}
    if latest_ready is not None and any(t.latest for t in targets):
        names.add(latest_ready)
    return names


# ------------------------------------------------------------------------------------------ kn-style edits


def parse_assignment(text: str, what: str) -> tuple[str, str]:
    """'iris-00001=90' -> ('iris-00001', '90'); the CLI and the API report the same message."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise TrafficError(f"traffic: '{text}' is not {what}")
    return key.strip(), value.strip()


def parse_percents(pairs: Sequence[str]) -> dict[str, int]:
    percents: dict[str, int] = {}
    for pair in pairs:
        key, value = parse_assignment(pair, "REVISION=PERCENT (e.g. iris-00002=10)")
        try:
            percent = int(value)
        except ValueError:
            raise TrafficError(f"traffic: percent for {key} must be a whole number, got '{value}'") from None
        if key in percents:
            raise TrafficError(f"traffic: {key} is given more than once")
        percents[key] = percent
    return percents


def edit_targets(
    function: str,
    current: Sequence[TrafficTarget],
    *,
    percents: Mapping[str, int] | None = None,
    tags: Mapping[str, str] | None = None,
    untag: Sequence[str] = (),
) -> list[TrafficTarget]:
    """Apply a `kn service update --traffic/--tag/--untag`-style edit to a route (unvalidated result).

    Order as kn does it: untag, then tag, then percents. Keys of `percents` are revision names,
    '@latest' or tag names; when percents are given every target not named gets 0 % (tagged targets stay
    reachable by their tag, untagged ones disappear).
    """
    result = list(current)
    for tag in untag:
        at = _tag_index(result, tag)
        if at is None:
            raise TrafficError(f"traffic: tag '{tag}' does not exist on function '{function}'")
        result[at] = replace(result[at], tag=None)
    for tag, ref in (tags or {}).items():
        check_tag(function, tag)
        wanted = TrafficTarget.to(ref).ref
        at = _tag_index(result, tag)
        if at is not None:
            if result[at].ref == wanted:
                continue
            raise TrafficError(
                f"traffic: tag '{tag}' already names {result[at].ref}; tags must be unique (untag it first)"
            )
        untagged = next((i for i, t in enumerate(result) if t.tag is None and t.ref == wanted), None)
        if untagged is not None:
            result[untagged] = replace(result[untagged], tag=tag)
        else:
            result.append(TrafficTarget.to(ref, 0, tag))
    if percents is not None:
        assigned: dict[int, int] = {}
        for key, percent in percents.items():
            at = _resolve_key(result, key)
            if at is None:
                result.append(TrafficTarget.to(key, 0))
                at = len(result) - 1
            if at in assigned:
                raise TrafficError(f"traffic: {result[at].ref} is given more than once")
            assigned[at] = percent
        result = [replace(t, percent=assigned.get(i, 0)) for i, t in enumerate(result)]
    return [t for t in result if t.tag is not None or t.percent != 0]


def _tag_index(targets: Sequence[TrafficTarget], tag: str) -> int | None:
    return next((i for i, t in enumerate(targets) if t.tag == tag), None)


def _resolve_key(targets: Sequence[TrafficTarget], key: str) -> int | None:
    ref = TrafficTarget.to(key).ref
    # A revision name (or @latest) first: its untagged target, else its (first) tagged one.
    for want_untagged in (True, False):
        for i, t in enumerate(targets):
            if t.ref == ref and (t.tag is None) == want_untagged:
                return i
    return _tag_index(targets, key)


def promote_tag(function: str, current: Sequence[TrafficTarget], tag: str) -> list[TrafficTarget]:
    """All traffic to the revision a tag names; other tags stay as 0 % pins."""
    at = _tag_index(current, tag)
    if at is None:
        raise TrafficError(f"traffic: tag '{tag}' does not exist on function '{function}'")
    return [replace(t, percent=100 if i == at else 0) for i, t in enumerate(current)
            if i == at or t.tag is not None]


def freeze_latest(targets: Sequence[TrafficTarget], latest_ready: str | None) -> list[TrafficTarget]:
    """Pin '@latest' targets to the revision they resolve to now.

    A deploy does this first: otherwise a 10 % canary would also receive the 90 % that '@latest' carried.
    """
    if latest_ready is None:
        return [t for t in targets if not t.latest]
    return [replace(t, latest=False, revision=latest_ready) if t.latest else t for t in targets]


# ------------------------------------------------------------------------------------------------ deploys


def scale_percents(percents: Sequence[int], total: int) -> list[int]:
    """Scale integer shares to sum to `total`, keeping proportions (largest remainder, ties by order)."""
    current = sum(percents)
    if total < 0 or not percents:
        raise ValueError("scale_percents needs shares and a non-negative total")
    if current == 0:
        return [0] * len(percents)
    exact = [p * total / current for p in percents]
    floors = [math.floor(x) for x in exact]
    left = total - sum(floors)
    by_remainder = sorted(range(len(percents)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return floors


def route_after_deploy(
    current: Sequence[TrafficTarget], revision: str, percent: int, tag: str | None
) -> list[TrafficTarget]:
    """The route once a new revision takes `percent` (the manifest's traffic policy).

    The rest of the traffic stays where it was, scaled proportionally; a tag moves to the new revision;
    percent 0 with a tag pins the revision (reachable only by its tag URL). A function's first revision
    takes everything, since there is nowhere else to send requests.
    """
    if not 0 <= percent <= 100:
        raise TrafficError(f"traffic: percent must be a whole number from 0 to 100, got {percent}")
    base = [replace(t, tag=None) if tag is not None and t.tag == tag else t for t in current]
    if sum(t.percent for t in base) != 100:
        return [TrafficTarget(revision=revision, percent=100, tag=tag)]
    shares = scale_percents([t.percent for t in base], 100 - percent)
    kept = [replace(t, percent=s) for t, s in zip(base, shares, strict=True)]
    kept = [t for t in kept if t.tag is not None or t.percent != 0]
    return [*kept, TrafficTarget(revision=revision, percent=percent, tag=tag)]


# ----------------------------------------------------------------------------------------------- rollouts


@pydantic.dataclasses.dataclass(frozen=True)
class RolloutPlan:
    """A gradual shift of traffic to a new revision, as Knative's `rollout-duration` does it.

    `base` is the route when the deploy happened; `route_at(t)` is the route at time t.
    """

    function: str
    revision: str = Field(description="the revision rolling out")
    target_percent: int = Field(description="its share once the rollout is done")
    tag: str | None = Field(description="the tag the new revision takes, if any")
    base: tuple[TrafficTarget, ...] = Field(description="the route when the deploy happened")
    started: float = Field(description="when it started (seconds since the epoch)")
    duration: float = Field(description="seconds from 1 % to target_percent")

    def percent_at(self, now: float) -> int:
        return rollout_percent(self.target_percent, self.started, self.duration, now)

    def route_at(self, now: float) -> list[TrafficTarget]:
        return route_after_deploy(self.base, self.revision, self.percent_at(now), self.tag)

    def done_at(self, now: float) -> bool:
        return now >= self.started + self.duration


def rollout_steps(target_percent: int, duration: float) -> int:
    """How many steps after the first 1 %: one per percent at most, none shorter than the minimum."""
    return max(1, min(target_percent - 1, int(duration // MIN_ROLLOUT_STEP_SECONDS)))


def rollout_percent(target_percent: int, started: float, duration: float, now: float) -> int:
    """The new revision's share at `now`: 1 % at once, then equal steps, reaching the target at the end.

    Knative starts every rollout at 1 % so a broken revision meets as little traffic as possible, then
    moves in equal steps spread over the duration.
    """
    if target_percent <= 1 or duration <= 0 or now >= started + duration:
        return target_percent
    if now <= started:
        return 1
    steps = rollout_steps(target_percent, duration)
    step_seconds = duration / steps
    done = min(steps, int((now - started) // step_seconds))
    return 1 + (target_percent - 1) * done // steps


def needs_rollout(percent: int, duration: float, has_current_route: bool) -> bool:
    return duration > 0 and percent > 1 and has_current_route


# -------------------------------------------------------------------------------------- data-plane lookup


@dataclass(frozen=True)
class ResolvedRoute:
    """A route ready for per-request picks: 100 slots (one per percent) and the tag -> revision map."""

    function: str
    slots: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls, function: str, targets: Sequence[TrafficTarget], latest_ready: str | None
    ) -> ResolvedRoute:
        slots: list[str] = []
        tags: dict[str, str] = {}
        for t in targets:
            name = latest_ready if t.latest else t.revision
            if name is None:
                continue
            slots.extend([name] * t.percent)
            if t.tag is not None:
                tags[t.tag] = name
        if len(slots) != ROUTE_SLOTS:
            slots = []  # an incomplete route serves nothing rather than a skewed split
        return cls(function, tuple(slots), tags)

    def pick(self, tag: str | None, u: float) -> str | None:
        if tag is not None:
            return self.tags.get(tag)
        if not self.slots:
            return None
        return self.slots[min(ROUTE_SLOTS - 1, int(u * ROUTE_SLOTS))]


class RouteTable:
    """The data plane's view of every route; O(1) per pick, refreshed when a route changes.

    Readers never lock: updates build a new dict and swap the reference, which is atomic in CPython.
    """

    def __init__(self, routes: Mapping[str, ResolvedRoute] | None = None):
        self._routes: dict[str, ResolvedRoute] = dict(routes or {})

    def replace_all(self, routes: Mapping[str, ResolvedRoute]) -> None:
        self._routes = dict(routes)

    def update(self, function: str, route: ResolvedRoute | None) -> None:
        routes = dict(self._routes)
        if route is None:
            routes.pop(function, None)
        else:
            routes[function] = route
        self._routes = routes

    def pick(self, function: str, tag: str | None, u: float) -> str | None:
        route = self._routes.get(function)
        return None if route is None else route.pick(tag, u)

    def has_function(self, function: str) -> bool:
        return function in self._routes

    def has_tag(self, function: str, tag: str) -> bool:
        route = self._routes.get(function)
        return route is not None and tag in route.tags

    def route(self, function: str) -> ResolvedRoute | None:
        return self._routes.get(function)

    def functions(self) -> list[str]:
        return sorted(self._routes)
