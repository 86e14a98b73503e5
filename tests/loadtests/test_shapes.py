"""Load shapes: tick() sequences second by second, and parameter errors that name the parameter."""

from __future__ import annotations

import pytest

from loadtests.shapes import Ramp, Sine, Spike, Step, build_shape


def ticks(shape, seconds: int) -> list:
    return [shape.tick(float(t)) for t in range(seconds)]


def test_spike_starts_every_user_at_once_holds_then_stops() -> None:
    shape = build_shape("spike", users=50, duration="5s")
    assert isinstance(shape, Spike)
    assert ticks(shape, 7) == [(50, 50.0)] * 5 + [None, None]
    assert shape.tick(4.999) == (50, 50.0)


def test_step_has_equal_plateaus_each_higher_by_users_over_steps() -> None:
    shape = build_shape("step", users=12, duration="12s", steps=3)
    assert isinstance(shape, Step)
    assert [t[0] if t else None for t in ticks(shape, 13)] == [4] * 4 + [8] * 4 + [12] * 4 + [None]
    assert shape.tick(0.0) == (4, 4.0)  # a step lands within a second


def test_step_rounds_uneven_plateaus_up_and_ends_at_the_peak() -> None:
    shape = build_shape("step", users=10, duration="9s", steps=3)
    assert [t[0] for t in ticks(shape, 9)] == [4, 4, 4, 7, 7, 7, 10, 10, 10]


def test_ramp_rises_linearly_from_one_user_to_the_peak() -> None:
    shape = build_shape("ramp", users=10, duration="10s")
    assert isinstance(shape, Ramp)
    assert [t[0] if t else None for t in ticks(shape, 11)] == [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, None]
    users = [shape.tick(t / 10)[0] for t in range(100)]
    assert users == sorted(users) and users[-1] == 10


def test_sine_goes_from_zero_to_the_peak_and_back_each_period() -> None:
    shape = build_shape("sine", users=20, duration="40s", period="20s")
    assert isinstance(shape, Sine)
    seq = [t[0] if t else None for t in ticks(shape, 41)]
    assert seq[0] == 0 and seq[10] == 20 and seq[20] == 0 and seq[30] == 20 and seq[40] is None
    assert seq[:11] == sorted(seq[:11]) and seq[10:21] == sorted(seq[10:21], reverse=True)


def test_sine_period_defaults_to_the_duration() -> None:
    shape = build_shape("sine", users=4, duration="8s")
    assert isinstance(shape, Sine) and shape.period == 8.0
    assert shape.tick(4.0) == (4, 4.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "square", "users": 1, "duration": "5s"}, "shape: unknown shape 'square'"),
    ({"name": "spike", "users": 0, "duration": "5s"}, "users: must be a whole number of at least 1"),
    ({"name": "spike", "users": True, "duration": "5s"}, "users:"),
    ({"name": "spike", "users": 5, "duration": "soon"}, "duration: 'soon' is not a duration"),
    ({"name": "spike", "users": 5, "duration": "500ms"}, "duration: must be at least 1s"),
    ({"name": "step", "users": 5, "duration": "5s", "steps": 0}, "steps: must be a whole number"),
    ({"name": "step", "users": 5, "duration": "3s", "steps": 4}, "steps: 4 plateaus do not fit in 3s"),
    ({"name": "sine", "users": 5, "duration": "30s", "period": "-1"}, "period: must be at least 1s"),
])
def test_bad_parameters_are_refused_naming_the_parameter(kwargs: dict, message: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(ValueError) as info:
        build_shape(name, **kwargs)
    assert str(info.value).startswith(message), str(info.value)
