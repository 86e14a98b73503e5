"""The `zeroserve` command line: a thin layer over the runtime and the control API.

Each command lives in a module of its own; this file only registers them, so adding a command means
adding one line here.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="zeroserve",
    help="ML models as scale-to-zero functions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    function_dir: str = typer.Argument(..., help="Function directory holding function.yaml"),
    port: int = typer.Option(8080, "--port", help="TCP port on 127.0.0.1"),
    host: str = typer.Option("127.0.0.1", "--host"),
    uds: str | None = typer.Option(None, "--uds", help="Serve on this Unix socket instead of TCP"),
) -> None:
    """Serve one function directory with the runtime (KServe V1 + Open Inference Protocol V2)."""
    from functions.server import serve as serve_function

    serve_function(function_dir, host=host, port=port, uds=uds)


@app.command()
def quickstart(port: int | None = typer.Option(
        None, "--port", help="TCP port (0: any free port) [env ZEROSERVE_PORT; default 8080]",
        show_default=False)) -> None:
    """What `make run` starts: the example function, with its URL and a working curl command."""
    from zeroserve.quickstart import run_quickstart

    run_quickstart(port=port)


# Control plane and its client (zeroserve/commands/).
from zeroserve.commands.deploy import deploy  # noqa: E402
from zeroserve.commands.functions import delete, describe, events, list_functions, revisions  # noqa: E402
from zeroserve.commands.init import init  # noqa: E402
from zeroserve.commands.loadtest import loadtest  # noqa: E402
from zeroserve.commands.status import status  # noqa: E402
from zeroserve.commands.traffic import promote, rollback, traffic  # noqa: E402
from zeroserve.commands.up import up  # noqa: E402

app.command("up")(up)
app.command("deploy")(deploy)
app.command("init")(init)
app.command("ls")(list_functions)
app.command("describe")(describe)
app.command("revisions")(revisions)
app.command("traffic")(traffic)
app.command("rollback")(rollback)
app.command("promote")(promote)
app.command("delete")(delete)
app.command("events")(events)
app.command("status")(status)
app.command("loadtest")(loadtest)

if __name__ == "__main__":
    app()
