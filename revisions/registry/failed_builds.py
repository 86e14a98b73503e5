"""The failed_builds table: the cleaned build log of each failed build or refused deploy, kept for the console.

A failed build records no revision, so its log would otherwise live only in the uploader's terminal. Rows are
bounded three ways, because a build failure quotes user input: each log is clipped to its last
`MAX_FAILED_BUILD_LOG` characters (whole lines, with a first line saying so), each function keeps its newest
`KEEP_FAILED_BUILDS`, and the table its newest `KEEP_FAILED_BUILDS_TOTAL`. There is no foreign key to
`functions`: a function's first deploy can fail before the function exists, and that log is worth keeping.
Deleting a function deletes its rows (`delete_failed_builds`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.manifest import clip
from revisions.registry.events import MAX_EVENT_MESSAGE

KEEP_FAILED_BUILDS = 10
KEEP_FAILED_BUILDS_TOTAL = 1000
MAX_FAILED_BUILD_LOG = 64 * 1024  # characters of one log: its tail, where the fault is


@dataclass(frozen=True)
class FailedBuildRecord:
    id: int
    function: str
    time: float
    message: str
    log: list[str]


def clip_log(lines: Sequence[str], limit: int = MAX_FAILED_BUILD_LOG) -> str:
    """The lines joined, or their tail of whole lines within `limit` characters, after a line saying so."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    tail = text[len(text) - limit:]
    newline = tail.find("\n")
    tail = tail[newline + 1:] if newline >= 0 else tail  # no partial first line (one huge line: its tail)
    dropped = len(text) - len(tail)
    return f"(log clipped: its first {dropped} characters dropped, the last {len(tail)} kept)\n{tail}"


def record_failed_build(conn: sqlite3.Connection, now: float, function: str, message: str,
                        lines: Sequence[str]) -> None:
    """Insert a row, then keep the function's newest `KEEP_FAILED_BUILDS` and the table's newest total."""
    conn.execute("INSERT INTO failed_builds (function, time, message, log) VALUES (?, ?, ?, ?)",
                 (function, now, clip(message, MAX_EVENT_MESSAGE), clip_log(lines)))
    conn.execute("DELETE FROM failed_builds WHERE function = ? AND id NOT IN "
                 "(SELECT id FROM failed_builds WHERE function = ? ORDER BY id DESC LIMIT ?)",
                 (function, function, KEEP_FAILED_BUILDS))
    conn.execute("DELETE FROM failed_builds WHERE id <= (SELECT MAX(id) FROM failed_builds) - ?",
                 (KEEP_FAILED_BUILDS_TOTAL,))


def read_failed_builds(conn: sqlite3.Connection, function: str) -> list[FailedBuildRecord]:
    """The function's kept failed builds, newest first."""
    rows = conn.execute("SELECT * FROM failed_builds WHERE function = ? ORDER BY id DESC", (function,))
    return [FailedBuildRecord(r["id"], r["function"], r["time"], r["message"],
                              r["log"].splitlines() if r["log"] else []) for r in rows.fetchall()]


def delete_failed_builds(conn: sqlite3.Connection, function: str) -> None:
    conn.execute("DELETE FROM failed_builds WHERE function = ?", (function,))
