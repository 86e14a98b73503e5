"""The report's chart: load, latency, replicas and concurrency on one time axis, panic periods shaded.

Rendered with matplotlib's Agg backend (no display needed). Time zero is the moment locust started the
load; the dotted line marks where it stopped, and a green marker where the function was back at zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from loadtests.timeline import Timeline  # noqa: E402

PANIC_COLOR = "#f4a261"


def render_chart(timeline: Timeline, path: Path, title: str) -> Path:
    figure, (ax_load, ax_latency, ax_replicas, ax_concurrency) = plt.subplots(
        4, 1, sharex=True, figsize=(11, 10), height_ratios=[3, 3, 3, 2], layout="constrained")
    figure.suptitle(title, fontsize=12)

    ax_users = _draw_load(ax_load, timeline)
    _draw_latency(ax_latency, timeline)
    _draw_replicas(ax_replicas, timeline)
    _draw_concurrency(ax_concurrency, timeline)

    axes = (ax_load, ax_latency, ax_replicas, ax_concurrency)
    _mark_run_events(axes, ax_replicas, timeline)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    extra = [Patch(color=PANIC_COLOR, alpha=0.3, label="panic mode")] if timeline.panic_periods() else []
    _legend(extra, ax_load, ax_users)

    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _load_times(timeline: Timeline) -> list[float]:
    """Each load point at the middle of the interval it covers, in seconds since the load started."""
    origin = timeline.origin
    return [p.time - p.interval / 2 - origin for p in timeline.load]


def _sample_times(timeline: Timeline) -> list[float]:
    origin = timeline.origin
    return [s.time - origin for s in timeline.samples]


def _draw_load(ax_load: plt.Axes, timeline: Timeline) -> plt.Axes:
    """Requests (and failures) per second, with the users on a second y axis, which is returned."""
    load, load_t, origin = timeline.load, _load_times(timeline), timeline.origin
    ax_load.plot(load_t, [p.rps for p in load], color="#1d3557", label="requests/s")
    if any(p.failures for p in load):
        ax_load.plot(load_t, [p.failures_per_s for p in load], color="#e63946", label="failures/s")
    ax_load.set_ylabel("requests/s")
    ax_load.set_ylim(bottom=0)
    ax_users = ax_load.twinx()
    users_t, users = [p.time - p.interval - origin for p in load], [p.users for p in load]
    if timeline.load_stop is not None and load:
        users_t.append(timeline.load_stop - origin)  # no users after the stop: the line drops to zero
        users.append(0)
    ax_users.step(users_t, users, where="post", color="#8d99ae", linestyle="--", label="users")
    ax_users.set_ylabel("users")
    ax_users.set_ylim(bottom=0)
    return ax_users


def _draw_latency(ax_latency: plt.Axes, timeline: Timeline) -> None:
    load, load_t = timeline.load, _load_times(timeline)
    p50 = [(t, p.p50_ms) for t, p in zip(load_t, load, strict=True) if p.p50_ms is not None]
    p95 = [(t, p.p95_ms) for t, p in zip(load_t, load, strict=True) if p.p95_ms is not None]
    if p95:
        ax_latency.plot(*zip(*p50, strict=True), color="#2a9d8f", label="p50")
        ax_latency.plot(*zip(*p95, strict=True), color="#e76f51", label="p95")
        # Cold starts take seconds and warm requests milliseconds: a log axis keeps both readable.
        low = min(v for _, v in p50) or 0.1
        if max(v for _, v in p95) > 20 * low:
            ax_latency.set_yscale("log")
        ax_latency.legend(loc="upper right")
    ax_latency.set_ylabel("latency (ms)")


def _draw_replicas(ax_replicas: plt.Axes, timeline: Timeline) -> None:
    samples, sample_t = timeline.samples, _sample_times(timeline)
    # Ready as a filled area and desired as a line over it: where they agree the line sits on the edge.
    ax_replicas.fill_between(sample_t, [s.ready for s in samples], step="post", color="#a8dadc",
                             edgecolor="#1d3557", linewidth=1.5, label="ready")
    ax_replicas.step(sample_t, [s.desired for s in samples], where="post", color="#e63946", linestyle="--",
                     linewidth=1.5, label="desired")
    ax_replicas.set_ylabel("replicas")
    ax_replicas.set_ylim(0, max([s.desired for s in samples] + [s.ready for s in samples] + [1]) + 0.5)
    # A linear axis's default locator is an AutoLocator, a MaxNLocator: whole replicas only.
    cast(MaxNLocator, ax_replicas.yaxis.get_major_locator()).set_params(integer=True)
    ax_replicas.legend(loc="upper right")


def _draw_concurrency(ax_concurrency: plt.Axes, timeline: Timeline) -> None:
    samples, sample_t = timeline.samples, _sample_times(timeline)
    ax_concurrency.plot(sample_t, [s.stable_value for s in samples], color="#264653",
                        label="stable window")
    ax_concurrency.plot(sample_t, [s.panic_value for s in samples], color="#e9c46a",
                        label="panic window")
    ax_concurrency.set_ylabel("requests/s (rps)" if samples and samples[-1].metric == "rps" else "concurrency")
    ax_concurrency.set_ylim(bottom=0)
    ax_concurrency.set_xlabel("seconds since the load started")
    ax_concurrency.legend(loc="upper right")


def _mark_run_events(axes: tuple[plt.Axes, ...], ax_replicas: plt.Axes, timeline: Timeline) -> None:
    """Panic periods shaded and the load's stop as a dotted line on every panel; the return to zero as a dot."""
    origin = timeline.origin
    for begin, end in timeline.panic_periods():
        for ax in axes:
            ax.axvspan(begin - origin, end - origin, color=PANIC_COLOR, alpha=0.3, linewidth=0, zorder=0)
    if timeline.load_stop is not None:
        for ax in axes:
            ax.axvline(timeline.load_stop - origin, color="#6c757d", linestyle=":", linewidth=1)
    zero_at = timeline.back_to_zero_at()
    if zero_at is not None:
        ax_replicas.plot([zero_at - origin], [0], marker="o", color="#2a9d8f", clip_on=False,
                         label="back at zero")
        ax_replicas.legend(loc="upper right")


def _legend(extra: list[Patch], *axes: plt.Axes) -> None:
    """One legend for the load panel's two y axes, plus the panic shading that spans every panel."""
    handles: list = list(extra)
    labels = [str(h.get_label()) for h in extra]
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    axes[0].legend(handles, labels, loc="upper right")
