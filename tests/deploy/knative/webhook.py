"""Knative Serving's admission webhook for Services, as far as a deployer can run into it.

Defaulting (what `kubectl get ksvc -o yaml` shows that nobody wrote) and the validation rules that
bite a deployer, as Knative's pkg/apis/serving and pkg/apis/autoscaling word them: bring-your-own
revision names, traffic, the autoscaling annotations, reserved env names, timeouts, and "no template
change without a new name". A refusal is what the API server answers for a denying webhook: 400 BadRequest,
`admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: ...`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

WEBHOOK = "validation.webhook.serving.knative.dev"
AUTOSCALING = "autoscaling.knative.dev/"
KPA = "kpa.autoscaling.knative.dev"
HPA = "hpa.autoscaling.knative.dev"
RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
WINDOW_MIN, WINDOW_MAX = 6.0, 3600.0


@dataclass
class WebhookConfig:
    """The cluster-wide settings the rules depend on (config-defaults, config-autoscaler)."""

    max_revision_timeout_seconds: int = 600
    container_concurrency_max_limit: int = 1000
    allow_zero_initial_scale: bool = False
    max_scale_limit: int = 0


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration ('60s', '1m30s', '500ms'), None when Go's time.ParseDuration would fail."""
    if text in ("0",):
        return 0.0
    position, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    return total if text and position == len(text) else None


def apply_defaults(service: dict[str, Any]) -> None:
    """Knative's defaulting webhook, the part visible in a stored Service."""
    spec = service.setdefault("spec", {})
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    template_spec = template.setdefault("spec", {})
    template_spec.setdefault("containerConcurrency", 0)
    template_spec.setdefault("timeoutSeconds", 300)
    containers = template_spec.get("containers") or []
    if len(containers) == 1:
        containers[0].setdefault("name", "user-container")
    for container in containers:
        probe = container.get("readinessProbe")
        if isinstance(probe, dict):
            probe.setdefault("successThreshold", 1)
    if not spec.get("traffic"):
        spec["traffic"] = [{"latestRevision": True, "percent": 100}]
    for target in spec["traffic"]:
        if isinstance(target, dict) and "latestRevision" not in target:
            target["latestRevision"] = not target.get("revisionName")


def validate(service: dict[str, Any], config: WebhookConfig) -> list[str]:
    """Every rule the (defaulted) Service breaks, as 'message: field.path'."""
    problems: list[str] = []
    name = service.get("metadata", {}).get("name", "")
    if not DNS1035.match(name) or len(name) > 63:
        problems.append("not a DNS 1035 label: [a DNS-1035 label must consist of lower case alphanumeric "
                        "characters or '-', start with an alphabetic character, and end with an alphanumeric "
                        "character]: metadata.name")
    spec = service.get("spec", {})
    template = spec.get("template", {})
    revision = template.get("metadata", {}).get("name")
    if revision is not None and not str(revision).startswith(f"{name}-"):
        problems.append(f"invalid value: {revision!r} must have prefix \"{name}-\": spec.template.metadata.name")
    template_spec = template.get("spec", {})
    problems += _template_spec_problems(template_spec, config)
    problems += _annotation_problems(template.get("metadata", {}).get("annotations") or {}, config)
    problems += _traffic_problems(spec.get("traffic") or [])
    return problems


def _template_spec_problems(spec: dict[str, Any], config: WebhookConfig) -> list[str]:
    problems = []
    containers = spec.get("containers") or []
    if not containers:
        problems.append("missing field(s): spec.template.spec.containers")
    for index, container in enumerate(containers):
        where = f"spec.template.spec.containers[{index}]"
        if not container.get("image"):
            problems.append(f"missing field(s): {where}.image")
        for env_index, variable in enumerate(container.get("env") or []):
            if variable.get("name") in RESERVED_ENV:
                problems.append(f"{variable['name']!r} is a reserved environment variable: "
                                f"{where}.env[{env_index}].name")
    timeout = spec.get("timeoutSeconds", 0)
    if not 0 <= timeout <= config.max_revision_timeout_seconds:
        problems.append(f"expected 0 <= {timeout} <= {config.max_revision_timeout_seconds}: "
                        "spec.template.spec.timeoutSeconds")
    concurrency = spec.get("containerConcurrency", 0)
    if not 0 <= concurrency <= config.container_concurrency_max_limit:
        problems.append(f"expected 0 <= {concurrency} <= {config.container_concurrency_max_limit}: "
                        "spec.template.spec.containerConcurrency")
    return problems


