"""The registry's SQLite connections and transactions.

Writers are serialised (an in-process lock, then `BEGIN IMMEDIATE` with a busy timeout for other
processes); readers see one snapshot per call (WAL); foreign keys are enforced. Listeners hear of a
changed function only after its transaction commits, so they never see (or announce) a rolled-back
change.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from revisions.registry.schema import migrate


class Database:
    """Thread-safe access to the SQLite file at `path`: one connection per thread, migrated on open."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        with self.write() as (conn, _):
            migrate(conn, self.path)

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
    def write(self) -> Iterator[tuple[sqlite3.Connection, set[str]]]:
        """One write transaction; yields the connection and a set to add changed functions to."""
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
    def read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN")  # one snapshot across the statements of a read
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(function)` after every committed write that changed that function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, function: str) -> None:
        for listener in list(self._listeners):
            listener(function)
