"""Function logs: every replica's stdout and stderr, line by line, kept per revision and readable by the API.

Each replica gets two pipes of its own (`FunctionLogs.capture`); the supervisor hands their write ends
to the launcher, which makes them the replica's fds 1 and 2, and keeps only the read ends, which this
module reads on the event loop. A replica holds the write ends of its own pipes and nothing else, and
the files are the platform's (mode 0600 in a 0700 directory outside every function's view), so no
function can read another's output, or its own after the fact.

Every line becomes a `LogLine`: when it was read, the revision, the replica, the stream, the text, and
the request id the runtime tagged it with (functions.request_context: a line printed while a request
is served). Lines are kept in a bounded buffer per revision (`BUFFER_LINES`, `BUFFER_BYTES`) that the
API reads and follows, and appended as JSON lines to `<root>/<function>/<revision>.log`, rotated to
`.log.1` past `FILE_BYTES`. A revision's buffer starts from the tail of its file, so the lines of the
previous run are still there after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from functions.request_context import TAG_END, TAG_START

log = logging.getLogger("zeroserve.supervisor")

Stream = Literal["stdout", "stderr"]
MAX_LINE_BYTES = 16 << 10     # a longer line is split: one without a newline must not grow a buffer unbounded
BUFFER_LINES = 10_000         # per revision, in memory
BUFFER_BYTES = 4 << 20
FILE_BYTES = 8 << 20          # per file; one rotated copy is kept, so a revision's files hold at most twice this
HISTORY_BYTES = 1 << 20       # read back from the file when a revision's buffer is first made
FOLLOW_BACKLOG = 10_000       # lines a slow follower may fall behind before lines are dropped for it
_READ_CHUNK = 64 << 10
_MAX_TAG = 1 + 64 * 8 + 1     # a tag holds one request id, or a batch's ids joined by commas
_FILE_NAME = re.compile(r"^([a-z0-9][a-z0-9-]{0,100})\.log$")


@dataclass(frozen=True, slots=True)
class LogLine:
    time: float                  # seconds since the epoch, when the platform read the line
    revision: str
    replica: str
    stream: Stream
    line: str
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "revision": self.revision, "replica": self.replica, "stream": self.stream,
                "line": self.line, "request_id": self.request_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogLine:
        stream = data.get("stream")
        request_id = data.get("request_id")
        return cls(float(data["time"]), str(data["revision"]), str(data["replica"]),
                   "stderr" if stream == "stderr" else "stdout", str(data["line"]),
                   request_id if isinstance(request_id, str) else None)


def split_tag(text: str) -> tuple[str | None, str]:
    """(request id, text) of a line the runtime may have tagged (functions.request_context.TaggedStream)."""
    if text.startswith(TAG_START):
        end = text.find(TAG_END, 1, _MAX_TAG)
        if end > 1:
            return text[1:end], text[end + 1:]
    return None, text


class RevisionLog:
    """One revision's lines: the bounded buffer, and the file they are appended to."""

    def __init__(self, directory: Path, revision: str):
        self.revision = revision
        self.path = directory / f"{revision}.log"
        self.lines: deque[LogLine] = deque()
        self._bytes = 0
        self._file: IO[str] | None = None
        for line in _read_history(self.path):
            self._keep(line)

    def append(self, line: LogLine) -> None:
        self._keep(line)
        if self._file is None:
            self._file = _open_private(self.path)
        self._file.write(json.dumps(line.to_json(), ensure_ascii=False) + "\n")

    def flush(self) -> None:
        """Write what was appended; rotate the file once it is past FILE_BYTES."""
        if self._file is None:
            return
        try:
            self._file.flush()
            if self._file.tell() > FILE_BYTES:
                self._file.close()
                self._file = None
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except OSError as exc:  # a full disk must not stop the replica or the platform; memory still has it
            log.warning("writing the log of %s to %s failed: %s", self.revision, self.path, exc)
            self._close_file()

    def close(self) -> None:
        self.flush()
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _keep(self, line: LogLine) -> None:
        self.lines.append(line)
        self._bytes += len(line.line)
        while len(self.lines) > BUFFER_LINES or self._bytes > BUFFER_BYTES:
            self._bytes -= len(self.lines.popleft().line)


