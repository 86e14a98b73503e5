"""`zeroserve invoke FN` against a real `zeroserve up`: cold and warm, tags, V1 and V2, samples, errors.

The CLI calls the function URL; what it reports (revision, cold start) comes from the activator's
`zeroserve-revision` and `zeroserve-cold-start` headers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.zeroserve.control.harness import IRIS, REPO, PlatformProcess, _env, change_model, function_dir, run_cli

AT_ZERO = {"initial_scale": 0}  # a deploy starts nothing: the first request finds the function at zero


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    tmp = tmp_path_factory.mktemp("invoke")
    proc = PlatformProcess(tmp / "data").start()
    try:
        with proc.client() as client:
            client.deploy(function_dir(tmp, "iris", scaling=AT_ZERO))
            client.deploy(function_dir(tmp, "cold", scaling=AT_ZERO))
            tagged = function_dir(tmp, "tagged")
            client.deploy(tagged)
            change_model(tagged, "second")
            manifest = yaml.safe_load((tagged / "function.yaml").read_text())
            manifest["traffic"] = {"percent": 0, "tag": "canary"}
            (tagged / "function.yaml").write_text(yaml.safe_dump(manifest))
            client.deploy(tagged)
        yield proc
    finally:
        proc.stop()


def invoke(platform: PlatformProcess, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = _env(ZEROSERVE_URL=platform.url, ZEROSERVE_DATA=str(platform.data_dir), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "zeroserve.cli", "invoke", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def test_the_readme_command_wakes_a_function_at_zero_and_says_so(platform):
    first = run_cli(platform, "invoke", "iris")  # exactly as the README's quick start shows it
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("iris-00001 answered HTTP 200 in ")
    assert "(cold start: no replica was running" in first.stdout
    assert "probabilities" in first.stdout and "FP32" in first.stdout and "[1, 3]" in first.stdout
    second = run_cli(platform, "invoke", "iris")
    assert second.returncode == 0 and "(warm)" in second.stdout


def test_data_from_a_file_at_zero_then_warm_as_json(platform):
    cold = invoke(platform, "cold", "--data", f"@{IRIS / 'sample.json'}", "--json")
    assert cold.returncode == 0, cold.stderr
    report = json.loads(cold.stdout)
    assert report["cold_start"] is True and report["revision"] == "cold-00001" and report["status"] == 200
    assert report["protocol"] == "v2" and report["seconds"] > 0
    assert report["response"]["outputs"][0]["shape"] == [2, 3]  # the sample holds two rows
    warm = json.loads(invoke(platform, "cold", "--data", f"@{IRIS / 'sample.json'}", "--json").stdout)
    assert warm["cold_start"] is False


def test_a_tag_calls_the_revision_it_names(platform):
    tagged = invoke(platform, "tagged", "--tag", "canary")
    assert tagged.returncode == 0, tagged.stderr
    assert tagged.stdout.startswith("tagged-00002 answered HTTP 200")
    routed = invoke(platform, "tagged")
    assert routed.stdout.startswith("tagged-00001 answered HTTP 200")  # the route still sends 100 % there
    missing = invoke(platform, "tagged", "--tag", "nosuch")
    assert missing.returncode == 1 and "nosuch" in missing.stderr


def test_v1_and_v2_and_inline_data(platform):
    v1 = invoke(platform, "iris", "--protocol", "v1")
    assert v1.returncode == 0, v1.stderr
    assert '{"predictions": [[' in v1.stdout  # the sample, sent as V1 rows
    inline = invoke(platform, "iris", "--data", '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}')
    assert inline.returncode == 0, inline.stderr
    assert '"predictions"' in inline.stdout  # V1 recognised from `instances`
    v2 = invoke(platform, "iris", "--protocol", "v2", "--data", f"@{IRIS / 'sample.json'}")
    assert v2.returncode == 0 and "probabilities" in v2.stdout and "(6 values)" not in v2.stdout


def test_sample_of_the_function_directory_it_runs_in(platform, tmp_path):
    directory = function_dir(tmp_path, "iris")
    rows = [[6.7, 3.0, 5.2, 2.3]] * 3
    (directory / "mine.json").write_text(json.dumps(
        {"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": rows}]}))
    manifest = yaml.safe_load((directory / "function.yaml").read_text())
    (directory / "function.yaml").write_text(yaml.safe_dump({**manifest, "sample": "mine.json"}))
    result = invoke(platform, "iris", "--sample", "--json", cwd=directory)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["request"].endswith("mine.json") and report["response"]["outputs"][0]["shape"] == [3, 3]


def test_refusals_are_clear(platform, tmp_path):
    unknown = invoke(platform, "nothing-here")
    assert unknown.returncode == 1 and "nothing-here" in unknown.stderr
    not_json = invoke(platform, "iris", "--data", "{oops")
    assert not_json.returncode == 1 and "not JSON" in not_json.stderr
    absent = invoke(platform, "iris", "--data", f"@{tmp_path / 'absent.json'}")
    assert absent.returncode == 1 and "cannot read it" in absent.stderr
    both = invoke(platform, "iris", "--data", "{}", "--sample")
    assert both.returncode == 1 and "not both" in both.stderr
    bad = invoke(platform, "iris", "--data", '{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", '
                                             '"data": [1, 2]}]}')
    assert bad.returncode == 1 and "iris-00001 answered HTTP 400" in bad.stderr
    named = invoke(platform, "Not_A_Name")
    assert named.returncode == 1 and "DNS-1035" in named.stderr


def test_a_deploy_ends_by_suggesting_invoke(platform, tmp_path):
    deployed = run_cli(platform, "deploy", str(function_dir(tmp_path, "suggested")))
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.rstrip().endswith("try it: zeroserve invoke suggested")