def _annotation_problems(annotations: dict[str, str], config: WebhookConfig) -> list[str]:
    where = "spec.template.metadata.annotations."
    values = {key[len(AUTOSCALING):]: value for key, value in annotations.items() if key.startswith(AUTOSCALING)}
    problems = []

    def invalid(key: str, value: str, why: str = "") -> None:
        problems.append(f"invalid value: {value}{': ' + why if why else ''}: {where}{AUTOSCALING}{key}")

    klass = values.get("class", KPA)
    if klass.endswith("autoscaling.knative.dev") and klass not in (KPA, HPA):
        invalid("class", klass)
    ints: dict[str, int] = {}
    for key in ("min-scale", "max-scale", "initial-scale", "activation-scale"):
        if key in values:
            try:
                ints[key] = int(values[key])
            except ValueError:
                invalid(key, values[key])
                continue
            if ints[key] < 0:
                invalid(key, values[key], "must be >= 0")
    low, high = ints.get("min-scale", 0), ints.get("max-scale", 0)
    if high and high < low:
        problems.append(f"max-scale={high} is less than min-scale={low}: {where}{AUTOSCALING}max-scale")
    if "max-scale" in ints and config.max_scale_limit and (high == 0 or high > config.max_scale_limit):
        invalid("max-scale", values["max-scale"], f"must be between 1 and {config.max_scale_limit}")
    if "activation-scale" in ints:
        activation = ints["activation-scale"]
        if activation < 2:
            problems.append(f"min-activate-scale={activation} must be greater than 1: "
                            f"{where}{AUTOSCALING}activation-scale")
        elif high and activation > high:
            problems.append(f"max-scale={high} is less than min-activate-scale={activation}: "
                            f"{where}{AUTOSCALING}activation-scale")
        elif low > activation:
            problems.append(f"min-scale={low} is greater than min-activate-scale={activation}: "
                            f"{where}{AUTOSCALING}activation-scale")
    if ints.get("initial-scale") == 0 and not config.allow_zero_initial_scale:
        invalid("initial-scale", "0", "initial-scale=0 not allowed by cluster")
    floats = {"panic-window-percentage": (1.0, 100.0), "panic-threshold-percentage": (110.0, 1000.0),
              "target": (0.01, float("inf")), "target-utilization-percentage": (1.0, 100.0)}
    for key, (lo, hi) in floats.items():
        if key in values:
            try:
                number = float(values[key])
            except ValueError:
                invalid(key, values[key])
                continue
            if not lo <= number <= hi:
                invalid(key, values[key], f"expected {lo:g} <= {values[key]} <= {hi:g}")
    if "target-burst-capacity" in values:
        try:
            tbc = float(values["target-burst-capacity"])
            if tbc < 0 and tbc != -1:
                invalid("target-burst-capacity", values["target-burst-capacity"])
        except ValueError:
            invalid("target-burst-capacity", values["target-burst-capacity"])
    for key, lo, hi, whole in (("window", WINDOW_MIN, WINDOW_MAX, True), ("scale-down-delay", 0.0, WINDOW_MAX, True),
                               ("scale-to-zero-pod-retention-period", 0.0, WINDOW_MAX, False)):
        if key in values:
            seconds = go_duration(values[key])
            if seconds is None:
                invalid(key, values[key])
            elif not lo <= seconds <= hi:
                invalid(key, values[key], f"expected {lo:g}s <= {values[key]} <= {hi:g}s")
            elif whole and seconds != int(seconds):
                problems.append(f"must be specified with at most second precision: {where}{AUTOSCALING}{key}")
    if "metric" in values and klass == KPA and values["metric"] not in ("concurrency", "rps"):
        invalid("metric", values["metric"])
    return problems


def _traffic_problems(traffic: list[dict[str, Any]]) -> list[str]:
    problems = []
    total = 0
    tags: set[str] = set()
    for index, target in enumerate(traffic):
        where = f"spec.traffic[{index}]"
        revision, latest = target.get("revisionName"), target.get("latestRevision")
        if target.get("url"):
            problems.append(f"must not set the field(s): {where}.url")
        if latest and revision:
            problems.append(f"may not set revisionName {revision!r} when latestRevision is true: "
                            f"{where}.latestRevision")
        if not latest and not revision and not target.get("configurationName"):
            problems.append(f"expected exactly one, got neither: {where}.configurationName, {where}.revisionName")
        percent = target.get("percent", 0)
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            problems.append(f"expected 0 <= {percent} <= 100: {where}.percent")
        else:
            total += percent
        tag = target.get("tag")
        if tag is not None:
            if not DNS1035.match(tag) or len(tag) > 63:
                problems.append(f"invalid value: {tag}: {where}.tag")
            if tag in tags:
                problems.append(f"Multiple definitions for {tag!r}: {where}.tag")
            tags.add(tag)
    if traffic and total != 100:
        problems.append(f"Traffic targets sum to {total}, want 100: spec.traffic")
    return problems


def update_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Knative refuses a template change that keeps the revision name (revisions are immutable)."""
    old_template = copy.deepcopy(old.get("spec", {}).get("template", {}))
    new_template = copy.deepcopy(new.get("spec", {}).get("template", {}))
    old_name = old_template.get("metadata", {}).get("name")
    if old_name is None or new_template.get("metadata", {}).get("name") != old_name:
        return []
    if old_template == new_template:
        return []
    changed = sorted(_differences(old_template, new_template, "spec.template"))
    return [f"Saw the following changes without a name change (-old +new): {', '.join(changed[:5])}"]


def _differences(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in set(old) | set(new):
            found += _differences(old.get(key), new.get(key), f"{path}.{key}")
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            found += _differences(a, b, f"{path}[{index}]")
        return found
    return [] if old == new else [path]


def denial(problems: list[str]) -> str:
    return f"admission webhook \"{WEBHOOK}\" denied the request: validation failed: " + "\n".join(problems)
