"""Platform settings: one pydantic model, filled from defaults, then `ZEROSERVE_*` environment, then flags.

The data directory holds everything the platform must not lose: the registry database, the artifact
store (unless `artifacts` names S3), the API token and scratch space for builds.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.connection_limits import ConnectionLimits
from zeroserve.datadir import DEFAULT_DATA_DIR, TOKEN_FILE

ENV_PREFIX = "ZEROSERVE_"
# Settings read from the environment, by field name (ZEROSERVE_<NAME>); ZEROSERVE_DATA is the data dir.
_ENV_FIELDS = {"host": "HOST", "port": "PORT", "data_dir": "DATA", "artifacts": "ARTIFACTS", "domain": "DOMAIN",
               "keep_unrouted": "KEEP_UNROUTED", "build_workers": "BUILD_WORKERS",
               "max_upload_bytes": "MAX_UPLOAD_BYTES", "smoke_timeout": "SMOKE_TIMEOUT",
               "queue_limit": "QUEUE_LIMIT", "deploy_branch": "DEPLOY_BRANCH",
               "max_header_bytes": "MAX_HEADER_BYTES", "max_headers": "MAX_HEADERS", "header_timeout": "HEADER_TIMEOUT",
               "keep_alive_timeout": "KEEP_ALIVE_TIMEOUT", "max_connections": "MAX_CONNECTIONS",
               "run_as": "RUN_AS", "metrics_public": "METRICS_PUBLIC", "access_log": "ACCESS_LOG",
               "kube_context": "KUBE_CONTEXT", "kube_namespace": "KUBE_NAMESPACE", "runtime_image": "RUNTIME_IMAGE",
               "kube_store_secret": "KUBE_STORE_SECRET", "kube_service_account": "KUBE_SERVICE_ACCOUNT",
               "kube_ready_timeout": "KUBE_READY_TIMEOUT", "aws_region": "AWS_REGION", "lambda_role": "LAMBDA_ROLE",
               "lambda_image": "LAMBDA_IMAGE", "lambda_prefix": "LAMBDA_PREFIX"}
_LIMITS = ConnectionLimits()  # the defaults of the connection settings
# A branch name git accepts and a shell or URL cannot misread: no "..", no leading "-" or "/", no ".lock".
_BRANCH = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9._/-]{1,100}$")
# auto | root | UID[:GID] (zeroserve/isolation.py says what each means)
_RUN_AS = re.compile(r"^(auto|root|(\d{1,10})(?::(\d{1,10}))?)$")
_MAX_ID = 4_294_967_294
# Kubernetes names: a namespace is a DNS-1123 label; Secrets and service accounts DNS-1123 subdomains.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# What a Lambda function name may start with (Lambda's rule for function names, 64 characters in all).
_LAMBDA_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,40}$")


class SettingsError(ValueError):
    """Settings that break a rule; the message names the setting (and its environment variable)."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (the ready line says which)
    data_dir: Path = DEFAULT_DATA_DIR
    # None: a local store under data_dir/artifacts; "s3://bucket/prefix": S3.
    artifacts: str | None = None
    domain: str = "localhost"
    keep_unrouted: int = Field(5, ge=0, le=10_000)  # unrouted revisions kept per function
    build_workers: int = Field(2, ge=1, le=64)
    max_upload_bytes: int = Field(512 << 20, ge=1)
    smoke_timeout: float = Field(120.0, gt=0)
    rollout_tick: float = Field(1.0, gt=0)
    # Requests the activator holds per revision while no replica is free (Knative's breakerQueueDepth).
    queue_limit: int = Field(10_000, ge=1, le=1_000_000)
    # `git push` to this branch of http://HOST/git/<fn>.git deploys; other branches are only stored.
    deploy_branch: str = "main"
    # What one client may hold on the port (functions/connection_limits.py says what each means).
    max_header_bytes: int = Field(_LIMITS.max_header_bytes, ge=1024, le=16 << 20)
    max_headers: int = Field(_LIMITS.max_headers, ge=1, le=10_000)
    header_timeout: float = Field(_LIMITS.header_timeout, gt=0, le=3600)
    keep_alive_timeout: float = Field(_LIMITS.keep_alive_timeout, gt=0, le=3600)
    max_connections: int = Field(_LIMITS.max_connections, ge=1, le=1_000_000)
    # Who functions and builds run as when the platform runs as root: "auto" (a user per function),
    # "UID[:GID]" (that one user for all), or "root" (no isolation between functions and the platform).
    run_as: str = "auto"
    # /metrics names every function and revision: it needs the token unless this is set.
    metrics_public: bool = False
    # One line per function request in the platform's log (revision, status, queue time, duration).
    access_log: bool = False
    # The Knative target (docs/knative.md): the kubeconfig comes from KUBECONFIG, ~/.kube/config, or the
    # pod's service account; these say which context, where the Services go and what the pods run.
    kube_context: str | None = None  # default: the kubeconfig's current context
    kube_namespace: str = "default"
    runtime_image: str | None = None  # the runtime image (Dockerfile), pushed where the cluster pulls from
    kube_store_secret: str | None = None  # a Secret with the artifact store's credentials (envFrom)
    kube_service_account: str | None = None  # or: the pods' service account has them (IRSA, workload identity)
    kube_ready_timeout: float = Field(300.0, gt=0, le=3600)  # how long a deploy waits for Knative's Ready
    # The Lambda target (docs/lambda.md): credentials and AWS_ENDPOINT_URL come from boto3's standard chain;
    # these say where the functions go and what they run as. Checked in full by the first Lambda deploy.
    aws_region: str | None = None  # default: AWS_REGION / AWS_DEFAULT_REGION
    lambda_role: str | None = None  # the execution role's ARN
    lambda_image: str | None = None  # the runtime image's `lambda` stage in ECR, same region
    lambda_prefix: str = ""  # prepended to every Lambda function name

    @field_validator("kube_namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not _DNS1123_LABEL.match(v):
            raise ValueError(f"'{v}' is not a Kubernetes namespace name (a DNS-1123 label: a-z, 0-9, '-')")
        return v

    @field_validator("kube_store_secret", "kube_service_account")
    @classmethod
    def _kube_name(cls, v: str | None) -> str | None:
        if v is not None and not _DNS1123_SUBDOMAIN.match(v):
            raise ValueError(f"'{v}' is not a Kubernetes object name (a DNS-1123 subdomain: a-z, 0-9, '-', '.')")
        return v

    @field_validator("lambda_prefix")
    @classmethod
    def _lambda_prefix(cls, v: str) -> str:
        if not _LAMBDA_PREFIX.match(v):
            raise ValueError(f"'{v}' is not a Lambda function name prefix (up to 40 letters, digits, '-', '_')")
        return v

    @field_validator("runtime_image", "kube_context", "aws_region", "lambda_role", "lambda_image")
    @classmethod
    def _no_space(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or any(c.isspace() for c in v)):
            raise ValueError(f"'{v}' must be one word without spaces")
        return v

    @field_validator("run_as")
    @classmethod
    def _run_as(cls, v: str) -> str:
        match = _RUN_AS.match(v.strip())
        if match is None or any(int(n) > _MAX_ID for n in match.groups()[1:] if n is not None):
            raise ValueError(f"'{v}' is not auto, root or UID[:GID] (numbers up to {_MAX_ID})")
        return v.strip()

    @field_validator("deploy_branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not _BRANCH.match(v):
            raise ValueError(f"'{v}' is not a usable branch name (letters, digits, '.', '_', '-', '/')")
        return v

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults <- environment <- explicit overrides (flags); None overrides are ignored."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, suffix in _ENV_FIELDS.items():
            raw = env.get(ENV_PREFIX + suffix)
            if raw not in (None, ""):
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"])
                env_name = f" ({ENV_PREFIX}{_ENV_FIELDS[name]})" if name in _ENV_FIELDS else ""
                problems.append(f"{name}{env_name}: {error['msg']}")
            raise SettingsError("settings: " + "; ".join(problems)) from None

    @property
    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(max_header_bytes=self.max_header_bytes, max_headers=self.max_headers,
                                header_timeout=self.header_timeout, keep_alive_timeout=self.keep_alive_timeout,
                                max_connections=self.max_connections)

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.db"

    @property
    def token_path(self) -> Path:
        return self.data_dir / TOKEN_FILE

    @property
    def git_dir(self) -> Path:
        """The git remote's bare repositories, one per function: DATA/git/<fn>.git."""
        return self.data_dir / "git"

    @property
    def webhook_secrets_dir(self) -> Path:
        """Per-function webhook secrets (mode 0600 files), set through the API."""
        return self.data_dir / "webhooks"

    @property
    def scratch_dir(self) -> Path:
        """Uploads and builds in progress; emptied at start (a killed build leaves its files here)."""
        return self.data_dir / "tmp"


def ensure_token(data_dir: Path) -> str:
    """The API token in DATA/token: created once (mode 0600, exclusively), then read on every start."""
    path = Path(data_dir) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return read_token(path)


def read_token(path: Path) -> str:
    token = Path(path).read_text(encoding="utf-8").strip()
    if not token:
        raise SettingsError(f"settings: the token file {path} is empty; delete it and restart to create one")
    return token
