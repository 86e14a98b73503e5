"""Rows to records and back: every read and write of the functions, revisions, routes, route history
and rollouts tables. No rules here: they are in `revisions.route_decisions` and `revisions.traffic`.

Every function takes the connection of a transaction the caller holds (`Database.read` / `write`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.manifest import FunctionManifest
from revisions.errors import NotFoundError
from revisions.records import READY, FunctionRecord, RevisionRecord, RouteRecord
from revisions.route_decisions import RouteChange, RouteState
from revisions.traffic import RolloutPlan, TrafficTarget, targets_from_json, targets_to_json

# ---------------------------------------------------------------------------------------------- functions


def require_function(conn: sqlite3.Connection, function: str) -> None:
    if conn.execute("SELECT 1 FROM functions WHERE name = ?", (function,)).fetchone() is None:
        raise NotFoundError(f"function '{function}' not found")


def function_exists(conn: sqlite3.Connection, function: str) -> bool:
    return conn.execute("SELECT 1 FROM functions WHERE name = ?", (function,)).fetchone() is not None


def function_names(conn: sqlite3.Connection) -> list[str]:
    return [r["name"] for r in conn.execute("SELECT name FROM functions ORDER BY name")]


def load_function(conn: sqlite3.Connection, function: str) -> FunctionRecord:
    row = conn.execute("SELECT * FROM functions WHERE name = ?", (function,)).fetchone()
    if row is None:
        raise NotFoundError(f"function '{function}' not found")
    count = conn.execute("SELECT COUNT(*) AS n FROM revisions WHERE function = ?", (function,)).fetchone()["n"]
    return FunctionRecord(function, row["created"], row["updated"], load_route(conn, function),
                          latest_ready(conn, function), int(count), load_rollout(conn, function))


def claim_revision_number(conn: sqlite3.Connection, function: str, now: float) -> tuple[int, bool]:
    """The function's next revision number, taken (never reused); True when the function is new."""
    row = conn.execute("SELECT next_number FROM functions WHERE name = ?", (function,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO functions (name, created, updated, next_number) VALUES (?, ?, ?, 1)",
                     (function, now, now))
    number = 1 if row is None else int(row["next_number"])
    conn.execute("UPDATE functions SET next_number = ?, updated = ? WHERE name = ?", (number + 1, now, function))
    return number, row is None


def delete_function(conn: sqlite3.Connection, function: str) -> list[sqlite3.Row]:
    """Delete the function and (by cascade) everything of it; returns its revisions' names and digests."""
    rows = conn.execute("SELECT name, digest FROM revisions WHERE function = ?", (function,)).fetchall()
    conn.execute("DELETE FROM functions WHERE name = ?", (function,))
    return rows


# ---------------------------------------------------------------------------------------------- revisions


def revision_from_row(row: sqlite3.Row, *, with_log: bool) -> RevisionRecord:
    return RevisionRecord(
        name=row["name"], function=row["function"], number=int(row["number"]), digest=row["digest"],
        manifest=json.loads(row["manifest"]), files=json.loads(row["files"]),
        smoke=None if row["smoke"] is None else json.loads(row["smoke"]), status=row["status"],
        message=row["message"], created=row["created"], build_log=row["build_log"] if with_log else "",
    )


def list_revisions(conn: sqlite3.Connection, function: str) -> list[RevisionRecord]:
    rows = conn.execute("SELECT * FROM revisions WHERE function = ? ORDER BY number", (function,))
    return [revision_from_row(r, with_log=False) for r in rows]


def load_revision(conn: sqlite3.Connection, revision: str, *, function: str | None = None,
                  with_log: bool = False) -> RevisionRecord | None:
    if function is None:
        row = conn.execute("SELECT * FROM revisions WHERE name = ?", (revision,)).fetchone()
    else:
        row = conn.execute("SELECT * FROM revisions WHERE function = ? AND name = ?", (function, revision)).fetchone()
    return None if row is None else revision_from_row(row, with_log=with_log)


def revision_with_digest(conn: sqlite3.Connection, function: str, digest: str) -> RevisionRecord | None:
    """The newest revision of `function` with this content, if it was deployed before."""
    row = conn.execute("SELECT * FROM revisions WHERE function = ? AND digest = ? ORDER BY number DESC",
                       (function, digest)).fetchone()
    return None if row is None else revision_from_row(row, with_log=False)


def insert_revision(conn: sqlite3.Connection, name: str, function: str, number: int, *, digest: str,
                    manifest: FunctionManifest, files: Mapping[str, str], smoke: Mapping[str, Any] | None,
                    build_log: str, now: float) -> None:
    conn.execute(
        "INSERT INTO revisions (name, function, number, digest, manifest, files, smoke, build_log, status,"
        " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (name, function, number, digest, json.dumps(manifest.normalised()), json.dumps(dict(files)),
         None if smoke is None else json.dumps(dict(smoke)), build_log, READY, now),
    )


def set_revision_status(conn: sqlite3.Connection, revision: str, status: str, message: str) -> None:
    conn.execute("UPDATE revisions SET status = ?, message = ? WHERE name = ?", (status, message, revision))


