"""Serve one function directory with uvicorn (uvloop + httptools, no access log).

`zeroserve serve DIR` calls `serve`; `python -m functions.server DIR [--port P | --uds PATH]` does
the same without the CLI. Port 0 picks a free port; the ready line names the one bound, so a parent
process can read it instead of racing for a free port. `zeroserve serve --artifact URI` fetches and
verifies a revision's artifact into a private directory, then execs this module on it with
`--remove-on-exit` naming that directory. `--grpc-port P` also serves the Open Inference Protocol over
gRPC (functions/grpc_server.py), started once the REST server listens; its own line follows.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import uvicorn

from functions.app import FunctionApp, create_app
from functions.connection_limits import ConnectionLimits
from functions.http_protocol import limited_http_protocol
from functions.loaders import LoadError
from protocol.manifest import ManifestError

READY_PREFIX = "zeroserve: serving"


class _Server(uvicorn.Server):
    """uvicorn's server, printing one line with the real URL once it accepts connections."""

    def __init__(self, config: uvicorn.Config, app: FunctionApp, grpc_port: int | None = None):
        super().__init__(config)
        self._function_app = app
        self._grpc_port = grpc_port
        self._grpc_server: Any = None

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        config = self.config
        if config.uds:
            base = f"unix:{config.uds}"
        else:
            port = config.port
            for server in self.servers:
                for sock in server.sockets:
                    port = sock.getsockname()[1]
            base = f"http://{config.host}:{port}"
        app = self._function_app
        revision = f" revision {app.revision}" if app.revision else ""
        print(f"{READY_PREFIX} function '{app.model}'{revision} ({app.function.source}) at {base} "
              f"- try {base}/v2/models/{app.model}", flush=True)
        if self._grpc_port is not None:
            # Imported here: grpc's core starts threads with its first server, and only this process serves it.
            try:
                from functions.grpc_server import grpc_address, start_grpc_server
            except ImportError as exc:  # the runtime image installs only what REST needs
                raise SystemExit(f"zeroserve: --grpc-port needs grpcio and protobuf ({exc})") from None

            self._grpc_server, port = await start_grpc_server(app, grpc_address(config.host, self._grpc_port))
            print(f"{READY_PREFIX} gRPC (inference.GRPCInferenceService) for '{app.model}' at "
                  f"{grpc_address(config.host, port)}", flush=True)

    async def shutdown(self, sockets: list | None = None) -> None:
        if self._grpc_server is not None:
            await self._grpc_server.stop(self.config.timeout_graceful_shutdown)
        await super().shutdown(sockets)


def serve(function_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, uds: str | None = None,
          revision: str | None = None, remove_on_exit: str | Path | None = None, grpc_port: int | None = None) -> None:
    """Serve until stopped; `remove_on_exit` (a private copy of the function) is deleted afterwards."""
    if remove_on_exit is None:
        _serve(function_dir, host, port, uds, revision, grpc_port)
        return
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler that was
    # there before it: with the default one the process would die before the directory is removed.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_signal)
    try:
        _serve(function_dir, host, port, uds, revision, grpc_port)
    finally:
        shutil.rmtree(remove_on_exit, ignore_errors=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # the status a shell reports for a process killed by that signal


def _serve(function_dir: str | Path, host: str, port: int, uds: str | None, revision: str | None,
           grpc_port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(function_dir, revision=revision)
    except (ManifestError, LoadError) as exc:
        print(f"zeroserve: cannot serve {function_dir}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    # The platform's own HTTP protocol and default connection limits: `zeroserve serve --host 0.0.0.0`
    # faces clients directly, and the activator benchmark compares the two servers on equal terms.
    config = uvicorn.Config(
        app, host=host, port=port, uds=uds, loop="uvloop", http=limited_http_protocol(ConnectionLimits()),
        lifespan="on", access_log=False, log_level="warning",
    )
    _Server(config, app, grpc_port).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m functions.server", description=__doc__.splitlines()[0])
    parser.add_argument("function_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--uds", default=None, help="serve on this Unix socket instead of TCP")
    parser.add_argument("--revision", default=None, help="revision name sent in the zeroserve-revision header")
    parser.add_argument("--remove-on-exit", default=None, metavar="DIR",
                        help="delete DIR (a private copy of the function) when the server stops")
    parser.add_argument("--grpc-port", type=int, default=None,
                        help="also serve the Open Inference Protocol over gRPC on this TCP port (0: any free port)")
    args = parser.parse_args(argv)
    serve(args.function_dir, host=args.host, port=args.port, uds=args.uds, revision=args.revision,
          remove_on_exit=args.remove_on_exit, grpc_port=args.grpc_port)


if __name__ == "__main__":
    main()
