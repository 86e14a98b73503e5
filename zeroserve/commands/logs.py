"""`zeroserve logs FN [--revision R] [--since 10m] [--tail N] [-f]`: what a function's replicas printed."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from zeroserve.commands.connection import DataOption, JsonOption, ServerOption, TokenOption, connect, reported_errors


def logs(
    function: Annotated[str, typer.Argument(help="Function name")],
    revision: Annotated[str | None, typer.Option("--revision", "-r", help="Only this revision's lines",
                                                 show_default=False)] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only lines from this long ago: 30s, 10m, 1h",
                                              show_default=False)] = None,
    tail: Annotated[int, typer.Option("--tail", help="At most this many of the newest lines (0: none, with -f "
                                                     "only new ones)", min=0, max=10_000)] = 1000,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines as they are written, "
                                                                "until Ctrl-C")] = False,
    server: ServerOption = None, token: TokenOption = None, data: DataOption = None, as_json: JsonOption = False,
) -> None:
    """Lines the function's replicas wrote to stdout and stderr: time, replica, [request id], line."""
    with reported_errors(), connect(server, token, data) as client:
        if not follow:
            for line in client.logs(function, revision=revision, since=since, tail=tail):
                _print(line, as_json)
            return
        try:
            with client.follow_logs(function, revision=revision, since=since, tail=tail) as lines:
                for line in lines:
                    _print(line, as_json)
        except KeyboardInterrupt:  # the way a follow ends
            return


def _print(line: dict[str, Any], as_json: bool) -> None:
    if as_json:
        text = json.dumps(line, sort_keys=True)
    else:
        seconds = float(line.get("time", 0.0))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"
        request = f" [{line['request_id']}]" if line.get("request_id") else ""
        text = f"{stamp} {line.get('replica', '-')}{request} {line.get('line', '')}"
    sys.stdout.write(text + "\n")
    sys.stdout.flush()  # a follower reading a pipe sees each line when it comes
