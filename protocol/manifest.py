"""The function manifest (`function.yaml`): keys, Knative's defaults, and validation.

Every rule here mirrors Knative Serving's (config-autoscaler and the autoscaling annotations) so a
manifest that is valid here is valid when the same function is deployed to Knative. A bad manifest
yields one message per problem, each naming the key path and the rule it breaks.

A manifest comes from whoever may deploy, so reading one is bounded: the file is at most
MAX_MANIFEST_BYTES, YAML anchors and aliases are refused (an alias "bomb" expands a 1 KB file into
billions of nodes), nesting is at most MAX_MANIFEST_DEPTH, and a message echoes at most
MAX_ECHO characters of any value and lists at most MAX_PROBLEMS problems.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

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
_MODEL_SUFFIX_RUNTIME: dict[str, Literal["onnx", "torch"]] = {
    ".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".ts": "torch",
}

# Knative's bounds (serving/pkg/autoscaler/config and apis/autoscaling annotation validation).
WINDOW_MIN, WINDOW_MAX = 6.0, 3600.0
MAX_TIMEOUT_SECONDS = 3600
MAX_CONCURRENCY = 1000

MAX_MANIFEST_BYTES = 64 * 1024  # real manifests are under 2 KB; env values are the only long part
MAX_MANIFEST_DEPTH = 32  # real manifests nest 3 deep; deeper is an attack on the parser's recursion
MAX_ECHO = 80  # characters of a user's value quoted back in a message
MAX_PROBLEMS = 20  # problems listed by one ManifestError; the rest are counted
# Targets function.yaml may name but this version cannot deploy to yet (refused, never ignored).
UNAVAILABLE_TARGETS: tuple[str, ...] = ()

_ECHO_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_ECHO_REPR.maxlevel = 2
_ECHO_REPR.maxtuple = _ECHO_REPR.maxlist = _ECHO_REPR.maxdict = _ECHO_REPR.maxset = 4
_ECHO_REPR.maxstring = _ECHO_REPR.maxother = MAX_ECHO
_ECHO_REPR.maxlong = 40


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """`text` cut to `limit` characters with an ellipsis: user input quoted in a message stays small."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def echo(value: object) -> str:
    """A bounded repr of a user's value for a message (cheap even for a huge or deeply nested one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        # str() refuses integers over 4300 digits, and a long one would not help the reader anyway.
        return f"an integer of about {int(abs(value).bit_length() * math.log10(2)) + 1} digits"
    try:
        return clip(_ECHO_REPR.repr(value))
    except Exception:  # a repr that fails must not turn a manifest error into a crash
        return f"<{type(value).__name__}>"


def check_dns1035(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > 63:
        raise ValueError(f"{what} '{clip(value)}' is {len(value)} characters; a DNS-1035 label has at most 63")
    if not DNS1035_LABEL.match(value):
        raise ValueError(
            f"{what} '{clip(value)}' must be a DNS-1035 label: lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except OverflowError:  # an integer of hundreds of digits: pydantic only turns ValueError into a problem
        raise ValueError(f"{echo(value)} is too large for a duration") from None


def check_relative_path(value: str, key: str) -> str:
    """Paths in a manifest stay inside the function directory: no absolute paths, no '..'."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{key} '{clip(value)}' must be a relative path inside the function directory")
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
            raise ValueError(f"'{clip(text)}' is not a quantity: use forms like '512Mi' or '2Gi'")
        return text

    @property
    def memory_bytes(self) -> int | None:
        if self.memory is None:
            return None
        quantity = _MEMORY.match(self.memory)
        assert quantity is not None  # _memory accepted only quantities
        number, unit = quantity.groups()
        return int(float(number) * _MEMORY_FACTORS[unit])


