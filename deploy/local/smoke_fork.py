"""Build smoke tests forked from the platform's zygote: what `revisions.smoke_sandbox.SmokeSandbox.fork` runs.

A deploy's smoke test in a fresh interpreter spends most of its time importing numpy and ONNX Runtime;
the zygote has them imported, so a child forked from it (deploy.local.smoke_child) only confines itself,
loads the function and runs its sample. Same request, same confinement (confined_smoke.run_request): the
allowlisted environment plus the function's env, its limits, the function's own uid, death with the zygote.

Builds run on worker threads; the zygote belongs to the supervisor's event loop, so `run` hands the fork to
that loop and waits. Until the data plane has started (`attach`), or when the runtime's zygote is not
fork-safe, `run` returns None and the builder starts a fresh interpreter, as before.

With a file system view (the platform runs as root), a forked child sees what the zygote's view holds (the
runtime, the run directory, the artifact store), so smoke workspaces go under the run directory
(`scratch_dir`), in a directory others may cross but not list; the child's own view then adds nothing, and
it sees what the function's replicas see.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

from deploy.local.launcher import LaunchError, ZygoteLauncher
from deploy.local.messages import ZygoteKind
from deploy.local.supervisor import Supervisor

SMOKE_DIR_NAME = "smoke"


class SmokeTimeout(TimeoutError):
    pass


class ForkedSmoke:
    def __init__(self, run_dir: Path):
        self.scratch_dir = Path(run_dir) / SMOKE_DIR_NAME
        self._supervisor: Supervisor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self.forked = 0   # smoke children forked so far (the rest, if any, were fresh interpreters)

    def attach(self, supervisor: Supervisor) -> None:
        """From now on (called on the supervisor's loop, once it has started), smoke children are forked."""
        self._supervisor = supervisor
        self._loop = asyncio.get_running_loop()
        self.scratch_dir.mkdir(mode=0o711, exist_ok=True)
        os.chmod(self.scratch_dir, 0o711)

    def detach(self) -> None:
        self._supervisor = None
        self._loop = None

    def run(self, request: bytes, runtime: str | None, output: tuple[int, int], timeout: float) -> int | None:
        """Run the smoke child to its exit (on a build thread); its exit status, or None: no fork here, spawn one.

        Raises SmokeTimeout when it runs past `timeout` (it and what it started are killed).
        """
        loop, supervisor = self._loop, self._supervisor
        if loop is None or supervisor is None or loop.is_closed():
            return None
        kind: ZygoteKind = "torch" if runtime == "torch" else "default"
        future = asyncio.run_coroutine_threadsafe(self._run(supervisor, kind, request, output, timeout), loop)
        try:
            return future.result(timeout + 10.0)
        except LaunchError:
            return None

    async def _run(self, supervisor: Supervisor, kind: ZygoteKind, request: bytes, output: tuple[int, int],
                   timeout: float) -> int | None:
        launcher = supervisor.launcher(kind)
        if not isinstance(launcher, ZygoteLauncher):
            return None
        process = await launcher.fork_smoke(f"smoke-{next(self._ids)}", request, output)
        if process is None:
            return None
        self.forked += 1
        try:
            await asyncio.wait_for(asyncio.shield(process.exited), timeout)
        except TimeoutError:
            raise SmokeTimeout(f"the smoke child ran past {timeout:g} s") from None
        finally:
            _kill_group(process.pid)  # what the function started and left behind goes with it
            await asyncio.wait_for(asyncio.shield(process.exited), 5.0)
        await process.exit_description()  # the zygote reports the status once it has reaped the child
        process.close()
        return process.returncode if process.returncode is not None else 1


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
