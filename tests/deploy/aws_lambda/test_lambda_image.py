"""The Dockerfile's `lambda` stage, checked without a container engine (as tests/deploy/knative does for `runtime`).

The stage's command must be Lambda's runtime interface client running the handler the Lambda target
configures; `runtime` must stay the last stage (a plain `docker build .` is the Knative image). The
handler's init is run as a process with an import recorder, and the stage's dependency list (the build
stage's RUNTIME_REQUIREMENTS and onnxruntime, plus LAMBDA_REQUIREMENTS, with their own dependencies)
must provide every module it loads. awslambdaric itself is not installed here: the stage installs it.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from deploy.aws_lambda.mapping import HANDLER
from revisions.store_s3 import S3ArtifactStore
from tests.deploy.aws_lambda.conftest import aws_client
from tests.deploy.knative.test_runtime_image import (
    DOCKERFILE,
    OPPORTUNISTIC,
    OUR_PACKAGES,
    RECORDER,
    parse_dockerfile,
    requirement_closure,
    stage_args,
)
from tests.functions.artifact_runtime import REPO, S3_CREDENTIALS, artifact_uri, put_function, runtime_env

IRIS = REPO / "examples" / "iris"


def stages() -> dict[str | None, Any]:
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    assert parsed[-1].name == "runtime"  # the default target stays the Knative image
    return {stage.name: stage for stage in parsed}


def test_the_lambda_stage_runs_the_handler_under_the_runtime_interface_client() -> None:
    by_name = stages()
    lambda_stage, build = by_name["lambda"], by_name["lambda-build"]
    assert build.base == "build"
    assert "$LAMBDA_REQUIREMENTS" in " ".join(build.all("RUN"))
    assert {"mangum", "awslambdaric"} <= {canonicalize_name(r.split(">")[0].split("=")[0])
                                          for r in stage_args(build)["LAMBDA_REQUIREMENTS"].split()}
    assert lambda_stage.all("COPY") == ["--from=lambda-build /opt/zeroserve /opt/zeroserve"]
    (entrypoint,) = lambda_stage.all("ENTRYPOINT")
    (command,) = lambda_stage.all("CMD")
    assert json.loads(entrypoint) == ["/opt/zeroserve/bin/python", "-m", "awslambdaric"]
    assert json.loads(command) == [HANDLER]  # the same handler create_function's ImageConfig names


def test_the_stage_installs_everything_the_handlers_init_imports(tmp_path: Path, moto_endpoint: str) -> None:
    client = aws_client("s3", moto_endpoint)
    bucket = "zs-lambda-image"
    client.create_bucket(Bucket=bucket)
    digest = put_function(S3ArtifactStore(bucket, "zeroserve", client=client), IRIS)
    recorded = tmp_path / "modules.txt"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RECORDER.format(out=str(recorded)))
    env = runtime_env(tmp_path, **S3_CREDENTIALS, AWS_ENDPOINT_URL=moto_endpoint, PYTHONPATH=f"{hook}:{REPO}",
                      ZEROSERVE_ARTIFACT=artifact_uri(f"s3://{bucket}/zeroserve", digest))
    result = subprocess.run([sys.executable, "-c", f"import {HANDLER.rpartition('.')[0]}"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    modules = set(recorded.read_text().split())
    assert {"mangum", "boto3", "onnxruntime", "functions", "deploy"} <= modules

    by_name = stages()
    build_args = stage_args(by_name["build"])
    provided = requirement_closure(build_args["RUNTIME_REQUIREMENTS"].split() + [build_args["ONNXRUNTIME"]]
                                   + stage_args(by_name["lambda-build"])["LAMBDA_REQUIREMENTS"].split())
    by_module = importlib.metadata.packages_distributions()
    needed = {canonicalize_name(dist): module for module in modules - OUR_PACKAGES
              for dist in by_module.get(module, []) if canonicalize_name(dist) not in {"zeroserve", *OPPORTUNISTIC}}
    missing = sorted(f"{dist} (for import {module})" for dist, module in needed.items() if dist not in provided)
    assert not missing, f"the handler imports what the lambda stage does not install: {missing}"
