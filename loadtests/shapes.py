"""Load shapes: how many users a load test runs at each moment.

Each shape is a pure function of the seconds since the test started, `tick(run_time)`, returning
`(users, spawn_rate)` or None when the test is over -- the contract of locust's `LoadTestShape.tick()`,
minus locust. Locust is imported only by the locustfile (it monkey-patches the process with gevent), so
shapes stay importable and testable anywhere; `loadtests/locustfile.py` adapts them to `LoadTestShape`.

    spike   0 -> users at once, hold for the duration, stop      (a burst from zero: cold start + panic)
    step    `steps` plateaus of equal length, users/steps more on each   (the stable window at work)
    ramp    linear 0 -> users over the duration, then stop         (scale-up without panic)
    sine    0 -> users -> 0 once per period, for the duration       (scale up and down, repeatedly)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from protocol.durations import format_duration, parse_duration

ShapeName = Literal["spike", "step", "ramp", "sine"]
SHAPE_NAMES: tuple[ShapeName, ...] = ("spike", "step", "ramp", "sine")
Tick = tuple[int, float]


class LoadShape(Protocol):
    @property
    def duration(self) -> float: ...  # read-only: the shapes are frozen dataclasses

    def tick(self, run_time: float) -> Tick | None: ...


@dataclass(frozen=True)
class Spike:
    users: int
    duration: float

    def tick(self, run_time: float) -> Tick | None:
        if run_time >= self.duration:
            return None
        # spawn_rate == users: locust starts every user within its first second -- "at once".
        return self.users, float(self.users)


@dataclass(frozen=True)
class Step:
    users: int
    duration: float
    steps: int

    def tick(self, run_time: float) -> Tick | None:
        if run_time >= self.duration:
            return None
        plateau = min(self.steps - 1, int(run_time // (self.duration / self.steps)))
        users = math.ceil(self.users * (plateau + 1) / self.steps)
        # Each step lands within a second, so a plateau is flat for (almost) its whole length.
        return users, float(max(1, math.ceil(self.users / self.steps)))


@dataclass(frozen=True)
class Ramp:
    users: int
    duration: float

    def tick(self, run_time: float) -> Tick | None:
        if run_time >= self.duration:
            return None
        # At least one user from the start: a ramp that idles its first seconds measures nothing.
        users = max(1, math.ceil(self.users * run_time / self.duration))
        return min(self.users, users), float(max(1, math.ceil(self.users / self.duration)))


@dataclass(frozen=True)
class Sine:
    users: int
    duration: float
    period: float

    def tick(self, run_time: float) -> Tick | None:
        if run_time >= self.duration:
            return None
        # (1 - cos) / 2: starts at 0 users, peaks at `users` half a period in, back to 0 at a full period.
        level = (1 - math.cos(2 * math.pi * run_time / self.period)) / 2
        return round(self.users * level), float(max(1, self.users))


def build_shape(name: str, *, users: int, duration: object, steps: int = 4,
                period: object | None = None) -> LoadShape:
    """A shape from command-line values; a bad value raises ValueError naming the parameter."""
    if name not in SHAPE_NAMES:
        raise ValueError(f"shape: unknown shape '{name}' (choose one of {', '.join(SHAPE_NAMES)})")
    if isinstance(users, bool) or not isinstance(users, int) or users < 1:
        raise ValueError(f"users: must be a whole number of at least 1 (got {users!r})")
    seconds = _positive_duration("duration", duration)
    if name == "spike":
        return Spike(users, seconds)
    if name == "ramp":
        return Ramp(users, seconds)
    if name == "step":
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: must be a whole number of at least 1 (got {steps!r})")
        if steps > seconds:
            raise ValueError(f"steps: {steps} plateaus do not fit in {format_duration(seconds)} "
                             "(each plateau needs at least 1s)")
        return Step(users, seconds, steps)
    cycle = seconds if period in (None, "") else _positive_duration("period", period)
    return Sine(users, seconds, cycle)


def _positive_duration(parameter: str, value: object) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{parameter}: {exc}") from None
    if seconds < 1:
        raise ValueError(f"{parameter}: must be at least 1s (got {format_duration(seconds)})")
    return seconds
