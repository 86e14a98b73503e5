"""`git push` against a real `zeroserve up`: deploys, live build log, refusals, serialised pushes, clone."""

from __future__ import annotations

import http.client
import json
import textwrap
from pathlib import Path

import httpx
import yaml

from tests.deploy.git.gitrepo import WorkRepo, git, ls_remote, remote_url
from tests.zeroserve.control.harness import IRIS, change_model, function_dir, slow_function_dir


def split_of(platform, function):
    info = platform.client().describe(function)
    return {("@latest" if t["latest"] else t["revision"]): t["percent"] for t in info["traffic"]["targets"]}


def revision_names(platform, function):
    return [r["name"] for r in platform.client().revisions(function)]


def infer(platform, function):
    sample = json.loads((IRIS / "sample.json").read_text())
    return httpx.post(f"{platform.url}/fn/{function}/v2/models/{function}/infer", json=sample, timeout=60)


def test_push_deploys_a_serving_revision_and_moves_traffic_per_policy(platform, tmp_path):
    repo = WorkRepo.from_dir(function_dir(tmp_path, "iris-git"), tmp_path / "iris-git")
    url = remote_url(platform, "iris-git")

    first = repo.push(url)
    assert first.returncode == 0, first.stderr
    log = first.stderr
    steps = ["[1/7] export ok", "[2/7] manifest ok", "[3/7] files ok", "[4/7] smoke ok", "[5/7] digest ok",
             "[6/7] store ok", "[7/7] traffic ok"]
    positions = [log.index(f"remote: {step}") for step in steps]
    assert positions == sorted(positions)  # numbered steps, in order, as remote: lines
    assert "revision iris-git-00001 created" in log
    assert "traffic: iris-git-00001=100" in log
    assert f"url: http://iris-git.localhost:{platform.url.rsplit(':', 1)[1]}/" in log
    assert f"url: {platform.url}/fn/iris-git/" in log
    assert platform.token not in log + first.stdout
    assert ls_remote(url, tmp_path)["refs/heads/main"] == repo.head()

    served = infer(platform, "iris-git")
    assert served.status_code == 200, served.text
    assert served.headers["zeroserve-revision"] == "iris-git-00001"

    change_model(repo.path, "retrained")
    repo.commit("retrained model")
    second = repo.push(url)
    assert second.returncode == 0, second.stderr
    assert "revision iris-git-00002 created" in second.stderr
    assert split_of(platform, "iris-git") == {"iris-git-00002": 100}  # the manifest's policy: 100 % to new

    change_model(repo.path, "canary")
    repo.commit("canary model")
    third = repo.push(url, "-o", "traffic=10")
    assert third.returncode == 0, third.stderr
    assert "traffic: iris-git-00002=90, iris-git-00003=10" in third.stderr
    assert split_of(platform, "iris-git") == {"iris-git-00002": 90, "iris-git-00003": 10}
    assert ls_remote(url, tmp_path)["refs/heads/main"] == repo.head()

    unchanged = repo.push(url)  # nothing new to push: git says so, no hook runs
    assert unchanged.returncode == 0 and "Everything up-to-date" in unchanged.stderr
    assert revision_names(platform, "iris-git") == ["iris-git-00001", "iris-git-00002", "iris-git-00003"]


def test_build_log_reaches_the_pusher_while_the_build_runs(platform, tmp_path, streamed_push, shared_tmp):
    gate = shared_tmp / "gate"  # the handler (its own user, when the suite runs as root) reads it
    repo = WorkRepo.from_dir(slow_function_dir(tmp_path, "slow-git", gate, "v1"), tmp_path / "slow-git")
    push = streamed_push(repo, remote_url(platform, "slow-git"))

    # The smoke inference's load() waits for the gate, which only this test opens: the export line
    # can only be here if git relayed it while the build was still running.
    first = push.wait_for_line(lambda line: line.startswith("remote: [1/7] export ok"))
    assert "[1/7]" in first and not gate.exists()
    assert push.proc.poll() is None
    assert not any("[4/7]" in line for line in push.lines)
    gate.touch()
    assert push.finish() == 0, push.output
    assert "remote: [4/7] smoke ok" in push.output
    assert "revision slow-git-00001 created" in push.output


