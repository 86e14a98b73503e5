"""The runtime image (Dockerfile at the repository root), checked without a container engine.

The Dockerfile is parsed; its ENTRYPOINT is run as a process exactly as written, with the environment a
Knative pod would have: the image's ENV, the container env of the Service the translation produces
(ZEROSERVE_ARTIFACT, ...), the Secret's keys (envFrom) and Knative's runtime contract (PORT, K_*). It
must serve the revision from S3 (moto) and pass the Service's own readiness probe. Two deviations, both
for the test machine: the port is 0 (a free one) instead of 8080, and ZEROSERVE_HOST is 127.0.0.1
instead of the image's 0.0.0.0 (servers in tests bind only to loopback). The virtualenv's bin directory
stands in for the image's /opt/zeroserve/bin.

A last test records every module the runtime process loads and checks that the image's dependency list
(RUNTIME_REQUIREMENTS plus onnxruntime, with their own dependencies) provides each of them.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.knative.service import KnativeSettings, knative_service
from protocol.manifest import load_manifest
from revisions.store_s3 import S3ArtifactStore
from revisions.traffic import TrafficTarget
from tests.functions.artifact_runtime import S3_CREDENTIALS, artifact_uri, put_function, running
from tests.revisions.conftest import moto_endpoint, s3_bucket  # noqa: F401  (fixtures: moto's S3 on 127.0.0.1)

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
IRIS = REPO / "examples" / "iris"
IMAGE_VENV_BIN = "/opt/zeroserve/bin"
OUR_PACKAGES = {"protocol", "autoscaler", "functions", "revisions", "activator", "deploy", "zeroserve", "loadtests"}
# Distributions imported when installed, with a fallback when not: their absence from the image changes nothing.
OPPORTUNISTIC = {
    "brotli": "urllib3 decodes brotli responses only when it is installed",
    "certifi": "botocore falls back to its own CA bundle",
}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(ARGs before the first FROM, the stages), with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        elif not stages:
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


def stage_args(stage: Stage) -> dict[str, str]:
    found = {}
    for args in stage.all("ARG"):
        name, _, default = args.partition("=")
        found[name] = default[1:-1] if default.startswith('"') else default
    return found


def stage_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_a_multi_stage_non_root_image_with_accelerator_build_args(dockerfile) -> None:
    global_args, stages = dockerfile
    assert len(stages) >= 2 and stages[-1].name == "runtime"
    build, runtime = stages[0], stages[-1]
    assert runtime.all("COPY") and all(c.startswith("--from=build ") for c in runtime.all("COPY"))
    (user,) = runtime.all("USER")
    assert user.split(":")[0] not in ("root", "0")
    args = stage_args(build)
    assert args["ONNXRUNTIME"] == "onnxruntime" and args["TORCH"] == ""
    install = " ".join(build.all("RUN"))
    assert '"$ONNXRUNTIME"' in install and '"$TORCH"' in install and "$RUNTIME_REQUIREMENTS" in install
    assert global_args["PYTHON_IMAGE"].startswith("python:3.11")


def entrypoint(stages: list[Stage]) -> list[str]:
    runtime = stages[-1]
    (raw,) = runtime.all("ENTRYPOINT")
    command = json.loads(raw)  # exec form: no shell of Docker's own in between
    for cmd in runtime.all("CMD"):
        command += json.loads(cmd)
    return command


def test_the_entrypoint_is_zeroserve_serve_artifact(dockerfile) -> None:
    command = entrypoint(dockerfile[1])
    assert command[:2] == ["/bin/sh", "-c"]
    assert command[2] == 'exec zeroserve serve --artifact "$ZEROSERVE_ARTIFACT"'
    env = stage_env(dockerfile[1][-1])
    assert env["PORT"] == "8080" and env["ZEROSERVE_HOST"] == "0.0.0.0"


def pod_environment(stages: list[Stage], container: dict, secret: dict[str, str], tmp: Path) -> dict[str, str]:
    """What the container's process gets: image ENV, then Knative's and the Service's (later wins)."""
    image_env = stage_env(stages[-1])
    venv_bin = str(Path(sys.executable).parent)
    image_env["PATH"] = image_env["PATH"].replace(IMAGE_VENV_BIN, venv_bin).replace("$PATH", "/usr/bin:/bin")
    env = {**image_env, "HOME": str(tmp), "TMPDIR": str(tmp)}
    env.update(secret)  # envFrom: secretRef
    env.update({item["name"]: item["value"] for item in container["env"]})  # env wins over envFrom
    env.update({"PORT": "0", "K_SERVICE": "iris", "K_CONFIGURATION": "iris", "K_REVISION": "iris-00001"})
    env["ZEROSERVE_HOST"] = "127.0.0.1"
    return env