def revision_names_newest_first(conn: sqlite3.Connection, function: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT name, digest FROM revisions WHERE function = ? ORDER BY number DESC",
                        (function,)).fetchall()


def delete_revision(conn: sqlite3.Connection, revision: str) -> None:
    conn.execute("DELETE FROM revisions WHERE name = ?", (revision,))


def latest_ready(conn: sqlite3.Connection, function: str) -> str | None:
    row = conn.execute("SELECT name FROM revisions WHERE function = ? AND status = ? ORDER BY number DESC LIMIT 1",
                       (function, READY)).fetchone()
    return None if row is None else row["name"]


def digests_in_use(conn: sqlite3.Connection) -> set[str]:
    return {r["digest"] for r in conn.execute("SELECT DISTINCT digest FROM revisions")}


def digest_in_use(conn: sqlite3.Connection, digest: str) -> bool:
    return conn.execute("SELECT 1 FROM revisions WHERE digest = ? LIMIT 1", (digest,)).fetchone() is not None


def unused_digests(conn: sqlite3.Connection, digests: set[str]) -> list[str]:
    return sorted(d for d in digests if not digest_in_use(conn, d))


# ------------------------------------------------------------------------------------------------- routes


def load_route(conn: sqlite3.Connection, function: str) -> RouteRecord | None:
    row = conn.execute("SELECT * FROM routes WHERE function = ?", (function,)).fetchone()
    if row is None:
        return None
    return RouteRecord(function, tuple(targets_from_json(json.loads(row["targets"]))), row["version"],
                       row["reason"], row["updated"])


def routed_functions(conn: sqlite3.Connection) -> list[str]:
    return [r["function"] for r in conn.execute("SELECT function FROM routes").fetchall()]


def load_history(conn: sqlite3.Connection, function: str) -> list[RouteRecord]:
    rows = conn.execute("SELECT * FROM route_history WHERE function = ? ORDER BY version", (function,))
    return [RouteRecord(function, tuple(targets_from_json(json.loads(r["targets"]))), r["version"],
                        r["reason"], r["created"], r["restores"]) for r in rows]


def load_route_state(conn: sqlite3.Connection, function: str) -> RouteState:
    """What the route decisions read of one function (empty for a function not created yet)."""
    statuses = {r["name"]: r["status"] for r in conn.execute(
        "SELECT name, status FROM revisions WHERE function = ?", (function,))}
    return RouteState(function, load_route(conn, function), load_rollout(conn, function),
                      revisions=frozenset(statuses), ready=frozenset(n for n, s in statuses.items() if s == READY),
                      latest_ready=latest_ready(conn, function))


def store_route(conn: sqlite3.Connection, function: str, change: RouteChange, now: float) -> None:
    """Make `change` the current route; a settled one also becomes the next row of the route history."""
    version = None
    if change.settled:
        row = conn.execute("SELECT MAX(version) AS v FROM route_history WHERE function = ?", (function,)).fetchone()
        version = (row["v"] or 0) + 1
        conn.execute("INSERT INTO route_history (function, version, targets, reason, restores, created)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
                     (function, version, _targets(change.targets), change.reason, change.restores, now))
    conn.execute(
        "INSERT INTO routes (function, targets, version, reason, updated) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(function) DO UPDATE SET targets = excluded.targets, version = excluded.version,"
        " reason = excluded.reason, updated = excluded.updated",
        (function, _targets(change.targets), version, change.reason, now),
    )
    conn.execute("UPDATE functions SET updated = ? WHERE name = ?", (now, function))


# ----------------------------------------------------------------------------------------------- rollouts


def load_rollout(conn: sqlite3.Connection, function: str) -> RolloutPlan | None:
    row = conn.execute("SELECT * FROM rollouts WHERE function = ?", (function,)).fetchone()
    if row is None:
        return None
    return RolloutPlan(function, row["revision"], int(row["target_percent"]), row["tag"],
                       tuple(targets_from_json(json.loads(row["base"]))), row["started"], row["duration"])


def rollout_functions(conn: sqlite3.Connection, *, ordered: bool = False) -> list[str]:
    order = " ORDER BY function" if ordered else ""
    return [r["function"] for r in conn.execute(f"SELECT function FROM rollouts{order}").fetchall()]


def any_rollout(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM rollouts LIMIT 1").fetchone() is not None


def insert_rollout(conn: sqlite3.Connection, plan: RolloutPlan) -> None:
    conn.execute(
        "INSERT INTO rollouts (function, revision, target_percent, tag, base, started, duration)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (plan.function, plan.revision, plan.target_percent, plan.tag, _targets(plan.base), plan.started,
         plan.duration),
    )


def delete_rollout(conn: sqlite3.Connection, function: str) -> None:
    conn.execute("DELETE FROM rollouts WHERE function = ?", (function,))


def _targets(targets: Sequence[TrafficTarget]) -> str:
    return json.dumps(targets_to_json(targets))
