"""Run a supervisor with two echo replicas, print its processes as one JSON line, then wait to be killed."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from deploy.local import Supervisor
from protocol.manifest import load_manifest


async def main(run_dir: Path, function_dir: Path) -> None:
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_changed(revision: str, endpoints: list) -> None:
        if len(endpoints) == 2 and not ready.done():
            ready.set_result(None)

    supervisor = Supervisor(run_dir, on_replicas_changed=on_changed, on_start_failed=lambda r, e: None,
                            app_factory="echo_app:create_app")
    await supervisor.start()
    supervisor.register_revision("echo-00001", function_dir, load_manifest(function_dir))
    await supervisor.set_scale("echo-00001", 2)
    await ready
    print(json.dumps({"zygote": supervisor.zygotes()["default"]["pid"],
                      "replicas": [r.pid for r in supervisor.replicas("echo-00001")],
                      "sockets": [r.socket_path for r in supervisor.replicas("echo-00001")]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
