"""`Registry`: the registry's operations, each one transaction that loads, decides and stores.

Reads return records (`revisions.records`); every route change is decided by a pure function of
`revisions.route_decisions` over the state loaded in the same transaction, then stored with its events.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from protocol.manifest import FunctionManifest, clip
from revisions.errors import NotFoundError, RegistryError
from revisions.naming import revision_name
from revisions.records import (
    FAILED,
    READY,
    DeployOutcome,
    EventRecord,
    FunctionRecord,
    Removal,
    RevisionRecord,
    RouteRecord,
)
from revisions.registry import tables
from revisions.registry.database import Database
from revisions.registry.events import (
    DEFAULT_KEEP_EVENTS,
    MAX_EVENT_MESSAGE,
    prune_events,
    read_events,
    record_event,
)
from revisions.registry.failed_builds import (
    FailedBuildRecord,
    delete_failed_builds,
    read_failed_builds,
    record_failed_build,
)
from revisions.registry.notices import RouteObserver, route_notice
from revisions.registry.retention import DEFAULT_KEEP_UNROUTED, protected_revisions, revisions_to_delete
from revisions.registry.schema import schema_version
from revisions.registry.tokens import TokenTable
from revisions.route_decisions import (
    RouteDecision,
    RouteState,
    decide_deploy,
    decide_edit,
    decide_promote,
    decide_rollback,
    decide_rollout_tick,
    decide_set_traffic,
    is_routed,
)
from revisions.traffic import ResolvedRoute, RolloutPlan, TrafficTarget


class Registry:
    """Thread-safe access to the registry database at `path` (created and migrated on open)."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0, clock: Callable[[], float] = time.time):
        self._db = Database(path, busy_timeout=busy_timeout)
        self.path = self._db.path
        self._clock = clock
        self.tokens = TokenTable(self._db, clock)  # scoped API tokens (hashed), same database
        # Told of every route change and deletion before it commits (registry/notices.py): the deploy
        # targets that keep a copy of the route follow it there, or the change rolls back.
        self.route_observer: RouteObserver | None = None

    def close(self) -> None:
        self._db.close()

    def schema_version(self) -> int:
        with self._db.read() as conn:
            return schema_version(conn)

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(function)` after every committed change of that function's route or revisions."""
        return self._db.subscribe(listener)

    # --------------------------------------------------------------------------------------- reads

    def list_functions(self) -> list[FunctionRecord]:
        with self._db.read() as conn:
            return [tables.load_function(conn, name) for name in tables.function_names(conn)]

    def get_function(self, function: str) -> FunctionRecord:
        with self._db.read() as conn:
            return tables.load_function(conn, function)

    def list_revisions(self, function: str) -> list[RevisionRecord]:
        with self._db.read() as conn:
            tables.require_function(conn, function)
            return tables.list_revisions(conn, function)

    def get_revision(self, function: str, revision: str) -> RevisionRecord:
        with self._db.read() as conn:
            tables.require_function(conn, function)
            record = tables.load_revision(conn, revision, function=function, with_log=True)
            if record is None:
                raise NotFoundError(f"revision '{revision}' of function '{function}' not found")
            return record

    def find_revision(self, revision: str) -> RevisionRecord | None:
        """A revision by name alone (the data plane and supervisor know only the name)."""
        with self._db.read() as conn:
            return tables.load_revision(conn, revision)

    def get_route(self, function: str) -> RouteRecord | None:
        with self._db.read() as conn:
            tables.require_function(conn, function)
            return tables.load_route(conn, function)

    def route_history(self, function: str) -> list[RouteRecord]:
        with self._db.read() as conn:
            tables.require_function(conn, function)
            return tables.load_history(conn, function)

    def get_rollout(self, function: str) -> RolloutPlan | None:
        with self._db.read() as conn:
            return tables.load_rollout(conn, function)

    def active_rollouts(self) -> list[RolloutPlan]:
        with self._db.read() as conn:
            names = tables.rollout_functions(conn, ordered=True)
            return [plan for name in names if (plan := tables.load_rollout(conn, name)) is not None]

    def events(self, function: str | None = None, *, limit: int = 100, after: int | None = None
               ) -> list[EventRecord]:
        """The newest `limit` events (oldest first), optionally of one function and after an event id."""
        with self._db.read() as conn:
            return read_events(conn, function, limit=limit, after=after)

    def failed_builds(self, function: str) -> list[FailedBuildRecord]:
        """The function's kept failed builds with their logs, newest first.

        NotFoundError when the function neither exists nor has a failed build (its first deploy can fail).
        """
        with self._db.read() as conn:
            records = read_failed_builds(conn, function)
            if not records:
                tables.require_function(conn, function)
            return records

    def resolved_route(self, function: str) -> ResolvedRoute | None:
        """The data plane's view of one function (None when it does not exist or has no route)."""
        with self._db.read() as conn:
            return _resolved(conn, function)

    def resolved_routes(self) -> dict[str, ResolvedRoute]:
        with self._db.read() as conn:
            routes = {}
            for name in tables.routed_functions(conn):
                route = _resolved(conn, name)
                if route is not None:
                    routes[name] = route
            return routes

    def digests_in_use(self) -> set[str]:
        with self._db.read() as conn:
            return tables.digests_in_use(conn)

    def digest_in_use(self, digest: str) -> bool:
        with self._db.read() as conn:
            return tables.digest_in_use(conn, digest)

    def next_revision_number(self, function: str) -> int:
        """The number the function's next revision gets (1 for a function not created yet); nothing taken."""
        with self._db.read() as conn:
            row = conn.execute("SELECT next_number FROM functions WHERE name = ?", (function,)).fetchone()
            return 1 if row is None else int(row["next_number"])

    # ------------------------------------------------------------------------------------- deploys

    def record_deploy(
        self,
        function: str,
        *,
        digest: str,
        manifest: FunctionManifest,
        files: Mapping[str, str],
        build_log: str,
        smoke: Mapping[str, Any] | None = None,
        now: float | None = None,
        number: int | None = None,
    ) -> DeployOutcome:
        """Record a built (and stored) function: a new revision routed per the manifest's traffic policy.

        Content already deployed as a revision of this function creates nothing ('unchanged'). `number`:
        one taken before with `reserve_revision_number` (a target made the revision ready under its name
        before the registry recorded it).
        """
        now = self._clock() if now is None else now
        with self._db.write() as (conn, changed):
            existing = tables.revision_with_digest(conn, function, digest)
            if existing is not None:
                state = tables.load_route_state(conn, function)
                record_event(conn, now, function, existing.name, "deploy-unchanged",
                             f"deploy of {function}: content unchanged, same as {existing.name}")
                return DeployOutcome("unchanged", existing, state.route, state.rollout, is_routed(state, existing.name))

            state = tables.load_route_state(conn, function)  # the function before this revision
            if number is None:
                number, new_function = tables.claim_revision_number(conn, function, now)
                if new_function:
                    record_event(conn, now, function, None, "function", f"created function {function}")
            else:
                _check_reserved(conn, function, number)
            name = revision_name(function, number)
            decision = decide_deploy(state, name, manifest.traffic, now)
            tables.insert_revision(conn, name, function, number, digest=digest, manifest=manifest, files=files,
                                   smoke=smoke, build_log=build_log, now=now)
            record_event(conn, now, function, name, "revision", f"created {name} ({digest})")
            _store(conn, function, decision, now)
            self._follow(conn, function, "deploy")
            changed.add(function)
            route, record = tables.load_route(conn, function), tables.load_revision(conn, name)
            assert route is not None and record is not None
            return DeployOutcome("created", record, route, decision.start_rollout)

    def reserve_revision_number(self, function: str, *, now: float | None = None) -> int:
        """Take the function's next revision number without recording a revision (creating the function).

        For targets that make a revision ready under its name before the registry records it (a Knative
        Revision is named at creation): a deploy that then fails leaves the number spent, never reused.
        """
        now = self._clock() if now is None else now
        with self._db.write() as (conn, changed):
            number, new_function = tables.claim_revision_number(conn, function, now)
            if new_function:
                record_event(conn, now, function, None, "function", f"created function {function}")
                changed.add(function)
            return number

    def record_build_failure(self, function: str | None, message: str, *, log: Sequence[str] = (),
                             now: float | None = None) -> None:
        """A failed build changes no revision and no route: an event, and its (cleaned) log kept with the
        function's newest failed builds, in one transaction. Without a function, only the event."""
        now = self._clock() if now is None else now
        with self._db.write() as (conn, _changed):
            record_event(conn, now, function, None, "build-failed", message)
            if function is not None:
                record_failed_build(conn, now, function, message, log)

    # ------------------------------------------------------------------------------------- traffic

    def set_traffic(self, function: str, targets: Sequence[TrafficTarget], *, now: float | None = None
                    ) -> RouteRecord:
        """Replace a function's route (Knative's `spec.traffic`)."""
        now = self._clock() if now is None else now
        return self._change_route(function, lambda state: decide_set_traffic(state, list(targets), now), now)

    def edit_traffic(
        self,
        function: str,
        *,
        percents: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | None = None,
        untag: Sequence[str] = (),
        now: float | None = None,
    ) -> RouteRecord:
        """A kn-style edit (`--traffic REV=PCT`, `--tag TAG=REV`, `--untag TAG`) of the current route."""
        now = self._clock() if now is None else now
        return self._change_route(
            function, lambda state: decide_edit(state, now, percents=percents, tags=tags, untag=untag), now)

    def promote(self, function: str, tag: str, *, now: float | None = None) -> RouteRecord:
        now = self._clock() if now is None else now
        return self._change_route(function, lambda state: decide_promote(state, tag, now), now)

    def rollback(self, function: str, *, now: float | None = None) -> RouteRecord:
        """Back to the previous route: the one before the current, skipping routes already rolled back.

        During a rollout, the route before the deploy that started it.
        """
        now = self._clock() if now is None else now
        with self._db.write() as (conn, changed):
            tables.require_function(conn, function)
            state, history = tables.load_route_state(conn, function), tables.load_history(conn, function)
            route = _settle_change(conn, changed, function, decide_rollback(state, history, now), now)
            self._follow(conn, function, "rollback")
            return route

    def _change_route(self, function: str, decide: Callable[[RouteState], RouteDecision], now: float
                      ) -> RouteRecord:
        with self._db.write() as (conn, changed):
            tables.require_function(conn, function)
            decision = decide(tables.load_route_state(conn, function))
            route = _settle_change(conn, changed, function, decision, now)
            self._follow(conn, function, decision.change.reason if decision.change is not None else "traffic")
            return route

    def refollow(self, function: str) -> bool:
        """Tell the route observer the function's current route again (a target that missed a change).

        False when the function no longer exists. Raises what the observer raises.
        """
        with self._db.write() as (conn, _changed):
            if not tables.function_exists(conn, function):
                return False
            self._follow(conn, function, "resync")
            return True

    def _follow(self, conn: sqlite3.Connection, function: str, reason: str) -> None:
        """The route observer hears of the function's route as this transaction stored it."""
        if self.route_observer is not None:
            self.route_observer(route_notice(conn, function, reason))

    def advance_rollouts(self, now: float | None = None) -> list[str]:
        """Move every active rollout to its split at `now`; finish those whose duration is over.

        Called by a background task of the platform (every second); the split is the pure
        `RolloutPlan.route_at(now)`, so a rollout survives restarts and ticks that are late or missed.
        """
        now = self._clock() if now is None else now
        moved: list[str] = []
        with self._db.read() as conn:  # the common case, every second: nothing to do, so take no write lock
            if not tables.any_rollout(conn):
                return moved
        with self._db.write() as (conn, changed):
            for function in tables.rollout_functions(conn):
                decision = decide_rollout_tick(tables.load_route_state(conn, function), now)
                if decision is None:
                    continue
                _store(conn, function, decision, now)
                if decision.change is None:  # stopped: the route stays where the rollout left it
                    continue
                self._follow(conn, function, "rollout")
                moved.append(function)
                changed.add(function)
        return moved

    # ----------------------------------------------------------------------------- revisions, events

    def mark_revision(self, revision: str, status: str, message: str = "", *, now: float | None = None) -> None:
        """Set a revision Ready or Failed (e.g. the data plane found it cannot start)."""
        if status not in (READY, FAILED):
            raise RegistryError(f"revision status must be {READY} or {FAILED}, got '{status}'")
        now = self._clock() if now is None else now
        with self._db.write() as (conn, changed):
            record = tables.load_revision(conn, revision)
            if record is None:
                raise NotFoundError(f"revision '{revision}' not found")
            message = clip(message, MAX_EVENT_MESSAGE)
            tables.set_revision_status(conn, revision, status, message)
            record_event(conn, now, record.function, revision, "revision-status", f"{revision}: {status} {message}")
            changed.add(record.function)

    def record_event(self, function: str, revision: str | None, kind: str, message: str, *,
                     now: float | None = None) -> None:
        """An event from outside the registry's own changes (e.g. a replica the data plane saw die, a scale
        change). These come without a deploy, so the table is kept to its newest events here too."""
        with self._db.write() as (conn, _changed):
            record_event(conn, self._clock() if now is None else now, function, revision, kind, message)
            prune_events(conn, DEFAULT_KEEP_EVENTS)

    # ------------------------------------------------------------------------------------- removal

    def delete_function(self, function: str, *, now: float | None = None) -> Removal:
        now = self._clock() if now is None else now
        with self._db.write() as (conn, changed):
            tables.require_function(conn, function)
            notice = route_notice(conn, function, "delete", deleted=True) if self.route_observer else None
            rows = tables.delete_function(conn, function)  # cascades to everything else
            delete_failed_builds(conn, function)  # no foreign key (a first deploy can fail): by hand
            removed = [r["name"] for r in rows]
            record_event(conn, now, function, None, "delete",
                         f"deleted function {function} and {len(removed)} revision(s)")
            if notice is not None and self.route_observer is not None:
                self.route_observer(notice)  # raising keeps the function: every target still has it
            changed.add(function)
            return Removal(removed, tables.unused_digests(conn, {r["digest"] for r in rows}))

    def apply_retention(self, function: str, keep_unrouted: int = DEFAULT_KEEP_UNROUTED, *,
                        keep_events: int = DEFAULT_KEEP_EVENTS, now: float | None = None) -> Removal:
        """Delete a function's unrouted revisions beyond the newest `keep_unrouted`.

        Kept always: revisions the route (or a rollout, or its base) can send traffic to, and the newest
        revision. Returns the digests no revision uses any more, for the caller to delete from the store.
        """
        now = self._clock() if now is None else now
        with self._db.write() as (conn, changed):
            prune_events(conn, keep_events)
            if not tables.function_exists(conn, function):
                return Removal()
            protected = protected_revisions(tables.load_route_state(conn, function))
            rows = tables.revision_names_newest_first(conn, function)
            doomed = revisions_to_delete([r["name"] for r in rows], protected, keep_unrouted)
            for name in doomed:
                tables.delete_revision(conn, name)
                record_event(conn, now, function, name, "retention",
                             f"deleted unrouted revision {name} (keeping the newest {keep_unrouted})")
            if doomed:
                changed.add(function)
            gone = set(doomed)
            return Removal(doomed, tables.unused_digests(conn, {r["digest"] for r in rows if r["name"] in gone}))


def _check_reserved(conn: sqlite3.Connection, function: str, number: int) -> None:
    """A reserved number is taken (below next_number) and used by no revision yet."""
    row = conn.execute("SELECT next_number FROM functions WHERE name = ?", (function,)).fetchone()
    taken = conn.execute("SELECT 1 FROM revisions WHERE function = ? AND number = ?", (function, number)).fetchone()
    if row is None or number >= int(row["next_number"]) or number < 1 or taken is not None:
        raise RegistryError(f"revision number {number} of '{function}' was not reserved (or is already used)")


def _store(conn: sqlite3.Connection, function: str, decision: RouteDecision, now: float) -> None:
    """Write what a route decision decided, in its order: rollout rows, the route, the events."""
    if decision.stop_rollout:
        tables.delete_rollout(conn, function)
    if decision.start_rollout is not None:
        tables.insert_rollout(conn, decision.start_rollout)
    if decision.change is not None:
        tables.store_route(conn, function, decision.change, now)
    for note in decision.events:
        record_event(conn, now, function, note.revision, note.kind, note.message)


def _settle_change(conn: sqlite3.Connection, changed: set[str], function: str, decision: RouteDecision,
                   now: float) -> RouteRecord:
    """Store a decided route change; the route as stored."""
    _store(conn, function, decision, now)
    changed.add(function)
    route = tables.load_route(conn, function)
    assert route is not None
    return route


def _resolved(conn: sqlite3.Connection, function: str) -> ResolvedRoute | None:
    route = tables.load_route(conn, function)
    if route is None:
        return None
    return ResolvedRoute.build(function, route.targets, tables.latest_ready(conn, function))
