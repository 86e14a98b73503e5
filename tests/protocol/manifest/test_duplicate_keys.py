"""A key written twice in function.yaml is refused, at any depth, naming the key and both lines.

PyYAML keeps the last of two equal keys and drops the other silently; the deploy paths (API upload, git
push, webhook) all read manifests through `load_yaml`, and tests/deploy/git/test_duplicate_keys.py sends these
manifests through each of them.
"""

from __future__ import annotations

import textwrap

import pytest

from protocol.manifest import ManifestError, load_manifest, load_yaml, parse_manifest_text

# What `zeroserve init` scaffolds, with a second `scaling:` block added lower down: the slip.
SECOND_SCALING_BLOCK = textwrap.dedent("""\
    name: demo
    runtime: onnx
    model: model.onnx
    scaling:
      min_scale: 0
      max_scale: 4
      target: 10
    traffic:
      percent: 100
    scaling: {target: 5}
    """)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ManifestError) as refused:
        load_yaml(text)
    return refused.value.problems


def test_a_second_top_level_block_is_refused_naming_the_key_and_both_lines():
    problems = problems_of(SECOND_SCALING_BLOCK)
    assert problems == ["scaling: duplicate key at lines 4 and 10: a key may appear once in a mapping "
                        "(YAML would keep one value and silently drop the other)"]
    with pytest.raises(ManifestError) as refused:
        parse_manifest_text(SECOND_SCALING_BLOCK)
    assert str(refused.value).startswith("function.yaml: scaling: duplicate key at lines 4 and 10")


def test_nested_duplicates_name_the_key_path():
    text = "name: demo\nhandler: h:M\nscaling:\n  target: 10\n  window: 60s\n  target: 5\n"
    assert problems_of(text)[0].startswith("scaling.target: duplicate key at lines 4 and 6:")
    deeper = "name: demo\nhandler: h:M\nresources:\n  memory: 1Gi\nenv:\n  A: '1'\n  B: '2'\n  A: '3'\n"
    assert problems_of(deeper)[0].startswith("env.A: duplicate key at lines 6 and 8:")


def test_duplicates_in_flow_mappings_and_inside_lists():
    assert problems_of("name: demo\ntraffic: {percent: 10, percent: 20}\n")[0].startswith(
        "traffic.percent: duplicate key twice on line 2:")
    listed = "name: demo\ntargets:\n  - local\nextra:\n  - {a: 1}\n  - {a: 1, b: 2, a: 3}\n"
    assert problems_of(listed)[0].startswith("extra.1.a: duplicate key twice on line 6:")


def test_keys_equal_as_loaded_are_duplicates_and_every_repeat_is_listed_in_line_order():
    # 1, 0x1 and true load as equal dict keys (True == 1), so two of the three values would be lost.
    problems = problems_of("env:\n  1: a\n  0x1: b\n  true: c\nname: x\nname: y\n")
    assert [p.split(": duplicate")[0] for p in problems] == ["env.0x1", "env.true", "name"]
    assert "lines 2 and 3" in problems[0] and "lines 2 and 4" in problems[1] and "lines 5 and 6" in problems[2]


def test_similar_but_distinct_keys_and_repeats_in_separate_mappings_are_fine():
    text = "name: demo\nhandler: h:M\ntargets: [local]\nscaling: {target: 3}\ntraffic: {percent: 100}\n"
    assert parse_manifest_text(text).scaling.target == 3
    # `target` under two different parents is no repeat.
    assert load_yaml("a: {target: 1}\nb: {target: 2}\n") == {"a": {"target": 1}, "b": {"target": 2}}


def test_a_function_directory_with_a_duplicate_is_refused_by_load_manifest(tmp_path):
    (tmp_path / "function.yaml").write_text(SECOND_SCALING_BLOCK)
    with pytest.raises(ManifestError) as refused:
        load_manifest(tmp_path)
    assert "scaling: duplicate key at lines 4 and 10" in str(refused.value)


def test_a_huge_number_of_duplicates_is_bounded_in_the_message():
    text = "name: demo\n" + "".join(f"k: {i}\n" for i in range(5000))
    with pytest.raises(ManifestError) as refused:
        load_yaml(text)
    assert refused.value.count == 4999 and len(refused.value.problems) == 21
    assert refused.value.problems[-1] == "(and 4979 more problems)"
