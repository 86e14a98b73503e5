"""Deploy targets: where a function's revisions run besides this machine, behind one seam.

function.yaml's `targets` names them. `local` (replicas forked on this machine, deploy/local/) needs
nothing here: the data plane serves every routed function that lists it. Every other target (`knative`,
`lambda`) is a `Target`, and the deploy service and the registry drive all of them the same way:

    deploy:   build once -> check (can the target take this function, and is it there?) -> reserve the number
              -> apply_revision (the revision ready on the target, its traffic untouched)
              -> the registry records the revision and its route; follow_route, before the commit
              -> settle (after the commit: wait until the target serves the new route; log lines)
    traffic, rollback, promote, rollout steps:  the registry stores the route; follow_route before the commit
    delete:   the registry deletes the function; delete on every target, before the commit

`follow_route` runs inside the registry's write transaction (the registry's route observer,
revisions/registry/notices.py): a target that cannot follow a route change rolls it back, so the route
changes on every target or on none, and targets see changes in commit order. One exception: a gradual
rollout's step is the registry's schedule, so a step a target misses is logged, kept as "unsynced",
and sent again every tick (`retry_unsynced`) until the target has it.

Targets are built on first use (`Targets` holds factories): a platform with no function on Knative never
imports the kubernetes client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.manifest import FunctionManifest
from revisions.build_log import BuildLog
from revisions.errors import NotFoundError
from revisions.naming import revision_name
from revisions.registry import Registry
from revisions.registry.notices import LOCAL, RouteNotice
from revisions.route_decisions import RouteState, decide_deploy
from revisions.traffic import TrafficError, TrafficTarget, describe_split, referenced_revisions

logger = logging.getLogger("zeroserve.targets")


class TargetError(Exception):
    """A target could not do what was asked (unreachable, refused, not ready); the message says what to do."""

    def __init__(self, target: str, message: str):
        self.target = target
        super().__init__(f"{target}: {message}")


class TargetRefused(ValueError):
    """A function, revision or route the target cannot take at all (its rules); nothing was changed."""

    def __init__(self, target: str, message: str):
        self.target = target
        super().__init__(f"{target}: {message}")


@dataclass(frozen=True)
class NewRevision:
    """A built revision a deploy is about to record, as the targets see it."""

    function: str
    revision: str
    digest: str
    manifest: FunctionManifest
    # The function already has a route on this platform: its traffic must stay as it is until the
    # registry records the revision (only then does the route move).
    routed: bool
    # The route right after the deploy ('@latest' = this revision): a target whose rules limit routes
    # (Lambda: two versions per alias) refuses it in `check`, before anything changes.
    route: tuple[TrafficTarget, ...] = ()


@dataclass(frozen=True)
class RoutedRevision:
    """A function's newest revision and its current route: what `export` renders."""

    function: str
    revision: str
    digest: str
    manifest: FunctionManifest
    route: tuple[TrafficTarget, ...]
    latest_ready: str | None


@dataclass(frozen=True)
class Export:
    """A target's resource for a function, as its tools take it (`kubectl apply -f -`)."""

    content: str
    media_type: str
    notes: tuple[str, ...] = ()


class Target(Protocol):
    name: str

    def check(self, new: NewRevision) -> list[str]:
        """Before anything changes: refuse what the target cannot run (TargetRefused) or cannot be reached
        for (TargetError); notes for the build log."""
        ...

    def apply_revision(self, log: BuildLog, new: NewRevision) -> None:
        """Make the revision ready on the target with the traffic left as it is; TargetError if it cannot."""
        ...

    def follow_route(self, notice: RouteNotice) -> None:
        """Give the target the route in `notice` (quick: the registry's write lock is held)."""
        ...

    def settle(self, function: str, log: BuildLog) -> None:
        """After a deploy's route change committed: wait until the target serves it, saying so in the log."""
        ...

    def delete(self, function: str) -> bool:
        """Remove the function from the target; False when it was not there."""
        ...

    def describe(self, function: str) -> dict[str, Any]:
        """The target's own view of the function (readiness, URLs) for `zeroserve describe`."""
        ...

    def status(self, function: str) -> dict[str, Any]:
        """Per revision, the target's scale (`revisions`: name, ready, desired, actual) for `zeroserve status`."""
        ...

    def export(self, routed: RoutedRevision) -> Export:
        """What a deploy of `routed` applies to the target, byte for byte."""
        ...


