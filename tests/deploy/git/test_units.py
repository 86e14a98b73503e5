"""The git remote's pure parts: push options, signatures, events, source URLs, secrets, repositories."""

from __future__ import annotations

import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from deploy.git.pre_receive import quarantine_environment, read_push_options, read_updates
from deploy.git.push_options import PushOptionError, parse_push_options
from deploy.git.repos import REPOSITORY_CONFIG, Repositories, RepositoryError, git_environment, hook_text
from deploy.git.webhook import (
    WebhookError,
    WebhookSecrets,
    check_source_url,
    parse_push_event,
    redact,
    signature_for,
    verify_signature,
)
from deploy.overrides import apply_traffic_override
from protocol.manifest import parse_manifest
from zeroserve.commands.init import git_remote_url


@pytest.mark.parametrize("options, expected", [
    (None, {}),
    ([], {}),
    (["traffic=10"], {"percent": 10}),
    (["traffic=10%", "tag=canary"], {"percent": 10, "tag": "canary"}),
    (["rollout=5m"], {"rollout_duration": 300.0}),
    (["traffic=0", "tag=dark", "rollout=90s"], {"percent": 0, "tag": "dark", "rollout_duration": 90.0}),
])
def test_push_options_become_a_traffic_override(options, expected):
    assert parse_push_options(options) == expected


@pytest.mark.parametrize("options, named", [
    (["colour=blue"], "'colour=blue' is not known"),
    (["traffic"], "'traffic' needs a value"),
    (["traffic="], "'traffic=' needs a value"),
    (["traffic=abc"], "whole percent from 0 to 100"),
    (["traffic=101"], "whole percent from 0 to 100"),
    (["traffic=-1"], "whole percent from 0 to 100"),
    (["tag=Canary"], "DNS-1035"),
    (["rollout=soon"], "'soon' is not a duration"),
    (["rollout=48h"], "between 0s and 24h"),
    (["traffic=10", "traffic=20"], "'traffic' is given more than once"),
])
def test_bad_push_options_are_refused_by_name(options, named):
    with pytest.raises(PushOptionError) as info:
        parse_push_options(options)
    assert named in str(info.value)


def test_traffic_override_applies_over_the_manifest_and_keeps_its_rules():
    manifest = parse_manifest({"name": "iris", "model": "model.onnx", "traffic": {"percent": 50}})
    assert apply_traffic_override(manifest, None) is manifest
    overridden = apply_traffic_override(manifest, {"tag": "canary", "rollout_duration": 60.0})
    assert (overridden.traffic.percent, overridden.traffic.tag, overridden.traffic.rollout_duration) == (
        50, "canary", 60.0)
    assert manifest.traffic.tag is None  # the manifest itself is left alone
    with pytest.raises(ValueError, match="traffic=0 needs a tag"):
        apply_traffic_override(manifest, {"percent": 0})
    with pytest.raises(ValueError, match="percent"):
        apply_traffic_override(manifest, {"percent": 300})


def test_signatures_are_hmac_sha256_of_the_raw_body():
    # The test vector of GitHub's "Validating webhook deliveries" documentation.
    body, secret = b"Hello, World!", b"It's a Secret to Everybody"
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_for(secret, body) == signature
    assert verify_signature(secret, body, signature)
    assert not verify_signature(secret, body + b"\n", signature)
    assert not verify_signature(b"other", body, signature)
    assert not verify_signature(secret, body, None)
    assert not verify_signature(secret, body, signature.replace("sha256=", "sha1="))


def test_push_events_name_the_field_at_fault():
    good = {"ref": "refs/heads/main", "after": "a" * 40,
            "repository": {"name": "iris", "clone_url": "https://example.com/iris.git"}}
    event = parse_push_event(good)
    assert (event.ref, event.after, event.repository, event.deleted) == (
        "refs/heads/main", "a" * 40, "iris", False)
    for broken, field in [([], "event"), ({**good, "ref": "main"}, "event.ref"),
                          ({**good, "after": "abc"}, "event.after"),
                          ({**good, "repository": "x"}, "event.repository"),
                          ({**good, "repository": {"name": "iris"}}, "event.repository.clone_url")]:
        with pytest.raises(WebhookError) as info:
            parse_push_event(broken)
        assert str(info.value).startswith(field)


@pytest.mark.parametrize("url", ["https://github.com/o/r.git", "http://127.0.0.1:9/r.git", "file:///srv/r.git",
                                 "/srv/r.git"])
def test_allowed_sources(url):
    assert check_source_url(url) == url


