"""`zeroserve export TARGET FN`: the function as the target's own resource, for GitOps and kubectl.

    zeroserve export knative iris | kubectl apply -f -

stdout carries the resource alone, byte for byte what a deploy applies (the platform renders it with
the same translation); notes for a cluster operator go to stderr, so a pipe gets only the YAML.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from zeroserve.commands.connection import DataOption, ServerOption, TokenOption, connect, console, reported_errors
from zeroserve.commands.functions import FunctionArg

TargetArg = Annotated[str, typer.Argument(help="The target whose resource to print: knative", show_default=False)]


def export(target: TargetArg, function: FunctionArg, server: ServerOption = None, token: TokenOption = None,
           data: DataOption = None) -> None:
    """Print the function as TARGET's resource (knative: the Service YAML a deploy applies)."""
    with reported_errors(), connect(server, token, data) as client:
        exported = client.export(function, target)
    err = console(stderr=True)
    for note in exported.get("notes", []):
        err.print(f"note: {note}", markup=False)
    sys.stdout.write(exported["content"])
    sys.stdout.flush()