@dataclass
class Targets:
    """The targets by name, each built on first use; the registry's route observer (`follow`)."""

    factories: Mapping[str, Callable[[], Target]]
    _made: dict[str, Target] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Functions whose latest rollout step a target missed (function -> the last error, for the log).
    _unsynced: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Target:
        with self._lock:
            target = self._made.get(name)
            if target is None:
                factory = self.factories.get(name)
                if factory is None:
                    raise TargetRefused(name, f"not a target this platform can deploy to (it has: "
                                              f"{', '.join([LOCAL, *sorted(self.factories)])})")
                target = self._made[name] = factory()
            return target

    def remote(self, names: Iterable[str]) -> list[Target]:
        """The targets among `names` other than local, in order."""
        return [self.get(name) for name in names if name != LOCAL]

    # ------------------------------------------------------------------------------- route observer

    def follow(self, notice: RouteNotice) -> None:
        """The registry's route observer: every target of the function takes the route (or it rolls back)."""
        if notice.deleted:
            # Every target any revision ran on: a target the newest revision dropped may still hold it.
            names = dict.fromkeys(t for targets in notice.revision_targets.values() for t in targets)
            for target in self.remote(names):
                target.delete(notice.function)
            self._unsynced.pop(notice.function, None)
            return
        if not notice.targets:
            return  # no route yet (a function whose first deploy failed on a target)
        missed = None
        for target in self.remote(notice.function_targets):
            try:
                check_route_on(target.name, notice.function, notice.targets, notice.latest_ready,
                               notice.revision_targets, notice.function_targets)
                target.follow_route(notice)
            except (TargetError, TargetRefused, TrafficError) as exc:
                if notice.reason != "rollout":
                    raise
                # The rollout moves on locally (it is the registry's schedule); this target catches up.
                if self._unsynced.get(notice.function) != str(exc):
                    logger.warning("rollout step of %s not applied: %s; retrying every tick", notice.function, exc)
                missed = str(exc)
        if missed is None:
            self._unsynced.pop(notice.function, None)
        else:
            self._unsynced[notice.function] = missed

    def retry_unsynced(self, registry: Registry) -> list[str]:
        """Send the current route again to the targets that missed a rollout step; the functions now in sync."""
        synced = []
        for function, last_error in list(self._unsynced.items()):
            try:
                registry.refollow(function)
            except (TargetError, TargetRefused, TrafficError) as exc:
                if str(exc) != last_error:
                    logger.warning("route of %s still not applied: %s", function, exc)
                    self._unsynced[function] = str(exc)
                continue
            except Exception:
                logger.exception("re-sending the route of %s failed", function)
                continue
            self._unsynced.pop(function, None)  # follow() cleared it already, unless the function is gone
            logger.info("route of %s applied on every target again", function)
            synced.append(function)
        return synced

    def unsynced(self) -> dict[str, str]:
        return dict(self._unsynced)

    # ---------------------------------------------------------------------------------------- views

    def describe(self, names: Sequence[str], function: str) -> list[dict[str, Any]]:
        """Each remote target's view of the function; a target that cannot answer says why (`error`)."""
        return [self._view(name, function, lambda target: target.describe(function))
                for name in names if name != LOCAL]

    def status(self, names: Sequence[str], function: str) -> list[dict[str, Any]]:
        return [self._view(name, function, lambda target: target.status(function))
                for name in names if name != LOCAL]

    def _view(self, name: str, function: str, read: Callable[[Target], dict[str, Any]]) -> dict[str, Any]:
        try:
            return {"target": name, **read(self.get(name))}
        except (TargetError, TargetRefused) as exc:
            return {"target": name, "error": str(exc)}


