"""The build log: numbered, timed steps, each line pushed to a listener as it happens.

A build is watched live (the git remote prints each line as a `remote:` line, the control API streams
it), so a line is delivered the moment it is written rather than when the build ends.

    log = BuildLog(on_line=print)
    log.expect_steps(5)
    with log.step("manifest") as step:
        step.detail = "iris (onnx)"
    # -> "[1/5] manifest ok (3 ms): iris (onnx)"

A step that raises logs "[n/N] <name> FAILED (t ms): <error>" and lets the exception through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class BuildStep:
    """The step in progress; the body may set `detail`, shown after the step's timing."""

    number: int
    name: str
    detail: str = ""


class BuildLog:
    def __init__(self, on_line: Callable[[str], None] | None = None):
        # A listener that raises (a client gone away) stops the build: the caller decides whether a
        # vanished watcher should abort, by wrapping its own callback.
        self._on_line = on_line
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._steps_done = 0
        self._total_steps: int | None = None

    def expect_steps(self, total: int) -> None:
        """Announce how many steps the build has, so lines read "[2/5]"; the first caller wins.

        The first caller wins because a git build announces export + the function build's steps,
        and the function build it wraps must not shrink the count.
        """
        if self._total_steps is None:
            self._total_steps = total

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines)

    def info(self, message: str) -> None:
        self._emit(message)

    @contextmanager
    def step(self, name: str) -> Iterator[BuildStep]:
        with self._lock:
            self._steps_done += 1
            current = BuildStep(self._steps_done, name)
        started = time.perf_counter()
        try:
            yield current
        except BaseException as exc:
            elapsed = _milliseconds(time.perf_counter() - started)
            reason = str(exc) or type(exc).__name__
            self._emit(f"{self._prefix(current.number)} {name} FAILED ({elapsed}): {reason}")
            raise
        elapsed = _milliseconds(time.perf_counter() - started)
        suffix = f": {current.detail}" if current.detail else ""
        self._emit(f"{self._prefix(current.number)} {name} ok ({elapsed}){suffix}")

    def _prefix(self, number: int) -> str:
        total = self._total_steps
        return f"[{number}/{total}]" if total is not None and number <= total else f"[{number}]"

    def _emit(self, message: str) -> None:
        # One listener call per physical line: a `remote:` prefix or an SSE frame wraps a single line.
        for line in message.splitlines() or [""]:
            with self._lock:
                self._lines.append(line)
            if self._on_line is not None:
                self._on_line(line)


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


__all__ = ["BuildLog", "BuildStep"]
