"""zeroserve/settings.py: defaults <- ZEROSERVE_* variables <- flags, and errors that name the field and variable.

Every case passes its environment as a mapping (Settings.load(env=...)) except those about os.environ itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zeroserve.settings import Settings, SettingsError, environment_variable, environment_variables

REPO = Path(__file__).resolve().parents[3]

# The variables are a public interface (README, docs, deployments): a rename here is a breaking change.
VARIABLES = {
    "host": "ZEROSERVE_HOST", "port": "ZEROSERVE_PORT", "grpc_port": "ZEROSERVE_GRPC_PORT",
    "data_dir": "ZEROSERVE_DATA",
    "artifacts": "ZEROSERVE_ARTIFACTS", "domain": "ZEROSERVE_DOMAIN", "keep_unrouted": "ZEROSERVE_KEEP_UNROUTED",
    "build_workers": "ZEROSERVE_BUILD_WORKERS", "max_upload_bytes": "ZEROSERVE_MAX_UPLOAD_BYTES",
    "smoke_timeout": "ZEROSERVE_SMOKE_TIMEOUT", "queue_limit": "ZEROSERVE_QUEUE_LIMIT",
    "deploy_branch": "ZEROSERVE_DEPLOY_BRANCH", "max_header_bytes": "ZEROSERVE_MAX_HEADER_BYTES",
    "max_headers": "ZEROSERVE_MAX_HEADERS", "header_timeout": "ZEROSERVE_HEADER_TIMEOUT",
    "keep_alive_timeout": "ZEROSERVE_KEEP_ALIVE_TIMEOUT", "max_connections": "ZEROSERVE_MAX_CONNECTIONS",
    "run_as": "ZEROSERVE_RUN_AS", "metrics_public": "ZEROSERVE_METRICS_PUBLIC", "access_log": "ZEROSERVE_ACCESS_LOG",
    "otel_endpoint": "ZEROSERVE_OTEL_ENDPOINT",
    "kube_context": "ZEROSERVE_KUBE_CONTEXT", "kube_namespace": "ZEROSERVE_KUBE_NAMESPACE",
    "runtime_image": "ZEROSERVE_RUNTIME_IMAGE", "kube_store_secret": "ZEROSERVE_KUBE_STORE_SECRET",
    "kube_service_account": "ZEROSERVE_KUBE_SERVICE_ACCOUNT", "kube_ready_timeout": "ZEROSERVE_KUBE_READY_TIMEOUT",
    "aws_region": "ZEROSERVE_AWS_REGION", "lambda_role": "ZEROSERVE_LAMBDA_ROLE",
    "lambda_image": "ZEROSERVE_LAMBDA_IMAGE", "lambda_prefix": "ZEROSERVE_LAMBDA_PREFIX",
    "warm_templates_memory": "ZEROSERVE_WARM_TEMPLATES_MEMORY",
}


def test_each_setting_keeps_its_variable_and_rollout_tick_has_none() -> None:
    assert environment_variables() == VARIABLES
    assert environment_variable("rollout_tick") is None and environment_variable("no_such_field") is None
    assert set(Settings.model_fields) == set(VARIABLES) | {"rollout_tick"}


def test_each_setting_is_documented() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undocumented == []
    # docs/control-plane.md lists the variables; one added here and not there fails.
    listed = (REPO / "docs" / "control-plane.md").read_text(encoding="utf-8")
    assert [v for v in VARIABLES.values() if f"`{v}`" not in listed] == []


def test_defaults_then_environment_then_flags() -> None:
    defaults = Settings.load(env={})
    assert (defaults.host, defaults.port, defaults.data_dir, defaults.metrics_public) == (
        "127.0.0.1", 8080, Path(".zeroserve"), False)
    env = {"ZEROSERVE_PORT": "9090", "ZEROSERVE_DATA": "/srv/zs", "ZEROSERVE_DOMAIN": "env.example",
           "ZEROSERVE_METRICS_PUBLIC": "true", "ZEROSERVE_HEADER_TIMEOUT": "2.5"}
    loaded = Settings.load(env=env, domain="flag.example", data_dir=Path("/flag"), port=None, host=None)
    # Flags win; a None flag (not given) leaves the environment's value, and an unset one the default.
    assert (loaded.port, loaded.data_dir, loaded.domain, loaded.metrics_public, loaded.header_timeout, loaded.host) == (
        9090, Path("/flag"), "flag.example", True, 2.5, "127.0.0.1")


def test_an_empty_variable_is_unset() -> None:
    loaded = Settings.load(env={"ZEROSERVE_PORT": "", "ZEROSERVE_DATA": "", "ZEROSERVE_LAMBDA_PREFIX": ""})
    assert (loaded.port, loaded.data_dir, loaded.lambda_prefix) == (8080, Path(".zeroserve"), "")


@pytest.mark.parametrize("variable", ["zeroserve_port", "Zeroserve_Port", "ZEROSERVE_DATA_DIR",
                                      "ZEROSERVE_ROLLOUT_TICK", "PORT", "DATA_DIR"])
def test_only_the_exact_variable_names_are_read(variable: str) -> None:
    value = "/elsewhere" if "DATA" in variable else "1"
    assert Settings.load(env={variable: value}) == Settings.load(env={})


def test_a_given_mapping_replaces_os_environ_for_that_call_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROSERVE_PORT", "1234")
    monkeypatch.setenv("ZEROSERVE_DATA", "/from/os")
    assert (Settings.load().port, Settings.load().data_dir) == (1234, Path("/from/os"))
    assert (Settings.load(env={}).port, Settings.load(env={}).data_dir) == (8080, Path(".zeroserve"))
    with pytest.raises(SettingsError):
        Settings.load(env={"ZEROSERVE_PORT": "http"})
    # Neither call left its mapping behind, not even the one that failed: plain Settings() reads os.environ.
    assert Settings().port == Settings.load().port == 1234


def test_no_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("ZEROSERVE_PORT=1\nZEROSERVE_DATA=/dotenv\n")
    monkeypatch.chdir(tmp_path)
    assert (Settings.load(env={}).port, Settings.load(env={}).data_dir) == (8080, Path(".zeroserve"))


def test_every_problem_is_named_with_its_field_and_variable_in_one_error() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.load(env={"ZEROSERVE_PORT": "http", "ZEROSERVE_MAX_CONNECTIONS": "0"}, run_as="nobody")
    message = str(refused.value)
    assert message.startswith("settings: ")
    assert "port (ZEROSERVE_PORT): Input should be a valid integer" in message
    assert "max_connections (ZEROSERVE_MAX_CONNECTIONS): Input should be greater than or equal to 1" in message
    assert "run_as (ZEROSERVE_RUN_AS): Value error, 'nobody' is not auto, root or UID[:GID]" in message
    assert message.count("; ") == 2


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"data_dir": 5}, "settings: data_dir (ZEROSERVE_DATA): Input is not a valid path"),
    ({"rollout_tick": 0}, "settings: rollout_tick: Input should be greater than 0"),
    ({"bogus": 1}, "settings: bogus: Extra inputs are not permitted"),
])
def test_flags_are_checked_too_and_a_field_without_variable_names_none(overrides: dict[str, object],
                                                                      expected: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.load(env={}, **overrides)
    assert str(refused.value).startswith(expected)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("ZEROSERVE_PORT", "70000", "port (ZEROSERVE_PORT): Input should be less than or equal to 65535"),
    ("ZEROSERVE_KEEP_UNROUTED", "-1", "keep_unrouted (ZEROSERVE_KEEP_UNROUTED): Input should be greater than"),
    ("ZEROSERVE_METRICS_PUBLIC", "maybe", "metrics_public (ZEROSERVE_METRICS_PUBLIC): Input should be a valid "
                                          "boolean"),
    ("ZEROSERVE_RUN_AS", "1000:4294967295", "run_as (ZEROSERVE_RUN_AS): Value error, '1000:4294967295' is not"),
    ("ZEROSERVE_DEPLOY_BRANCH", "-main", "deploy_branch (ZEROSERVE_DEPLOY_BRANCH): Value error, '-main' is not a "
                                         "usable branch name"),
    ("ZEROSERVE_DEPLOY_BRANCH", "a..b", "deploy_branch (ZEROSERVE_DEPLOY_BRANCH): Value error, 'a..b' is not"),
    ("ZEROSERVE_KUBE_NAMESPACE", "Prod", "kube_namespace (ZEROSERVE_KUBE_NAMESPACE): Value error, 'Prod' is not a "
                                         "Kubernetes namespace name"),
    ("ZEROSERVE_KUBE_STORE_SECRET", "my_secret", "kube_store_secret (ZEROSERVE_KUBE_STORE_SECRET): Value error, "
                                                 "'my_secret' is not a Kubernetes object name"),
    ("ZEROSERVE_RUNTIME_IMAGE", "an image", "runtime_image (ZEROSERVE_RUNTIME_IMAGE): Value error, 'an image' must "
                                            "be one word without spaces"),
    ("ZEROSERVE_LAMBDA_PREFIX", "zs.", "lambda_prefix (ZEROSERVE_LAMBDA_PREFIX): Value error, 'zs.' is not a "
                                       "Lambda function name prefix"),
])
def test_a_bad_variable_is_refused_naming_field_and_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.load(env={variable: value})
    assert str(refused.value).startswith("settings: " + expected)


@pytest.mark.parametrize(("value", "expected"), [(" auto ", "auto"), ("root", "root"), ("1000", "1000"),
                                                 ("1000:1001", "1000:1001")])
def test_run_as_forms(value: str, expected: str) -> None:
    assert Settings.load(env={"ZEROSERVE_RUN_AS": value}).run_as == expected


def test_assignment_is_checked_like_loading() -> None:
    settings = Settings.load(env={})
    with pytest.raises(ValueError, match="port"):
        settings.port = 70000
    assert settings.port == 8080
