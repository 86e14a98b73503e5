"""The registry's failed builds (a real SQLite file): migration from schema 2, one transaction with the event,
retention (per function and in all), the log clipped to its tail, rows gone with their function."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from protocol.manifest import parse_manifest
from revisions.registry import (
    KEEP_FAILED_BUILDS,
    MAX_FAILED_BUILD_LOG,
    MIGRATIONS,
    NotFoundError,
    Registry,
)
from revisions.registry import failed_builds as failed_builds_table


@pytest.fixture
def reg(tmp_path):
    registry = Registry(tmp_path / "registry.db")
    try:
        yield registry
    finally:
        registry.close()


def deploy(reg: Registry, name: str = "iris") -> None:
    reg.record_deploy(name, digest="sha256:" + hashlib.sha256(name.encode()).hexdigest(),
                      manifest=parse_manifest({"name": name, "model": "model.onnx"}),
                      files={"model.onnx": "0" * 64}, build_log="built")


def test_a_registry_of_schema_2_is_migrated_and_keeps_what_it_had(tmp_path):
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as conn:  # a data dir of the previous version: schema 2, a function, an event
        for step in MIGRATIONS[:2]:
            conn.executescript(step)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (2)")
        conn.execute("INSERT INTO functions (name, created, updated) VALUES ('iris', 1, 1)")
        conn.execute("INSERT INTO events (time, function, kind, message) VALUES (1, 'iris', 'build-failed', 'old')")
    registry = Registry(path)
    try:
        assert registry.schema_version() == len(MIGRATIONS) == 3
        assert [f.name for f in registry.list_functions()] == ["iris"]
        assert [e.message for e in registry.events("iris")] == ["old"]
        assert registry.failed_builds("iris") == []  # the old failure had no log to keep
        registry.record_build_failure("iris", "build failed: model.onnx is missing", log=["step 1", "step 2"])
        [kept] = registry.failed_builds("iris")
        assert (kept.function, kept.message, kept.log) == ("iris", "build failed: model.onnx is missing",
                                                           ["step 1", "step 2"])
    finally:
        registry.close()


def test_the_event_and_the_log_are_one_transaction(reg, tmp_path):
    deploy(reg)
    reg.record_build_failure("iris", "build failed: first", log=["[1/5] manifest: ok", "[2/5] files: failed"], now=5)
    [event] = [e for e in reg.events("iris") if e.kind == "build-failed"]
    [kept] = reg.failed_builds("iris")
    assert (event.time, event.message) == (kept.time, kept.message) == (5, "build failed: first")
    assert kept.log == ["[1/5] manifest: ok", "[2/5] files: failed"]

    with sqlite3.connect(tmp_path / "registry.db") as conn:  # the row cannot be written: nothing is
        conn.execute("DROP TABLE failed_builds")
    with pytest.raises(sqlite3.OperationalError, match="failed_builds"):
        reg.record_build_failure("iris", "build failed: second", log=["x"])
    assert [e.message for e in reg.events("iris") if e.kind == "build-failed"] == ["build failed: first"]


def test_each_function_keeps_its_newest_failed_builds_newest_first(reg):
    deploy(reg)
    deploy(reg, "other")
    reg.record_build_failure("other", "build failed: other's", log=["o"])
    for n in range(KEEP_FAILED_BUILDS + 3):
        reg.record_build_failure("iris", f"build failed: {n}", log=[f"line of {n}"], now=100 + n)
    kept = reg.failed_builds("iris")
    newest = range(KEEP_FAILED_BUILDS + 2, 2, -1)
    assert [b.message for b in kept] == [f"build failed: {n}" for n in newest]
    assert [b.log for b in kept] == [[f"line of {n}"] for n in newest]
    assert [b.id for b in kept] == sorted((b.id for b in kept), reverse=True)
    assert [b.message for b in reg.failed_builds("other")] == ["build failed: other's"]  # not another's quota


def test_the_table_keeps_its_newest_rows_in_all(reg, monkeypatch):
    monkeypatch.setattr(failed_builds_table, "KEEP_FAILED_BUILDS_TOTAL", 4)
    for n in range(6):  # six first deploys that failed, each a name that never became a function
        reg.record_build_failure(f"fn{n}", f"build failed: {n}", log=["x"])
    assert [n for n in range(6) if _has_failed_builds(reg, f"fn{n}")] == [2, 3, 4, 5]


def _has_failed_builds(reg: Registry, name: str) -> bool:
    try:
        return bool(reg.failed_builds(name))
    except NotFoundError:
        return False


def test_a_long_log_keeps_its_tail_of_whole_lines_and_says_it_was_clipped(reg):
    lines = [f"line {n:06d} " + "x" * 90 for n in range(2000)]  # about 200 KB
    reg.record_build_failure("iris", "build failed: the smoke test failed", log=lines)
    [kept] = reg.failed_builds("iris")
    assert kept.log[0].startswith("(log clipped: its first ") and "characters dropped" in kept.log[0]
    assert kept.log[1:] == lines[-len(kept.log) + 1:]  # whole lines: the first kept line is not cut
    assert kept.log[-1] == lines[-1]  # the tail, where the fault is
    assert len("\n".join(kept.log[1:])) <= MAX_FAILED_BUILD_LOG
    assert len("\n".join(kept.log[1:])) > MAX_FAILED_BUILD_LOG - 200  # no more dropped than one line's worth

    reg.record_build_failure("iris", "build failed: short", log=["a", "b"])
    assert reg.failed_builds("iris")[0].log == ["a", "b"]  # a short log is kept as it is


def test_a_first_deploy_that_failed_is_kept_and_a_deleted_function_takes_its_rows(reg):
    with pytest.raises(NotFoundError, match="function 'iris' not found"):
        reg.failed_builds("iris")
    reg.record_build_failure("iris", "build failed: model.onnx is missing", log=["[2/5] files: failed"])
    assert [b.message for b in reg.failed_builds("iris")] == ["build failed: model.onnx is missing"]

    deploy(reg)
    reg.delete_function("iris")
    with pytest.raises(NotFoundError, match="function 'iris' not found"):
        reg.failed_builds("iris")


def test_a_failure_naming_no_function_records_only_its_event(reg, tmp_path):
    reg.record_build_failure(None, "build failed: function.yaml is not YAML", log=["line"])
    assert [e.message for e in reg.events() if e.kind == "build-failed"] == ["build failed: function.yaml is not YAML"]
    with sqlite3.connect(tmp_path / "registry.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM failed_builds").fetchone()[0] == 0
