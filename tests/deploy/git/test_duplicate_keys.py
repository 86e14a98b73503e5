"""A function.yaml with a key written twice fails every deploy path, naming the key and both lines.

`zeroserve deploy` (the API upload), `git push` and the signed webhook each refuse it, create no
revision and leave the route as it was (tests/protocol/manifest/test_duplicate_keys.py has the reader's rules).
"""

from __future__ import annotations

import httpx
import yaml

from deploy.git.webhook import signature_for
from tests.deploy.git.gitrepo import WorkRepo, remote_url
from tests.deploy.git.test_webhook import SECRET, event, post
from tests.zeroserve.control.harness import function_dir, run_cli


def add_second_block(directory, name: str) -> str:
    """The manifest with `scaling:` twice, top level, plus `traffic.percent` twice, nested; returns the text."""
    manifest = yaml.safe_load((directory / "function.yaml").read_text())
    manifest.pop("scaling", None)
    manifest.pop("traffic", None)
    text = (yaml.safe_dump(manifest, sort_keys=False) + "scaling:\n  target: 10\n"
            "traffic:\n  percent: 100\n  percent: 50\nscaling: {target: 5}\n")
    (directory / "function.yaml").write_text(text)
    return text


def line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith(needle)]
    return lines[nth - 1]


def expected(text: str) -> tuple[str, str]:
    first, second = line_of(text, "scaling:"), line_of(text, "scaling:", 2)
    pct1, pct2 = line_of(text, "  percent:"), line_of(text, "  percent:", 2)
    return (f"scaling: duplicate key at lines {first} and {second}",
            f"traffic.percent: duplicate key at lines {pct1} and {pct2}")


def revisions_of(platform, name: str) -> list[str]:
    with platform.client() as client:
        try:
            return [r["name"] for r in client.revisions(name)]
        except Exception:  # never deployed: the function does not exist
            return []


def test_zeroserve_deploy_refuses_a_duplicate_key(platform, tmp_path):
    directory = function_dir(tmp_path, "dup-deploy")
    text = add_second_block(directory, "dup-deploy")
    result = run_cli(platform, "deploy", str(directory))
    assert result.returncode == 1
    for message in expected(text):
        assert message in result.stderr, result.stderr
    assert revisions_of(platform, "dup-deploy") == []


def test_git_push_refuses_a_duplicate_key_and_a_fixed_push_deploys(platform, tmp_path):
    directory = function_dir(tmp_path, "dup-push")
    text = add_second_block(directory, "dup-push")
    repo = WorkRepo.from_dir(directory, tmp_path / "dup-push")
    pushed = repo.push(remote_url(platform, "dup-push"))
    assert pushed.returncode != 0
    for message in expected(text):
        assert message in pushed.stderr, pushed.stderr
    assert "push rejected" in pushed.stderr and revisions_of(platform, "dup-push") == []

    fixed = text.replace("  percent: 50\n", "").replace("scaling: {target: 5}\n", "")
    (repo.path / "function.yaml").write_text(fixed)
    repo.commit("one scaling block")
    again = repo.push(remote_url(platform, "dup-push"))
    assert again.returncode == 0, again.stderr
    assert revisions_of(platform, "dup-push") == ["dup-push-00001"]


def test_the_webhook_refuses_a_duplicate_key(platform, tmp_path):
    directory = function_dir(tmp_path, "dup-hook")
    text = add_second_block(directory, "dup-hook")
    source = WorkRepo.from_dir(directory, tmp_path / "dup-hook")
    secret = httpx.put(f"{platform.url}/api/v1/functions/dup-hook/webhook-secret", json={"secret": SECRET},
                       headers={"Authorization": f"Bearer {platform.token}"})
    assert secret.status_code == 200, secret.text
    body = event(source.path.as_uri(), source.head())
    answer = post(platform, body, signature_for(SECRET.encode(), body), query="function=dup-hook&wait=true")
    assert answer.status_code == 400, answer.text
    for message in expected(text):
        assert message in answer.text, answer.text
    assert revisions_of(platform, "dup-hook") == []