Target = Literal["local", "knative", "lambda"]


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
    targets: list[Target] = Field(default_factory=lambda: list[Target](["local"]))

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
            raise ValueError(f"'{clip(v)}' must be 'module:attr' (e.g. 'handler:Model' for handler.py)")
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, v: object) -> object:
        if not isinstance(v, dict):
            return v
        for key in v:
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                raise ValueError(f"{echo(key)} is not a valid environment variable name")
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
        unavailable = [t for t in v if t in UNAVAILABLE_TARGETS]
        if unavailable:
            # Accepting them would deploy locally only while the author believes otherwise.
            available = ", ".join(t for t in get_args(Target) if t not in UNAVAILABLE_TARGETS)
            raise ValueError(f"{', '.join(unavailable)} {'is' if len(unavailable) == 1 else 'are'} not available "
                             f"yet in this version; available: {available}")
        return v

    @model_validator(mode="after")
    def _infer_runtime(self) -> FunctionManifest:
        if self.runtime is None:
            if self.handler is not None:
                self.runtime = "python"
            elif self.model is not None and PurePosixPath(self.model).suffix in _MODEL_SUFFIX_RUNTIME:
                self.runtime = _MODEL_SUFFIX_RUNTIME[PurePosixPath(self.model).suffix]
        return self

    def normalised(self) -> dict[str, Any]:
        """Canonical form (defaults filled, durations in seconds) used for digests and storage."""
        return self.model_dump(mode="json")

    def canonical_json(self) -> bytes:
        return json.dumps(self.normalised(), sort_keys=True, separators=(",", ":")).encode()


class ManifestError(ValueError):
    """A manifest that breaks one or more rules; `problems` holds one 'key.path: rule' per problem."""

    def __init__(self, problems: list[str], source: str = MANIFEST_FILE):
        self.count = len(problems)  # all of them, listed or not
        if len(problems) > MAX_PROBLEMS:  # thousands of unknown keys would make a megabyte message
            hidden = len(problems) - MAX_PROBLEMS
            problems = [*problems[:MAX_PROBLEMS], f"(and {hidden} more problem{'s' if hidden > 1 else ''})"]
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


def _describe(error: Any) -> str:
    path = ".".join(clip(str(p), 40) for p in error["loc"]) or "(top level)"
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
        message = f"must be {op} {bound} (got {echo(error['input'])})"
    else:
        message = f"{clip(str(error['msg']).lower(), 200)} (got {echo(error.get('input'))})"
    # Our own validators clip the values they quote; this bounds anything else that slips through.
    return clip(f"{path}: {message}", 400)


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


