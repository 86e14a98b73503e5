"""The function manifest (`function.yaml`): keys, Knative's defaults, and validation.

Every rule here mirrors Knative Serving's (config-autoscaler and the autoscaling annotations) so a
manifest that is valid here is valid when the same function is deployed to Knative. A bad manifest
yields one message per problem, each naming the key path and the rule it breaks.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocol.durations import format_duration, parse_duration

MANIFEST_FILE = "function.yaml"
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_FACTORS = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_MODEL_SUFFIX_RUNTIME = {".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".ts": "torch"}

# Knative's bounds (serving/pkg/autoscaler/config and apis/autoscaling annotation validation).
WINDOW_MIN, WINDOW_MAX = 6.0, 3600.0
MAX_TIMEOUT_SECONDS = 3600
MAX_CONCURRENCY = 1000


def check_dns1035(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > 63:
        raise ValueError(f"{what} '{value}' is {len(value)} characters; a DNS-1035 label has at most 63")
    if not DNS1035_LABEL.match(value):
        raise ValueError(
            f"{what} '{value}' must be a DNS-1035 label: lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


def _duration(value: object) -> float:
    return parse_duration(value)


def check_relative_path(value: str, key: str) -> str:
    """Paths in a manifest stay inside the function directory: no absolute paths, no '..'."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{key} '{value}' must be a relative path inside the function directory")
    return str(path)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Batching(_Strict):
    """Dynamic batching: concurrent requests are run as one batch on the model's first dimension."""

    max_batch_size: int = Field(8, ge=1, le=4096)
    max_delay_ms: float = Field(5.0, ge=0, le=10_000)
    max_queue: int = Field(1024, ge=1, le=1_000_000)


class Scaling(_Strict):
    """KPA settings, named after Knative's autoscaling annotations; durations in seconds.

    Ranges and messages follow Knative's annotation and config-autoscaler validation; every message
    states the rule and the value that broke it (the key path is prefixed by parse_manifest).
    """

    # NaN passes every `not lo <= v <= hi` check by accident, and inf is no setting: refuse both.
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    metric: Literal["concurrency", "rps"] = "concurrency"
    # None: Knative's default for the metric (100 concurrent / 200 rps), capped by concurrency.
    target: float | None = None
    target_utilization: float = 70.0
    min_scale: int = Field(0, ge=0)
    max_scale: int = Field(0, ge=0)
    # 0 is allowed (Knative's allow-zero-initial-scale): a deploy then starts nothing until traffic.
    initial_scale: int = Field(1, ge=0)
    activation_scale: int = 1
    window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_down_delay: float = 0.0
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_retention: float = 0.0
    target_burst_capacity: float = 211.0

    _durations = field_validator(
        "window", "scale_down_delay", "scale_to_zero_grace_period", "scale_to_zero_retention", mode="before"
    )(lambda v: _duration(v))

    @field_validator("target")
    @classmethod
    def _target(cls, v: float | None) -> float | None:
        if v is not None and v < 0.01:
            raise ValueError(f"must be at least 0.01 (got {v:g})")
        return v

    @field_validator("target_utilization")
    @classmethod
    def _utilization(cls, v: float) -> float:
        if not 1 <= v <= 100:
            raise ValueError(f"must be between 1 and 100 (percent; got {v:g})")
        return v

    @field_validator("activation_scale")
    @classmethod
    def _activation(cls, v: int) -> int:
        # Knative refuses an explicit activation-scale below 2; 1 is the implicit "no floor".
        if v != 1 and v < 2:
            raise ValueError(f"must be at least 2 (got {v}; omit it for no activation floor)")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: float) -> float:
        if not WINDOW_MIN <= v <= WINDOW_MAX:
            raise ValueError(f"must be between 6s and 1h (got {format_duration(v)})")
        if v != int(v):
            raise ValueError(f"must be a whole number of seconds (got {format_duration(v)})")
        return v

    @field_validator("panic_window_percentage")
    @classmethod
    def _panic_window(cls, v: float) -> float:
        if not 1 <= v <= 100:
            raise ValueError(f"must be between 1 and 100 (percent of window; got {v:g})")
        return v

    @field_validator("panic_threshold_percentage")
    @classmethod
    def _panic_threshold(cls, v: float) -> float:
        if not 110 <= v <= 1000:
            raise ValueError(f"must be between 110 and 1000 (percent of target; got {v:g})")
        return v

    @field_validator("max_scale_up_rate", "max_scale_down_rate")
    @classmethod
    def _rates(cls, v: float) -> float:
        if v <= 1:
            raise ValueError(f"must be greater than 1 (got {v:g})")
        return v

    @field_validator("scale_down_delay")
    @classmethod
    def _scale_down_delay(cls, v: float) -> float:
        if not 0 <= v <= WINDOW_MAX:
            raise ValueError(f"must be between 0s and 1h (got {format_duration(v)})")
        if v != int(v):
            raise ValueError(f"must be a whole number of seconds (got {format_duration(v)})")
        return v

    @field_validator("scale_to_zero_grace_period")
    @classmethod
    def _grace(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"must be positive (got {format_duration(v)})")
        return v

    @field_validator("scale_to_zero_retention")
    @classmethod
    def _retention(cls, v: float) -> float:
        if not 0 <= v <= WINDOW_MAX:
            raise ValueError(f"must be between 0s and 1h (got {format_duration(v)})")
        return v

    @field_validator("target_burst_capacity")
    @classmethod
    def _tbc(cls, v: float) -> float:
        if v < 0 and v != -1:
            raise ValueError(f"must be -1 (unlimited) or at least 0 (got {v:g})")
        return v

    @property
    def panic_window(self) -> float:
        """Seconds; Knative rounds to the closest whole second (halves up, like Go), at least 1s."""
        return max(1.0, float(math.floor(self.window * self.panic_window_percentage / 100.0 + 0.5)))


