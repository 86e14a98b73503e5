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


def status_table(info: dict[str, Any]) -> Table:
    table = Table("revision", "traffic", "ready/desired", "panic", "stable", "panic load", "queue",
                  "in flight", "last decision")
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
                      str(rev["queue_depth"]), str(rev["in_flight"]), decision)
    return table


def status(function: FunctionArg, server: ServerOption = None, token: TokenOption = None,
           data: DataOption = None, as_json: JsonOption = False) -> None:
    """Per revision: ready and desired replicas, panic mode, stable/panic load, queue, last decision."""
    with reported_errors(), connect(server, token, data) as client:
        info = client.status(function)
    if as_json:
        print_json(info)
    elif not info["revisions"]:
        console().print(f"{function}: no revision has run yet")
    else:
        console().print(status_table(info))
