"""The registry: functions, revisions, routes, rollouts and events, in SQLite.

Nothing lives in memory only, so a restart of the platform loses nothing. The rules that keep it
consistent when the platform is killed at any instant:

- a revision row, its route change, its rollout and its event are one transaction, written only after
  the builder has stored the artifact: a kill -9 mid-deploy leaves either no revision or a routed one;
- writers are serialised (an in-process lock, then `BEGIN IMMEDIATE` with a busy timeout for other
  processes), readers see a snapshot (WAL), foreign keys are enforced;
- the schema is versioned (`schema_version`) and upgraded by ordered migration steps at open.

Route history: every settled route is a row of `route_history`; `routes` holds the current one. A
gradual rollout moves `routes` step by step without writing history, so a rollback goes to the route
before the deploy rather than to an intermediate step.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.manifest import FunctionManifest, Traffic, clip
from revisions.traffic import (
    ResolvedRoute,
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
    targets_from_json,
    targets_to_json,
    validate_targets,
)

READY, FAILED = "Ready", "Failed"
DEFAULT_KEEP_UNROUTED = 5
DEFAULT_KEEP_EVENTS = 10_000
# Characters of one event's (or a revision's status) message kept: build failures quote user input,
# and a hostile manifest must not grow the database by more than this per attempt.
MAX_EVENT_MESSAGE = 2000

# Ordered migration steps: step i upgrades schema version i to i + 1. Never edit a released step; add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE functions (
        name           TEXT PRIMARY KEY,
        created        REAL NOT NULL,
        updated        REAL NOT NULL,
        next_number    INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE revisions (
        name       TEXT PRIMARY KEY,
        function   TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        number     INTEGER NOT NULL,
        digest     TEXT NOT NULL,
        manifest   TEXT NOT NULL,
        files      TEXT NOT NULL,
        smoke      TEXT,
        build_log  TEXT NOT NULL DEFAULT '',
        status     TEXT NOT NULL CHECK (status IN ('Ready', 'Failed')),
        message    TEXT NOT NULL DEFAULT '',
        created    REAL NOT NULL,
        UNIQUE (function, number)
    );
    CREATE INDEX revisions_by_digest ON revisions(digest);
    CREATE TABLE routes (
        function   TEXT PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
        targets    TEXT NOT NULL,
        version    INTEGER,
        reason     TEXT NOT NULL,
        updated    REAL NOT NULL
    );
    CREATE TABLE route_history (
        function   TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        version    INTEGER NOT NULL,
        targets    TEXT NOT NULL,
        reason     TEXT NOT NULL,
        restores   INTEGER,
        created    REAL NOT NULL,
        PRIMARY KEY (function, version)
    );
    CREATE TABLE rollouts (
        function        TEXT PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
        revision        TEXT NOT NULL REFERENCES revisions(name) ON DELETE CASCADE,
        target_percent  INTEGER NOT NULL,
        tag             TEXT,
        base            TEXT NOT NULL,
        started         REAL NOT NULL,
        duration        REAL NOT NULL
    );
    CREATE TABLE events (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        time      REAL NOT NULL,
        function  TEXT,
        revision  TEXT,
        kind      TEXT NOT NULL,
        message   TEXT NOT NULL
    );
    CREATE INDEX events_by_function ON events(function, id);
    """,
)


class RegistryError(Exception):
    """Base of the registry's refusals; `status` is the HTTP status the control API answers with."""

    status = 400


class NotFoundError(RegistryError, LookupError):
    status = 404


class ConflictError(RegistryError):
    status = 409


@dataclass(frozen=True)
class RevisionRecord:
    name: str
    function: str
    number: int
    digest: str
    manifest: dict[str, Any]
    files: dict[str, str]
    smoke: dict[str, Any] | None
    status: str
    message: str
    created: float
    build_log: str = ""

    @property
    def function_manifest(self) -> FunctionManifest:
        return FunctionManifest.model_validate(self.manifest)

    def to_json(self, *, with_log: bool = False) -> dict[str, Any]:
        data = {"name": self.name, "function": self.function, "number": self.number, "digest": self.digest,
                "status": self.status, "message": self.message, "created": self.created,
                "manifest": self.manifest, "files": self.files, "smoke": self.smoke}
        if with_log:
            data["build_log"] = self.build_log.splitlines()
        return data