@pytest.mark.parametrize("url", ["ssh://git@github.com/o/r.git", "git://example.com/r.git", "ext::sh -c id",
                                 "--upload-pack=touch /tmp/x", "relative/path", "git@github.com:o/r.git"])
def test_refused_sources(url):
    with pytest.raises(WebhookError, match="clone_url"):
        check_source_url(url)


def test_credentials_never_reach_messages():
    assert redact("https://user:hunter2@example.com:8443/r.git") == "https://***@example.com:8443/r.git"
    assert redact("https://example.com/r.git") == "https://example.com/r.git"
    with pytest.raises(WebhookError) as info:
        check_source_url("ssh://user:hunter2@example.com/r.git")
    assert "hunter2" not in str(info.value)


def test_webhook_secrets_are_private_files(tmp_path):
    secrets = WebhookSecrets(tmp_path / "webhooks")
    assert secrets.get("iris") is None
    generated = secrets.set("iris")
    assert len(generated) == 64 and secrets.get("iris") == generated.encode()
    assert stat.S_IMODE((tmp_path / "webhooks" / "iris.secret").stat().st_mode) == 0o600
    assert secrets.set("iris", "x" * 20) == "x" * 20 and secrets.get("iris") == b"x" * 20
    with pytest.raises(WebhookError, match="16 to 256"):
        secrets.set("iris", "short")
    with pytest.raises(ValueError, match="DNS-1035"):
        secrets.set("../token")
    assert secrets.delete("iris") and not secrets.delete("iris") and secrets.get("iris") is None


def test_repositories_are_created_once_configured_and_hooked(tmp_path):
    repos = Repositories(tmp_path / "git", "release")
    for bad in ("..", "a/b", "Iris", "x" * 64, ""):
        with pytest.raises(RepositoryError):
            repos.path_for(bad)
    with ThreadPoolExecutor(4) as pool:  # first pushes racing each other see one repository
        paths = list(pool.map(lambda _: repos.ensure("iris"), range(4)))
    assert len(set(paths)) == 1 and paths[0] == tmp_path / "git" / "iris.git"
    assert sorted(p.name for p in (tmp_path / "git").iterdir()) == ["iris.git"]

    def config(key):
        return subprocess.run(["git", "-C", str(paths[0]), "config", key], capture_output=True, text=True,
                              env=git_environment(), check=True).stdout.strip()

    for key, value in REPOSITORY_CONFIG.items():
        assert config(key) == value
    head = subprocess.run(["git", "-C", str(paths[0]), "symbolic-ref", "HEAD"], capture_output=True,
                          text=True, env=git_environment(), check=True).stdout.strip()
    assert head == "refs/heads/release"
    hook = paths[0] / "hooks" / "pre-receive"
    assert hook.read_text() == hook_text() and hook.stat().st_mode & stat.S_IXUSR
    hook.write_text("#!/bin/sh\nexit 0\n")  # a stale or tampered hook is put back on the next push
    repos.install_hook(paths[0])
    assert hook.read_text() == hook_text()
    assert repos.read_ref(paths[0], "refs/heads/release") is None


def test_the_hook_reads_what_git_gives_it(tmp_path):
    updates = read_updates(f"{'0' * 40} {'a' * 40} refs/heads/main\n{'b' * 40} {'c' * 40} refs/tags/v1\n")
    assert updates == [{"old": "0" * 40, "new": "a" * 40, "ref": "refs/heads/main"},
                       {"old": "b" * 40, "new": "c" * 40, "ref": "refs/tags/v1"}]
    assert read_push_options({}) is None
    assert read_push_options({"GIT_PUSH_OPTION_COUNT": "2", "GIT_PUSH_OPTION_0": "traffic=10",
                              "GIT_PUSH_OPTION_1": "tag=canary"}) == ["traffic=10", "tag=canary"]
    env = quarantine_environment({"GIT_OBJECT_DIRECTORY": "./objects/incoming-x",
                                  "GIT_ALTERNATE_OBJECT_DIRECTORIES": "/repo/objects:rel/objects",
                                  "HOME": "/root"}, "/repo")
    assert env == {"GIT_OBJECT_DIRECTORY": "/repo/./objects/incoming-x",
                   "GIT_ALTERNATE_OBJECT_DIRECTORIES": "/repo/objects:/repo/rel/objects"}


def test_init_remote_urls_never_hold_credentials():
    assert git_remote_url("http://127.0.0.1:8080/", "iris") == "http://127.0.0.1:8080/git/iris.git"
    # A server given with user:password in it loses them: the remote URL is what `git remote -v` shows.
    assert git_remote_url("http://x:secret@127.0.0.1:8080/zs", "iris") == "http://127.0.0.1:8080/zs/git/iris.git"
