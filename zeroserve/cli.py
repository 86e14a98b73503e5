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
    function_dir: str | None = typer.Argument(None, help="Function directory holding function.yaml",
                                              show_default=False),
    artifact: str | None = typer.Option(None, "--artifact", help="Instead of DIR: a revision's artifact, "
                                        "STORE@sha256:HEX (s3://bucket/prefix@sha256:... or "
                                        "file:///path@sha256:...), fetched and verified first", show_default=False),
    port: int = typer.Option(8080, "--port", envvar="PORT", help="TCP port (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", envvar="ZEROSERVE_HOST", help="Address to bind"),
    uds: str | None = typer.Option(None, "--uds", help="Serve on this Unix socket instead of TCP"),
    revision: str | None = typer.Option(None, "--revision", envvar="K_REVISION", help="Revision name for the "
                                        "zeroserve-revision header (Knative sets K_REVISION)",
                                        show_default=False),
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="Also serve the Open Inference Protocol over "
                                         "gRPC on this TCP port (0: any free port; docs/grpc.md)",
                                         show_default=False),
) -> None:
    """Serve one function (a directory, or a revision's artifact) with the runtime (KServe V1 + OIP V2)."""
    if (function_dir is None) == (artifact is None):
        raise typer.BadParameter("give either a function directory or --artifact URI", param_hint="DIR")
    if artifact is not None:
        if uds is not None:
            raise typer.BadParameter("--artifact serves on TCP (--host/--port), not --uds", param_hint="--uds")
        from zeroserve.serve_artifact import serve_artifact

        serve_artifact(artifact, host=host, port=port, revision=revision, grpc_port=grpc_port)
    from functions.server import serve as serve_function

    serve_function(str(function_dir), host=host, port=port, uds=uds, revision=revision, grpc_port=grpc_port)


@app.command()
def quickstart(port: int | None = typer.Option(
        None, "--port", help="TCP port (0: any free port) [env ZEROSERVE_PORT; default 8080]",
        show_default=False)) -> None:
    """What `make run` starts: the example function, with its URL and a working curl command."""
    from zeroserve.quickstart import run_quickstart

    run_quickstart(port=port)


# Control plane and its client (zeroserve/commands/).
from zeroserve.commands.deploy import deploy  # noqa: E402
from zeroserve.commands.export import export  # noqa: E402
from zeroserve.commands.functions import delete, describe, events, list_functions, revisions  # noqa: E402
from zeroserve.commands.git_credential import git_credential  # noqa: E402
from zeroserve.commands.init import init  # noqa: E402
from zeroserve.commands.invoke import invoke  # noqa: E402
from zeroserve.commands.loadtest import loadtest  # noqa: E402
from zeroserve.commands.logs import logs  # noqa: E402
from zeroserve.commands.status import status  # noqa: E402
from zeroserve.commands.token import token_app  # noqa: E402
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
app.command("logs")(logs)
app.command("status")(status)
app.command("loadtest")(loadtest)
app.command("export")(export)
app.command("invoke")(invoke)
app.add_typer(token_app, name="token")
app.command("git-credential")(git_credential)

if __name__ == "__main__":
    app()
