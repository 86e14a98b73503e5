"""Reading function.yaml is bounded: no YAML anchors or aliases, a size and depth cap, short echoes."""

from __future__ import annotations

import time

import pytest

from protocol.manifest import (
    MAX_ECHO,
    MAX_MANIFEST_BYTES,
    MAX_PROBLEMS,
    ManifestError,
    echo,
    load_manifest,
    parse_manifest,
    parse_manifest_text,
)
from tests.protocol.manifest.yaml_bombs import alias_bomb

VALID = "name: iris\nmodel: model.onnx\n"


def problems_of_text(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest_text(text)
    return info.value.problems


def test_an_alias_bomb_is_refused_at_its_first_anchor_quickly_and_briefly():
    text = alias_bomb(9)  # 9 levels: 387 million strings once expanded
    assert len(text) < 1200
    started = time.perf_counter()
    with pytest.raises(ManifestError) as info:
        parse_manifest_text(text)
    elapsed = time.perf_counter() - started
    assert info.value.problems == [
        "(yaml): line 1, column 7: anchors (&lol0) are not allowed in function.yaml; write the value out"]
    assert len(str(info.value)) < 200
    assert elapsed < 1.0  # today it never finishes; a loose bound so a busy machine cannot break it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: *iris\nmodel: m.onnx\n", "(yaml): line 1, column 7: aliases (*iris) are not allowed"),
        ("base: &b {window: 60s}\nname: a\n", "(yaml): line 1, column 7: anchors (&b) are not allowed"),
        ("name: a\nmodel: m.onnx\nscaling:\n  <<: *defaults\n", "line 4, column 7: aliases (*defaults)"),
        ("name: a\nenv: &e\n  A: 1\n", "line 2, column 6: anchors (&e)"),
    ],
)
def test_anchors_and_aliases_are_refused_naming_the_line(text, expected):
    [problem] = problems_of_text(text)
    assert problem.startswith("(yaml): line ") and expected in problem, problem


def test_an_ampersand_or_star_inside_a_value_is_just_text():
    m = parse_manifest_text("name: a\nmodel: m.onnx\nenv: {GREETING: 'rock & roll *loud*', B: x&y}\n")
    assert m.env == {"GREETING": "rock & roll *loud*", "B": "x&y"}