class Follower:
    """New lines of one function (or one of its revisions) as they are read; ends when the logs close."""

    def __init__(self, function: str, revision: str | None):
        self.function = function
        self.revision = revision
        self._queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        self._dropped = 0

    def offer(self, line: LogLine) -> None:
        if self.revision is not None and line.revision != self.revision:
            return
        if self._queue.qsize() >= FOLLOW_BACKLOG:
            self._dropped += 1
            return
        self._queue.put_nowait(line)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[LogLine]:
        while (line := await self._queue.get()) is not None:
            if self._dropped:
                yield LogLine(line.time, line.revision, "zeroserve", "stderr",
                              f"[{self._dropped} lines dropped: this reader fell behind]")
                self._dropped = 0
            yield line


class FunctionLogs:
    """Every function's logs under `root` (DATA/logs): capture for the supervisor, read and follow for the API."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self._clock = clock
        self._logs: dict[str, RevisionLog] = {}            # revision -> its log, once opened
        self._function_of: dict[str, str] = {}             # revision -> function
        self._followers: dict[str, set[Follower]] = {}     # function -> followers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # --- capture (the supervisor, on the event loop) ----------------------------------------------

    def capture(self, function: str, revision: str, replica_id: str) -> ReplicaOutput:
        """Two pipes for a replica that is about to start; give `writers` to its process."""
        self._loop = asyncio.get_running_loop()
        first = revision not in self._logs
        revision_log = self._open(function, revision)
        if first:
            log.info("revision %s: replicas' stdout and stderr go to %s (`zeroserve logs %s`)", revision,
                     revision_log.path, function)
        return ReplicaOutput(self, function, revision_log, replica_id, self._loop)

    def _append(self, function: str, revision_log: RevisionLog, line: LogLine) -> None:
        revision_log.append(line)
        for follower in self._followers.get(function, ()):
            follower.offer(line)

    # --- reading (the control API, on the event loop) ---------------------------------------------

    def revisions(self, function: str) -> list[str]:
        """The revisions of `function` that have logs: read this run or kept in files."""
        names = {r for r, f in self._function_of.items() if f == function}
        with contextlib.suppress(OSError):
            for path in self._function_dir(function).iterdir():
                match = _FILE_NAME.match(path.name)
                if match is not None:
                    names.add(match.group(1))
        return sorted(names)

    def read(self, function: str, revision: str | None = None, *, since: float | None = None,
             tail: int = 1000) -> list[LogLine]:
        """The newest `tail` lines of the function (or one revision) read at or after `since`, oldest first."""
        names = [revision] if revision is not None else self.revisions(function)
        lines: list[LogLine] = []
        for name in names:
            if name in self._logs or self._function_dir(function).joinpath(f"{name}.log").exists():
                lines.extend(line for line in self._open(function, name).lines if since is None or line.time >= since)
        lines.sort(key=lambda line: line.time)
        return lines[-tail:] if tail > 0 else []

    def follow(self, function: str, revision: str | None = None) -> Follower:
        """New lines from now on; register it before reading the history, so no line falls in between."""
        self._loop = asyncio.get_running_loop()
        follower = Follower(function, revision)
        if self._closed:
            follower.end()
        else:
            self._followers.setdefault(function, set()).add(follower)
        return follower

    def unfollow(self, follower: Follower) -> None:
        self._followers.get(follower.function, set()).discard(follower)

    def stop_following(self) -> None:
        """End every follow stream (the platform is stopping). Safe from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._end_followers)

    def close(self) -> None:
        self._closed = True
        self._end_followers()
        for revision_log in self._logs.values():
            revision_log.close()

    def _end_followers(self) -> None:
        for followers in self._followers.values():
            for follower in followers:
                follower.end()
        self._followers.clear()

    def _open(self, function: str, revision: str) -> RevisionLog:
        revision_log = self._logs.get(revision)
        if revision_log is None:
            directory = self._function_dir(function)
            _private_dir(self.root)
            _private_dir(directory)
            revision_log = self._logs[revision] = RevisionLog(directory, revision)
            self._function_of[revision] = function
        return revision_log

    def _function_dir(self, function: str) -> Path:
        return self.root / function


