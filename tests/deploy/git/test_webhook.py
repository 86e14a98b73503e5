"""The signed webhook against a real `zeroserve up`: bad signatures fetch nothing, good ones deploy."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from deploy.git.webhook import signature_for
from tests.deploy.git.gitrepo import WorkRepo
from tests.polling import wait_for
from tests.zeroserve.control.harness import function_dir

SECRET = "a-webhook-secret-for-tests"


class _Spy(http.server.BaseHTTPRequestHandler):
    """Counts every request: a fetch of the event's clone_url would show up here."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def spy_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Spy", (_Spy,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/source.git", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def event(clone_url: str, after: str, ref: str = "refs/heads/main") -> bytes:
    return json.dumps({"ref": ref, "before": "0" * 40, "after": after,
                       "repository": {"name": "hooked", "clone_url": clone_url}}).encode()


def post(platform, body: bytes, signature: str | None, *, kind: str = "push",
         query: str = "function=hooked&wait=true"):
    headers = {"Content-Type": "application/json", "X-GitHub-Event": kind}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(f"{platform.url}/api/v1/hooks/git?{query}", content=body, headers=headers, timeout=120)


def test_webhook_verifies_the_signature_before_fetching_then_deploys(platform, tmp_path, spy_server):
    spy_url, hits = spy_server
    source = WorkRepo.from_dir(function_dir(tmp_path, "hooked"), tmp_path / "hooked")
    commit = source.head()

    no_secret = post(platform, event(spy_url, commit), signature_for(SECRET.encode(), event(spy_url, commit)))
    assert no_secret.status_code == 401 and "no webhook secret" in no_secret.json()["error"]

    secret_url = f"{platform.url}/api/v1/functions/hooked/webhook-secret"
    bearer = {"Authorization": f"Bearer {platform.token}"}
    unauthorised = httpx.put(secret_url, json={"secret": SECRET})
    assert unauthorised.status_code == 401  # managing secrets needs the token
    short = httpx.put(secret_url, json={"secret": "short"}, headers=bearer)
    assert short.status_code == 400 and "secret" in short.json()["error"]
    created = httpx.put(secret_url, json={"secret": SECRET}, headers=bearer)
    assert created.status_code == 200, created.text
    assert created.json()["secret"] == SECRET
    assert created.json()["url"].endswith("/api/v1/hooks/git?function=hooked")

    body = event(spy_url, commit)
    for signature in (None, "sha256=" + "0" * 64, signature_for(b"another-secret-entirely", body),
                      signature_for(SECRET.encode(), body + b" ")):
        refused = post(platform, body, signature)
        assert refused.status_code == 401, refused.text
        assert "signature" in refused.json()["error"]
    assert hits == []  # nothing was fetched for a refused event
    assert all(f["name"] != "hooked" for f in platform.client().list_functions())

    ping = post(platform, b"{}", signature_for(SECRET.encode(), b"{}"), kind="ping")
    assert ping.status_code == 200 and ping.json()["ok"] is True

    other_branch = event(source.path.as_uri(), commit, ref="refs/heads/feature")
    ignored = post(platform, other_branch, signature_for(SECRET.encode(), other_branch))
    assert ignored.status_code == 202 and ignored.json()["status"] == "ignored"

    ssh = event("ssh://git@example.com/repo.git", commit)
    assert post(platform, ssh, signature_for(SECRET.encode(), ssh)).status_code == 400

    good = event(source.path.as_uri(), commit)
    deployed = post(platform, good, signature_for(SECRET.encode(), good))
    assert deployed.status_code == 201, deployed.text
    result = deployed.json()
    assert (result["status"], result["revision"], result["commit"]) == ("created", "hooked-00001", commit)
    assert any(line.startswith("[1/7] export ok") and commit[:12] in line for line in result["log"])
    assert platform.client().describe("hooked")["latest_revision"] == "hooked-00001"

    # A local path works as well as file://; the same commit is the same revision.
    again_body = event(str(source.path), commit)
    again = post(platform, again_body, signature_for(SECRET.encode(), again_body))
    assert again.status_code == 200 and again.json()["status"] == "unchanged"

    # Without ?wait the host gets its answer at once and the deploy goes on.
    missing = event(source.path.as_uri(), "f" * 40)
    accepted = post(platform, missing, signature_for(SECRET.encode(), missing), query="function=hooked")
    assert accepted.status_code == 202 and accepted.json()["status"] == "accepted"
    failed = wait_for(lambda: [e for e in platform.client().events("hooked")
                               if e["kind"] == "build-failed" and "ffffffffffff" in e["message"]],
                      "the background deploy's failure event")
    assert "webhook deploy failed" in failed[0]["message"]
