"""What every client command shares: where the platform is, the token, --json, and error reporting.

The options read the same environment as the client (ZEROSERVE_URL, ZEROSERVE_TOKEN, ZEROSERVE_DATA), and
every failure ends the command with exit code 1 and the server's message on stderr -- never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from zeroserve.client import ApiError, ControlClient, resolve_server, resolve_token

ServerOption = Annotated[str | None, typer.Option(
    "--server", help="Platform URL [env ZEROSERVE_URL; default http://127.0.0.1:8080]", show_default=False)]
TokenOption = Annotated[str | None, typer.Option(
    "--token", help="API token [env ZEROSERVE_TOKEN; default: read from the data dir]", show_default=False)]
DataOption = Annotated[str | None, typer.Option(
    "--data", help="Local data dir holding the token [env ZEROSERVE_DATA; default ./.zeroserve]",
    show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables")]


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Not a terminal (a pipe, a test): wide and plain, so no line is wrapped or coloured.
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "200"))
    return Console(file=stream, width=width, soft_wrap=not stream.isatty(), highlight=False)


def connect(server: str | None, token: str | None, data: str | None) -> ControlClient:
    resolved = resolve_token(token, data)
    if resolved is None:
        fail("no API token: pass --token, set ZEROSERVE_TOKEN, or run where the platform's data dir is "
             "(--data / ZEROSERVE_DATA; default ./.zeroserve)")
    return ControlClient(resolve_server(server), resolved)


def fail(message: str) -> NoReturn:
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(1)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Any refusal -> 'error: <message>' on stderr and exit code 1."""
    try:
        yield
    except ApiError as exc:
        fail(exc.message)
    except (ValueError, OSError) as exc:  # TrafficError, ArchiveError, a missing directory
        fail(str(exc))
    except KeyboardInterrupt:
        # Only the watching stops: a deploy already uploaded completes on the platform.
        console(stderr=True).print("interrupted (anything already sent to the platform still completes)")
        raise typer.Exit(130) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
