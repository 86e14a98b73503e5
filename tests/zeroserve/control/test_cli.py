"""The real CLI against a real `zeroserve up`: deploys, revisions, traffic, tags, rollback, failures."""

from __future__ import annotations

import json
import re
import threading

import pytest

from tests.zeroserve.control.harness import change_model, function_dir, run_cli
from zeroserve.client import ApiError


def cli_json(platform, *args):
    result = run_cli(platform, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def split_of(info):
    return {("@latest" if t["latest"] else t["revision"]): (t["percent"], t["tag"])
            for t in info["traffic"]["targets"]}


def test_deploy_redeploy_traffic_tags_and_rollback(platform, tmp_path):
    v1 = function_dir(tmp_path, "iris")
    first = run_cli(platform, "deploy", str(v1))
    assert first.returncode == 0, first.stderr
    assert "[3/5] smoke ok" in first.stdout  # live build log
    assert "created iris-00001" in first.stdout

    v2 = function_dir(tmp_path, "iris")
    change_model(v2, "retrained")
    second = cli_json(platform, "deploy", str(v2))
    assert (second["status"], second["revision"]) == ("created", "iris-00002")

    again = run_cli(platform, "deploy", str(v2))
    assert again.returncode == 0 and "unchanged: iris-00002" in again.stdout
    revisions = cli_json(platform, "revisions", "iris")
    assert [r["name"] for r in revisions] == ["iris-00001", "iris-00002"]
    assert revisions[0]["digest"] != revisions[1]["digest"]

    pinned = cli_json(platform, "traffic", "iris", "--tag", "old=iris-00001")
    assert split_of(pinned) == {"iris-00001": (0, "old"), "iris-00002": (100, None)}
    assert pinned["tags"]["old"].startswith("http://old-iris.localhost:")

    split = cli_json(platform, "traffic", "iris", "iris-00001=90", "iris-00002=10")
    assert split_of(split) == {"iris-00001": (90, "old"), "iris-00002": (10, None)}

    refused = run_cli(platform, "traffic", "iris", "iris-00001=60", "iris-00002=30")
    assert refused.returncode == 1
    assert "traffic: percents must sum to 100, got 90 (iris-00001=60 (old), iris-00002=30)" in refused.stderr
    assert "Traceback" not in refused.stderr
    shown = run_cli(platform, "traffic", "iris")
    assert shown.returncode == 0 and "iris-00001=90 (old), iris-00002=10" in shown.stdout

    unknown = run_cli(platform, "traffic", "iris", "iris-00009=100")
    assert unknown.returncode == 1 and "unknown revision 'iris-00009'" in unknown.stderr

    back = cli_json(platform, "rollback", "iris")
    assert split_of(back) == {"iris-00001": (0, "old"), "iris-00002": (100, None)}

    promoted = cli_json(platform, "promote", "iris", "old")
    assert split_of(promoted) == {"iris-00001": (100, "old")}

    described = cli_json(platform, "describe", "iris")
    assert described["latest_revision"] == "iris-00002" and len(described["revisions"]) == 2
    log = cli_json(platform, "revisions", "iris", "iris-00001")["build_log"]
    assert any(line.startswith("[5/5] store ok") for line in log)
    kinds = [e["kind"] for e in cli_json(platform, "events", "iris")]
    assert {"revision", "deploy-unchanged", "traffic", "rollback"} <= set(kinds)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("corrupt-model", "model.onnx"),
        ("bad-manifest", "function.yaml"),
        ("missing-model", "model.onnx"),
    ],
)
def test_broken_function_fails_the_build_and_changes_nothing(platform, tmp_path, breakage, expected):
    name = f"broken-{breakage}"
    ok = run_cli(platform, "deploy", str(function_dir(tmp_path, name)))
    assert ok.returncode == 0, ok.stderr
    broken = function_dir(tmp_path, name)
    if breakage == "corrupt-model":
        (broken / "model.onnx").write_bytes(b"\x08\x07 this is not a protobuf model" * 10)
    elif breakage == "bad-manifest":
        text = (broken / "function.yaml").read_text()  # holds `concurrency:` once; a second would be a duplicate
        (broken / "function.yaml").write_text(re.sub(r"(?m)^concurrency: .*$", "concurrency: -3", text))
    else:
        (broken / "model.onnx").unlink()
    before = platform.client().describe(name)
    result = run_cli(platform, "deploy", str(broken))
    assert result.returncode == 1
    assert expected in result.stderr and "error: build failed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    if breakage == "bad-manifest":
        assert "concurrency" in result.stderr
    after = platform.client().describe(name)
    assert after["revisions"] == before["revisions"] and after["traffic"] == before["traffic"]
    events = platform.client().events(name)
    assert events[-1]["kind"] == "build-failed" and expected in events[-1]["message"]


def test_concurrent_deploys_of_one_function_serialise(platform, tmp_path):
    variants = []
    for i in range(4):
        d = function_dir(tmp_path, "race")
        change_model(d, f"variant {i}")
        variants.append(d)
    variants.append(variants[0])  # the same content twice: exactly one revision for it
    results: list[dict] = []
    errors: list[BaseException] = []

    def deploy(directory):
        try:
            with platform.client() as client:
                results.append(client.deploy(directory))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(d,)) for d in variants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert sorted(r["status"] for r in results) == ["created"] * 4 + ["unchanged"]
    with platform.client() as client:
        revisions = client.revisions("race")
        assert [r["name"] for r in revisions] == [f"race-{n:05d}" for n in range(1, 5)]
        assert len({r["digest"] for r in revisions}) == 4
        traffic = client.traffic("race")["traffic"]
        assert traffic["targets"][0]["percent"] == 100
        assert traffic["targets"][0]["revision"] == max(r["name"] for r in revisions)


def test_ls_describe_delete_and_unknown_function(platform, tmp_path):
    assert run_cli(platform, "deploy", str(function_dir(tmp_path, "short-lived"))).returncode == 0
    listed = run_cli(platform, "ls")
    assert listed.returncode == 0 and "http://short-lived.localhost:" in listed.stdout
    deleted = run_cli(platform, "delete", "short-lived")
    assert deleted.returncode == 0 and "deleted short-lived (1 revision(s))" in deleted.stdout
    missing = run_cli(platform, "describe", "short-lived")
    assert missing.returncode == 1 and "error: function 'short-lived' not found" in missing.stderr
    with platform.client() as client, pytest.raises(ApiError) as err:
        client.revisions("short-lived")
    assert err.value.status == 404


def test_cli_with_a_wrong_token_is_refused(platform):
    result = run_cli(platform, "ls", token="not-the-token")
    assert result.returncode == 1 and "unauthorized" in result.stderr
    assert "not-the-token" not in result.stderr
