"""The runtime on Lambda: one revision's artifact fetched, verified and loaded once per execution environment.

Lambda runs the image's handler (`deploy.aws_lambda.handler.handler`) in a long-lived process per
execution environment and imports the handler module once, at init. So everything slow happens here,
at import, outside the request path:

1. Read ZEROSERVE_ARTIFACT (`s3://bucket/prefix@sha256:<hex>`, set by the Lambda target per version).
2. Fetch the artifact by digest into a private directory under /tmp (the only writable place on
   Lambda) with revisions.artifact_fetch: every file is checked against its sha256 before anything is
   loaded; a tampered file fails the init naming the file, and Lambda reports the init error.
3. Load the model (functions.app.create_app) and wrap the ASGI app in mangum with lifespan="off":
   mangum would otherwise run the ASGI lifespan around every invocation (mangum #342), and the app
   needs none here since the model is already loaded.

The store's credentials are the execution role's (boto3's chain reads them from the environment Lambda
gives the process); give that role read access to the artifact prefix only (docs/lambda.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mangum import Mangum

from functions.app import FunctionApp, create_app
from protocol.manifest import FunctionManifest, ManifestError, load_manifest
from revisions.artifact_fetch import fetch_artifact
from revisions.artifact_uri import ArtifactURIError, parse_artifact_uri
from revisions.store import ArtifactError, remove_tree

ARTIFACT_ENV = "ZEROSERVE_ARTIFACT"
REVISION_ENV = "ZEROSERVE_REVISION"
S3_ENDPOINT_ENVS = ("ZEROSERVE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class LambdaInitError(RuntimeError):
    """The execution environment cannot serve: Lambda reports this message as the init error."""


@dataclass
class LambdaRuntime:
    handler: LambdaHandler
    app: FunctionApp
    manifest: FunctionManifest
    artifact_dir: Path
    work_dir: Path
    fetch_seconds: float
    load_seconds: float

    def close(self) -> None:
        """Stop the model's threads and remove the private directory (tests; Lambda just freezes the process)."""
        self.app.runner.close()
        remove_tree(self.work_dir)


def prepare(environ: MutableMapping[str, str] | None = None) -> LambdaRuntime:
    """Fetch, verify and load the revision ZEROSERVE_ARTIFACT names; raises LambdaInitError saying why not.

    With the process environment (the default) HOME is pointed at a private directory under /tmp, since
    the rest of a Lambda's file system is read-only and a handler's libraries may cache under ~.
    """
    env = os.environ if environ is None else environ
    uri_text = env.get(ARTIFACT_ENV, "")
    try:
        uri = parse_artifact_uri(uri_text)
    except ArtifactURIError as exc:
        raise _failed(f"{ARTIFACT_ENV}: {exc}") from None
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="zeroserve-lambda-", dir=env.get("TMPDIR") or None))  # 0700; /tmp on Lambda
    artifact_dir, home = work / "artifact", work / "home"
    endpoint = next((env[name] for name in S3_ENDPOINT_ENVS if env.get(name)), None)
    try:
        fetch_artifact(uri, artifact_dir, endpoint_url=endpoint)
        manifest = load_manifest(artifact_dir)
        home.mkdir(mode=0o700)
    except (ArtifactError, ManifestError, OSError) as exc:
        remove_tree(work)
        raise _failed(f"cannot serve {uri}: {exc}") from None
    fetched = time.perf_counter()
    revision = env.get(REVISION_ENV) or None
    try:
        app = create_app(artifact_dir, manifest=manifest, revision=revision)
    except Exception as exc:  # the user's model or handler: its message is what the author needs
        remove_tree(work)
        raise _failed(f"cannot load {manifest.name} ({revision or uri.digest}): {type(exc).__name__}: {exc}") from None
    loaded = time.perf_counter()
    if environ is None:
        os.environ["HOME"] = str(home)
    print(f"zeroserve: {manifest.name} {revision or ''} fetched {uri.digest[:19]}… from {uri.store}, every file "
          f"verified ({(fetched - started) * 1000:.0f} ms); model loaded ({(loaded - fetched) * 1000:.0f} ms)",
          file=sys.stderr, flush=True)
    return LambdaRuntime(handler=Mangum(app, lifespan="off"), app=app, manifest=manifest, artifact_dir=artifact_dir,
                         work_dir=work, fetch_seconds=fetched - started, load_seconds=loaded - fetched)


def _failed(message: str) -> LambdaInitError:
    print(f"zeroserve: {message}", file=sys.stderr, flush=True)
    return LambdaInitError(message)


__all__ = ["ARTIFACT_ENV", "LambdaInitError", "LambdaRuntime", "REVISION_ENV", "prepare"]
