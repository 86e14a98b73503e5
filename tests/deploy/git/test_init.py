"""`zeroserve init` scaffolds a repository that deploys with a plain `git push zeroserve main`."""

from __future__ import annotations

import json
import stat

import httpx
import pytest
import yaml

from tests.deploy.git.gitrepo import WorkRepo, git
from tests.zeroserve.control.harness import run_cli


@pytest.mark.parametrize("template", ["onnx", "python"])
def test_init_scaffolds_a_repository_that_deploys_on_push(platform, tmp_path, template):
    name = f"init-{template}"
    target = tmp_path / name
    created = run_cli(platform, "init", name, "--template", template, "--dir", str(target))
    assert created.returncode == 0, created.stderr
    assert platform.token not in created.stdout + created.stderr
    assert f"git remote zeroserve -> {platform.url}/git/{name}.git\n" in created.stdout  # no credentials in it
    assert f"(scope deploy: {name}) created" in created.stdout and f"zeroserve invoke {name}" in created.stdout

    expected = {"onnx": "model.onnx", "python": "handler.py"}[template]
    for file in ("function.yaml", "sample.json", "README.md", ".gitignore", expected):
        assert (target / file).is_file(), file
    assert yaml.safe_load((target / "function.yaml").read_text())["name"] == name
    readme = (target / "README.md").read_text()
    assert "git push zeroserve main" in readme and "-o traffic=10" in readme
    remote = git(target, "remote", "get-url", "zeroserve").stdout.strip()
    assert remote.endswith(f"/git/{name}.git")

    repo = WorkRepo(target)
    repo.commit("first revision")
    pushed = git(target, "push", "zeroserve", "main", check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert f"revision {name}-00001 created" in pushed.stderr


def test_init_refuses_bad_names_and_existing_directories(platform, tmp_path):
    bad = run_cli(platform, "init", "Not_A_Label", "--dir", str(tmp_path / "bad"))
    assert bad.returncode == 1 and "DNS-1035" in bad.stderr and not (tmp_path / "bad").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    refused = run_cli(platform, "init", "taken", "--dir", str(taken))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]
    unknown = run_cli(platform, "init", "tmpl", "--template", "cobol", "--dir", str(tmp_path / "tmpl"))
    assert unknown.returncode != 0 and not (tmp_path / "tmpl").exists()


def test_init_hands_git_a_deploy_token_for_this_function_only_and_no_secret_is_in_the_repository(
        platform, tmp_path):
    target = tmp_path / "helper-fn"
    created = run_cli(platform, "init", "helper-fn", "--template", "python", "--dir", str(target))
    assert created.returncode == 0, created.stderr
    credentials = target / ".git" / "zeroserve-credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    deploy_token = json.loads(credentials.read_text())["password"]
    assert deploy_token.startswith("zst_") and deploy_token != platform.token

    # No secret where people and tools look: the config, the remote as `git remote -v` shows it, the output.
    config = (target / ".git" / "config").read_text()
    remotes = git(target, "remote", "-v").stdout
    for secret in (deploy_token, platform.token):
        assert secret not in config and secret not in remotes and secret not in created.stdout + created.stderr
    assert "@" not in remotes
    # Only the credentials file holds it, and the admin token is nowhere under the repository.
    holders = [p for p in target.rglob("*") if p.is_file() and deploy_token.encode() in p.read_bytes()]
    assert holders == [credentials]
    assert not [p for p in target.rglob("*") if p.is_file() and platform.token.encode() in p.read_bytes()]

    # git asks the helper, which answers for the platform's host only (never for another server).
    host = platform.url.removeprefix("http://")
    asked = git(target, "credential", "fill", input_text=f"protocol=http\nhost={host}\n\n")
    assert f"password={deploy_token}" in asked.stdout
    other = git(target, "credential", "fill", input_text="protocol=https\nhost=example.com\n\n", check=False)
    assert deploy_token not in other.stdout + other.stderr

    # A helper in the user's global config never sees the token, not even when git stores it after a push.
    spy_log = tmp_path / "spy.log"
    spy = tmp_path / "spy-helper.sh"
    spy.write_text(f"#!/bin/sh\necho \"$1\" >> {spy_log}\ncat >> {spy_log}\n")
    spy.chmod(0o755)
    global_config = tmp_path / "gitconfig"
    global_config.write_text(f"[credential]\n\thelper = {spy}\n")

    repo = WorkRepo(target)
    repo.commit("first revision")
    pushed = git(target, "push", "zeroserve", "main", check=False, env={"GIT_CONFIG_GLOBAL": str(global_config)})
    assert pushed.returncode == 0, pushed.stderr
    assert "revision helper-fn-00001 created" in pushed.stderr and "try it: zeroserve invoke helper-fn" in pushed.stderr
    assert not spy_log.exists() or deploy_token not in spy_log.read_text()
    fetched = git(target, "fetch", "zeroserve", check=False)
    assert fetched.returncode == 0, fetched.stderr

    # The deploy token is scoped: another function's repository refuses it (403 naming the scope).
    git(target, "remote", "add", "elsewhere", f"{platform.url}/git/init-onnx.git")
    refused = git(target, "push", "elsewhere", "main:main", check=False)
    assert refused.returncode != 0
    assert "scope deploy: helper-fn" in refused.stderr and "403" in refused.stderr, refused.stderr

    # And nothing the platform printed or recorded holds either token.
    events = httpx.get(f"{platform.url}/api/v1/events", params={"limit": 10000},
                       headers={"Authorization": f"Bearer {platform.token}"}).text
    log = "".join(platform.output)
    for secret in (deploy_token, platform.token):
        assert secret not in events and secret not in log


def test_init_without_a_reachable_platform_still_scaffolds_and_says_git_will_ask(platform, tmp_path):
    target = tmp_path / "offline-fn"
    result = run_cli(platform, "init", "offline-fn", "--dir", str(target), "--server", "http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert "could not create a deploy token" in result.stdout and "git will ask for a token" in result.stdout
    assert not (target / ".git" / "zeroserve-credentials").exists()
    assert "credential" not in (target / ".git" / "config").read_text()
    assert (target / "function.yaml").is_file()