@dataclass(frozen=True)
class RouteRecord:
    function: str
    targets: tuple[TrafficTarget, ...]
    version: int | None  # the history version this route equals; None while a rollout moves it
    reason: str
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "targets": targets_to_json(self.targets), "version": self.version,
                "reason": self.reason, "updated": self.updated, "split": describe_split(self.targets)}


@dataclass(frozen=True)
class FunctionRecord:
    name: str
    created: float
    updated: float
    route: RouteRecord | None
    latest_revision: str | None  # the newest Ready revision
    revision_count: int
    rollout: RolloutPlan | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "updated": self.updated,
                "latest_revision": self.latest_revision, "revision_count": self.revision_count,
                "traffic": None if self.route is None else self.route.to_json(),
                "rollout": None if self.rollout is None else self.rollout.to_json()}


@dataclass(frozen=True)
class EventRecord:
    id: int
    time: float
    function: str | None
    revision: str | None
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "function": self.function, "revision": self.revision,
                "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class DeployOutcome:
    """What recording a built function did: a new revision, or nothing ('unchanged')."""

    status: str  # "created" | "unchanged"
    revision: RevisionRecord
    route: RouteRecord | None
    rollout: RolloutPlan | None = None
    routed: bool = True  # for "unchanged": whether the existing revision still receives traffic

    @property
    def message(self) -> str:
        if self.status == "unchanged":
            hint = "" if self.routed else " (not routed; give it traffic with `zeroserve traffic`)"
            return f"unchanged: {self.revision.name}{hint}"
        text = f"created {self.revision.name}"
        if self.rollout is not None:
            text += f"; rolling out to {self.rollout.target_percent}% over {self.rollout.duration:g}s"
        if self.route is not None:
            text += f"; traffic: {describe_split(self.route.targets)}"
        return text


@dataclass(frozen=True)
class Removal:
    """Revisions removed from the registry, and the digests no remaining revision uses."""

    revisions: list[str] = field(default_factory=list)
    unused_digests: list[str] = field(default_factory=list)


def revision_name(function: str, number: int) -> str:
    return f"{function}-{number:05d}"


