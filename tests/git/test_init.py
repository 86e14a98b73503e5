"""`zeroserve init` scaffolds a repository that deploys with a plain `git push zeroserve main`."""

from __future__ import annotations

import pytest
import yaml

from tests.control.harness import run_cli
from tests.git.gitrepo import WorkRepo, git


@pytest.mark.parametrize("template", ["onnx", "python"])
def test_init_scaffolds_a_repository_that_deploys_on_push(platform, tmp_path, template):
    name = f"init-{template}"
    target = tmp_path / name
    created = run_cli(platform, "init", name, "--template", template, "--dir", str(target))
    assert created.returncode == 0, created.stderr
    assert platform.token not in created.stdout + created.stderr  # shown masked, never in full
    assert f"git remote zeroserve -> http://zeroserve:{platform.token[:4]}…@" in created.stdout

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