# ---------------------------------------------------------------------------------------------- rules


def check_route_on(target: str, function: str, route: Sequence[TrafficTarget], latest_ready: str | None,
                   revision_targets: Mapping[str, Sequence[str]], function_targets: Sequence[str]) -> None:
    """TrafficError unless every revision the route can send requests to was deployed to `target`."""
    missing = sorted(r for r in referenced_revisions(route, latest_ready)
                     if target not in revision_targets.get(r, ()))
    if missing:
        verb = "was" if len(missing) == 1 else "were"
        raise TrafficError(
            f"traffic: {', '.join(missing)} {verb} not deployed to {target}, where function '{function}' runs "
            f"(targets: {', '.join(function_targets)}); route only revisions deployed to every target, or "
            f"deploy again with targets: [{', '.join(function_targets)}]")


@dataclass(frozen=True)
class DeployPlan:
    """What recording a built function will do, read before anything changes (deploys of a function are
    serialised, so the registry records exactly this unless a traffic change lands in between)."""

    function: str
    unchanged: bool  # the content is already a revision of the function: nothing to apply
    number: int  # the number the new revision gets
    routed: bool  # the function has a route now
    route: tuple[TrafficTarget, ...]  # the route right after the deploy
    revision_targets: dict[str, tuple[str, ...]]  # every revision, the new one included -> its targets
    previous_targets: tuple[str, ...]  # the targets of the function's newest revision before this deploy

    @property
    def revision(self) -> str:
        return revision_name(self.function, self.number)


def plan_deploy(registry: Registry, function: str, digest: str, manifest: FunctionManifest,
                now: float) -> DeployPlan:
    """The deploy of `manifest` (content `digest`) as the registry would record it now; TrafficError if
    its traffic policy cannot apply (the same rule the registry would refuse it by)."""
    try:
        record = registry.get_function(function)
        revisions = registry.list_revisions(function)
    except NotFoundError:
        record, revisions = None, []
    revision_targets = {r.name: tuple(r.manifest.get("targets") or (LOCAL,)) for r in revisions}
    previous = revision_targets[revisions[-1].name] if revisions else ()
    number = registry.next_revision_number(function)
    if any(r.digest == digest for r in revisions):
        return DeployPlan(function, True, number, record is not None and record.route is not None, (),
                          revision_targets, previous)
    name = revision_name(function, number)
    state = RouteState(function, record.route if record else None, record.rollout if record else None,
                       revisions=frozenset(r.name for r in revisions),
                       ready=frozenset(r.name for r in revisions if r.status == "Ready"),
                       latest_ready=record.latest_revision if record else None)
    decision = decide_deploy(state, name, manifest.traffic, now)
    route = tuple(decision.change.targets) if decision.change is not None else ()
    return DeployPlan(function, False, number, state.route is not None, route,
                      {**revision_targets, name: tuple(manifest.targets)}, previous)


def check_plan(plan: DeployPlan, targets: Sequence[str]) -> None:
    """TrafficError when the route after the deploy sends traffic to a revision a target does not have."""
    for target in targets:
        if target != LOCAL:
            check_route_on(target, plan.function, plan.route, plan.revision, plan.revision_targets, targets)


def dropped_targets(plan: DeployPlan, targets: Sequence[str]) -> list[str]:
    """Remote targets the function ran on before this deploy and no longer lists."""
    return [t for t in plan.previous_targets if t != LOCAL and t not in targets]


def describe_route(route: Sequence[TrafficTarget]) -> str:
    return describe_split(route) if route else "(no route)"


__all__ = [
    "DeployPlan", "Export", "NewRevision", "RoutedRevision", "Target", "TargetError", "TargetRefused", "Targets",
    "check_plan", "check_route_on", "describe_route", "dropped_targets", "plan_deploy",
]
