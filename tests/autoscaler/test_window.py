"""Metric windows with an injected clock: partial, stale and reset windows, both aggregations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import MaxWindow, MetricWindow, WeightedMetricWindow, make_window


def filled(samples: list[tuple[float, float]], window: float = 60.0, granularity: float = 1.0) -> MetricWindow:
    w = MetricWindow(window=window, granularity=granularity)
    for t, v in samples:
        w.record(t, v)
    return w


@pytest.mark.parametrize(
    "case, samples, now, expected",
    [
        ("empty window averages 0", [], 0.0, 0.0),
        ("one sample right after scale-from-zero averages itself, not 1/60", [(100.0, 1.0)], 100.0, 1.0),
        ("samples in one bucket add up", [(5.2, 1.0), (5.9, 2.0)], 5.0, 3.0),
        ("partial window divides by the buckets since the first write", [(t, 5.0) for t in range(10)], 9.0, 5.0),
        ("gaps shorter than the window count as zeros", [(0.0, 6.0), (3.0, 6.0)], 3.0, 3.0),
        ("a full window is a plain mean", [(t, t + 1.0) for t in range(60)], 59.0, 30.5),
        # Bucket t=0 (value 1) slid out; the 59 remaining buckets hold 2..60.
        ("stale buckets leave sum and divisor", [(t, t + 1.0) for t in range(60)], 60.0, (1830 - 1) / 59),
        ("ten stale buckets", [(t, t + 1.0) for t in range(60)], 69.0, sum(range(11, 61)) / 50),
        # Data since t=0 only; the last write was 6 buckets ago, the divisor stays the 10 buckets with data.
        ("partial and stale", [(t, 10.0) for t in range(10)], 15.0, 10.0),
        ("nothing for a whole window is 0", [(t, 10.0) for t in range(10)], 69.0, 0.0),
        ("a gap of more than a window resets", [(0.0, 100.0), (61.0, 1.0)], 61.0, 1.0),
        # Exactly one window apart: not a reset (Knative compares '> window'); the old bucket is reused.
        ("a gap of exactly a window does not reset", [(0.0, 100.0), (60.0, 1.0)], 60.0, 1 / 60),
        ("an older sample inside the window is added", [(10.0, 4.0), (8.0, 2.0)], 10.0, 2.0),
        ("a sample older than the window is dropped", [(100.0, 4.0), (30.0, 50.0)], 100.0, 4.0),
        ("now before the last write uses everything", [(10.0, 4.0), (11.0, 2.0)], 5.0, 3.0),
        ("granularity 2s: both samples share a bucket", [(0.5, 1.0), (1.5, 1.0)], 1.0, 2.0),
    ],
)
def test_window_average(case: str, samples: list[tuple[float, float]], now: float, expected: float) -> None:
    assert filled(samples, granularity=2.0 if "granularity 2s" in case else 1.0).average(now) == pytest.approx(
        expected, abs=1e-6
    ), case


def test_window_buckets_and_emptiness() -> None:
    assert MetricWindow(60.0, 2.0).bucket_count == 30
    assert MetricWindow(7.0, 2.0).bucket_count == 4  # rounded up, like Knative
    w = filled([(10.0, 1.0)])
    assert not w.is_empty(70.0) and w.is_empty(71.0) and MetricWindow(6.0).is_empty(0.0)


def test_window_rounds_float_noise_away() -> None:
    w = filled([(0.0, 0.1), (0.0, 0.2)], window=6.0)
    assert w.average(0.0) == 0.3  # not 0.30000000000000004, which would ceil() into one more pod
    w.record(6.0, 0.0)
    w.record(7.0, 0.0)
    assert str(w.average(7.0)) == "0.0"  # never "-0.0" in a reason string


@pytest.mark.parametrize("window, granularity", [(0.5, 1.0), (60.0, 0.0), (60.0, -1.0)])
def test_window_refuses_nonsense(window: float, granularity: float) -> None:
    with pytest.raises(ValueError, match="granularity|window"):
        MetricWindow(window, granularity)


def test_weighted_exponential_formula_matches_knative_example() -> None:
    # Knative's bucketing.go example: [10, 10, 5, 5] (newest last) with a 0.6 multiplier -> 5.544.
    w = WeightedMetricWindow(4.0)
    w.smoothing = 0.6
    for t, v in enumerate([10.0, 10.0, 5.0, 5.0]):
        w.record(float(t), v)
    assert w.average(3.0) == pytest.approx(5 * 0.6 + 5 * 0.6 * 0.4 + 10 * 0.6 * 0.4**2 + 10 * 0.6 * 0.4**3)


def test_weighted_exponential_weights_and_staleness() -> None:
    w = WeightedMetricWindow(60.0)
    alpha = w.smoothing
    assert alpha == pytest.approx(1 - 0.001 ** (1 / 60))
    for t in range(60):
        w.record(float(t), 1.0)
    assert w.average(59.0) == pytest.approx(0.999, abs=1e-6)  # a full window of weights sums to 99.9 %
    single = WeightedMetricWindow(60.0)
    single.record(0.0, 10.0)
    assert single.average(0.0) == pytest.approx(10 * alpha, abs=1e-6)  # partial windows are not re-normalised
    assert single.average(5.0) == pytest.approx(10 * alpha * (1 - alpha) ** 5, abs=1e-6)
    assert single.average(60.0) == 0.0


def test_make_window_picks_the_aggregation() -> None:
    assert type(make_window(60.0)) is MetricWindow
    assert type(make_window(60.0, aggregation="weighted-exponential")) is WeightedMetricWindow
    with pytest.raises(ValueError, match="aggregation must be"):
        make_window(60.0, aggregation="median")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "records, expected",
    [
        ([(0.0, 5), (2.0, 3)], 5),
        ([(0.0, 5), (1.0, 3)], 5),  # a smaller value later in the same slot does not hide the max
        ([(0.0, 5), (2.0, 3), (8.0, 1)], 5),  # slot 0 is still among the last 5 slots at slot 4
        ([(0.0, 5), (2.0, 3), (10.0, 1)], 3),  # at slot 5 the slot-0 value has left the 10 s window
        ([(0.0, 5), (2.0, 3), (12.0, 1)], 1),
        ([(0.0, 1), (2.0, 7), (4.0, 2)], 7),
        ([], 0),
    ],
)
def test_max_window_keeps_the_peak_of_the_delay_window(records: list[tuple[float, int]], expected: int) -> None:
    w = MaxWindow(10.0, 2.0)
    for t, v in records:
        w.record(t, v)
    assert w.current() == expected


def test_max_window_resize_keeps_history() -> None:
    w = MaxWindow(10.0, 2.0)
    w.record(0.0, 9)
    longer = w.resized(30.0)
    longer.record(20.0, 1)  # slot 10 is within 15 slots of slot 0
    assert (longer.slots, longer.current()) == (15, 9)
    with pytest.raises(ValueError):
        MaxWindow(0.0)


# --- property: the window agrees with a declarative model of Knative's averaging -----------------------------

def reference_average(samples: list[tuple[int, float]], now: int, size: int) -> float:
    """Knative's documented semantics, recomputed from the whole sample history (1 s buckets)."""
    first = last = None
    kept: list[tuple[int, float]] = []
    for bucket, value in samples:  # non-decreasing buckets
        if last is None or bucket - last > size:
            first, kept = bucket, []
        last = bucket
        kept.append((bucket, value))
    if last is None or now - last >= size:
        return 0.0
    behind = max(0, now - last)
    newest = max(now, last)
    total = sum(v for b, v in kept if b > newest - size)
    return total / min(last - first + 1, size - behind)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=6, max_value=20),
    steps=st.lists(st.tuples(st.integers(min_value=0, max_value=25), st.floats(min_value=0, max_value=100)),
                   min_size=1, max_size=40),
    lag=st.integers(min_value=0, max_value=25),
)
def test_window_matches_reference_model(size: int, steps: list[tuple[int, float]], lag: int) -> None:
    w = MetricWindow(float(size), 1.0)
    samples, t = [], 0
    for gap, value in steps:
        t += gap
        w.record(t + 0.5, value)
        samples.append((t, value))
    now = t + lag
    assert w.average(now + 0.25) == pytest.approx(reference_average(samples, now, size), abs=1e-5)
    assert math.isfinite(w.average(now))
