"""The registry's tokens table (a real SQLite file): migration of an existing data dir, rows, events."""

from __future__ import annotations

import sqlite3

import pytest

from protocol.tokens import generate_token, token_hash
from revisions.registry import MIGRATIONS, ConflictError, NotFoundError, Registry


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_registry_from_before_tokens_is_migrated_and_keeps_its_functions(tmp_path):
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as conn:  # what a data dir of the previous version holds: schema 1, a function
        conn.executescript(MIGRATIONS[0])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("INSERT INTO functions (name, created, updated) VALUES ('iris', 1, 1)")
    registry = Registry(path)  # this version: migrated in place at open, nothing lost
    try:
        assert registry.schema_version() == len(MIGRATIONS)
        assert [f.name for f in registry.list_functions()] == ["iris"]
        registry.tokens.create("ci", token_hash("zst_x"), "deploy", ["iris"], None)
        assert [t.name for t in registry.tokens.list()] == ["ci"]
    finally:
        registry.close()


def test_tokens_are_created_listed_revoked_and_their_uses_recorded(tmp_path):
    clock = Clock()
    registry = Registry(tmp_path / "registry.db", clock=clock)
    try:
        table = registry.tokens
        secret = generate_token()
        created = table.create("ci-demo", token_hash(secret), "deploy", ["demo"], expires=clock.now + 60)
        assert (created.name, created.scope, created.functions, created.created) == ("ci-demo", "deploy",
                                                                                     ("demo",), 1000.0)
        assert not created.expired(1059.9) and created.expired(1060.0)
        assert table.by_hash() == {token_hash(secret): created}
        with pytest.raises(ConflictError, match="ci-demo"):
            table.create("ci-demo", token_hash(generate_token()), "read", [], None)

        table.touch({"ci-demo": 1500.0})
        table.touch({"ci-demo": 1200.0})  # an older use arriving late never moves it back
        assert table.list()[0].last_used == 1500.0

        events = [e for e in registry.events() if e.kind == "token"]
        assert [e.message for e in events] == ["token ci-demo created (scope deploy: demo)"]
        assert table.revoke("ci-demo").name == "ci-demo"
        assert table.list() == [] and table.by_hash() == {}
        with pytest.raises(NotFoundError, match="token 'ci-demo' not found"):
            table.revoke("ci-demo")
        assert [e.message for e in registry.events() if e.kind == "token"][-1] == "token ci-demo revoked"
        assert all(secret not in e.message for e in registry.events())
    finally:
        registry.close()
