"""`zeroserve up`: run the platform in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zeroserve.commands.connection import fail
from zeroserve.settings import Settings, SettingsError


def up(
    port: Annotated[int | None, typer.Option("--port", help="TCP port (0: any free port) [default 8080]",
                                             show_default=False)] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind [default 127.0.0.1]",
                                             show_default=False)] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Data dir: registry, artifacts, token "
                                              "[env ZEROSERVE_DATA; default ./.zeroserve]", show_default=False)] = None,
    artifacts: Annotated[str | None, typer.Option("--artifacts", help="Artifact store: s3://bucket/prefix "
                                                  "[default DATA/artifacts]", show_default=False)] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Domain of function URLs [default localhost]",
                                               show_default=False)] = None,
    keep_unrouted: Annotated[int | None, typer.Option("--keep-unrouted", help="Unrouted revisions kept per "
                                                      "function [default 5]", show_default=False)] = None,
    deploy_branch: Annotated[str | None, typer.Option("--deploy-branch", help="Branch whose pushes deploy "
                                                      "[env ZEROSERVE_DEPLOY_BRANCH; default main]",
                                                      show_default=False)] = None,
    queue_limit: Annotated[int | None, typer.Option("--queue-limit", help="Requests held per revision while "
                                                    "no replica is free [env ZEROSERVE_QUEUE_LIMIT; default "
                                                    "10000]", show_default=False)] = None,
) -> None:
    """Run the platform until Ctrl-C: function URLs (activator, autoscaler, replicas), /api/v1, /git/."""
    from zeroserve.up import run_platform

    try:
        settings = Settings.load(port=port, host=host, data_dir=data, artifacts=artifacts, domain=domain,
                                 keep_unrouted=keep_unrouted, deploy_branch=deploy_branch,
                                 queue_limit=queue_limit)
    except SettingsError as exc:
        fail(str(exc))
    try:
        run_platform(settings)
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        fail(str(exc))