def test_the_entrypoint_serves_a_revision_as_a_knative_pod(dockerfile, tmp_path: Path, moto_endpoint: str,  # noqa: F811
                                                           s3_bucket) -> None:  # noqa: F811
    client, bucket = s3_bucket
    digest = put_function(S3ArtifactStore(bucket, "zeroserve", client=client), IRIS)
    settings = KnativeSettings(image="registry.example/zeroserve-runtime:test", secret_name="zeroserve-store",
                               s3_endpoint=moto_endpoint)
    service = knative_service(load_manifest(IRIS), "iris-00001", artifact_uri(f"s3://{bucket}/zeroserve", digest),
                              [TrafficTarget.to("iris-00001", 100)], settings).service
    (container,) = service["spec"]["template"]["spec"]["containers"]
    env = pod_environment(dockerfile[1], container, S3_CREDENTIALS, tmp_path)
    with running(entrypoint(dockerfile[1]), env) as pod:
        probe = container["readinessProbe"]["httpGet"]["path"]
        with httpx.Client(base_url=pod.url, timeout=30) as http:
            assert http.get(probe).status_code == 200
            response = http.post("/v2/models/iris/infer", json=json.loads((IRIS / "sample.json").read_text()))
            assert response.status_code == 200, response.text
            assert response.headers["zeroserve-revision"] == "iris-00001"


def requirement_closure(requirements: list[str]) -> set[str]:
    """Canonical names of the distributions `requirements` install here, dependencies included."""
    found: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here, so nothing here can have imported it
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in found:
            continue
        found.update({key, name})
        for text in distribution.requires or []:
            dependency = Requirement(text)
            environments = [{"extra": extra} for extra in sorted(requirement.extras) or [""]] + [{"extra": ""}]
            if dependency.marker is None or any(dependency.marker.evaluate(e) for e in environments):
                pending.append(dependency)
    return {name for name in found if "[" not in name}


RECORDER = """
import sys


class _RecordImports:
    def find_spec(self, name, path=None, target=None):
        with open({out!r}, "a") as out:
            out.write(name.partition(".")[0] + "\\n")
        return None


sys.meta_path.insert(0, _RecordImports())
"""


def test_the_image_installs_everything_the_runtime_imports(dockerfile, tmp_path: Path,
                                                            moto_endpoint: str, s3_bucket) -> None:  # noqa: F811
    client, bucket = s3_bucket
    digest = put_function(S3ArtifactStore(bucket, "zeroserve", client=client), IRIS)
    recorded = tmp_path / "modules.txt"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RECORDER.format(out=str(recorded)))
    settings = KnativeSettings(image="test", s3_endpoint=moto_endpoint)
    service = knative_service(load_manifest(IRIS), "iris-00001", artifact_uri(f"s3://{bucket}/zeroserve", digest),
                              [TrafficTarget.to("iris-00001", 100)], settings).service
    (container,) = service["spec"]["template"]["spec"]["containers"]
    env = pod_environment(dockerfile[1], container, S3_CREDENTIALS, tmp_path)
    env["PYTHONPATH"] = str(hook)  # both processes (fetcher and server) inherit it: the allowlist keeps it
    with running(entrypoint(dockerfile[1]), env) as pod:
        sample = json.loads((IRIS / "sample.json").read_text())
        assert httpx.post(f"{pod.url}/v2/models/iris/infer", json=sample, timeout=30).status_code == 200
    modules = set(recorded.read_text().split())
    assert {"boto3", "onnxruntime", "uvicorn", "functions"} <= modules  # both halves were recorded

    args = stage_args(dockerfile[1][0])
    provided = requirement_closure(args["RUNTIME_REQUIREMENTS"].split() + [args["ONNXRUNTIME"]])
    by_module = importlib.metadata.packages_distributions()
    needed = {canonicalize_name(dist): module for module in modules - OUR_PACKAGES
              for dist in by_module.get(module, []) if canonicalize_name(dist) not in {"zeroserve", *OPPORTUNISTIC}}
    missing = sorted(f"{dist} (for import {module})" for dist, module in needed.items() if dist not in provided)
    assert not missing, f"the runtime imports what the image does not install: {missing}"
    assert re.search(r"(^| )boto3>=", args["RUNTIME_REQUIREMENTS"])
