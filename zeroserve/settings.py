"""Platform settings: one pydantic-settings model, filled from defaults, then `ZEROSERVE_*` environment, then flags.

Each field is one setting; its description is its documentation. Its environment variable is `ZEROSERVE_` and the
field's name in capitals, or the field's validation alias where the two differ (`data_dir` is `ZEROSERVE_DATA`).

The data directory holds everything the platform must not lose: the registry database, the artifact
store (unless `artifacts` names S3), the API token and scratch space for builds.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from activator.otel_export import INSTALL_HINT, check_endpoint, missing_modules
from functions.connection_limits import ConnectionLimits
from protocol.manifest import Resources
from zeroserve.datadir import DEFAULT_DATA_DIR, TOKEN_FILE

ENV_PREFIX = "ZEROSERVE_"
# Fields the environment does not set: only code passes them (Settings.load(rollout_tick=...)).
_NOT_FROM_ENVIRONMENT = frozenset({"rollout_tick"})
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
# The variables Settings() reads: os.environ, or the mapping Settings.load(env=...) was given, for that call only
# (pydantic-settings' sources are built per instance, with no argument to pass a mapping through).
_ENVIRONMENT: ContextVar[Mapping[str, str]] = ContextVar("zeroserve_settings_environment", default=os.environ)


class SettingsError(ValueError):
    """Settings that break a rule; the message names the setting (and its environment variable)."""


class Settings(BaseSettings):
    # No .env file and no secrets directory: defaults <- ZEROSERVE_* variables <- flags, nothing else.
    # populate_by_name: code and flags pass `data_dir`, the environment ZEROSERVE_DATA (its alias);
    # loc_by_alias=False: errors name the field, and SettingsError adds the variable.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_assignment=True,
                                      populate_by_name=True, loc_by_alias=False)

    host: str = Field("127.0.0.1", description="Address the platform's one port binds to.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0: any free port (the ready line says which).")
    warm_templates_memory: str = Field("512Mi", description="Memory the warm templates of recently used revisions "
                                       "may hold in all (docs/supervisor.md), like `512Mi` or `2Gi`; 0: none.")
    grpc_port: int | None = Field(None, ge=-1, le=65535, description="TCP port of the Open Inference Protocol over "
                                  "gRPC for every function (docs/grpc.md); 0: any free port; -1: no gRPC; unset: "
                                  "8081, or any free port when `port` is 0.")
    data_dir: Path = Field(DEFAULT_DATA_DIR, validation_alias="ZEROSERVE_DATA",
                           description="Data dir: the registry, the artifacts (unless `artifacts` is S3), the token.")
    artifacts: str | None = Field(None, description="Artifact store: `s3://bucket/prefix`; unset: DATA/artifacts.")
    domain: str = Field("localhost", description="Domain of function URLs: http://FN.DOMAIN:PORT/.")
    keep_unrouted: int = Field(5, ge=0, le=10_000, description="Unrouted revisions kept per function.")
    build_workers: int = Field(2, ge=1, le=64, description="Builds that run at once.")
    max_upload_bytes: int = Field(512 << 20, ge=1, description="Largest function upload (a deploy's archive).")
    smoke_timeout: float = Field(120.0, gt=0, description="Seconds a new revision's smoke test may take.")
    rollout_tick: float = Field(1.0, gt=0, description="Seconds between the steps of gradual rollouts.")
    queue_limit: int = Field(10_000, ge=1, le=1_000_000, description="Requests the activator holds per revision "
                             "while no replica is free (Knative's breakerQueueDepth).")
    deploy_branch: str = Field("main", description="`git push` to this branch of http://HOST/git/<fn>.git "
                               "deploys; other branches are only stored.")
    # What one client may hold on the port (functions/connection_limits.py says what each means).
    max_header_bytes: int = Field(_LIMITS.max_header_bytes, ge=1024, le=16 << 20,
                                  description="Largest request head (request line + headers); more gets 431.")
    max_headers: int = Field(_LIMITS.max_headers, ge=1, le=10_000,
                             description="Most headers in one request; more gets 431.")
    header_timeout: float = Field(_LIMITS.header_timeout, gt=0, le=3600,
                                  description="Seconds for a request head to arrive whole, else 408 and close.")
    keep_alive_timeout: float = Field(_LIMITS.keep_alive_timeout, gt=0, le=3600,
                                      description="Seconds an idle keep-alive connection stays open.")
    max_connections: int = Field(_LIMITS.max_connections, ge=1, le=1_000_000,
                                 description="Open client connections; one more gets 503.")
    run_as: str = Field("auto", description="Who functions and builds run as when the platform runs as root: "
                        "`auto` (a user per function), `UID[:GID]` (that one user for all), or `root` (no isolation "
                        "between functions and the platform).")
    metrics_public: bool = Field(False, description="Serve /metrics without the token (it names every function "
                                 "and revision).")
    access_log: bool = Field(False, description="One line per function request in the platform's log (revision, "
                             "status, queue time, duration).")
    otel_endpoint: str | None = Field(None, description="Export a span per function request over OTLP/HTTP to this "
                                      "collector (base URL, e.g. http://localhost:4318); needs the `otel` extra. "
                                      "The SDK's OTEL_* variables (headers, service name, resource) apply.")
    # The Knative target (docs/knative.md): the kubeconfig comes from KUBECONFIG, ~/.kube/config, or the
    # pod's service account; these say which context, where the Services go and what the pods run.
    kube_context: str | None = Field(None, description="Knative target: the kubeconfig context; unset: the "
                                     "kubeconfig's current context.")
    kube_namespace: str = Field("default", description="Knative target: the namespace of the Services.")
    runtime_image: str | None = Field(None, description="Knative target: the runtime image (Dockerfile), pushed "
                                      "where the cluster pulls from.")
    kube_store_secret: str | None = Field(None, description="Knative target: a Secret with the artifact store's "
                                          "credentials (envFrom).")
    kube_service_account: str | None = Field(None, description="Knative target: or the pods' service account has "
                                             "them (IRSA, workload identity).")
    kube_ready_timeout: float = Field(300.0, gt=0, le=3600, description="Knative target: seconds a deploy waits "
                                      "for the revision to be Ready.")
    # The Lambda target (docs/lambda.md): credentials and AWS_ENDPOINT_URL come from boto3's standard chain;
    # these say where the functions go and what they run as. Checked in full by the first Lambda deploy.
    # aws_region unset: zeroserve/up.py's lambda_target falls back to AWS_REGION, then AWS_DEFAULT_REGION.
    aws_region: str | None = Field(None, description="Lambda target: the functions' region; unset: AWS_REGION, "
                                   "then AWS_DEFAULT_REGION.")
    lambda_role: str | None = Field(None, description="Lambda target: the execution role's ARN.")
    lambda_image: str | None = Field(None, description="Lambda target: the runtime image's `lambda` stage in ECR, "
                                     "same region.")
    lambda_prefix: str = Field("", description="Lambda target: prepended to every Lambda function name.")

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

    @field_validator("otel_endpoint")
    @classmethod
    def _otel_endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        check_endpoint(v)
        missing = missing_modules()
        if missing:
            raise ValueError(f"OpenTelemetry export needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}")
        return v

    @field_validator("deploy_branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not _BRANCH.match(v):
            raise ValueError(f"'{v}' is not a usable branch name (letters, digits, '.', '_', '-', '/')")
        return v

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init arguments) over the environment; the defaults come last on their own.
        return init_settings, _Environment(settings_cls, _ENVIRONMENT.get())

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults <- environment (os.environ, or `env`) <- explicit overrides (flags); None overrides are ignored."""
        reading = _ENVIRONMENT.set(os.environ if env is None else env)
        try:
            return cls(**{name: value for name, value in overrides.items() if value is not None})
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"])
                variable = environment_variable(name)
                problems.append(f"{name}{f' ({variable})' if variable else ''}: {error['msg']}")
            raise SettingsError("settings: " + "; ".join(problems)) from None
        finally:
            _ENVIRONMENT.reset(reading)

    @property
    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(max_header_bytes=self.max_header_bytes, max_headers=self.max_headers,
                                header_timeout=self.header_timeout, keep_alive_timeout=self.keep_alive_timeout,
                                max_connections=self.max_connections)

    @property
    def grpc_listen_port(self) -> int | None:
        """The gRPC port to bind (0: any free one), or None for no gRPC; unset follows `port`'s "any free port"."""
        if self.grpc_port is None:
            return 0 if self.port == 0 else 8081
        return None if self.grpc_port == -1 else self.grpc_port

    @field_validator("warm_templates_memory")
    @classmethod
    def _warm_templates_memory(cls, v: str) -> str:
        Resources(memory=v)  # the manifest's quantities: 512Mi, 2Gi, 0
        return v

    @property
    def warm_templates_bytes(self) -> int:
        return Resources(memory=self.warm_templates_memory).memory_bytes or 0

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


def environment_variable(name: str) -> str | None:
    """The variable that sets field `name`: its validation alias, else ZEROSERVE_<NAME>; None: no variable does."""
    field = Settings.model_fields.get(name)
    if field is None or name in _NOT_FROM_ENVIRONMENT:
        return None
    return field.validation_alias if isinstance(field.validation_alias, str) else ENV_PREFIX + name.upper()


def environment_variables() -> dict[str, str]:
    """Every setting the environment can set: field name -> its ZEROSERVE_* variable."""
    return {name: variable for name in Settings.model_fields if (variable := environment_variable(name))}


class _Environment(PydanticBaseSettingsSource):
    """The ZEROSERVE_* variables of one mapping, each read under exactly the name environment_variable() gives.

    Not pydantic-settings' EnvSettingsSource: that one reads only os.environ, matches names in any case and, for a
    field with an alias, reads the field's own name too (ZEROSERVE_DATA_DIR); here a variable has one spelling.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = environment_variable(field_name)
        return (self.environ.get(variable) if variable else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value:  # unset and empty are the same: the default (or the flag) stands
                values[key] = value
        return values


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
