"""`python -P -m functions.isolation.confined_smoke < request.json`: the build's smoke child, confined.

The revision builder starts this as a fresh process with the platform's allowlisted environment only
(or, on the local platform, forks it from the zygote: `run_request`, deploy.local.smoke_fork), and
writes one JSON request on stdin:
  {"function_dir": str, "confinement": Confinement, "view": [dirs], "preimports": [modules],
   "parent_pid": int}
The function's own `env` travels inside the request, not in the environment of the exec: variables
such as LD_PRELOAD or PYTHONPATH must never act on a process that still runs as root.

This process imports the runtime (platform code) first, so the memory limit counts what the function
loads, not the runtime; then enters its view, confines itself, and only then runs `functions.smoke`,
whose load of the function is the first user code. Its output is functions.smoke's one JSON line.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from functions.isolation.confine import Confinement, ConfinementError, confine
from functions.isolation.view import ViewError, enter_view, runtime_paths


def main() -> int:
    try:
        request: dict[str, Any] = json.loads(sys.stdin.read())
    except ValueError as exc:
        print(json.dumps({"ok": False, "error": f"smoke child: unreadable request: {exc}"}), flush=True)
        return 2
    return run_request(request)


def run_request(request: dict[str, Any]) -> int:
    """Import the runtime, enter the view, confine, then smoke-test; also what a zygote's smoke child runs
    (deploy.local.smoke_fork: the runtime is imported already, and `parent_pid` is the zygote)."""
    from functions import smoke

    for module in request.get("preimports", []):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the smoke test reports the real import error itself
            pass
    try:
        if request.get("view"):
            enter_view([*runtime_paths(), *request["view"]])
        confine(Confinement.from_json(request["confinement"]), parent_pid=request.get("parent_pid"))
    except (ViewError, ConfinementError, OSError) as exc:
        print(json.dumps({"ok": False, "error": f"the smoke child could not be confined: {exc}"}), flush=True)
        return 1
    return smoke.main([request["function_dir"]])


if __name__ == "__main__":
    raise SystemExit(main())