class _Refused(yaml.YAMLError):
    """YAML the manifest reader will not compose; `problem` says why, `problem_mark` where."""

    def __init__(self, problem: str, mark: object):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _DuplicateKeys(yaml.YAMLError):
    """Mappings that repeat a key; `problems` holds one 'key.path: ...' per repeat."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class ManifestLoader(yaml.SafeLoader):
    """yaml.SafeLoader without anchors, aliases or duplicate keys, and with bounded nesting.

    PyYAML shares an aliased node rather than copying it, so loading a bomb is cheap; what explodes
    is everything that walks the result afterwards (validation, repr in a message, JSON for the
    registry). A manifest has no use for anchors, so they are refused where they appear.

    PyYAML keeps the last of two equal keys and drops the first without a word, so a second
    `scaling:` block added lower in the file would silently undo (or be undone by) the first: every
    repeat, at any depth, is refused naming the key and both lines.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"aliases (*{clip(str(event.anchor), 40)}) are not allowed in {MANIFEST_FILE}; "
                           "write the value out", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _Refused(f"anchors (&{clip(str(event.anchor), 40)}) are not allowed in {MANIFEST_FILE}; "
                           "write the value out", event.start_mark)
        if self._depth >= MAX_MANIFEST_DEPTH:
            raise _Refused(f"nested more than {MAX_MANIFEST_DEPTH} levels deep", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        problems = _duplicate_keys(self, node)
        if problems:
            raise _DuplicateKeys(problems)
        return super().construct_document(node)


def _duplicate_keys(loader: yaml.SafeLoader, root: yaml.Node) -> list[str]:
    """One problem per repeated key of any mapping under `root`, in line order.

    Keys compare as the values they load as, like the dict they end up in: `1`, `0x1` and `true`
    are the same key there, so they are the same key here. The walk is over composed nodes, already
    bounded in size and depth by the reader.
    """
    found: list[tuple[int, str]] = []
    pending: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while pending:
        node, path = pending.pop()
        if isinstance(node, yaml.SequenceNode):
            pending.extend((item, (*path, str(index))) for index, item in enumerate(node.value))
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[object, int] = {}
        for key_node, value_node in node.value:
            # Only scalar keys can repeat in a dict; a list or mapping as a key is refused later as unhashable.
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            where = (*path, clip(str(key_node.value), 40) if key is not None else "?")  # as written
            pending.append((value_node, where))
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            try:
                first = first_line.get(key)
                if first is None:
                    first_line[key] = line
                    continue
            except TypeError:  # an unhashable scalar (none in YAML 1.1, but a custom resolver could add one)
                continue
            lines = f"twice on line {line}" if first == line else f"at lines {first} and {line}"
            found.append((line, f"{'.'.join(where)}: duplicate key {lines}: a key may appear once in a mapping "
                                "(YAML would keep one value and silently drop the other)"))
    return [problem for _, problem in sorted(found)]


def load_yaml(text: str, source: str = MANIFEST_FILE) -> object:
    """The YAML document in `text`, read with ManifestLoader; ManifestError names the line at fault."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError([_too_large(size)], source)
    try:
        return yaml.load(text, Loader=ManifestLoader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = clip(str(getattr(exc, "problem", None) or exc), 200)
        if isinstance(exc, _DuplicateKeys):
            raise ManifestError(exc.problems, source) from None
        if isinstance(exc, _Refused):
            raise ManifestError([f"(yaml): {where}: {problem}"], source) from None
        raise ManifestError([f"(yaml): not valid YAML{' at ' + where if where else ''}: {problem}"], source) from None
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:  # e.g. an int of 5,000 digits
        raise ManifestError([f"(yaml): a value cannot be read: {clip(str(exc), 200)}"], source) from None


def _too_large(size: int) -> str:
    return (f"(file): {MANIFEST_FILE} is {size} bytes; the limit is {MAX_MANIFEST_BYTES} bytes "
            f"({MAX_MANIFEST_BYTES // 1024} KiB)")


def parse_manifest_text(text: str, source: str = MANIFEST_FILE) -> FunctionManifest:
    return parse_manifest(load_yaml(text, source), source)


def read_manifest_text(function_dir: str | Path) -> tuple[str, str]:
    """(text of function.yaml, its path as a source name); ManifestError if missing, too large or not UTF-8."""
    path = Path(function_dir)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError([f"(file): {path} does not exist"], str(path))
    with open(path, "rb") as handle:  # read at most one byte past the limit, however large the file is
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            handle.seek(0, 2)
            raise ManifestError([_too_large(handle.tell())], str(path))
    try:
        return raw.decode("utf-8"), str(path)
    except UnicodeDecodeError as exc:
        raise ManifestError([f"(file): not UTF-8 text (byte {exc.start})"], str(path)) from None


def load_manifest(function_dir: str | Path) -> FunctionManifest:
    """Read `function.yaml` from a function directory (or the file itself)."""
    text, source = read_manifest_text(function_dir)
    return parse_manifest_text(text, source)


__all__ = [
    "Batching", "FunctionManifest", "ManifestError", "ManifestLoader", "MANIFEST_FILE", "MAX_ECHO",
    "MAX_MANIFEST_BYTES", "MAX_MANIFEST_DEPTH", "MAX_PROBLEMS", "Resources", "Scaling", "Traffic",
    "UNAVAILABLE_TARGETS", "check_dns1035", "check_relative_path", "clip", "echo", "format_duration",
    "load_manifest", "load_yaml", "parse_manifest", "parse_manifest_text", "read_manifest_text",
]