def test_failed_builds_are_rejected_and_change_nothing(platform, tmp_path):
    repo = WorkRepo.from_dir(function_dir(tmp_path, "reject-git"), tmp_path / "reject-git")
    url = remote_url(platform, "reject-git")
    assert repo.push(url).returncode == 0
    good = repo.head()
    route = split_of(platform, "reject-git")

    def rejected(change, *expected, options=()):
        change()
        repo.commit("broken")
        result = repo.push(url, *options)
        assert result.returncode != 0, result.stderr
        assert "! [remote rejected] HEAD -> main (pre-receive hook declined)" in result.stderr
        for text in expected:
            assert text in result.stderr
        assert ls_remote(url, tmp_path)["refs/heads/main"] == good
        git(repo.path, "reset", "--quiet", "--hard", good)
        return result.stderr

    corrupt = rejected(lambda: (repo.path / "model.onnx").write_bytes(b"not a model"),
                       "[4/7] smoke FAILED", "model.onnx", "push rejected: no revision created")
    assert "Traceback" not in corrupt

    def invalid_manifest():
        manifest = yaml.safe_load((repo.path / "function.yaml").read_text())
        manifest["scaling"]["target"] = -5
        manifest["colour"] = "blue"
        (repo.path / "function.yaml").write_text(yaml.safe_dump(manifest))

    rejected(invalid_manifest, "[2/7] manifest FAILED", "scaling.target", "colour: unknown key")

    def raising_handler():
        (repo.path / "handler.py").write_text(textwrap.dedent("""
            class Broken:
                def load(self):
                    pass

                def predict(self, inputs):
                    raise RuntimeError("the handler is broken on purpose")
        """))
        (repo.path / "function.yaml").write_text(yaml.safe_dump(
            {"name": "reject-git", "handler": "handler:Broken", "sample": "sample.json"}))

    rejected(raising_handler, "[4/7] smoke FAILED", "the handler is broken on purpose")

    def other_function():
        manifest = yaml.safe_load((repo.path / "function.yaml").read_text())
        manifest["name"] = "someone-else"
        (repo.path / "function.yaml").write_text(yaml.safe_dump(manifest))

    rejected(other_function, "names the function 'someone-else'", "push it to someone-else.git")

    def new_model():
        change_model(repo.path, "fine, but the option is not")

    rejected(new_model, "push option 'colour=blue' is not known", options=("-o", "colour=blue"))
    rejected(new_model, "push option 'traffic=110'", "0 to 100", options=("-o", "traffic=110"))

    assert revision_names(platform, "reject-git") == ["reject-git-00001"]
    assert split_of(platform, "reject-git") == route

    # Another branch is stored and answered with a notice; nothing is built.
    change_model(repo.path, "experiment")
    experiment = repo.commit("experiment")
    branch = git(repo.path, "push", url, "HEAD:refs/heads/experiment", check=False)
    assert branch.returncode == 0, branch.stderr
    assert "refs/heads/experiment: stored, not deployed (deploys come from main" in branch.stderr
    refs = ls_remote(url, tmp_path)
    assert (refs["refs/heads/experiment"], refs["refs/heads/main"]) == (experiment, good)
    assert revision_names(platform, "reject-git") == ["reject-git-00001"]


def test_concurrent_pushes_of_one_function_end_consistent(platform, tmp_path, streamed_push, shared_tmp):
    ready = shared_tmp / "ready"  # gates the handler (its own user, when the suite runs as root) reads
    ready.touch()
    base = WorkRepo.from_dir(slow_function_dir(tmp_path, "race-git", ready, "v0"), tmp_path / "race-base")
    url = remote_url(platform, "race-git")
    assert base.push(url).returncode == 0

    first = WorkRepo(tmp_path / "first")
    second = WorkRepo(tmp_path / "second")
    for clone in (first, second):
        git(tmp_path, "clone", "--quiet", url, str(clone.path))
    gate = shared_tmp / "gate-first"
    manifest = yaml.safe_load((first.path / "function.yaml").read_text())
    manifest["env"]["GATE"] = str(gate)  # the first push's build waits for this gate
    (first.path / "function.yaml").write_text(yaml.safe_dump(manifest))
    first_sha = first.commit("first")
    (second.path / "handler.py").write_text((second.path / "handler.py").read_text() + "\n# second\n")
    second.commit("second")

    push_a = streamed_push(first, url)
    push_a.wait_for_line(lambda line: "[1/7] export ok" in line)
    push_b = streamed_push(second, url)
    push_b.wait_for_line(lambda line: "waiting for another push to race-git" in line)
    gate.touch()
    assert push_a.finish() == 0, push_a.output
    assert push_b.finish() != 0, push_b.output
    assert "main moved to" in push_b.output and "fetch, merge and push again" in push_b.output
    assert "! [remote rejected]" in push_b.output

    assert ls_remote(url, tmp_path)["refs/heads/main"] == first_sha
    assert revision_names(platform, "race-git") == ["race-git-00001", "race-git-00002"]
    assert split_of(platform, "race-git") == {"race-git-00002": 100}

    # Brought up to date, the second change deploys as the next revision.
    git(second.path, "pull", "--quiet", "--no-rebase", "--no-edit", url, "main")
    again = second.push(url)
    assert again.returncode == 0, again.stderr
    assert revision_names(platform, "race-git") == ["race-git-00001", "race-git-00002", "race-git-00003"]
    assert ls_remote(url, tmp_path)["refs/heads/main"] == second.head()


