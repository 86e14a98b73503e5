"""function.yaml: defaults, inference of the runtime, and one named error per problem."""

from __future__ import annotations

import pytest

from protocol.durations import format_duration, parse_duration
from protocol.manifest import ManifestError, load_manifest, parse_manifest, parse_manifest_text


def problems_of(data: object) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data)
    return info.value.problems


def test_defaults_are_knatives():
    m = parse_manifest({"name": "iris", "model": "model.onnx"})
    assert m.runtime == "onnx"
    assert m.concurrency == 0 and m.timeout_seconds == 300
    s = m.scaling
    assert (s.metric, s.target, s.target_utilization) == ("concurrency", None, 70.0)
    assert (s.window, s.panic_window, s.panic_threshold_percentage) == (60.0, 6.0, 200.0)
    assert (s.max_scale_up_rate, s.max_scale_down_rate) == (1000.0, 2.0)
    assert (s.scale_to_zero_grace_period, s.target_burst_capacity, s.initial_scale) == (30.0, 211.0, 1)
    assert m.traffic.percent is None and m.targets == ["local"] and m.auth == "none"


@pytest.mark.parametrize(
    ("data", "runtime"),
    [
        ({"name": "a", "model": "m.onnx"}, "onnx"),
        ({"name": "a", "model": "m.pt"}, "torch"),
        ({"name": "a", "handler": "handler:Model"}, "python"),
        ({"name": "a", "runtime": "python", "handler": "pkg.mod:predictor"}, "python"),
    ],
)
def test_runtime_is_inferred(data, runtime):
    assert parse_manifest(data).runtime == runtime


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "Iris", "model": "m.onnx"}, "name: name 'Iris' must be a DNS-1035 label"),
        ({"name": "a" * 64, "model": "m.onnx"}, "a DNS-1035 label has at most 63"),
        ({"name": "9lives", "model": "m.onnx"}, "must be a DNS-1035 label"),
        ({"model": "m.onnx"}, "name: is required"),
        ({"name": "a", "model": "../m.onnx"}, "model: model '../m.onnx' must be a relative path"),
        ({"name": "a", "model": "/etc/m.onnx"}, "must be a relative path inside the function directory"),
        ({"name": "a", "handler": "handler"}, "handler: 'handler' must be 'module:attr'"),
        ({"name": "a", "model": "m.onnx", "runtime": "tensorflow"}, "runtime: must be one of"),
        ({"name": "a", "model": "m.bin"}, "runtime: cannot be inferred"),
        ({"name": "a", "runtime": "onnx"}, "model: required for runtime 'onnx'"),
        ({"name": "a", "runtime": "python"}, "handler: required for runtime 'python'"),
        ({"name": "a", "model": "m.onnx", "concurrency": -1}, "concurrency: must be >= 0"),
        ({"name": "a", "model": "m.onnx", "timeout_seconds": 0}, "timeout_seconds: must be >= 1"),
        ({"name": "a", "model": "m.onnx", "traffic": {"percent": 101}}, "traffic.percent: must be <= 100"),
        ({"name": "a", "model": "m.onnx", "traffic": {"percent": 0}}, "traffic.percent: 0 needs traffic.tag"),
        ({"name": "a", "model": "m.onnx", "traffic": {"tag": "Canary"}}, "traffic.tag: tag 'Canary'"),
        ({"name": "a", "model": "m.onnx", "traffic": {"rollout_duration": "5 minutes"}},
         "traffic.rollout_duration: '5 minutes' is not a duration"),
        ({"name": "a", "model": "m.onnx", "scaling": {"window": "2s"}}, "scaling.window: must be between 6s and 1h"),
        ({"name": "a", "model": "m.onnx", "scaling": {"min_scale": 3, "max_scale": 2}},
         "scaling.min_scale: must be <= scaling.max_scale (3 > 2)"),
        ({"name": "a", "model": "m.onnx", "batching": {"max_batch_size": 0}}, "batching.max_batch_size: must be >= 1"),
        ({"name": "a", "model": "m.onnx", "resources": {"memory": "lots"}},
         "resources.memory: 'lots' is not a quantity"),
        ({"name": "a", "model": "m.onnx", "env": {"1BAD": "x"}}, "env: '1BAD' is not a valid environment variable"),
        ({"name": "a", "model": "m.onnx", "targets": ["local", "local"]}, "targets: must not repeat a target"),
        ({"name": "a", "model": "m.onnx", "targets": ["gcp"]}, "targets.0: must be one of"),
        ({"name": "a", "model": "m.onnx", "auth": "basic"}, "auth: must be one of"),
        ({"name": "a", "model": "m.onnx", "gpu": True}, "gpu: unknown key"),
        (["name", "a"], "(top level): must be a mapping"),
    ],
)
def test_each_rule_is_named(data, expected):
    problems = problems_of(data)
    assert any(expected in p for p in problems), problems


def test_one_error_per_problem():
    problems = problems_of({
        "name": "Bad_Name",
        "model": "m.onnx",
        "concurrency": -5,
        "scaling": {"window": "1s", "panic_threshold_percentage": 50, "bogus": 1},
    })
    keys = sorted(p.split(":")[0] for p in problems)
    assert keys == ["concurrency", "name", "scaling.bogus", "scaling.panic_threshold_percentage", "scaling.window"]


def test_env_values_become_strings():
    m = parse_manifest({"name": "a", "model": "m.onnx", "env": {"DEBUG": True, "N": 3, "S": "x"}})
    assert m.env == {"DEBUG": "true", "N": "3", "S": "x"}


def test_normalised_form_ignores_yaml_formatting():
    a = parse_manifest_text("name: iris\nmodel: model.onnx\nscaling: {window: 1m}\n")
    b = parse_manifest_text("# a comment\nname: iris\nscaling:\n  window: 60s\nmodel: model.onnx\n")
    assert a.canonical_json() == b.canonical_json()


def test_yaml_syntax_error_names_the_line(tmp_path):
    (tmp_path / "function.yaml").write_text("name: iris\nmodel: [unclosed\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert "not valid YAML at line" in info.value.problems[0]
    assert str(tmp_path / "function.yaml") in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), (2.5, 2.5), ("7", 7.0), ("1m30s", 90)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "s", "1x", "-"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(60, "1m"), (3600, "1h"), (6, "6s"), (0.25, "250ms"), (90, "90s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