class Traffic(_Strict):
    """What a deploy does to the route."""

    percent: int | None = Field(None, ge=0, le=100)
    tag: str | None = None
    rollout_duration: float = 0.0

    _rollout = field_validator("rollout_duration", mode="before")(lambda v: _duration(v))

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str | None) -> str | None:
        return None if v is None else check_dns1035(v, "tag")

    @field_validator("rollout_duration")
    @classmethod
    def _rollout_range(cls, v: float) -> float:
        if not 0 <= v <= 24 * 3600:
            raise ValueError("must be between 0s and 24h")
        return v


class Resources(_Strict):
    gpu: bool = False
    threads: int | None = Field(None, ge=1, le=256)
    memory: str | None = None

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: object) -> str | None:
        if v is None:
            return None
        text = str(v)
        if not _MEMORY.match(text):
            raise ValueError(f"'{text}' is not a quantity: use forms like '512Mi' or '2Gi'")
        return text

    @property
    def memory_bytes(self) -> int | None:
        if self.memory is None:
            return None
        number, unit = _MEMORY.match(self.memory).groups()  # type: ignore[union-attr]
        return int(float(number) * _MEMORY_FACTORS[unit])


class FunctionManifest(_Strict):
    name: str
    runtime: Literal["onnx", "torch", "python"] | None = None
    model: str | None = None
    handler: str | None = None
    # A V2 infer request (JSON) used for the smoke inference and load tests; generated when absent.
    sample: str | None = None
    batching: Batching | None = None
    concurrency: int = Field(0, ge=0, le=MAX_CONCURRENCY)
    timeout_seconds: int = Field(300, ge=1, le=MAX_TIMEOUT_SECONDS)
    scaling: Scaling = Field(default_factory=Scaling)
    traffic: Traffic = Field(default_factory=Traffic)
    auth: Literal["none", "token"] = "none"
    resources: Resources = Field(default_factory=Resources)
    env: dict[str, str] = Field(default_factory=dict)
    targets: list[Literal["local", "knative", "lambda"]] = Field(default_factory=lambda: ["local"])

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_dns1035(v, "name")

    @field_validator("model", "sample")
    @classmethod
    def _paths(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else check_relative_path(v, info.field_name)

    @field_validator("handler")
    @classmethod
    def _handler(cls, v: str | None) -> str | None:
        if v is not None and not _HANDLER.match(v):
            raise ValueError(f"'{v}' must be 'module:attr' (e.g. 'handler:Model' for handler.py)")
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, v: object) -> object:
        if not isinstance(v, dict):
            return v
        for key in v:
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                raise ValueError(f"'{key}' is not a valid environment variable name")
        # YAML turns `DEBUG: 1` into an int; the process environment only holds strings.
        return {k: ("" if val is None else str(val).lower() if isinstance(val, bool) else str(val))
                for k, val in v.items()}

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("must not repeat a target")
        if not v:
            raise ValueError("must name at least one target")
        return v

    @model_validator(mode="after")
    def _infer_runtime(self) -> FunctionManifest:
        if self.runtime is None:
            if self.handler is not None:
                self.runtime = "python"
            elif self.model is not None and PurePosixPath(self.model).suffix in _MODEL_SUFFIX_RUNTIME:
                self.runtime = _MODEL_SUFFIX_RUNTIME[PurePosixPath(self.model).suffix]  # type: ignore[assignment]
        return self

    def normalised(self) -> dict[str, Any]:
        """Canonical form (defaults filled, durations in seconds) used for digests and storage."""
        return self.model_dump(mode="json")

    def canonical_json(self) -> bytes:
        return json.dumps(self.normalised(), sort_keys=True, separators=(",", ":")).encode()