def test_the_file_size_is_capped_with_a_clear_message(tmp_path):
    padding = "# " + "x" * 100 + "\n"
    text = VALID + padding * (MAX_MANIFEST_BYTES // len(padding) + 1)
    [problem] = problems_of_text(text)
    assert problem == (f"(file): function.yaml is {len(text)} bytes; the limit is {MAX_MANIFEST_BYTES} bytes "
                       "(64 KiB)")
    # From disk: only the limit is read, however large the file is.
    (tmp_path / "function.yaml").write_bytes(VALID.encode() + b"#" * (20 << 20))
    with pytest.raises(ManifestError, match=f"is {len(VALID) + (20 << 20)} bytes; the limit is"):
        load_manifest(tmp_path)
    # Just under the limit is fine.
    fits = VALID + padding * ((MAX_MANIFEST_BYTES - len(VALID)) // len(padding))
    assert len(fits) <= MAX_MANIFEST_BYTES and parse_manifest_text(fits).name == "iris"


def test_a_file_that_is_not_utf8_is_a_manifest_error(tmp_path):
    (tmp_path / "function.yaml").write_bytes(b"name: caf\xe9\nmodel: m.onnx\n")
    with pytest.raises(ManifestError, match=r"\(file\): not UTF-8 text \(byte 9\)"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels deep"),
        ("name: a\nx: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n", "nested more than 32 levels deep"),
        ("name: a\nconcurrency: " + "9" * 6000 + "\n", "(yaml): a value cannot be read: Exceeds the limit"),
        ("name: a\nmodel: m.onnx\nwhen: 2024-13-40\n", "(yaml): a value cannot be read: month must be in"),
        ("name: [unclosed\n", "(yaml): not valid YAML at line 2, column 1"),
    ],
)
def test_pathological_yaml_is_a_manifest_error_not_a_crash(text, expected):
    problems = problems_of_text(text)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"name": "n" * 100_000, "model": "m.onnx"}, "name"),
        ({"name": "a", "model": "../" + "m" * 100_000}, "model"),
        ({"name": "a", "handler": "h" * 100_000}, "handler"),
        ({"name": "a", "model": "m.onnx", "resources": {"memory": "9" * 50_000 + "Q"}}, "resources.memory"),
        ({"name": "a", "model": "m.onnx", "env": {"bad key " * 10_000: "x"}}, "env"),
        ({"name": "a", "model": "m.onnx", "concurrency": "x" * 100_000}, "concurrency"),
        ({"name": "a", "model": "m.onnx", "concurrency": [[1] * 1000] * 1000}, "concurrency"),
        ({"name": "a", "model": "m.onnx", "timeout_seconds": 10 ** 4000}, "timeout_seconds"),
        ({"name": "a", "model": "m.onnx", "scaling": {"window": "1x" * 50_000}}, "scaling.window"),
        ({"name": "a", "model": "m.onnx", "sample": "/" + "s" * 100_000}, "sample"),
        ({"name": "a", "model": "m.onnx", ("k" * 100_000): 1}, "k" * 39 + "…"),
    ],
)
def test_every_echoed_value_is_cut_to_a_few_dozen_characters(data, key):
    with pytest.raises(ManifestError) as info:
        parse_manifest(data)
    [problem] = [p for p in info.value.problems if p.startswith(f"{key}:")]
    assert len(problem) <= 400, problem[:500]
    # The value was long: the message shows it was cut, or (an integer) only says how long it was.
    assert "…" in problem or "..." in problem or "an integer of about 4001 digits" in problem, problem


def test_the_echo_is_at_most_max_echo_characters_even_for_huge_nested_values():
    nested: object = "x" * 10_000
    for _ in range(200):
        nested = [nested, {"k": nested}]
    assert len(echo(nested)) <= MAX_ECHO
    assert len(echo("y" * 10_000)) <= MAX_ECHO and "..." in echo("y" * 10_000)
    assert echo("short") == "'short'"


def test_a_flood_of_problems_is_counted_not_listed():
    data = {"name": "a", "model": "m.onnx", **{f"unknown{i}": i for i in range(500)}}
    with pytest.raises(ManifestError) as info:
        parse_manifest(data)
    problems = info.value.problems
    assert len(problems) == MAX_PROBLEMS + 1 and info.value.count == 500
    assert problems[0] == "unknown0: unknown key"
    assert problems[-1] == f"(and {500 - MAX_PROBLEMS} more problems)"
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["cloudrun"], "targets.0: must be one of 'local', 'knative' or 'lambda'"),
        (["local", "knative", "fargate"], "targets.2: must be one of 'local', 'knative' or 'lambda'"),
        ([], "targets: must name at least one target"),
    ],
)
def test_targets_other_than_the_three_are_refused_naming_them(targets, expected):
    with pytest.raises(ManifestError) as info:
        parse_manifest({"name": "a", "model": "m.onnx", "targets": targets})
    assert info.value.problems == [expected]


def test_every_target_is_available():
    manifest = parse_manifest({"name": "a", "model": "m.onnx", "targets": ["local", "knative", "lambda"]})
    assert manifest.targets == ["local", "knative", "lambda"]


def test_local_and_knative_are_the_targets_accepted():
    assert parse_manifest({"name": "a", "model": "m.onnx", "targets": ["local"]}).targets == ["local"]
    assert parse_manifest_text("name: a\nmodel: m.onnx\ntargets: [local]\n").targets == ["local"]
    assert parse_manifest_text("name: a\nmodel: m.onnx\ntargets: [local, knative]\n").targets == ["local", "knative"]
    assert parse_manifest({"name": "a", "model": "m.onnx", "targets": ["knative"]}).targets == ["knative"]