class Registry:
    """Thread-safe access to the registry database at `path` (created and migrated on open)."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._migrate()

    # --------------------------------------------------------------------------------- connections

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so every transaction is explicit.
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, set[str]]]:
        """One write transaction; yields the connection and a set to add changed functions to.

        Route listeners run after the commit, so they never see (or announce) a rolled-back change.
        """
        changed: set[str] = set()
        with self._writer:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn, changed
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        for function in sorted(changed):
            self._notify(function)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN")  # one snapshot across the statements of a read
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as (conn, _):
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else int(row["version"])
            if version > len(MIGRATIONS):
                raise RegistryError(
                    f"registry {self.path} has schema version {version}; this zeroserve knows up to "
                    f"{len(MIGRATIONS)} (upgrade zeroserve)"
                )
            for step in MIGRATIONS[version:]:
                for statement in _statements(step):
                    conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))
            else:
                conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    def schema_version(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT version FROM schema_version").fetchone()["version"])

    # ----------------------------------------------------------------------------------- listeners

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(function)` after every committed change of that function's route or revisions."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, function: str) -> None:
        for listener in list(self._listeners):
            listener(function)

    # --------------------------------------------------------------------------------------- reads

    def list_functions(self) -> list[FunctionRecord]:
        with self._read() as conn:
            names = [r["name"] for r in conn.execute("SELECT name FROM functions ORDER BY name")]
            return [self._function(conn, name) for name in names]

    def get_function(self, function: str) -> FunctionRecord:
        with self._read() as conn:
            return self._function(conn, function)

    def list_revisions(self, function: str) -> list[RevisionRecord]:
        with self._read() as conn:
            self._require_function(conn, function)
            rows = conn.execute("SELECT * FROM revisions WHERE function = ? ORDER BY number", (function,))
            return [_revision(r, with_log=False) for r in rows]

    def get_revision(self, function: str, revision: str) -> RevisionRecord:
        with self._read() as conn:
            self._require_function(conn, function)
            row = conn.execute("SELECT * FROM revisions WHERE function = ? AND name = ?",
                               (function, revision)).fetchone()
            if row is None:
                raise NotFoundError(f"revision '{revision}' of function '{function}' not found")
            return _revision(row, with_log=True)

    def find_revision(self, revision: str) -> RevisionRecord | None:
        """A revision by name alone (the data plane and supervisor know only the name)."""
        with self._read() as conn:
            row = conn.execute("SELECT * FROM revisions WHERE name = ?", (revision,)).fetchone()
            return None if row is None else _revision(row, with_log=False)

    def get_route(self, function: str) -> RouteRecord | None:
        with self._read() as conn:
            self._require_function(conn, function)
            return self._route(conn, function)

    def route_history(self, function: str) -> list[RouteRecord]:
        with self._read() as conn:
            self._require_function(conn, function)
            rows = conn.execute("SELECT * FROM route_history WHERE function = ? ORDER BY version", (function,))
            return [RouteRecord(function, tuple(targets_from_json(json.loads(r["targets"]))), r["version"],
                                r["reason"], r["created"]) for r in rows]

    def get_rollout(self, function: str) -> RolloutPlan | None:
        with self._read() as conn:
            return self._rollout(conn, function)

    def active_rollouts(self) -> list[RolloutPlan]:
        with self._read() as conn:
            names = [r["function"] for r in conn.execute("SELECT function FROM rollouts ORDER BY function")]
            return [plan for name in names if (plan := self._rollout(conn, name)) is not None]

    def events(self, function: str | None = None, *, limit: int = 100, after: int | None = None
               ) -> list[EventRecord]:
        """The newest `limit` events (oldest first), optionally of one function and after an event id."""
        clauses: list[str] = []
        params: list[str | int] = []
        if function is not None:
            clauses.append("function = ?")
            params.append(function)
        if after is not None:
            clauses.append("id > ?")
            params.append(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as conn:
            rows = conn.execute(f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?", (*params, limit))
            return [EventRecord(r["id"], r["time"], r["function"], r["revision"], r["kind"], r["message"])
                    for r in reversed(rows.fetchall())]

    def resolved_route(self, function: str) -> ResolvedRoute | None:
        """The data plane's view of one function (None when it does not exist or has no route)."""
        with self._read() as conn:
            route = self._route(conn, function)
            if route is None:
                return None
            return ResolvedRoute.build(function, route.targets, self._latest_ready(conn, function))

    def resolved_routes(self) -> dict[str, ResolvedRoute]:
        with self._read() as conn:
            routes = {}
            for row in conn.execute("SELECT function FROM routes").fetchall():
                name = row["function"]
                route = self._route(conn, name)
                if route is not None:
                    routes[name] = ResolvedRoute.build(name, route.targets, self._latest_ready(conn, name))
            return routes

    def digests_in_use(self) -> set[str]:
        with self._read() as conn:
            return {r["digest"] for r in conn.execute("SELECT DISTINCT digest FROM revisions")}

    def digest_in_use(self, digest: str) -> bool:
        with self._read() as conn:
            return conn.execute("SELECT 1 FROM revisions WHERE digest = ? LIMIT 1", (digest,)).fetchone() is not None

    # -------------------------------------------------------------------------------------- writes

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
    ) -> DeployOutcome:
        """Record a built (and stored) function: a new revision routed per the manifest's traffic policy.

        Content already deployed as a revision of this function creates nothing ('unchanged').
        """
        now = self._clock() if now is None else now
        with self._write() as (conn, changed):
            existing = conn.execute("SELECT * FROM revisions WHERE function = ? AND digest = ? ORDER BY number DESC",
                                    (function, digest)).fetchone()
            if existing is not None:
                record = _revision(existing, with_log=False)
                route = self._route(conn, function)
                latest = self._latest_ready(conn, function)
                routed = route is not None and record.name in referenced_revisions(route.targets, latest)
                self._event(conn, now, function, record.name, "deploy-unchanged",
                            f"deploy of {function}: content unchanged, same as {record.name}")
                return DeployOutcome("unchanged", record, route, self._rollout(conn, function), routed)

            created = conn.execute("SELECT next_number FROM functions WHERE name = ?", (function,)).fetchone()
            if created is None:
                conn.execute("INSERT INTO functions (name, created, updated, next_number) VALUES (?, ?, ?, 1)",
                             (function, now, now))
                self._event(conn, now, function, None, "function", f"created function {function}")
                number = 1
            else:
                number = int(created["next_number"])
            name = revision_name(function, number)
            conn.execute("UPDATE functions SET next_number = ?, updated = ? WHERE name = ?",
                         (number + 1, now, function))
            previous_latest = self._latest_ready(conn, function)
            conn.execute(
                "INSERT INTO revisions (name, function, number, digest, manifest, files, smoke, build_log, status,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, function, number, digest, json.dumps(manifest.normalised()), json.dumps(dict(files)),
                 None if smoke is None else json.dumps(dict(smoke)), build_log, READY, now),
            )
            self._event(conn, now, function, name, "revision", f"created {name} ({digest})")

            policy: Traffic = manifest.traffic
            percent = 100 if policy.percent is None else policy.percent
            current = self._route(conn, function)
            base = freeze_latest(current.targets, previous_latest) if current is not None else []
            if self._rollout(conn, function) is not None:
                self._cancel_rollout(conn, now, function, f"superseded by the deploy of {name}")
            rollout = None
            if needs_rollout(percent, policy.rollout_duration, bool(base)):
                rollout = RolloutPlan(function, name, percent, policy.tag, tuple(base), now, policy.rollout_duration)
                conn.execute(
                    "INSERT INTO rollouts (function, revision, target_percent, tag, base, started, duration)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (function, name, percent, policy.tag, json.dumps(targets_to_json(base)), now,
                     policy.rollout_duration),
                )
                targets = rollout.route_at(now)
                self._set_current(conn, function, self._validated(conn, function, targets), None,
                                  f"rollout of {name}: {rollout.percent_at(now)}%", now)
                self._event(conn, now, function, name, "rollout-start",
                            f"rolling out {name} to {percent}% over {policy.rollout_duration:g}s")
            else:
                targets = route_after_deploy(base, name, percent, policy.tag)
                self._settle(conn, function, self._validated(conn, function, targets), f"deploy of {name}", now)
            route = self._route(conn, function)
            assert route is not None
            self._event(conn, now, function, name, "traffic", f"traffic: {describe_split(route.targets)}")
            changed.add(function)
            record = _revision(conn.execute("SELECT * FROM revisions WHERE name = ?", (name,)).fetchone(),
                               with_log=False)
            return DeployOutcome("created", record, route, rollout)

    def record_build_failure(self, function: str | None, message: str, *, now: float | None = None) -> None:
        """A failed build changes no revision and no route; it is only an event."""
        with self._write() as (conn, _):
            self._event(conn, self._clock() if now is None else now, function, None, "build-failed", message)

    def set_traffic(self, function: str, targets: Sequence[TrafficTarget], *, now: float | None = None
                    ) -> RouteRecord:
        """Replace a function's route (Knative's `spec.traffic`)."""
        now = self._clock() if now is None else now
        with self._write() as (conn, changed):
            self._require_function(conn, function)
            return self._change_route(conn, changed, function, list(targets), "traffic", now)

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
        with self._write() as (conn, changed):
            current = self._require_route(conn, function)
            targets = edit_targets(function, current.targets, percents=percents, tags=tags, untag=untag)
            return self._change_route(conn, changed, function, targets, "traffic", now)

    def promote(self, function: str, tag: str, *, now: float | None = None) -> RouteRecord:
        now = self._clock() if now is None else now
        with self._write() as (conn, changed):
            current = self._require_route(conn, function)
            targets = promote_tag(function, current.targets, tag)
            return self._change_route(conn, changed, function, targets, f"promote {tag}", now)

    def rollback(self, function: str, *, now: float | None = None) -> RouteRecord:
        """Back to the previous route: the one before the current, skipping routes already rolled back.

        During a rollout, the route before the deploy that started it.
        """
        now = self._clock() if now is None else now
        with self._write() as (conn, changed):
            current = self._require_route(conn, function)
            rollout = self._rollout(conn, function)
            if rollout is not None:
                self._cancel_rollout(conn, now, function, "rolled back")
                targets, restores = list(rollout.base), None
                reason = f"rollback: cancelled the rollout of {rollout.revision}"
                if not targets:
                    raise ConflictError(f"rollback: function '{function}' has no route before {rollout.revision}")
            else:
                head = conn.execute("SELECT restores FROM route_history WHERE function = ? AND version = ?",
                                    (function, current.version)).fetchone()
                if current.version is None:  # a rollout that stopped part-way: its base is the newest row
                    base = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM route_history"
                                        " WHERE function = ?", (function,)).fetchone()["v"]
                elif head is not None and head["restores"] is not None:
                    base = head["restores"]
                else:
                    base = current.version
                previous = conn.execute(
                    "SELECT * FROM route_history WHERE function = ? AND version < ? ORDER BY version DESC LIMIT 1",
                    (function, base)).fetchone()
                if previous is None:
                    raise ConflictError(f"rollback: function '{function}' has no earlier route to go back to")
                targets = targets_from_json(json.loads(previous["targets"]))
                restores = int(previous["version"])
                reason = f"rollback to route {restores}"
            try:
                validated = self._validated(conn, function, targets)
            except TrafficError as exc:
                raise ConflictError(f"rollback: the previous route cannot be restored: {exc}") from None
            self._settle(conn, function, validated, reason, now, restores=restores)
            self._event(conn, now, function, None, "rollback", f"{reason}: {describe_split(validated)}")
            changed.add(function)
            route = self._route(conn, function)
            assert route is not None
            return route

    def advance_rollouts(self, now: float | None = None) -> list[str]:
        """Move every active rollout to its split at `now`; finish those whose duration is over.

        Called by a background task of the platform (every second); the split is the pure
        `RolloutPlan.route_at(now)`, so a rollout survives restarts and ticks that are late or missed.
        """
        now = self._clock() if now is None else now
        moved: list[str] = []
        with self._read() as conn:  # the common case, every second: nothing to do, so take no write lock
            if conn.execute("SELECT 1 FROM rollouts LIMIT 1").fetchone() is None:
                return moved
        with self._write() as (conn, changed):
            for row in conn.execute("SELECT function FROM rollouts").fetchall():
                function = row["function"]
                plan = self._rollout(conn, function)
                assert plan is not None
                current = self._route(conn, function)
                try:
                    targets = self._validated(conn, function, plan.route_at(now))
                except TrafficError as exc:
                    # A revision of the base route is gone (e.g. deleted): stop rather than guess.
                    self._cancel_rollout(conn, now, function, f"cannot continue: {exc}")
                    continue
                if plan.done_at(now):
                    conn.execute("DELETE FROM rollouts WHERE function = ?", (function,))
                    self._settle(conn, function, targets, f"rollout of {plan.revision} complete", now)
                    self._event(conn, now, function, plan.revision, "rollout-done",
                                f"rollout of {plan.revision} complete: {describe_split(targets)}")
                elif current is None or tuple(current.targets) != tuple(targets):
                    self._set_current(conn, function, targets, None,
                                      f"rollout of {plan.revision}: {plan.percent_at(now)}%", now)
                else:
                    continue
                moved.append(function)
                changed.add(function)
        return moved

    def mark_revision(self, revision: str, status: str, message: str = "", *, now: float | None = None) -> None:
        """Set a revision Ready or Failed (e.g. the data plane found it cannot start)."""
        if status not in (READY, FAILED):
            raise RegistryError(f"revision status must be {READY} or {FAILED}, got '{status}'")
        now = self._clock() if now is None else now
        with self._write() as (conn, changed):
            row = conn.execute("SELECT function FROM revisions WHERE name = ?", (revision,)).fetchone()
            if row is None:
                raise NotFoundError(f"revision '{revision}' not found")
            message = clip(message, MAX_EVENT_MESSAGE)
            conn.execute("UPDATE revisions SET status = ?, message = ? WHERE name = ?", (status, message, revision))
            self._event(conn, now, row["function"], revision, "revision-status", f"{revision}: {status} {message}")
            changed.add(row["function"])

    def record_event(self, function: str, revision: str | None, kind: str, message: str, *,
                     now: float | None = None) -> None:
        """An event from outside the registry's own changes (e.g. a replica the data plane saw die)."""
        with self._write() as (conn, _changed):
            self._event(conn, self._clock() if now is None else now, function, revision, kind, message)

    def delete_function(self, function: str, *, now: float | None = None) -> Removal:
        now = self._clock() if now is None else now
        with self._write() as (conn, changed):
            self._require_function(conn, function)
            rows = conn.execute("SELECT name, digest FROM revisions WHERE function = ?", (function,)).fetchall()
            conn.execute("DELETE FROM functions WHERE name = ?", (function,))  # cascades to everything else
            removed = [r["name"] for r in rows]
            self._event(conn, now, function, None, "delete",
                        f"deleted function {function} and {len(removed)} revision(s)")
            changed.add(function)
            return Removal(removed, self._unused(conn, {r["digest"] for r in rows}))

    def apply_retention(self, function: str, keep_unrouted: int = DEFAULT_KEEP_UNROUTED, *,
                        keep_events: int = DEFAULT_KEEP_EVENTS, now: float | None = None) -> Removal:
        """Delete a function's unrouted revisions beyond the newest `keep_unrouted`.

        Kept always: revisions the route (or a rollout, or its base) can send traffic to, and the newest
        revision. Returns the digests no revision uses any more, for the caller to delete from the store.
        """
        now = self._clock() if now is None else now
        with self._write() as (conn, changed):
            conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (keep_events,))
            if conn.execute("SELECT 1 FROM functions WHERE name = ?", (function,)).fetchone() is None:
                return Removal()
            protected = self._protected(conn, function)
            rows = conn.execute("SELECT name, digest FROM revisions WHERE function = ? ORDER BY number DESC",
                                (function,)).fetchall()
            if rows:
                protected.add(rows[0]["name"])
            unrouted = [r for r in rows if r["name"] not in protected]
            doomed = unrouted[max(0, keep_unrouted):]
            for r in doomed:
                conn.execute("DELETE FROM revisions WHERE name = ?", (r["name"],))
                self._event(conn, now, function, r["name"], "retention",
                            f"deleted unrouted revision {r['name']} (keeping the newest {keep_unrouted})")
            if doomed:
                changed.add(function)
            return Removal([r["name"] for r in doomed], self._unused(conn, {r["digest"] for r in doomed}))

    # ----------------------------------------------------------------------------------- internals

    def _change_route(self, conn: sqlite3.Connection, changed: set[str], function: str,
                      targets: list[TrafficTarget], reason: str, now: float) -> RouteRecord:
        validated = self._validated(conn, function, targets)
        if self._rollout(conn, function) is not None:
            self._cancel_rollout(conn, now, function, f"overridden by {reason}")
        self._settle(conn, function, validated, reason, now)
        self._event(conn, now, function, None, "traffic", f"{reason}: {describe_split(validated)}")
        changed.add(function)
        route = self._route(conn, function)
        assert route is not None
        return route

    def _validated(self, conn: sqlite3.Connection, function: str, targets: Sequence[TrafficTarget]
                   ) -> tuple[TrafficTarget, ...]:
        ready = {r["name"] for r in conn.execute(
            "SELECT name FROM revisions WHERE function = ? AND status = ?", (function, READY))}
        known = {r["name"] for r in conn.execute("SELECT name FROM revisions WHERE function = ?", (function,))}
        for t in targets:
            if t.revision is not None and t.revision in known and t.revision not in ready:
                raise TrafficError(f"traffic: revision '{t.revision}' is not Ready and cannot take traffic")
        return validate_targets(function, targets, known, has_ready_revision=bool(ready))

    def _settle(self, conn: sqlite3.Connection, function: str, targets: Sequence[TrafficTarget], reason: str,
                now: float, *, restores: int | None = None) -> None:
        row = conn.execute("SELECT MAX(version) AS v FROM route_history WHERE function = ?", (function,)).fetchone()
        version = (row["v"] or 0) + 1
        conn.execute("INSERT INTO route_history (function, version, targets, reason, restores, created)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
                     (function, version, json.dumps(targets_to_json(targets)), reason, restores, now))
        self._set_current(conn, function, targets, version, reason, now)

    def _set_current(self, conn: sqlite3.Connection, function: str, targets: Sequence[TrafficTarget],
                     version: int | None, reason: str, now: float) -> None:
        conn.execute(
            "INSERT INTO routes (function, targets, version, reason, updated) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(function) DO UPDATE SET targets = excluded.targets, version = excluded.version,"
            " reason = excluded.reason, updated = excluded.updated",
            (function, json.dumps(targets_to_json(targets)), version, reason, now),
        )
        conn.execute("UPDATE functions SET updated = ? WHERE name = ?", (now, function))

    def _cancel_rollout(self, conn: sqlite3.Connection, now: float, function: str, why: str) -> None:
        plan = self._rollout(conn, function)
        conn.execute("DELETE FROM rollouts WHERE function = ?", (function,))
        if plan is not None:
            self._event(conn, now, function, plan.revision, "rollout-cancelled",
                        f"rollout of {plan.revision} stopped at {plan.percent_at(now)}%: {why}")

    def _event(self, conn: sqlite3.Connection, now: float, function: str | None, revision: str | None,
               kind: str, message: str) -> None:
        conn.execute("INSERT INTO events (time, function, revision, kind, message) VALUES (?, ?, ?, ?, ?)",
                     (now, function, revision, kind, clip(message, MAX_EVENT_MESSAGE)))

    def _require_function(self, conn: sqlite3.Connection, function: str) -> None:
        if conn.execute("SELECT 1 FROM functions WHERE name = ?", (function,)).fetchone() is None:
            raise NotFoundError(f"function '{function}' not found")

    def _require_route(self, conn: sqlite3.Connection, function: str) -> RouteRecord:
        self._require_function(conn, function)
        route = self._route(conn, function)
        if route is None:
            raise ConflictError(f"traffic: function '{function}' has no route yet")
        return route

    def _function(self, conn: sqlite3.Connection, function: str) -> FunctionRecord:
        row = conn.execute("SELECT * FROM functions WHERE name = ?", (function,)).fetchone()
        if row is None:
            raise NotFoundError(f"function '{function}' not found")
        count = conn.execute("SELECT COUNT(*) AS n FROM revisions WHERE function = ?", (function,)).fetchone()["n"]
        return FunctionRecord(function, row["created"], row["updated"], self._route(conn, function),
                              self._latest_ready(conn, function), int(count), self._rollout(conn, function))

    def _route(self, conn: sqlite3.Connection, function: str) -> RouteRecord | None:
        row = conn.execute("SELECT * FROM routes WHERE function = ?", (function,)).fetchone()
        if row is None:
            return None
        return RouteRecord(function, tuple(targets_from_json(json.loads(row["targets"]))), row["version"],
                           row["reason"], row["updated"])

    def _rollout(self, conn: sqlite3.Connection, function: str) -> RolloutPlan | None:
        row = conn.execute("SELECT * FROM rollouts WHERE function = ?", (function,)).fetchone()
        if row is None:
            return None
        return RolloutPlan(function, row["revision"], int(row["target_percent"]), row["tag"],
                           tuple(targets_from_json(json.loads(row["base"]))), row["started"], row["duration"])

    def _latest_ready(self, conn: sqlite3.Connection, function: str) -> str | None:
        row = conn.execute("SELECT name FROM revisions WHERE function = ? AND status = ? ORDER BY number DESC LIMIT 1",
                           (function, READY)).fetchone()
        return None if row is None else row["name"]

    def _protected(self, conn: sqlite3.Connection, function: str) -> set[str]:
        latest = self._latest_ready(conn, function)
        route = self._route(conn, function)
        names = set() if route is None else referenced_revisions(route.targets, latest)
        plan = self._rollout(conn, function)
        if plan is not None:
            names |= {plan.revision} | referenced_revisions(plan.base, latest)
        return names

    def _unused(self, conn: sqlite3.Connection, digests: set[str]) -> list[str]:
        return sorted(d for d in digests
                      if conn.execute("SELECT 1 FROM revisions WHERE digest = ? LIMIT 1", (d,)).fetchone() is None)


def _revision(row: sqlite3.Row, *, with_log: bool) -> RevisionRecord:
    return RevisionRecord(
        name=row["name"], function=row["function"], number=int(row["number"]), digest=row["digest"],
        manifest=json.loads(row["manifest"]), files=json.loads(row["files"]),
        smoke=None if row["smoke"] is None else json.loads(row["smoke"]), status=row["status"],
        message=row["message"], created=row["created"], build_log=row["build_log"] if with_log else "",
    )


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; run the statements one by one inside it instead.
    return [s.strip() for s in script.split(";") if s.strip()]