class ManifestError(ValueError):
    """A manifest that breaks one or more rules; `problems` holds one 'key.path: rule' per problem."""

    def __init__(self, problems: list[str], source: str = MANIFEST_FILE):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


def _cross_field_problems(m: FunctionManifest) -> list[str]:
    problems = []
    s = m.scaling
    if s.max_scale != 0 and s.min_scale > s.max_scale:
        problems.append(f"scaling.min_scale: must be <= scaling.max_scale ({s.min_scale} > {s.max_scale})")
    if s.max_scale != 0 and s.initial_scale > s.max_scale:
        problems.append(
            f"scaling.initial_scale: must be <= scaling.max_scale ({s.initial_scale} > {s.max_scale})"
        )
    if s.max_scale != 0 and s.activation_scale > s.max_scale:
        problems.append(
            f"scaling.activation_scale: must be <= scaling.max_scale ({s.activation_scale} > {s.max_scale})"
        )
    if m.traffic.percent == 0 and m.traffic.tag is None:
        problems.append("traffic.percent: 0 needs traffic.tag, or the new revision is unreachable")
    if m.runtime is None:
        problems.append("runtime: cannot be inferred; set runtime, a model (.onnx, .pt) or a handler")
    if m.runtime in ("onnx", "torch") and m.model is None:
        problems.append(f"model: required for runtime '{m.runtime}'")
    if m.runtime == "python" and m.handler is None:
        problems.append("handler: required for runtime 'python' (e.g. 'handler:Model')")
    if m.name and len(m.name) > 63:
        problems.append("name: at most 63 characters")
    return problems


def _describe(error: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "is required"
    elif kind == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        bound = next(iter(error["ctx"].values()))
        message = f"must be {op} {bound} (got {error['input']!r})"
    else:
        message = f"{error['msg'].lower()} (got {error.get('input')!r})"
    return f"{path}: {message}"


def parse_manifest(data: object, source: str = MANIFEST_FILE) -> FunctionManifest:
    """Validate an already-parsed manifest; raises ManifestError listing every problem."""
    if not isinstance(data, dict):
        raise ManifestError(["(top level): must be a mapping of keys such as name, runtime, model"], source)
    try:
        manifest = FunctionManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError([_describe(e) for e in exc.errors()], source) from None
    problems = _cross_field_problems(manifest)
    if problems:
        raise ManifestError(problems, source)
    return manifest


def parse_manifest_text(text: str, source: str = MANIFEST_FILE) -> FunctionManifest:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ManifestError([f"(yaml): not valid YAML{where}: {getattr(exc, 'problem', exc)}"], source) from None
    return parse_manifest(data, source)


def load_manifest(function_dir: str | Path) -> FunctionManifest:
    """Read `function.yaml` from a function directory (or the file itself)."""
    path = Path(function_dir)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError([f"(file): {path} does not exist"], str(path))
    return parse_manifest_text(path.read_text(encoding="utf-8"), str(path))


__all__ = [
    "Batching", "FunctionManifest", "ManifestError", "MANIFEST_FILE", "Resources", "Scaling", "Traffic",
    "check_dns1035", "check_relative_path", "format_duration", "load_manifest", "parse_manifest",
    "parse_manifest_text",
]