def test_authentication_paths_and_clone(platform, tmp_path):
    repo = WorkRepo.from_dir(function_dir(tmp_path, "auth-git"), tmp_path / "auth-git")
    git_root = platform.data_dir / "git"

    anonymous = repo.push(remote_url(platform, "auth-git", token=None))
    assert anonymous.returncode != 0
    wrong = repo.push(remote_url(platform, "auth-git", token="not-the-token"))
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    assert not (git_root / "auth-git.git").exists()  # nothing stored

    refused = httpx.get(f"{platform.url}/git/auth-git.git/info/refs?service=git-receive-pack")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="zeroserve"'
    assert "platform token" in refused.json()["error"]
    assert not (git_root / "auth-git.git").exists()

    host = platform.url.removeprefix("http://")
    auth = {"Authorization": "Bearer " + platform.token}
    upload = "info/refs?service=git-upload-pack"
    for path in ["/git/../token", "/git/..%2ftoken.git/info/refs", f"/git/%2e%2e/x.git/{upload}",
                 f"/git/a/b.git/{upload}", f"/git/Upper.git/{upload}", f"/git/a_b.git/{upload}",
                 "/git/iris.git/HEAD", "/git/iris.git/objects/info/packs",
                 "/git/x.git/info/refs?service=git-foo"]:
        connection = http.client.HTTPConnection(host, timeout=30)
        try:  # http.client sends the path exactly as given (httpx would normalise the dots away)
            connection.request("GET", path, headers=auth)
            response = connection.getresponse()
            body = response.read().decode()
        finally:
            connection.close()
        assert response.status in (400, 404), (path, response.status, body)
        assert "error" in json.loads(body) and platform.token not in body
    entries = list(git_root.iterdir()) if git_root.exists() else []
    assert all(entry.name.endswith(".git") for entry in entries)  # nothing but repositories

    pushed = repo.push(remote_url(platform, "auth-git"))
    assert pushed.returncode == 0, pushed.stderr
    advertised = httpx.get(f"{platform.url}/git/auth-git.git/info/refs?service=git-upload-pack", headers=auth)
    assert advertised.status_code == 200  # a bearer token works as well as basic auth
    assert advertised.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    clone = tmp_path / "clone"
    cloned = git(tmp_path, "clone", "--quiet", remote_url(platform, "auth-git"), str(clone), check=False)
    assert cloned.returncode == 0, cloned.stderr
    assert git(clone, "rev-parse", "HEAD").stdout.strip() == repo.head()
    assert (clone / "function.yaml").read_text() == (repo.path / "function.yaml").read_text()

    anonymous_url = remote_url(platform, "auth-git", token=None)
    no_token = git(tmp_path, "clone", "--quiet", anonymous_url, str(tmp_path / "c2"), check=False)
    assert no_token.returncode != 0 and not (tmp_path / "c2" / "function.yaml").exists()
    missing = git(tmp_path, "clone", "--quiet", remote_url(platform, "never-pushed"), str(tmp_path / "c3"),
                  check=False)
    assert missing.returncode != 0 and "no repository yet" in missing.stderr


def test_hook_refuses_pushes_that_bypass_the_remote(platform, tmp_path):
    """A push straight into the bare repository (file system access) has no platform socket: refused."""
    repo = WorkRepo.from_dir(function_dir(tmp_path, "direct-git"), tmp_path / "direct-git")
    assert repo.push(remote_url(platform, "direct-git")).returncode == 0
    change_model(repo.path, "sneaky")
    repo.commit("sneaky")
    bare: Path = platform.data_dir / "git" / "direct-git.git"
    direct = git(repo.path, "push", str(bare), "HEAD:main", check=False)
    assert direct.returncode != 0
    assert "accepts pushes only through the platform's git remote" in direct.stderr
    assert revision_names(platform, "direct-git") == ["direct-git-00001"]


def test_deleting_a_function_deletes_its_repository(platform, tmp_path, data_dir):
    repo = WorkRepo.from_dir(function_dir(tmp_path, "iris-gone"), tmp_path / "iris-gone")
    pushed = repo.push(remote_url(platform, "iris-gone"))
    assert pushed.returncode == 0, pushed.stderr
    assert (data_dir / "git" / "iris-gone.git").is_dir()
    with platform.client() as client:
        client.delete("iris-gone")
    assert not (data_dir / "git" / "iris-gone.git").exists()
