"""A tiny ASGI runtime used as the supervisor's app factory in tests (module `echo_app`, on PYTHONPATH).

Load behaviour follows the function directory: `model.json` must parse (a corrupt one raises, like a
bad ONNX file would); env `ECHO_EXIT_ON_LOAD=<code>` makes the load exit the process outright.
GET /debug reports what the replica process sees (pid, uid, env, rlimits, cwd) so tests check limits there;
`model.json` {"allocate_mb": N} makes the load allocate N MiB (a model too big for resources.memory);
env `ECHO_PROBE` (paths, separated by ":") makes /debug say which of them this process may read.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any


class ModelLoadError(RuntimeError):
    pass


def create_app(function_dir: Path, *, manifest: Any = None, revision: str | None = None) -> Any:
    exit_code = os.environ.get("ECHO_EXIT_ON_LOAD")
    if exit_code:
        os._exit(int(exit_code))
    model_path = Path(function_dir) / "model.json"
    try:
        model = json.loads(model_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model file model.json could not be loaded: {exc}") from None
    model["ballast"] = bytearray(int(model.get("allocate_mb", 0)) << 20)
    return EchoApp(model, manifest.name if manifest is not None else "echo", revision)


class EchoApp:
    def __init__(self, model: dict[str, Any], name: str, revision: str | None):
        self.model = model
        self.name = name
        self.revision = revision

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/v2/health/ready":
            status, payload = 200, {"ready": True}
        elif path == f"/v2/models/{self.name}/infer" and scope["method"] == "POST":
            request = json.loads(body)
            status, payload = 200, {"model_name": self.name, "outputs": request.get("inputs", []),
                                    "pid": os.getpid()}
        elif path == "/debug":
            keys = ("OMP_NUM_THREADS", "ZEROSERVE_THREADS", "GREETING", "OPENBLAS_NUM_THREADS",
                    "ORT_DISABLE_TELEMETRY")
            status, payload = 200, {
                "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "uid": os.getuid(),
                "gid": os.getgid(), "groups": os.getgroups(),
                "env": {key: os.environ.get(key) for key in keys}, "env_names": sorted(os.environ),
                "rlimit_data": list(resource.getrlimit(resource.RLIMIT_DATA)),
                "threads": len(os.listdir("/proc/self/task")),
                "open_files": sorted(_open_files()),
                "probe": {path: _probe(path) for path in os.environ.get("ECHO_PROBE", "").split(":") if path},
            }
        else:
            status, payload = 404, {"error": f"no route for {path}"}
        data = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        if self.revision:
            headers.append((b"zeroserve-revision", self.revision.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def _open_files() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return found


def _probe(path: str) -> str:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
        return "readable"
    except OSError as exc:
        return type(exc).__name__
