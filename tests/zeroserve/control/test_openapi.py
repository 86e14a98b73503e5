"""`/api/v1/openapi.json` describes every answer: each operation's 2xx response has a schema naming its
fields, and real answers of a real `zeroserve up` (every operation, each documented 2xx status) validate
against it, with no field the schema does not name."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from deploy.git.webhook import signature_for
from revisions.archive import pack_function_dir
from tests.deploy.git.gitrepo import WorkRepo
from tests.polling import wait_for
from tests.zeroserve.control.harness import PlatformProcess, change_model, function_dir

SECRET = "a-webhook-secret-for-the-openapi-test"
ROOT = Path(__file__).resolve().parents[3]
# Answers this test's platform cannot give, validated against the same spec where a platform can.
CHECKED_ELSEWHERE = {
    # needs a cluster and an s3:// store: tests/deploy/knative/test_platform_knative.py
    ("GET", "/api/v1/functions/{function}/export/{target}", 200),
}


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def names_its_fields(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """An object with named properties, an array of such, or a choice between such: never `{}` or a bare
    object (what FastAPI writes for `dict[str, Any]`)."""
    schema = resolve(spec, schema)
    if "anyOf" in schema or "oneOf" in schema:
        return all(names_its_fields(spec, s) for s in schema.get("anyOf", schema.get("oneOf")))
    if schema.get("type") == "array":
        return names_its_fields(spec, schema.get("items") or {})
    return schema.get("type") == "object" and bool(schema.get("properties"))


def closed(components: dict[str, Any]) -> dict[str, Any]:
    """The components with every object that names its properties closed to others: an answer carrying a
    field the schema does not describe fails validation."""
    components = copy.deepcopy(components)
    for schema in components["schemas"].values():
        if schema.get("properties"):
            schema.setdefault("additionalProperties", False)
    return components


def success_schemas(spec: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(METHOD, path, status) -> the JSON schema of each documented 2xx answer."""
    found = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    schema = response.get("content", {}).get("application/json", {}).get("schema")
                    found[(method.upper(), path, int(status))] = schema
    return found


class Answers:
    """Requests to a real platform whose JSON answers are validated against the spec's schema for their
    operation and status; remembers which (METHOD, path, status) it has seen."""

    def __init__(self, platform: PlatformProcess, spec: dict[str, Any]):
        self.platform = platform
        self.schemas = success_schemas(spec)
        self.components = closed(spec["components"])
        self.bearer = {"Authorization": f"Bearer {platform.token}"}
        self.checked: set[tuple[str, str, int]] = set()

    def call(self, method: str, template: str, *, status: int, auth: bool = True, query: str = "",
             **kwargs: Any) -> Any:
        """`method` on `template` (its {names} filled from `params`), answering `status` with JSON the
        schema documented for that operation and status accepts."""
        params = kwargs.pop("params", {})
        headers = {**(self.bearer if auth else {}), **kwargs.pop("headers", {})}
        response = httpx.request(method, self.platform.url + template.format(**params) + query,
                                 headers=headers, timeout=180, **kwargs)
        assert response.status_code == status, f"{method} {template}: {response.status_code} {response.text}"
        schema = self.schemas.get((method, template, status))
        assert schema is not None, f"{method} {template} answered {status}, which the spec does not document"
        jsonschema.validate(response.json(), {**schema, "components": self.components},
                            cls=jsonschema.Draft202012Validator)
        self.checked.add((method, template, status))
        return response.json()


FN = {"function": "iris"}


def deploy_by_upload(answers: Answers, source: Path) -> None:
    upload = {"content": pack_function_dir(source), "headers": {"Content-Type": "application/gzip"}}
    answers.call("POST", "/api/v1/functions", status=201, **upload)
    answers.call("POST", "/api/v1/functions", status=200, **upload)  # the same content: unchanged


def deploy_by_webhook(answers: Answers, repo: WorkRepo) -> None:
    """A ping, an ignored push, a deploy waited for (201, then 200 unchanged), one accepted (202)."""
    answers.call("PUT", "/api/v1/functions/{function}/webhook-secret", status=200, params=FN,
                 json={"secret": SECRET})

    def hook(status: int, *, ref: str = "refs/heads/main", commit: str = repo.head(), kind: str = "push",
             query: str = "?function=iris") -> Any:
        body = json.dumps({"ref": ref, "before": "0" * 40, "after": commit,
                           "repository": {"name": "iris", "clone_url": repo.path.as_uri()}}).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": kind,
                   "X-Hub-Signature-256": signature_for(SECRET.encode(), body)}
        return answers.call("POST", "/api/v1/hooks/git", query=query, status=status, auth=False, content=body,
                            headers=headers)

    hook(200, kind="ping")
    hook(202, ref="refs/heads/feature")  # ignored: not the deploy branch
    assert hook(201, query="?function=iris&wait=true")["revision"] == "iris-00002"
    hook(200, query="?function=iris&wait=true")  # unchanged
    hook(202, commit="f" * 40)  # accepted; its deploy fails in the background
    wait_for(lambda: [e for e in answers.call("GET", "/api/v1/functions/{function}/events", status=200, params=FN)
                      if e["kind"] == "build-failed"], "the background deploy's failure event")
    [failed] = answers.call("GET", "/api/v1/functions/{function}/failed-builds", status=200, params=FN)
    assert "failed" in failed["message"] and isinstance(failed["log"], list), failed


