"""`zeroserve ls`, `describe FN`, `revisions FN [REV]`, `delete FN`, `events [FN]`."""

from __future__ import annotations

from typing import Annotated

import typer

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
from zeroserve.commands.views import (
    events_table,
    functions_table,
    revisions_table,
    routed_shares,
    split_text,
    target_state_lines,
    traffic_table,
    when,
)

FunctionArg = Annotated[str, typer.Argument(help="Function name")]


def list_functions(server: ServerOption = None, token: TokenOption = None, data: DataOption = None,
                   as_json: JsonOption = False) -> None:
    """List functions with their latest revision, traffic split and URL."""
    with reported_errors(), connect(server, token, data) as client:
        functions = client.list_functions()
    if as_json:
        print_json(functions)
    elif not functions:
        console().print("no functions yet: deploy one with `zeroserve deploy DIR`")
    else:
        console().print(functions_table(functions))


def describe(function: FunctionArg, server: ServerOption = None, token: TokenOption = None,
             data: DataOption = None, as_json: JsonOption = False) -> None:
    """Show a function: URLs, traffic, rollout in progress, revisions, and each target's own state."""
    with reported_errors(), connect(server, token, data) as client:
        info = client.describe(function)
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(f"[bold]{info['name']}[/]  created {when(info.get('created'))}")
    out.print(f"url:      {info.get('url')}", markup=False)
    out.print(f"path url: {info.get('path_url')}", markup=False)
    out.print(f"traffic:  {split_text(info.get('traffic'))}", markup=False)
    if info.get("traffic"):
        out.print(traffic_table(info["traffic"]["targets"], info.get("tags")))
    rollout = info.get("rollout")
    if rollout:
        out.print(f"rollout:  {rollout['revision']} to {rollout['target_percent']}% over {rollout['duration']:g}s",
                  markup=False)
    out.print("revisions:")
    shares = routed_shares(info.get("traffic"), info.get("latest_revision"))
    out.print(revisions_table(info.get("revisions", []), shares))
    out.print(f"targets:  {', '.join(info.get('targets') or ['local'])}", markup=False)
    for state in info.get("target_states", []):
        for line in target_state_lines(state):
            out.print(line, markup=False)


def revisions(function: FunctionArg,
              revision: Annotated[str | None, typer.Argument(help="A revision: show it with its build log")] = None,
              server: ServerOption = None, token: TokenOption = None, data: DataOption = None,
              as_json: JsonOption = False) -> None:
    """List a function's revisions, or show one revision with its build log."""
    with reported_errors(), connect(server, token, data) as client:
        if revision is not None:
            info = client.revision(function, revision)
        else:
            records = client.revisions(function)
            traffic = client.traffic(function).get("traffic")
            latest = next((r["name"] for r in reversed(records) if r.get("status") == "Ready"), None)
    if as_json:
        print_json(info if revision is not None else records)
        return
    out = console()
    if revision is not None:
        out.print(f"[bold]{info['name']}[/]  {info['status']}  {info['digest']}  created {when(info['created'])}")
        out.print("build log:")
        for line in info.get("build_log", []):
            out.print(f"  {line}", markup=False)
        return
    out.print(revisions_table(records, routed_shares(traffic, latest)))


def delete(function: FunctionArg, server: ServerOption = None, token: TokenOption = None,
           data: DataOption = None, as_json: JsonOption = False) -> None:
    """Delete a function with all its revisions (artifacts no other function uses are removed)."""
    with reported_errors(), connect(server, token, data) as client:
        result = client.delete(function)
    if as_json:
        print_json(result)
    else:
        console().print(f"deleted {function} ({len(result['revisions'])} revision(s))")


def events(function: Annotated[str | None, typer.Argument(help="Only this function's events")] = None,
           limit: Annotated[int, typer.Option("--limit", help="How many of the newest events")] = 50,
           server: ServerOption = None, token: TokenOption = None, data: DataOption = None,
           as_json: JsonOption = False) -> None:
    """Deploys, failed builds, traffic changes, rollouts, deletes, replica failures and scale changes (with the
    autoscaler's reason), newest last."""
    with reported_errors(), connect(server, token, data) as client:
        records = client.events(function, limit=limit)
    if as_json:
        print_json(records)
    else:
        console().print(events_table(records))
