"""The tokens table: scoped API tokens, stored as the SHA-256 of the secret (protocol/tokens.py).

Why here rather than a file of its own: creating, revoking and using a token are transactions like
any other registry change (a revoke is never half-written, and it is an event), `last_used` is
updated in place, and existing data dirs get the table by the registry's ordinary migration. What is
stored cannot be used as a token: a hash of 256 random bits does not lead back to the secret.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

import pydantic

from protocol.tokens import Scope
from revisions.errors import ConflictError, NotFoundError
from revisions.registry.database import Database
from revisions.registry.events import record_event


@pydantic.dataclasses.dataclass(frozen=True)
class TokenRecord:
    """A token as `zeroserve token ls` shows it: never the secret, never its hash."""

    name: str
    scope: Scope
    functions: tuple[str, ...]  # () = every function
    created: float
    expires: float | None = None
    last_used: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def _record(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(name=row["name"], scope=row["scope"], functions=tuple(json.loads(row["functions"])),
                       created=row["created"], expires=row["expires"], last_used=row["last_used"])


class TokenTable:
    """Token rows of the registry database; each method is one transaction."""

    def __init__(self, db: Database, clock: Callable[[], float]):
        self._db = db
        self._clock = clock

    def create(self, name: str, secret_hash: str, scope: Scope, functions: Sequence[str],
               expires: float | None) -> TokenRecord:
        now = self._clock()
        with self._db.write() as (conn, _):
            if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone() is not None:
                raise ConflictError(f"a token named '{name}' exists already; revoke it or choose another name")
            conn.execute("INSERT INTO tokens (name, hash, scope, functions, created, expires) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (name, secret_hash, scope, json.dumps(list(functions)), now, expires))
            reach = ", ".join(functions) if functions else "every function"
            record_event(conn, now, None, None, "token", f"token {name} created (scope {scope}: {reach})")
            row = conn.execute("SELECT * FROM tokens WHERE name = ?", (name,)).fetchone()
        return _record(row)

    def revoke(self, name: str) -> TokenRecord:
        with self._db.write() as (conn, _):
            row = conn.execute("SELECT * FROM tokens WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"token '{name}' not found (zeroserve token ls lists them)")
            conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
            record_event(conn, self._clock(), None, None, "token", f"token {name} revoked")
        return _record(row)

    def list(self) -> list[TokenRecord]:
        with self._db.read() as conn:
            return [_record(r) for r in conn.execute("SELECT * FROM tokens ORDER BY created, name")]

    def by_hash(self) -> dict[str, TokenRecord]:
        """Every token keyed by the hash of its secret (what a presented token is looked up by)."""
        with self._db.read() as conn:
            return {r["hash"]: _record(r) for r in conn.execute("SELECT * FROM tokens")}

    def touch(self, used: dict[str, float]) -> None:
        """Record when tokens (by name) were last used; a later time never goes back."""
        if not used:
            return
        with self._db.write() as (conn, _):
            conn.executemany("UPDATE tokens SET last_used = MAX(COALESCE(last_used, 0), ?) WHERE name = ?",
                             [(when, name) for name, when in used.items()])


__all__ = ["TokenRecord", "TokenTable"]
