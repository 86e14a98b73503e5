"""`zeroserve deploy DIR`: upload a function directory, follow its build live, report the revision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zeroserve.commands.connection import (
    DataOption,
    JsonOption,
    ServerOption,
    TokenOption,
    connect,
    console,
    fail,
    print_json,
    reported_errors,
)


def deploy(
    function_dir: Annotated[Path, typer.Argument(help="Function directory holding function.yaml")],
    server: ServerOption = None,
    token: TokenOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy a function directory: a new immutable revision, routed per its traffic policy."""
    if not function_dir.is_dir():
        fail(f"{function_dir}: not a directory")
    # Build lines go to stderr with --json, so stdout stays one JSON document.
    out = console(stderr=as_json)
    with reported_errors(), connect(server, token, data) as client:
        result = client.deploy(function_dir, on_line=lambda line: out.print(f"  {line}", markup=False))
        if as_json:
            print_json({k: v for k, v in result.items() if k != "type"})
            return
        out.print(f"[bold green]{result['message']}[/]")
        if result.get("status") == "created":
            urls = client.describe(result["function"])
            out.print(f"  url: {urls.get('url')}  (or {urls.get('path_url')})", markup=False)
        out.print(f"  try it: zeroserve invoke {result['function']}", markup=False)
