"""`zeroserve traffic FN [REV=PCT ...] [--tag T=REV] [--untag T]`, `rollback FN`, `promote FN TAG`."""

from __future__ import annotations

from typing import Annotated, Any

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
from zeroserve.commands.views import split_text, traffic_table

FunctionArg = Annotated[str, typer.Argument(help="Function name")]


def show_route(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(f"{info['function']}: {split_text(info.get('traffic'))}", markup=False)
    if info.get("traffic"):
        out.print(traffic_table(info["traffic"]["targets"], info.get("tags")))
    rollout = info.get("rollout")
    if rollout:
        out.print(f"rolling out {rollout['revision']} to {rollout['target_percent']}% over "
                  f"{rollout['duration']:g}s", markup=False)


def traffic(
    function: FunctionArg,
    split: Annotated[list[str] | None, typer.Argument(
        help="New split as REVISION=PERCENT (also @latest=PCT or TAG=PCT); none: show the split")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="TAG=REVISION: give a revision a URL")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="Remove a tag")] = None,
    server: ServerOption = None, token: TokenOption = None, data: DataOption = None, as_json: JsonOption = False,
) -> None:
    """Show or change how a function's requests split between revisions."""
    # revisions.traffic imports the manifest model (pydantic): only when the command runs, not for --help.
    from revisions.traffic import parse_assignment, parse_percents

    with reported_errors():
        percents = parse_percents(split) if split else None
        tags = dict(parse_assignment(t, "TAG=REVISION (e.g. canary=iris-00002)") for t in tag or [])
        with connect(server, token, data) as client:
            if percents is None and not tags and not untag:
                info = client.traffic(function)
            else:
                info = client.edit_traffic(function, percents=percents, tags=tags, untag=untag or [])
    show_route(info, as_json)


def rollback(function: FunctionArg, server: ServerOption = None, token: TokenOption = None,
             data: DataOption = None, as_json: JsonOption = False) -> None:
    """Restore the previous route (during a rollout: the route before it)."""
    with reported_errors(), connect(server, token, data) as client:
        info = client.rollback(function)
    show_route(info, as_json)


def promote(function: FunctionArg, tag: Annotated[str, typer.Argument(help="The tag whose revision takes 100%")],
            server: ServerOption = None, token: TokenOption = None, data: DataOption = None,
            as_json: JsonOption = False) -> None:
    """Send all traffic to the revision a tag names."""
    with reported_errors(), connect(server, token, data) as client:
        info = client.promote(function, tag)
    show_route(info, as_json)
