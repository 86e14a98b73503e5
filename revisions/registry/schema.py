"""The registry's schema: ordered migration steps, applied at open inside one write transaction.

Step i upgrades schema version i to i + 1. Never edit a released step; add one. A database newer than
this code is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from revisions.errors import RegistryError

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
    # 2: scoped API tokens (revisions/registry/tokens.py). Only a token's SHA-256 is stored.
    """
    CREATE TABLE tokens (
        name       TEXT PRIMARY KEY,
        hash       TEXT NOT NULL UNIQUE,
        scope      TEXT NOT NULL CHECK (scope IN ('read', 'deploy', 'invoke', 'admin')),
        functions  TEXT NOT NULL,
        created    REAL NOT NULL,
        expires    REAL,
        last_used  REAL
    );
    """,
    # 3: the cleaned log of failed builds (revisions/registry/failed_builds.py). No foreign key to functions:
    # a function's first deploy can fail before the function exists.
    """
    CREATE TABLE failed_builds (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        function  TEXT NOT NULL,
        time      REAL NOT NULL,
        message   TEXT NOT NULL,
        log       TEXT NOT NULL
    );
    CREATE INDEX failed_builds_by_function ON failed_builds(function, id);
    """,
)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the database at `path` to the newest schema; call inside a write transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    version = 0 if row is None else int(row["version"])
    if version > len(MIGRATIONS):
        raise RegistryError(
            f"registry {path} has schema version {version}; this zeroserve knows up to "
            f"{len(MIGRATIONS)} (upgrade zeroserve)"
        )
    for step in MIGRATIONS[version:]:
        for statement in _statements(step):
            conn.execute(statement)
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))
    else:
        conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT version FROM schema_version").fetchone()["version"])


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; run the statements one by one inside it instead.
    return [s.strip() for s in script.split(";") if s.strip()]
