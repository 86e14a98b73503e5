"""`zeroserve serve --artifact URI`: the runtime outside the platform (a Knative pod, any container).

1. Fetch the revision's artifact by digest (revisions.artifact_fetch): every file is checked against
   its sha256 before anything is loaded; a tampered file is refused by name and the process exits 1.
2. Exec the function server (`python -m functions.server`) on the verified copy with a *new*
   environment: the platform's allowlist (functions.isolation.environment), Knative's runtime contract
   (PORT, K_SERVICE, K_CONFIGURATION, K_REVISION), a private HOME and the function's own `env`.

Why exec rather than serve in this process: the store credentials (AWS_*, from a Kubernetes Secret)
are in this process's environment, and a process's initial environment stays readable in
/proc/self/environ whatever os.environ says later. After exec, the function's code runs in a process
whose environment never held them, as it does on the local platform. The fetch happens first and the
server's imports second, so the split costs one interpreter start (~30 ms), not a second import of
either stack.

Both halves together are what a cold pod pays before its readiness probe (/v2/health/ready) passes;
bench/runtime_start.py measures it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

# Knative's runtime contract: what the container is told about itself (never a secret).
KNATIVE_CONTRACT_NAMES = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")


def serve_artifact(uri_text: str, *, host: str, port: int, revision: str | None = None,
                   grpc_port: int | None = None) -> NoReturn:
    """Fetch, verify, then exec the server; never returns (exits 1 or 2 with a message on failure)."""
    from functions.isolation.environment import function_environment, inherited_environment, with_runtime_on_path
    from protocol.manifest import ManifestError, load_manifest
    from revisions.artifact_fetch import fetch_artifact
    from revisions.artifact_uri import ArtifactURIError, parse_artifact_uri
    from revisions.store import ArtifactError, remove_tree

    try:
        uri = parse_artifact_uri(uri_text)
    except ArtifactURIError as exc:
        hint = "" if uri_text.strip() else " (the runtime image reads it from ZEROSERVE_ARTIFACT: is it set?)"
        _fail(f"--artifact: {exc}{hint}", code=2)
    started = time.perf_counter()
    # One private directory (0700) per start: the artifact and the function's HOME; the server deletes it on exit.
    work = Path(tempfile.mkdtemp(prefix="zeroserve-runtime-"))
    artifact_dir, home = work / "artifact", work / "home"
    try:
        fetch_artifact(uri, artifact_dir)
        manifest = load_manifest(artifact_dir)
        home.mkdir(mode=0o700)
    except (ArtifactError, ManifestError, OSError) as exc:
        remove_tree(work)
        _fail(f"cannot serve {uri}: {exc}")
    print(f"zeroserve: fetched {manifest.name} {uri.digest[:19]}… from {uri.store}, every file verified "
          f"({(time.perf_counter() - started) * 1000:.0f} ms)", flush=True)

    inherited = inherited_environment()
    inherited.update({name: os.environ[name] for name in KNATIVE_CONTRACT_NAMES if name in os.environ})
    env = with_runtime_on_path(function_environment(
        inherited, home=str(home), function_env=manifest.env, threads=manifest.resources.threads))
    argv = [sys.executable, "-P", "-m", "functions.server", str(artifact_dir), "--host", host, "--port", str(port),
            "--remove-on-exit", str(work)]
    if revision:
        argv += ["--revision", revision]
    if grpc_port is not None:
        argv += ["--grpc-port", str(grpc_port)]
    sys.stderr.flush()
    try:
        os.execve(sys.executable, argv, env)
    except OSError as exc:  # only returns on failure
        remove_tree(work)
        _fail(f"cannot start the function server: {exc}")


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"zeroserve: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


__all__ = ["KNATIVE_CONTRACT_NAMES", "serve_artifact"]
