"""function.yaml + revision + artifact -> the parameters of boto3's Lambda calls: pure functions, no I/O.

The contract (docs/lambda.md):

- Lambda function name = the function's name, with an optional prefix from the settings.
- The function is a container image (`PackageType: Image`): the runtime image from the settings, its
  command the handler `deploy.aws_lambda.handler.handler`. What makes a revision is its configuration:
  `Environment` = the function's `env` plus ZEROSERVE_ARTIFACT (the artifact URI, pinned by digest) and
  ZEROSERVE_REVISION; `Timeout` = `timeout_seconds`; `MemorySize` = `resources.memory`.
- Each revision = one `publish_version` whose `Description` is the revision name. Versions are
  immutable, so a revision is published once and found again by that description.
- Keys Lambda has no counterpart for (the KPA's windows and rates, containerConcurrency, batching,
  threads, gpu, targets) become notes for the deploy log: "not applicable on Lambda".

Lambda's own limits are checked here, before any call, with messages naming the rule (Timeout at most
900 s, MemorySize 128-10,240 MB, 4 KB of environment, reserved variable names, function names of at
most 64 characters), so AWS never gets a request it would refuse halfway through a deploy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from protocol.durations import format_duration
from protocol.manifest import Batching, FunctionManifest, Resources, Scaling
from revisions.artifact_uri import ArtifactURIError, check_remote_artifact_uri, remote_artifact_uri

ARTIFACT_ENV = "ZEROSERVE_ARTIFACT"
REVISION_ENV = "ZEROSERVE_REVISION"
S3_ENDPOINT_ENV = "ZEROSERVE_S3_ENDPOINT_URL"
# What the image runs (the Dockerfile's `lambda` stage sets the same CMD; written here too so a
# function never depends on which stage an image was built from).
HANDLER = "deploy.aws_lambda.handler.handler"
# Tags on the Lambda function: the platform changes or deletes only functions it created.
MANAGED_BY_TAG = "managed-by"
MANAGED_BY = "zeroserve"
FUNCTION_TAG = "zeroserve-function"

# Lambda's quotas (developer guide, "Lambda quotas").
MAX_TIMEOUT_SECONDS = 900
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10_240
MAX_ENVIRONMENT_BYTES = 4096
MAX_FUNCTION_NAME = 64
# Lambda's own default (128 MB) cannot hold Python, numpy and onnxruntime; 1,024 MB also buys more CPU
# (Lambda gives CPU in proportion to memory: one vCPU at 1,769 MB).
DEFAULT_MEMORY_MB = 1024
_MIB = 1 << 20

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]*$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_ROLE = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# Lambda pulls images only from a private ECR repository in the function's own region.
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$")

# Variables Lambda sets itself and refuses in a function's configuration ("Defined runtime
# environment variables", the reserved ones) ...
LAMBDA_RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})
# ... and the ones the zeroserve runtime reads.
RUNTIME_ENV = frozenset({ARTIFACT_ENV, REVISION_ENV, S3_ENDPOINT_ENV})

_DEFAULT_SCALING = Scaling()
# Keys of `scaling` with a Lambda counterpart (routing.py maps them); every other one is the KPA's.
_SCALING_ON_LAMBDA = frozenset({"min_scale", "max_scale"})
_DURATION_KEYS = frozenset({"window", "scale_down_delay", "scale_to_zero_grace_period", "scale_to_zero_retention"})


class LambdaMappingError(ValueError):
    """A function, revision or route that cannot become Lambda calls; the message names the field and rule."""


@dataclass(frozen=True)
class LambdaSettings:
    """What the platform knows about the AWS account (ZEROSERVE_AWS_REGION, ZEROSERVE_LAMBDA_ROLE, ...)."""

    region: str  # the functions' region (ZEROSERVE_AWS_REGION)
    role: str  # the execution role's ARN (ZEROSERVE_LAMBDA_ROLE)
    image: str  # the runtime image in ECR, same region (ZEROSERVE_LAMBDA_IMAGE)
    function_prefix: str = ""  # prepended to every Lambda function name ("zs-" -> "zs-iris")
    s3_endpoint: str | None = None  # an S3-compatible store's endpoint as the functions reach it

    def check(self) -> None:
        if not isinstance(self.region, str) or not _REGION.match(self.region):
            raise LambdaMappingError(f"settings: the AWS region {self.region!r} is not a region name such as "
                                     "'eu-west-1'; set ZEROSERVE_AWS_REGION (see docs/lambda.md)")
        if not isinstance(self.role, str) or not _ROLE.match(self.role):
            raise LambdaMappingError(f"settings: the Lambda execution role {self.role!r} is not an IAM role ARN "
                                     "(arn:aws:iam::123456789012:role/NAME); set ZEROSERVE_LAMBDA_ROLE")
        image = _ECR_IMAGE.match(self.image) if isinstance(self.image, str) else None
        if image is None:
            raise LambdaMappingError(
                f"settings: the Lambda image {self.image!r} is not an ECR image reference "
                "(ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG or @sha256:DIGEST): Lambda runs images only "
                "from Amazon ECR; set ZEROSERVE_LAMBDA_IMAGE")
        if image.group("region") != self.region:
            raise LambdaMappingError(
                f"settings: the Lambda image is in region {image.group('region')}, the functions in {self.region}: "
                "Lambda pulls images only from an ECR repository in the function's own region")
        if not isinstance(self.function_prefix, str) or not _PREFIX.match(self.function_prefix):
            raise LambdaMappingError(f"settings: the function prefix {self.function_prefix!r} may hold only "
                                     "letters, digits, '-' and '_' (Lambda's rule for function names)")


def function_name(function: str, settings: LambdaSettings) -> str:
    """The Lambda function's name: the prefix from the settings, then the function's name."""
    name = f"{settings.function_prefix}{function}"
    if not _FUNCTION_NAME.match(name):
        raise LambdaMappingError(f"function '{function}': Lambda function name {name!r} may hold only letters, "
                                 "digits, '-' and '_'")
    if len(name) > MAX_FUNCTION_NAME:
        raise LambdaMappingError(f"function '{function}': Lambda function name '{name}' is {len(name)} characters; "
                                 f"Lambda allows at most {MAX_FUNCTION_NAME} (shorten the name or the prefix)")
    return name


def lambda_artifact_uri(store: str | None, digest: str) -> str:
    """The ZEROSERVE_ARTIFACT for a revision, refusing stores Lambda cannot reach (anything but s3://)."""
    try:
        return remote_artifact_uri(store, digest, target="Lambda", reached_by="the functions",
                                   hint="see docs/lambda.md")
    except ArtifactURIError as exc:
        raise LambdaMappingError(str(exc)) from None


@dataclass(frozen=True)
class FunctionSpec:
    """One revision as Lambda configuration: what $LATEST must hold when the revision is published."""

    function: str  # the zeroserve function
    name: str  # the Lambda function name
    revision: str
    image: str
    role: str
    timeout: int
    memory_mb: int
    environment: dict[str, str]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def description(self) -> str:
        return f"zeroserve function {self.function}"

    def create_parameters(self) -> dict[str, Any]:
        """create_function: an image function, not published (publish_revision publishes it)."""
        return {
            **self.configuration_parameters(),
            "PackageType": "Image",
            "Code": {"ImageUri": self.image},
            "Tags": {MANAGED_BY_TAG: MANAGED_BY, FUNCTION_TAG: self.function},
            "Publish": False,
        }

    def code_parameters(self) -> dict[str, Any]:
        """update_function_code: the image (Lambda resolves a tag to a digest, so a version keeps its image)."""
        return {"FunctionName": self.name, "ImageUri": self.image}

    def configuration_parameters(self) -> dict[str, Any]:
        """update_function_configuration: everything else that makes this revision."""
        return {
            "FunctionName": self.name,
            "ImageConfig": {"Command": [HANDLER]},
            "Role": self.role,
            "Timeout": self.timeout,
            "MemorySize": self.memory_mb,
            "Environment": {"Variables": dict(self.environment)},
            "Description": self.description,
        }

    def publish_parameters(self) -> dict[str, Any]:
        """publish_version: the Description is the revision name (how the revision is found again)."""
        return {"FunctionName": self.name, "Description": self.revision}


def function_spec(manifest: FunctionManifest, revision: str, artifact_uri: str,
                  settings: LambdaSettings) -> FunctionSpec:
    """The Lambda configuration of `revision` (built from `manifest`, stored at `artifact_uri`).

    Raises LambdaMappingError naming the field and Lambda's rule.
    """
    settings.check()
    function = manifest.name
    _check_revision(function, revision)
    _check_artifact_uri(revision, artifact_uri)
    return FunctionSpec(
        function=function,
        name=function_name(function, settings),
        revision=revision,
        image=settings.image,
        role=settings.role,
        timeout=lambda_timeout(manifest),
        memory_mb=memory_size_mb(manifest),
        environment=lambda_environment(manifest, revision, artifact_uri, settings),
        notes=tuple(not_applicable_notes(manifest)),
    )


def lambda_timeout(manifest: FunctionManifest) -> int:
    if manifest.timeout_seconds > MAX_TIMEOUT_SECONDS:
        raise LambdaMappingError(
            f"function '{manifest.name}': timeout_seconds: {manifest.timeout_seconds} is more than Lambda allows: "
            f"a Lambda function's Timeout is at most {MAX_TIMEOUT_SECONDS} seconds (15 minutes)")
    return manifest.timeout_seconds


def memory_size_mb(manifest: FunctionManifest) -> int:
    """`resources.memory` in Lambda's MemorySize unit (MB of 2^20 bytes), rounded up; 1,024 when not set."""
    size = manifest.resources.memory_bytes
    if size is None:
        return DEFAULT_MEMORY_MB
    mb = math.ceil(size / _MIB)
    if not MIN_MEMORY_MB <= mb <= MAX_MEMORY_MB:
        raise LambdaMappingError(
            f"function '{manifest.name}': resources.memory: {manifest.resources.memory} is {mb:,} MB; a Lambda "
            f"function's MemorySize must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB:,} MB")
    return mb


def lambda_environment(manifest: FunctionManifest, revision: str, artifact_uri: str,
                       settings: LambdaSettings) -> dict[str, str]:
    """`env` plus what the runtime reads; refuses names Lambda or the runtime reserve, and more than 4 KB."""
    function = manifest.name
    for name in sorted(manifest.env):
        if name in LAMBDA_RESERVED_ENV:
            raise LambdaMappingError(f"function '{function}': env.{name}: Lambda sets {name} itself and refuses it "
                                     "in a function's environment (a reserved variable); remove it")
        if name in RUNTIME_ENV:
            raise LambdaMappingError(f"function '{function}': env.{name}: reserved for the zeroserve runtime on "
                                     "Lambda; rename it")
    environment = {name: manifest.env[name] for name in sorted(manifest.env)}
    environment[ARTIFACT_ENV] = artifact_uri
    environment[REVISION_ENV] = revision
    if settings.s3_endpoint:
        environment[S3_ENDPOINT_ENV] = settings.s3_endpoint
    size = sum(len(k.encode()) + len(v.encode()) for k, v in environment.items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise LambdaMappingError(
            f"function '{function}': env: the environment is {size:,} bytes with the runtime's own variables; Lambda "
            f"allows at most {MAX_ENVIRONMENT_BYTES:,} bytes (4 KB) of environment variables per function")
    return environment


def not_applicable_notes(manifest: FunctionManifest) -> list[str]:
    """What the deploy log says about keys this function sets that Lambda has no counterpart for."""
    notes: list[str] = []
    s = manifest.scaling
    kpa = [key for key in Scaling.model_fields if key not in _SCALING_ON_LAMBDA
           and getattr(s, key) != getattr(_DEFAULT_SCALING, key)]
    if kpa:
        shown = ", ".join(f"scaling.{key}={_shown(key, getattr(s, key))}" for key in kpa)
        notes.append(f"not applicable on Lambda: {shown}: Lambda scales by itself, one execution environment "
                     "per concurrent request; only min_scale (provisioned concurrency) and max_scale (reserved "
                     "concurrency) carry over")
    if manifest.concurrency not in (0, 1):
        notes.append(f"not applicable on Lambda: concurrency={manifest.concurrency}: an execution environment "
                     "serves one request at a time")
    if manifest.batching is not None and manifest.batching != Batching():
        notes.append("not applicable on Lambda: batching: an execution environment sees one request at a time, "
                     "so batches hold one request")
    if manifest.resources.threads is not None and manifest.resources.threads != Resources().threads:
        notes.append(f"not applicable on Lambda: resources.threads={manifest.resources.threads}: Lambda gives CPU "
                     "in proportion to MemorySize (one vCPU at 1,769 MB)")
    if manifest.resources.gpu:
        notes.append("not applicable on Lambda: resources.gpu=true: Lambda has no GPUs; the model runs on CPU")
    if "lambda" in manifest.targets and len(manifest.targets) > 1:
        notes.append(f"not applicable on Lambda: targets={', '.join(manifest.targets)}: the other targets serve "
                     "the same revisions; Lambda has no such setting")
    return notes


def _shown(key: str, value: object) -> str:
    if key in _DURATION_KEYS and isinstance(value, int | float):
        return format_duration(float(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_revision(function: str, revision: str) -> None:
    if not isinstance(revision, str) or not revision.startswith(f"{function}-") or len(revision) > 256:
        raise LambdaMappingError(f"revision {revision!r}: not a revision of function '{function}' "
                                 f"(revision names start with '{function}-')")


def _check_artifact_uri(revision: str, artifact_uri: str) -> None:
    try:
        check_remote_artifact_uri(artifact_uri, target="Lambda", reached_by="Lambda")
    except ArtifactURIError as exc:
        raise LambdaMappingError(f"revision '{revision}': {exc}") from None


__all__ = [
    "ARTIFACT_ENV", "DEFAULT_MEMORY_MB", "FUNCTION_TAG", "FunctionSpec", "HANDLER", "LAMBDA_RESERVED_ENV",
    "LambdaMappingError", "LambdaSettings", "MANAGED_BY", "MANAGED_BY_TAG", "MAX_ENVIRONMENT_BYTES",
    "MAX_FUNCTION_NAME", "MAX_MEMORY_MB", "MAX_TIMEOUT_SECONDS", "MIN_MEMORY_MB", "REVISION_ENV", "RUNTIME_ENV",
    "S3_ENDPOINT_ENV", "function_name", "function_spec", "lambda_artifact_uri", "lambda_environment",
    "lambda_timeout", "memory_size_mb", "not_applicable_notes",
]
