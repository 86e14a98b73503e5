"""Builds and deploys by outcome and duration, counted by the deploy service, rendered at /metrics.

A build is the builder's steps (manifest, files, smoke test, digest, store): `succeeded` or `failed`.
A deploy is the whole request, build included: `created`, `unchanged` or `failed` (a failed build, or a
deploy refused after it). Plain counters: zeroserve/metrics.py renders them when /metrics is scraped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from activator.metrics import Histogram

# Seconds: a cached python handler builds in well under a second, a torch model's smoke test in minutes.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BUILD_OUTCOMES = ("succeeded", "failed")
DEPLOY_OUTCOMES = ("created", "unchanged", "failed")


@dataclass
class OutcomeDurations:
    """Per outcome: how many, and a histogram of how long they took."""

    durations: dict[str, Histogram] = field(default_factory=dict)

    def observe(self, outcome: str, seconds: float) -> None:
        histogram = self.durations.get(outcome)
        if histogram is None:
            histogram = self.durations[outcome] = Histogram(DURATION_BUCKETS)
        histogram.observe(seconds)


class DeployMetrics:
    """Written from build threads, read by the scrape: a lock keeps each pair of numbers consistent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.builds = OutcomeDurations()
        self.deploys = OutcomeDurations()

    def build_finished(self, succeeded: bool, seconds: float) -> None:
        with self._lock:
            self.builds.observe("succeeded" if succeeded else "failed", seconds)

    def deploy_finished(self, outcome: str, seconds: float) -> None:
        with self._lock:
            self.deploys.observe(outcome, seconds)

    def snapshot(self) -> tuple[dict[str, Histogram], dict[str, Histogram]]:
        """Copies of (builds, deploys) by outcome, every outcome present (zero when none happened)."""
        with self._lock:
            return (_copies(self.builds, BUILD_OUTCOMES), _copies(self.deploys, DEPLOY_OUTCOMES))


def _copies(counts: OutcomeDurations, outcomes: tuple[str, ...]) -> dict[str, Histogram]:
    copies = {}
    for outcome in outcomes:
        copy = Histogram(DURATION_BUCKETS)
        source = counts.durations.get(outcome)
        if source is not None:
            copy.counts, copy.sum = list(source.counts), source.sum
        copies[outcome] = copy
    return copies
