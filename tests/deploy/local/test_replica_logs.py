"""Function logs (deploy/local/replica_logs.py): real pipes read on the event loop, the bounded buffer, the
file, reading back after a restart, following, and the request-id tag the runtime writes."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest

from deploy.local import replica_logs
from deploy.local.replica_logs import FunctionLogs, LogLine, split_tag
from functions.request_context import TAG_END, TAG_START


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


async def until(condition, what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_lines_from_both_streams_with_tags_partial_and_long_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(replica_logs, "MAX_LINE_BYTES", 64)

    async def scenario() -> list[LogLine]:
        logs = FunctionLogs(tmp_path / "logs", clock=lambda: 1000.0)
        output = logs.capture("iris", "iris-00001", "iris-00001-r1")
        out, err = output.writers
        os.write(out, f"plain\n{TAG_START}5c1c6f2e9d3b7a10{TAG_END}tagged\r\nhalf".encode())
        os.write(err, b"x" * 150 + b"\n\xff broken utf-8\n")
        os.write(out, b" and the rest\nno newline at exit")
        output.close_writers()
        await until(lambda: len(logs.read("iris")) >= 7, "the lines")
        output.finish()
        logs.close()
        return logs.read("iris")

    lines = run(scenario())
    by_stream = {s: [(line.line, line.request_id) for line in lines if line.stream == s] for s in ("stdout", "stderr")}
    assert by_stream["stdout"] == [("plain", None), ("tagged", "5c1c6f2e9d3b7a10"), ("half and the rest", None),
                                   ("no newline at exit", None)]
    assert by_stream["stderr"] == [("x" * 64, None), ("x" * 64, None), ("x" * 22, None), ("\ufffd broken utf-8", None)]
    assert {(line.revision, line.replica, line.time) for line in lines} == {("iris-00001", "iris-00001-r1", 1000.0)}

    path = tmp_path / "logs" / "iris" / "iris-00001.log"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == stat.S_IMODE(os.stat(path.parent.parent).st_mode) == 0o700
    assert [json.loads(raw)["line"] for raw in path.read_text().splitlines()][:2] == ["plain", "tagged"]


def test_read_filters_by_revision_since_and_tail_and_a_restart_reads_the_file_back(tmp_path):
    now = [100.0]

    async def write(logs: FunctionLogs, revision: str, texts: list[str]) -> None:
        output = logs.capture("iris", revision, f"{revision}-r1")
        for text in texts:
            os.write(output.writers[0], text.encode() + b"\n")
            await until(lambda text=text: any(line.line == text for line in logs.read("iris")), text)
            now[0] += 10
        output.finish()

    async def scenario() -> tuple[list[str], list[str], list[str], list[str], list[str]]:
        logs = FunctionLogs(tmp_path, clock=lambda: now[0])
        await write(logs, "iris-00001", ["a", "b"])
        await write(logs, "iris-00002", ["c", "d"])
        logs.close()
        again = FunctionLogs(tmp_path, clock=lambda: now[0])  # a restarted platform
        texts = [[line.line for line in lines] for lines in (
            again.read("iris"), again.read("iris", "iris-00001"), again.read("iris", since=120.0),
            again.read("iris", tail=3), again.read("iris", tail=0))]
        assert again.revisions("iris") == ["iris-00001", "iris-00002"] and again.revisions("other") == []
        return tuple(texts)  # type: ignore[return-value]

    everything, first, recent, tail, none = run(scenario())
    assert everything == ["a", "b", "c", "d"] and first == ["a", "b"] and recent == ["c", "d"]
    assert tail == ["b", "c", "d"] and none == []


def test_the_buffer_is_bounded_and_the_file_rotates(tmp_path, monkeypatch):
    monkeypatch.setattr(replica_logs, "BUFFER_LINES", 5)
    monkeypatch.setattr(replica_logs, "FILE_BYTES", 2000)

    async def scenario() -> list[str]:
        logs = FunctionLogs(tmp_path)
        output = logs.capture("iris", "iris-00001", "iris-00001-r1")
        for wave in range(4):  # the file is checked after each read: in waves, it rotates between them
            for n in range(wave * 25, wave * 25 + 25):
                os.write(output.writers[0], f"line {n}\n".encode())
            await until(lambda n=n: any(line.line == f"line {n}" for line in logs.read("iris")), f"line {n}")
        output.close_writers()
        output.finish()
        logs.close()
        return [line.line for line in logs.read("iris")]

    assert run(scenario()) == [f"line {n}" for n in range(95, 100)]
    files = {p.name for p in (tmp_path / "iris").iterdir()}
    assert "iris-00001.log.1" in files and files <= {"iris-00001.log", "iris-00001.log.1"}
    kept = [json.loads(raw)["line"] for name in sorted(files, reverse=True)
            for raw in (tmp_path / "iris" / name).read_text().splitlines()]
    assert kept[-1] == "line 99" and len(kept) < 75  # the oldest rotated away: at most two files' worth


def test_a_follower_gets_new_lines_of_its_revision_and_ends_when_the_logs_close(tmp_path):
    async def scenario() -> tuple[list[str], list[str]]:
        logs = FunctionLogs(tmp_path)
        everything, one = logs.follow("iris"), logs.follow("iris", "iris-00002")
        got: dict[str, list[str]] = {"all": [], "one": []}

        async def drain(name, follower):
            async for line in follower:
                got[name].append(line.line)

        tasks = [asyncio.ensure_future(drain("all", everything)), asyncio.ensure_future(drain("one", one))]
        for revision in ("iris-00001", "iris-00002"):
            output = logs.capture("iris", revision, f"{revision}-r1")
            os.write(output.writers[0], f"from {revision}\n".encode())
            output.close_writers()
            await until(lambda revision=revision: f"from {revision}" in got["all"], revision)
            output.finish()
        logs.stop_following()  # as on SIGTERM: every stream ends
        await asyncio.gather(*tasks)
        return got["all"], got["one"]

    everything, one = run(scenario())
    assert everything == ["from iris-00001", "from iris-00002"] and one == ["from iris-00002"]


def test_a_follower_that_falls_behind_is_told_how_many_lines_it_missed(monkeypatch):
    monkeypatch.setattr(replica_logs, "FOLLOW_BACKLOG", 2)

    async def scenario() -> list[str]:
        follower = replica_logs.Follower("iris", None)
        for n in range(5):
            follower.offer(LogLine(float(n), "iris-00001", "iris-00001-r1", "stdout", f"line {n}"))
        follower.end()
        return [line.line async for line in follower]

    assert run(scenario()) == ["[3 lines dropped: this reader fell behind]", "line 0", "line 1"]


@pytest.mark.parametrize("text, expected", [
    (f"{TAG_START}abc{TAG_END}hello", ("abc", "hello")),
    (f"{TAG_START}a,b,c{TAG_END}batch", ("a,b,c", "batch")),
    (f"{TAG_START}{TAG_END}empty id", (None, f"{TAG_START}{TAG_END}empty id")),
    (f"{TAG_START}no end", (None, f"{TAG_START}no end")),
    ("plain", (None, "plain")),
])
def test_split_tag(text, expected):
    assert split_tag(text) == expected
