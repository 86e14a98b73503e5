"""Fuzzed manifests: the parser raises nothing but ManifestError, and the deploy API never answers 5xx."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol.manifest import FunctionManifest, ManifestError, parse_manifest, parse_manifest_text
from tests.zeroserve.control.harness import PlatformProcess
from tests.zeroserve.control.uploads import tar_gz

KEYS = ["name", "runtime", "model", "handler", "sample", "batching", "concurrency", "timeout_seconds",
        "scaling", "traffic", "auth", "resources", "env", "targets"]
SCALING_KEYS = ["metric", "target", "target_utilization", "min_scale", "max_scale", "initial_scale",
                "activation_scale", "window", "panic_window_percentage", "panic_threshold_percentage",
                "max_scale_up_rate", "max_scale_down_rate", "scale_down_delay", "scale_to_zero_grace_period",
                "scale_to_zero_retention", "target_burst_capacity"]
# Characters that mean something to YAML, so random text reaches the scanner's and composer's corners.
YAML_ALPHABET = "&*[]{}:,-?|>!%@`'\"#\n\t .0123456789aeknxyz<<=~\\"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.integers(min_value=300, max_value=5000).map(lambda digits: -(10 ** digits)),  # too large for float or str
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["60s", "1h30m", "500ms", "-1", "0", "512Mi", "handler:Model", "model.onnx", "../x",
                     "local", "knative", "lambda", "python", "onnx", "rps", "token", "9lives", "a" * 70]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.one_of(st.text(max_size=12), st.integers()),
                                                                inner, max_size=4),
    max_leaves=12,
)
manifests = st.fixed_dictionaries(
    {"name": st.one_of(st.just("fuzzed"), scalars)},
    optional={
        **{key: values for key in KEYS if key not in ("name", "scaling")},
        "scaling": st.one_of(values, st.dictionaries(st.sampled_from(SCALING_KEYS), values, max_size=5)),
        "unknown": values,
    },
)


def _check(parse) -> None:
    try:
        manifest = parse()
    except ManifestError as exc:
        assert exc.problems, "a ManifestError lists at least one problem"
        assert len(str(exc)) < 20_000
        return
    assert isinstance(manifest, FunctionManifest)


@settings(max_examples=150, deadline=None)
@given(manifests)
def test_parse_manifest_of_random_data_raises_only_manifest_errors(data):
    _check(lambda: parse_manifest(data))


@settings(max_examples=150, deadline=None)
@given(values)
def test_parse_manifest_of_any_value_raises_only_manifest_errors(data):
    _check(lambda: parse_manifest(data))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=YAML_ALPHABET, max_size=200))
def test_parse_manifest_text_of_random_yaml_raises_only_manifest_errors(text):
    _check(lambda: parse_manifest_text(text))


@settings(max_examples=150, deadline=None)
@given(manifests)
def test_dumped_yaml_of_random_manifests_raises_only_manifest_errors(data):
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, ValueError):  # e.g. a float PyYAML cannot represent: nothing to parse
        return
    _check(lambda: parse_manifest_text(text))


def test_the_fuzzing_reaches_valid_manifests_too():
    """The strategies are not only noise: a plain valid manifest parses (so _check can see successes)."""
    assert parse_manifest({"name": "fuzzed", "handler": "handler:Model"}).runtime == "python"
    assert math.isclose(parse_manifest_text("name: a\nmodel: m.onnx\nscaling: {window: 1m}\n").scaling.window, 60)


# ----------------------------------------------------------------------------- through the deploy API


@pytest.fixture(scope="module")
def fuzz_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    proc = PlatformProcess(tmp_path_factory.mktemp("fuzz-platform") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


def manifest_text(data: dict, raw: str | None) -> bytes:
    if raw is not None:
        return raw.encode()
    try:
        return yaml.safe_dump(data, allow_unicode=True).encode()
    except (yaml.YAMLError, ValueError):
        return b"name: fuzzed\n"


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(5)) + "name: *f\n"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifests, st.one_of(st.none(), st.text(alphabet=YAML_ALPHABET, max_size=120)))
# Cases found by hand before the fuzzing: a number too large for a float, and an alias bomb.
@example(data={"name": "fuzzed", "handler": "h:M", "scaling": {"window": 10 ** 400}}, raw=None)
@example(data={}, raw=ALIAS_BOMB)
def test_fuzzed_manifests_through_the_deploy_api_never_get_a_5xx(fuzz_platform, tmp_path: Path, data, raw):
    # No handler or model file: a manifest that passes validation fails at the files step, so no
    # user code runs and each example takes milliseconds.
    body = tar_gz({"function.yaml": manifest_text(data, raw)})
    response = httpx.post(f"{fuzz_platform.url}/api/v1/functions", content=body, timeout=60,
                          headers={"Authorization": f"Bearer {fuzz_platform.token}",
                                   "Content-Type": "application/gzip"})
    assert response.status_code < 500, response.text[:2000]
    assert response.status_code == 400, response.text[:2000]
    payload = response.json()
    assert isinstance(payload.get("error"), str) and payload["error"]
    assert "Traceback" not in response.text
    # A rule broken, not a crash reported as a failed build ("build failed: OverflowError: ...").
    assert not re.search(r"build failed: \w+(Error|Exception):", payload["error"]), payload["error"][:500]
    assert len(response.content) < 64 * 1024