class ReplicaOutput:
    """One replica's stdout and stderr pipes: the write ends for its process, the read ends read here."""

    def __init__(self, logs: FunctionLogs, function: str, revision_log: RevisionLog, replica_id: str,
                 loop: asyncio.AbstractEventLoop):
        self._logs = logs
        self._function = function
        self._log = revision_log
        self.replica_id = replica_id
        self._loop = loop
        self._readers: dict[int, tuple[Stream, bytearray]] = {}
        writers = []
        for stream in ("stdout", "stderr"):
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            self._readers[read_end] = (stream, bytearray())
            loop.add_reader(read_end, self._on_readable, read_end)
            writers.append(write_end)
        self.writers: tuple[int, int] | None = (writers[0], writers[1])

    def close_writers(self) -> None:
        """Our copies of the write ends, once the process has its own (or never got them)."""
        if self.writers is not None:
            for fd in self.writers:
                os.close(fd)
            self.writers = None

    def finish(self) -> None:
        """The replica exited: read what it left in the pipes, then stop (a child it left behind that still
        holds them is not waited for)."""
        self.close_writers()
        for fd in list(self._readers):
            while fd in self._readers and self._read(fd):
                pass
            self._stop(fd)
        self._log.flush()

    def _on_readable(self, fd: int) -> None:
        self._read(fd)
        self._log.flush()

    def _read(self, fd: int) -> bool:
        """Read one chunk; False when there is nothing more to read now."""
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        stream, pending = self._readers[fd]
        if not chunk:
            if pending:
                self._emit(stream, bytes(pending))
            self._stop(fd)
            return False
        pending.extend(chunk)
        while True:
            end = pending.find(b"\n")
            if end < 0:
                break
            line = bytes(pending[:end])
            del pending[: end + 1]
            while len(line) > MAX_LINE_BYTES:  # a long line is kept in pieces of MAX_LINE_BYTES
                self._emit(stream, line[:MAX_LINE_BYTES])
                line = line[MAX_LINE_BYTES:]
            self._emit(stream, line)
        while len(pending) > MAX_LINE_BYTES:
            self._emit(stream, bytes(pending[:MAX_LINE_BYTES]))
            del pending[:MAX_LINE_BYTES]
        return True

    def _emit(self, stream: Stream, data: bytes) -> None:
        request_id, text = split_tag(data.decode("utf-8", errors="replace").rstrip("\r"))
        self._logs._append(self._function, self._log,
                           LogLine(self._logs._clock(), self._log.revision, self.replica_id, stream, text, request_id))

    def _stop(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(fd)
            os.close(fd)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _open_private(path: Path) -> IO[str]:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


def _read_history(path: Path) -> list[LogLine]:
    """The lines at the end of a revision's files (HISTORY_BYTES at most), oldest first."""
    chunks: list[bytes] = []
    wanted = HISTORY_BYTES
    for candidate in (path, path.with_name(path.name + ".1")):
        try:
            with open(candidate, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - wanted))
                data = handle.read(wanted)
        except OSError:
            continue
        if size > wanted:
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""  # the first line is cut: skip it
        chunks.insert(0, data)
        wanted -= len(data)
        if wanted <= 0:
            break
    lines = []
    for raw in b"".join(chunks).splitlines():
        try:
            lines.append(LogLine.from_json(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash mid-write
    return lines
