"""`zeroserve status FN`: what the autoscaler sees and decided, per revision."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from zeroserve.commands.connection import (
    DataOption,
    JsonOption,
    ServerOption,
    TokenOption,
    connect,
    console,
    print_json,
    reported_errors,
)
from zeroserve.commands.functions import FunctionArg
from zeroserve.commands.views import lambda_status_lines, target_scale_table


def status_table(info: dict[str, Any]) -> Table:
    table = Table("revision", "traffic", "ready/desired", "panic", "stable", "panic load", "queue",
                  "in flight", "template", "last decision")
    for rev in info["revisions"]:
        last = rev.get("last_decision") or {}
        decision = f"{last.get('applied', '-')}: {last.get('reason', '')}" if last else "-"
        if rev.get("last_error"):
            decision += f" [red](last error: {rev['last_error']})[/]"
        share = f"{rev['percent']}%" + "".join(f" @{t}" for t in rev.get("tags", []))
        unit = " rps" if rev["metric"] == "rps" else ""  # else requests in flight (concurrency)
        table.add_row(rev["revision"], share, f"{rev['ready']}/{rev['desired']}",
                      "[bold red]yes[/]" if rev["panicking"] else "no",
                      f"{rev['stable_value']:.2f}{unit}", f"{rev['panic_value']:.2f}{unit}",
                      str(rev["queue_depth"]), str(rev["in_flight"]), template_cell(rev.get("warm_template")),
                      decision)
    return table


def template_cell(template: dict[str, Any] | None) -> str:
    """A revision's warm template: its memory when ready, else its state (the reason is in --json)."""
    if not template:
        return "-"
    if template["state"] == "ready":
        return f"{template['private_bytes'] / (1 << 20):.1f} MiB"
    return template["state"]


def templates_line(summary: dict[str, Any]) -> str:
    return (f"warm templates: {summary['count']} holding {summary['bytes'] / (1 << 20):.1f} MiB of "
            f"{summary['budget_bytes'] / (1 << 20):.0f} MiB; {summary['hits']} hits, {summary['misses']} misses, "
            f"{summary['evictions']} evictions")


def status(function: FunctionArg, server: ServerOption = None, token: TokenOption = None,
           data: DataOption = None, as_json: JsonOption = False) -> None:
    """Per revision: ready and desired replicas, panic mode, stable/panic load, queue, last decision; and each
    other target's desired and actual scale (Knative), or what Lambda reports (State, concurrency)."""
    with reported_errors(), connect(server, token, data) as client:
        info = client.status(function)
    if as_json:
        print_json(info)
        return
    out = console()
    targets = info.get("targets") or []
    if info["revisions"]:
        out.print(status_table(info))
    if info.get("warm_templates"):
        out.print(templates_line(info["warm_templates"]), markup=False)
    elif not targets:
        out.print(f"{function}: no revision has run yet")
    for target in targets:
        if target.get("error"):
            out.print(f"{target['target']}: cannot tell: {target['error']}", markup=False)
        elif target.get("target") == "lambda":  # what Lambda reports: it scales by itself, no replica counts
            for line in lambda_status_lines(target):
                out.print(line, markup=False)
        else:
            out.print(target_scale_table(target))
