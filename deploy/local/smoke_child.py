"""A build's smoke child forked from the zygote: the same confinement as the fresh interpreter's, without its start.

`functions.isolation.confined_smoke` started as a fresh interpreter imports numpy and ONNX Runtime first
(most of a second); forked from the zygote (deploy.local.smoke_fork), the child has them already. It reads
the same request (a memfd instead of stdin), leads its own process group (the builder kills it, and all the
function left running, when it exits), and then runs `confined_smoke.run_request`: the view, then
`confine` (the allowlisted environment plus the function's env, limits, the function's uid, death with the
zygote), then the smoke test, whose load of the function is the first user code. Its stdout and stderr
are the builder's files; its exit status is the smoke test's.
"""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

from deploy.local.replica import name_process

SMOKE_PROCESS_NAME = "zeroserve-smoke"  # 15 bytes: what /proc/PID/comm holds


def run_smoke_child(request_fd: int, zygote_pid: int) -> NoReturn:
    code = 2
    try:
        os.setsid()
        name_process(SMOKE_PROCESS_NAME)  # its command line is the zygote's; ps and top show this
        chunks = []
        while chunk := os.read(request_fd, 1 << 16):
            chunks.append(chunk)
        os.close(request_fd)
        from functions.isolation.confined_smoke import run_request

        request = json.loads(b"".join(chunks))
        request["parent_pid"] = zygote_pid  # our parent: the builder's pid names the platform
        code = run_request(request)
    except BaseException as exc:  # noqa: BLE001 - the builder reads one JSON line and the exit status
        print(json.dumps({"ok": False, "error": f"smoke child: {type(exc).__name__}: {exc}"}), flush=True)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
