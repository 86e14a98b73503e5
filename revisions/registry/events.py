"""The events table: what happened to functions (deploys, failed builds, traffic, rollouts, deletes).

Events outlive the function they name, are kept to the newest `DEFAULT_KEEP_EVENTS`, and each message
is clipped, so a hostile manifest quoted by a build failure cannot grow the database without bound.
"""

from __future__ import annotations

import sqlite3

from protocol.manifest import clip
from revisions.records import EventRecord

DEFAULT_KEEP_EVENTS = 10_000
# Characters of one event's (or a revision's status) message kept: build failures quote user input,
# and a hostile manifest must not grow the database by more than this per attempt.
MAX_EVENT_MESSAGE = 2000


def record_event(conn: sqlite3.Connection, now: float, function: str | None, revision: str | None,
                 kind: str, message: str) -> None:
    conn.execute("INSERT INTO events (time, function, revision, kind, message) VALUES (?, ?, ?, ?, ?)",
                 (now, function, revision, kind, clip(message, MAX_EVENT_MESSAGE)))


def read_events(conn: sqlite3.Connection, function: str | None, *, limit: int, after: int | None
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
    rows = conn.execute(f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?", (*params, limit))
    return [EventRecord(r["id"], r["time"], r["function"], r["revision"], r["kind"], r["message"])
            for r in reversed(rows.fetchall())]


def prune_events(conn: sqlite3.Connection, keep: int) -> None:
    """Delete all but the newest `keep` events."""
    conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (keep,))