def read_and_route(answers: Answers) -> None:
    call, tag, revision = answers.call, {**FN, "tag": "canary"}, {**FN, "revision": "iris-00001"}
    call("GET", "/api/v1/functions", status=200)
    call("GET", "/api/v1/functions/{function}", status=200, params=FN)
    call("GET", "/api/v1/functions/{function}/revisions", status=200, params=FN)
    call("GET", "/api/v1/functions/{function}/revisions/{revision}", status=200, params=revision)
    call("PUT", "/api/v1/functions/{function}/tags/{tag}", status=200, params=tag, json={"revision": "iris-00001"})
    call("PATCH", "/api/v1/functions/{function}/traffic", status=200, params=FN,
         json={"percents": {"iris-00001": 10, "iris-00002": 90}})
    call("PUT", "/api/v1/functions/{function}/traffic", status=200, params=FN, json={"targets": [
        {"revision": "iris-00001", "percent": 20, "tag": "canary"}, {"latest": True, "percent": 80}]})
    call("POST", "/api/v1/functions/{function}/promote", status=200, params=FN, json={"tag": "canary"})
    call("POST", "/api/v1/functions/{function}/rollback", status=200, params=FN)
    traffic = call("GET", "/api/v1/functions/{function}/traffic", status=200, params=FN)
    assert traffic["traffic"]["split"] and traffic["tags"]["canary"].startswith("http://canary-iris.")
    call("DELETE", "/api/v1/functions/{function}/tags/{tag}", status=200, params=tag)
    call("GET", "/api/v1/events", status=200)


def manage_tokens(answers: Answers) -> None:
    created = answers.call("POST", "/api/v1/tokens", status=201,
                           json={"scope": "deploy", "functions": ["iris"], "name": "ci-iris", "expires_in": 3600})
    assert created["token"].startswith("zst_") and created["expires"] is not None
    assert [t["name"] for t in answers.call("GET", "/api/v1/tokens", status=200)] == ["ci-iris"]
    answers.call("DELETE", "/api/v1/tokens/{name}", status=200, params={"name": "ci-iris"})


def scale_status_with_a_replica(answers: Answers) -> None:
    sample = json.loads((ROOT / "examples" / "iris" / "sample.json").read_text())
    woken = httpx.post(f"{answers.platform.url}/fn/iris/v2/models/iris/infer", json=sample, timeout=120)
    assert woken.status_code == 200, woken.text
    status = answers.call("GET", "/api/v1/functions/{function}/status", status=200, params=FN)
    assert status["data_plane"] and any(r["replicas"] for r in status["revisions"]), status
    assert all(r["metric"] == "concurrency" for r in status["revisions"])
    logs = answers.call("GET", "/api/v1/functions/{function}/logs", status=200, params=FN)
    wait_for(lambda: answers.call("GET", "/api/v1/functions/{function}/history", status=200, params=FN)["points"],
             "a point of the function's history (one a second)")
    assert logs["function"] == "iris" and all(line["revision"].startswith("iris-") for line in logs["lines"])


def test_every_operation_documents_its_answers_and_real_answers_match(
        start_platform: Callable[..., PlatformProcess], tmp_path: Path) -> None:
    platform = start_platform()
    spec = httpx.get(f"{platform.url}/api/v1/openapi.json", timeout=30).json()
    answers = Answers(platform, spec)
    assert len(answers.schemas) >= 20
    undescribed = sorted(f"{m} {p} {s}" for (m, p, s), schema in answers.schemas.items()
                         if schema is None or not names_its_fields(spec, schema))
    assert undescribed == [], f"2xx answers without a schema naming their fields: {undescribed}"

    answers.call("GET", "/api/v1/healthz", status=200, auth=False)
    source = function_dir(tmp_path, "iris")
    deploy_by_upload(answers, source)
    change_model(source, "second")  # the second revision comes by the webhook, from a real repository
    deploy_by_webhook(answers, WorkRepo.from_dir(source, tmp_path / "repo"))
    read_and_route(answers)
    scale_status_with_a_replica(answers)
    manage_tokens(answers)
    answers.call("DELETE", "/api/v1/functions/{function}/webhook-secret", status=200, params=FN)
    answers.call("DELETE", "/api/v1/functions/{function}", status=200, params=FN)
    assert set(answers.schemas) - answers.checked - CHECKED_ELSEWHERE == set(), "documented answers this test never saw"


@pytest.mark.parametrize("schema", [{}, {"type": "object"}, {"type": "object", "additionalProperties": True},
                                    {"type": "array", "items": {}}, {"anyOf": [{"type": "object"}]}])
def test_an_answer_of_any_shape_does_not_count_as_described(schema: dict[str, Any]) -> None:
    assert not names_its_fields({"components": {"schemas": {}}}, schema)
