"""Scoped tokens against a real `zeroserve up`: each scope against each door, with the real git client.

The doors: the control API (reads, traffic, deploys by upload, delete, tokens, webhook secrets), the git
remote (fetch and push with `git`), and the function URL of an `auth: token` function. The admin token
(DATA/token) keeps full access; a scoped token gets exactly its scope, and a refusal is a 403 naming the
token and its scope (a missing, unknown, revoked or expired token: a 401). Secrets are stored hashed and
never show up in the platform's output, its events or its database.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from protocol.tokens import token_hash
from revisions.archive import pack_function_dir
from tests.deploy.git.gitrepo import WorkRepo, git
from tests.polling import wait_for
from tests.zeroserve.control.harness import REPO, PlatformProcess, _env, change_model, function_dir, run_cli

IRIS_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
OK, UNAUTHORIZED, FORBIDDEN = "ok", 401, 403
TOKENS = ("none", "admin", "read-demo", "read-all", "deploy-demo", "invoke-priv")
SCOPE_OF = {"read-demo": "scope read: demo", "read-all": "scope read: every function",
            "deploy-demo": "scope deploy: demo", "invoke-priv": "scope invoke: priv"}


@dataclass
class World:
    platform: PlatformProcess
    dirs: dict[str, Path]
    repos: dict[str, WorkRepo]
    secrets: dict[str, str | None] = field(default_factory=dict)


def cli_token(platform: PlatformProcess, *args: str) -> str:
    """`zeroserve token create ARGS`: stdout is the secret alone."""
    created = run_cli(platform, "token", "create", *args)
    assert created.returncode == 0, created.stderr
    assert "only time it is shown" in created.stderr
    return created.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("tokens")
    platform = PlatformProcess(tmp / "data").start()
    try:
        dirs = {"demo": function_dir(tmp, "demo"), "other": function_dir(tmp, "other"),
                "priv": function_dir(tmp, "priv", auth="token")}
        repos = {}
        for name, directory in dirs.items():  # created by the admin token through git, as an operator would
            repos[name] = WorkRepo.from_dir(directory, directory)
            pushed = repos[name].push(git_url(platform, name, platform.token))
            assert pushed.returncode == 0, pushed.stderr
        world = World(platform, dirs, repos)
        world.secrets = {
            "none": None, "admin": platform.token,
            "read-demo": cli_token(platform, "--scope", "read", "--function", "demo", "--name", "read-demo"),
            "read-all": cli_token(platform, "--scope", "read", "--name", "read-all"),
            "deploy-demo": cli_token(platform, "--scope", "deploy", "--function", "demo", "--name", "deploy-demo"),
            "invoke-priv": cli_token(platform, "--scope", "invoke", "--function", "priv", "--name", "invoke-priv",
                                     "--expires", "30d"),
        }
        yield world
    finally:
        platform.stop()


def git_url(platform: PlatformProcess, function: str, secret: str | None) -> str:
    host = platform.url.removeprefix("http://")
    return f"http://x:{secret}@{host}/git/{function}.git" if secret else f"http://{host}/git/{function}.git"


# -------------------------------------------------------------------------------------------- the matrix

def api(method: str, path: str, body: object = None):
    def call(w: World, secret: str | None) -> tuple[int | str, str]:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        kwargs: dict = {"json": body} if body is not None else {}
        response = httpx.request(method, w.platform.url + path, headers=headers, timeout=120, **kwargs)
        return response.status_code, response.text
    return call


def upload(function: str):
    def call(w: World, secret: str | None) -> tuple[int | str, str]:
        headers = {"Content-Type": "application/gzip", **({"Authorization": f"Bearer {secret}"} if secret else {})}
        response = httpx.post(f"{w.platform.url}/api/v1/functions", content=pack_function_dir(w.dirs[function]),
                              headers=headers, timeout=300)
        return response.status_code, response.text
    return call


def git_op(operation: str, function: str):
    """`git ls-remote` (fetch: the upload-pack advertisement) or `git push` with the token as the password."""
    def call(w: World, secret: str | None) -> tuple[int | str, str]:
        url = git_url(w.platform, function, secret)
        args = ("ls-remote", url) if operation == "fetch" else ("push", url, "HEAD:main")
        result = git(w.repos[function].path, *args, check=False)
        if result.returncode == 0:
            return 200, result.stdout + result.stderr
        output = result.stdout + result.stderr
        if "403" in output:
            return 403, output
        if "Authentication failed" in output or "could not read Username" in output or "401" in output:
            return 401, output
        return 500, output
    return call


ALL_OK = dict.fromkeys(TOKENS, OK)
#                             none          admin  read-demo  read-all   deploy-demo  invoke-priv
MATRIX: dict[str, tuple[object, tuple[object, ...]]] = {
    "list functions": (api("GET", "/api/v1/functions"), (401, OK, 403, OK, 403, 403)),
    "describe demo": (api("GET", "/api/v1/functions/demo"), (401, OK, OK, OK, OK, 403)),
    "describe other": (api("GET", "/api/v1/functions/other"), (401, OK, 403, OK, 403, 403)),
    "status demo": (api("GET", "/api/v1/functions/demo/status"), (401, OK, OK, OK, OK, 403)),
    "revisions other": (api("GET", "/api/v1/functions/other/revisions"), (401, OK, 403, OK, 403, 403)),
    "events of all": (api("GET", "/api/v1/events"), (401, OK, 403, OK, 403, 403)),
    "events of demo": (api("GET", "/api/v1/events?function=demo"), (401, OK, OK, OK, OK, 403)),
    "tag demo": (api("PUT", "/api/v1/functions/demo/tags/pinned", {"revision": "demo-00001"}),
                 (401, OK, 403, 403, OK, 403)),
    "tag other": (api("PUT", "/api/v1/functions/other/tags/pinned", {"revision": "other-00001"}),
                  (401, OK, 403, 403, 403, 403)),
    "rollback other": (api("POST", "/api/v1/functions/other/rollback"), (401, OK, 403, 403, 403, 403)),
    "deploy demo": (upload("demo"), (401, OK, 403, 403, OK, 403)),
    "deploy other": (upload("other"), (401, OK, 403, 403, 403, 403)),
    "delete demo": (api("DELETE", "/api/v1/functions/demo"), (401, None, 403, 403, 403, 403)),
    "create a token": (api("POST", "/api/v1/tokens", {"scope": "read"}), (401, OK, 403, 403, 403, 403)),
    "list tokens": (api("GET", "/api/v1/tokens"), (401, OK, 403, 403, 403, 403)),
    "revoke a token": (api("DELETE", "/api/v1/tokens/no-such-token"), (401, OK, 403, 403, 403, 403)),
    "webhook secret of demo": (api("PUT", "/api/v1/functions/demo/webhook-secret", {}),
                               (401, OK, 403, 403, 403, 403)),
    "invoke priv (auth: token)": (api("POST", "/fn/priv/v2/models/priv/infer", IRIS_BODY),
                                  (401, OK, 403, 403, 403, OK)),
    "invoke demo (public)": (api("POST", "/fn/demo/v2/models/demo/infer", IRIS_BODY), tuple(ALL_OK.values())),
    "git fetch demo": (git_op("fetch", "demo"), (401, OK, OK, OK, OK, 403)),
    "git fetch other": (git_op("fetch", "other"), (401, OK, 403, OK, 403, 403)),
    "git push demo": (git_op("push", "demo"), (401, OK, 403, 403, OK, 403)),
    "git push other": (git_op("push", "other"), (401, OK, 403, 403, 403, 403)),
}
CASES = [(request, token) for request, (_, expected) in MATRIX.items()
         for token, outcome in zip(TOKENS, expected, strict=True) if outcome is not None]


@pytest.mark.parametrize(("request_name", "token"), CASES, ids=[f"{r} as {t}" for r, t in CASES])
def test_each_scope_against_each_door(world: World, request_name: str, token: str):
    call, expected_row = MATRIX[request_name]
    expected = expected_row[TOKENS.index(token)]
    status, text = call(world, world.secrets[token])  # type: ignore[operator]
    if expected == OK:
        assert status not in (401, 403), f"{request_name} as {token}: refused ({status}): {text[:400]}"
        assert status < 500, text[:400]
    else:
        assert status == expected, f"{request_name} as {token}: {status}, expected {expected}: {text[:400]}"
        if expected == FORBIDDEN:  # the refusal names the token and its scope
            assert f"token {token}" in text and SCOPE_OF[token] in text, text[:400]


# ------------------------------------------------------------------------------------- the lifecycle

def test_a_deploy_token_deploys_its_function_by_push_and_upload_and_nothing_else(world: World, tmp_path):
    secret = world.secrets["deploy-demo"]
    repo = world.repos["demo"]
    change_model(repo.path, "pushed with a deploy token")
    repo.commit("a new model")
    pushed = repo.push(git_url(world.platform, "demo", secret))
    assert pushed.returncode == 0, pushed.stderr
    assert "revision demo-0000" in pushed.stderr and "try it: zeroserve invoke demo" in pushed.stderr
    clone = git(tmp_path, "clone", "--quiet", git_url(world.platform, "demo", secret), str(tmp_path / "c"),
                check=False)
    assert clone.returncode == 0 and git(tmp_path / "c", "rev-parse", "HEAD").stdout.strip() == repo.head()

    # The CLI with the deploy token: traffic of its function yes, another function's no.
    with world.platform.client(secret) as client:
        latest = client.describe("demo")["latest_revision"]
    ok = run_cli(world.platform, "traffic", "demo", f"{latest}=100", token=secret)
    assert ok.returncode == 0, ok.stderr
    refused = run_cli(world.platform, "traffic", "other", "other-00001=100", token=secret)
    assert refused.returncode == 1 and "scope deploy: demo" in refused.stderr
    listed = run_cli(world.platform, "ls", token=secret)
    assert listed.returncode == 1 and "forbidden" in listed.stderr


def test_a_manifest_naming_another_function_is_refused_to_a_deploy_token(world: World, tmp_path):
    sneaky = function_dir(tmp_path, "other")  # a demo token uploading other's manifest
    result = run_cli(world.platform, "deploy", str(sneaky), token=world.secrets["deploy-demo"])
    assert result.returncode == 1
    assert "cannot deploy function 'other'" in result.stderr and "scope deploy: demo" in result.stderr
    with world.platform.client() as client:
        kinds = [e["kind"] for e in client.events("other", limit=1000)]
    assert "build-failed" not in kinds  # refused before any build, so nothing is recorded for `other`


def test_revoked_and_expired_tokens_are_refused_at_every_door(world: World):
    platform = world.platform
    with platform.client() as admin:
        deployer = admin.create_token("deploy", ["demo"], name="soon-revoked")["token"]
        caller = admin.create_token("invoke", ["priv"], name="soon-revoked-invoke")["token"]
        brief = admin.create_token("read", ["demo"], name="brief", expires_in=2)["token"]
    invoke_url = f"{platform.url}/fn/priv/v2/models/priv/infer"

    def describe(secret: str) -> httpx.Response:
        return httpx.get(f"{platform.url}/api/v1/functions/demo", headers={"Authorization": f"Bearer {secret}"})

    def invoke(secret: str) -> httpx.Response:
        return httpx.post(invoke_url, json=IRIS_BODY, headers={"Authorization": f"Bearer {secret}"}, timeout=120)

    def fetch(secret: str) -> subprocess.CompletedProcess[str]:
        return git(world.repos["demo"].path, "ls-remote", git_url(platform, "demo", secret), check=False)

    assert describe(deployer).status_code == 200 and invoke(caller).status_code == 200
    assert fetch(deployer).returncode == 0
    for name in ("soon-revoked", "soon-revoked-invoke"):
        revoked = run_cli(platform, "token", "revoke", name)
        assert revoked.returncode == 0 and f"revoked token {name}" in revoked.stdout
    assert describe(deployer).status_code == 401 and "not valid" in describe(deployer).json()["error"]
    assert invoke(caller).status_code == 401
    assert fetch(deployer).returncode != 0
    again = run_cli(platform, "token", "revoke", "soon-revoked")
    assert again.returncode == 1 and "token 'soon-revoked' not found" in again.stderr

    # The brief token works until it expires, then every door answers 401 saying so.
    expired = wait_for(lambda: (r := describe(brief)).status_code == 401 and r, "the token to expire", timeout=30)
    assert "token brief expired" in expired.json()["error"]
    assert fetch(brief).returncode != 0


def test_token_cli_create_list_and_refusals(world: World):
    platform = world.platform
    listed = run_cli(platform, "token", "ls")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert "deploy" in rows["deploy-demo"] and "demo" in rows["deploy-demo"]
    assert "(every function)" in rows["read-all"]
    assert rows["invoke-priv"].split()[-2:] != ["never"]  # it expires (30d), unlike the others
    for secret in world.secrets.values():
        assert secret is None or secret not in listed.stdout
    as_json = run_cli(platform, "token", "ls", "--json")
    assert '"last_used"' in as_json.stdout and "zst_" not in as_json.stdout

    missing = run_cli(platform, "token", "create", "--scope", "deploy")
    assert missing.returncode == 1 and "must name the functions" in missing.stderr
    bad_expiry = run_cli(platform, "token", "create", "--scope", "read", "--expires", "soon")
    assert bad_expiry.returncode == 1 and "--expires" in bad_expiry.stderr
    taken = run_cli(platform, "token", "create", "--scope", "read", "--name", "read-all")
    assert taken.returncode == 1 and "exists already" in taken.stderr
    by_deployer = run_cli(platform, "token", "create", "--scope", "read", token=world.secrets["deploy-demo"])
    assert by_deployer.returncode == 1 and "needs an admin token" in by_deployer.stderr


def test_secrets_are_stored_hashed_and_never_printed_or_recorded(world: World):
    platform = world.platform
    scoped = [s for name, s in world.secrets.items() if s is not None and name != "admin"]
    stored = b"".join(p.read_bytes() for p in platform.data_dir.glob("registry.db*"))
    for secret in scoped:  # the database (and its write-ahead log) holds the hash, never the token
        assert secret.encode() not in stored and token_hash(secret).encode() in stored
    with platform.client() as client:
        events = client.events(limit=10000)
    assert any(e["kind"] == "token" and "deploy-demo created" in e["message"] for e in events)
    text = str(events) + "".join(platform.output)
    for secret in world.secrets.values():
        assert secret is None or secret not in text


def test_an_invoke_token_alone_is_enough_for_zeroserve_invoke(world: World):
    env = _env(ZEROSERVE_URL=world.platform.url, ZEROSERVE_TOKEN=world.secrets["invoke-priv"] or "")
    result = subprocess.run([sys.executable, "-m", "zeroserve.cli", "invoke", "priv", "--data",
                             "@" + str(world.dirs["priv"] / "sample.json")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "priv-00001 answered HTTP 200" in result.stdout and "probabilities" in result.stdout
