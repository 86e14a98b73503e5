"""`zeroserve token create|ls|revoke`: scoped API tokens (needs the admin token).

    zeroserve token create --function demo --scope deploy --expires 30d --name ci-demo   # prints it once
    zeroserve token ls
    zeroserve token revoke ci-demo
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

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
from zeroserve.commands.views import when

token_app = typer.Typer(name="token", no_args_is_help=True, add_completion=False,
                        help="Scoped API tokens: read, deploy or invoke, for the functions they name.")


class ScopeChoice(StrEnum):
    read = "read"
    deploy = "deploy"
    invoke = "invoke"
    admin = "admin"


@token_app.command("create")
def create(
    scope: Annotated[ScopeChoice, typer.Option("--scope", help="read | deploy | invoke | admin",
                                               show_default=False)],
    functions: Annotated[list[str] | None, typer.Option(
        "--function", help="A function it covers (repeat for more); none: every function (read, invoke)",
        show_default=False)] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="e.g. 30d, 2w, 12h [default: never]",
                                                show_default=False)] = None,
    name: Annotated[str | None, typer.Option("--name", help="Unique name [default: generated]",
                                             show_default=False)] = None,
    server: ServerOption = None,
    token: TokenOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it, once: the platform keeps only its hash."""
    from protocol.tokens import parse_expiry

    expires_in = None
    if expires is not None:
        try:
            expires_in = parse_expiry(expires)
        except ValueError as exc:
            fail(f"--expires: {exc}")
    with reported_errors(), connect(server, token, data) as client:
        created = client.create_token(scope.value, functions or [], name=name, expires_in=expires_in)
    if as_json:
        print_json(created)
        return
    # The secret alone on stdout (TOKEN=$(zeroserve token create ...) works); the rest on stderr.
    notes = console(stderr=True)
    expiry = when(created["expires"]) if created.get("expires") else "never"
    notes.print(f"created token {created['name']} ({_reach(created)}; expires {expiry})", markup=False)
    sys.stdout.write(created["token"] + "\n")
    sys.stdout.flush()
    notes.print("this is the only time it is shown: store it now (a CI secret, a password manager)", markup=False)


@token_app.command("ls")
def list_tokens(server: ServerOption = None, token: TokenOption = None, data: DataOption = None,
                as_json: JsonOption = False) -> None:
    """List tokens: name, scope, functions, created, last used, expiry (never the secrets)."""
    from rich.table import Table

    with reported_errors(), connect(server, token, data) as client:
        tokens = client.tokens()
    if as_json:
        print_json(tokens)
        return
    if not tokens:
        console().print("no tokens yet: zeroserve token create --function F --scope deploy", markup=False)
        return
    table = Table("name", "scope", "functions", "created", "last used", "expires", box=None)
    for item in tokens:
        table.add_row(item["name"], item["scope"], ", ".join(item["functions"]) or "(every function)",
                      when(item.get("created")), when(item.get("last_used")) if item.get("last_used") else "never",
                      when(item.get("expires")) if item.get("expires") else "never")
    console().print(table)


@token_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The token's name (zeroserve token ls)")],
           server: ServerOption = None, token: TokenOption = None, data: DataOption = None) -> None:
    """Revoke a token: every request with it is refused from now on."""
    with reported_errors(), connect(server, token, data) as client:
        client.revoke_token(name)
    console().print(f"revoked token {name}", markup=False)


def _reach(created: dict[str, Any]) -> str:
    if created["scope"] == "admin":
        return "scope admin"
    return f"scope {created['scope']}: {', '.join(created['functions']) or 'every function'}"
