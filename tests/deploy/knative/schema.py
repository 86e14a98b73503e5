"""A CRD's openAPIV3Schema applied the way the Kubernetes API server applies it to a custom resource.

- **Pruning.** A field the schema does not declare (and no ancestor marks
  `x-kubernetes-preserve-unknown-fields`) is dropped; with `fieldValidation=Strict` it is an error
  instead. Top-level `metadata` is ObjectMeta, which the server handles itself (never pruned here).
- **Nulls** of fields that are not `nullable` are dropped before validation, as the server does.
- **Validation** with jsonschema (types, required, patterns, int-or-string), each problem reported as
  the API server words it: `spec.template.spec.containerConcurrency: Invalid value: "string": ... must
  be of type integer`, with the field path in Kubernetes' `a.b[0].c` form.

The API test server (tests/deploy/knative/apiserver.py) answers writes with these problems as a 422 `Invalid`;
the translation tests validate every Service the platform produces against the official CRD with it.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # bench/knative_deploy.py makes mypy read this file
import yaml

CRDS = Path(__file__).resolve().parent / "crds"
SERVICE_CRD = CRDS / "service.yaml"  # Knative Serving's CRD, vendored (Apache 2.0, header kept)
PRESERVE = "x-kubernetes-preserve-unknown-fields"


@functools.lru_cache(maxsize=8)  # 100 KB of YAML takes ~0.3 s to parse; callers never change the schema
def load_crd_schema(path: Path, version: str = "v1") -> dict[str, Any]:
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return entry["schema"]["openAPIV3Schema"]
    raise LookupError(f"{path}: no version {version}")


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
    message: str  # without the field path, as in a Status cause

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def field_path(parts: Iterable[object]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def prune(obj: Any, schema: dict[str, Any]) -> tuple[Any, list[str]]:
    """(a copy of `obj` without undeclared fields and non-nullable nulls, the paths of the unknown fields)."""
    unknown: list[str] = []
    pruned = _prune(copy.deepcopy(obj), schema, [], unknown, root=True)
    return pruned, unknown


def _prune(value: Any, schema: dict[str, Any], path: list[object], unknown: list[str], root: bool = False) -> Any:
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get(PRESERVE))
        for key in list(value):
            child = value[key]
            if child is None and not (properties or {}).get(key, {}).get("nullable"):
                del value[key]
                continue
            if root and key == "metadata":
                continue  # ObjectMeta: the server's own business
            if properties is not None and key in properties:
                value[key] = _prune(child, properties[key], [*path, key], unknown)
            elif isinstance(additional, dict):
                value[key] = _prune(child, additional, [*path, key], unknown)
            elif not preserve and (properties is not None or additional is None):
                unknown.append(field_path([*path, key]))
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(item, schema["items"], [*path, index], unknown) for index, item in enumerate(value)]
    return value


def schema_problems(obj: Any, schema: dict[str, Any]) -> list[FieldProblem]:
    """Every violation of `schema` by `obj` (already pruned), ordered by field path."""
    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in validator.iter_errors(obj):
        problems.append(_describe(error))
    return sorted(set(problems), key=lambda p: (p.field, p.message))


def _describe(error: jsonschema.ValidationError) -> FieldProblem:
    path = list(error.absolute_path)
    value = error.instance
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return FieldProblem(field_path([*path, missing]), "FieldValueRequired", "Required value")
    where = field_path(path) or "<root>"
    if error.validator == "type":
        expected = error.validator_value
        return FieldProblem(where, "FieldValueTypeInvalid",
                            f"Invalid value: {_type_name(value)}: {where} in body must be of type {expected}: "
                            f"{_type_name(value)}")
    if error.validator == "anyOf":  # int-or-string (quantities, ports)
        return FieldProblem(where, "FieldValueTypeInvalid",
                            f"Invalid value: {_type_name(value)}: {where} in body must be of type integer or "
                            f"string: {_type_name(value)}")
    if error.validator == "pattern":
        return FieldProblem(where, "FieldValueInvalid",
                            f"Invalid value: {json.dumps(value)}: {where} in body should match "
                            f"'{error.validator_value}'")
    if error.validator == "enum":
        return FieldProblem(where, "FieldValueNotSupported",
                            f"Unsupported value: {json.dumps(value)}: supported values: "
                            + ", ".join(json.dumps(v) for v in error.validator_value))
    return FieldProblem(where, "FieldValueInvalid", f"Invalid value: {json.dumps(value, default=str)}: {error.message}")


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return '"boolean"'
    if isinstance(value, int | float):
        return '"integer"' if isinstance(value, int) or float(value).is_integer() else '"number"'
    if isinstance(value, str):
        return '"string"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, dict):
        return '"object"'
    return '"null"'


def strict_problems(obj: Any, schema: dict[str, Any]) -> list[str]:
    """Everything a `fieldValidation=Strict` write would be refused for: unknown fields and schema errors."""
    pruned, unknown = prune(obj, schema)
    return [f"{path}: unknown field" for path in unknown] + [str(p) for p in schema_problems(pruned, schema)]
