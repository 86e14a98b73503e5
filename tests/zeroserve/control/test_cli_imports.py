"""The CLI starts fast because it imports only what a command needs: checked structurally, by sys.modules.

Each case runs the real CLI in a fresh interpreter and lists the modules it ended with. Nothing here times
anything (bench/cli_startup.py measures the wall clock); a test fails when a command starts importing a
module that costs tens or hundreds of milliseconds, e.g. a new top-level `import httpx` in a command
module, or the settings model pulled into the client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.zeroserve.control.harness import REPO, PlatformProcess, _env, function_dir

# Run the CLI as `zeroserve ARGS...` would, then write its exit code and the loaded module names to the
# file named by argv[1].
PROBE = """
import json, sys
out, sys.argv = sys.argv[1], ["zeroserve", *sys.argv[2:]]
from zeroserve.cli import app
code = 0
try:
    app()
except SystemExit as exc:
    code = exc.code
with open(out, "w") as handle:
    json.dump({"code": code, "modules": sorted(sys.modules)}, handle)
"""

# Heavy third-party packages (top-level names) and the platform's own heavy modules: none of them has
# any business in a command that only prints help or calls the control API.
HEAVY_PACKAGES = {"httpx", "httpcore", "fastapi", "starlette", "uvicorn", "numpy", "onnx", "onnxruntime",
                  "torch", "kubernetes", "boto3", "botocore", "locust", "gevent", "matplotlib", "pandas",
                  "pydantic_settings", "prometheus_client", "yaml", "aiohttp"}
PLATFORM_MODULES = {"zeroserve.settings", "zeroserve.up", "zeroserve.api", "zeroserve.dataplane",
                    "protocol.manifest", "revisions", "activator", "autoscaler", "deploy", "functions",
                    "loadtests.harness", "loadtests.report", "loadtests.chart"}
# Typer (0.29) coerces a command's options with pydantic's TypeAdapter, so pydantic is loaded as soon as a
# command parses its arguments; only the bare `--help` and the import itself can do without it.
PYDANTIC = {"pydantic", "pydantic_core"}


def loaded_modules(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules `zeroserve ARGS...` loaded; the command must succeed (one that failed early proves nothing)."""
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    result = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], cwd=REPO, env=env or _env(),
                            capture_output=True, text=True, timeout=60)
    assert out.exists(), f"zeroserve {' '.join(args)} did not finish:\n{result.stdout}{result.stderr}"
    report = json.loads(out.read_text())
    assert report["code"] in (0, None), f"zeroserve {' '.join(args)} exited {report['code']}:\n{result.stderr}"
    return set(report["modules"])


def heavy(modules: set[str], forbidden_packages: set[str]) -> list[str]:
    """The forbidden modules loaded: any module of a forbidden package, or a platform module or its parts."""
    return sorted(m for m in modules
                  if m.split(".")[0] in forbidden_packages
                  or any(m == p or m.startswith(p + ".") for p in PLATFORM_MODULES))


def test_import_and_help_load_nothing_heavy(tmp_path):
    bare = set(json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys, zeroserve.cli; print(json.dumps(sorted(sys.modules)))"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60, check=True).stdout))
    assert "zeroserve.cli" in bare
    assert heavy(bare, HEAVY_PACKAGES | PYDANTIC) == []

    help_modules = loaded_modules(tmp_path, "--help")
    assert "zeroserve.commands.loadtest" in help_modules  # every command is registered, so all were imported
    assert heavy(help_modules, HEAVY_PACKAGES | PYDANTIC) == []


@pytest.mark.parametrize("command", ["ls", "describe", "status", "traffic", "deploy", "loadtest", "init", "up",
                                     "invoke", "token", "git-credential", "export", "logs"])
def test_command_help_loads_nothing_heavy(tmp_path, command):
    assert heavy(loaded_modules(tmp_path, command, "--help"), HEAVY_PACKAGES) == []


@pytest.fixture(scope="module")
def platform_with_iris(tmp_path_factory):
    platform = PlatformProcess(tmp_path_factory.mktemp("platform") / "data").start()
    try:
        with platform.client() as client:
            client.deploy(function_dir(tmp_path_factory.mktemp("fn"), "iris"))
        yield platform
    finally:
        platform.stop()


@pytest.mark.parametrize("args", [("ls",), ("describe", "iris"), ("status", "iris"), ("token", "ls"),
                                  ("logs", "iris"),
                                  ("invoke", "iris", "--data", '{"instances": [[5.1, 3.5, 1.4, 0.2]]}')])
def test_api_commands_load_the_http_client_and_nothing_else_heavy(tmp_path, platform_with_iris, args):
    env = _env(ZEROSERVE_URL=platform_with_iris.url, ZEROSERVE_DATA=str(platform_with_iris.data_dir),
               COLUMNS="200")
    modules = loaded_modules(tmp_path, *args, env=env)
    assert "httpx" in modules  # it did call the platform
    assert heavy(modules, HEAVY_PACKAGES - {"httpx", "httpcore"}) == []


def test_deploy_packs_without_loading_the_manifest_models(tmp_path, platform_with_iris):
    # `zeroserve deploy DIR` packs the directory with revisions.archive (the digest's file list); the
    # manifest's pydantic models and YAML are the platform's to load, not the uploader's.
    env = _env(ZEROSERVE_URL=platform_with_iris.url, ZEROSERVE_DATA=str(platform_with_iris.data_dir))
    modules = loaded_modules(tmp_path, "deploy", str(function_dir(tmp_path, "packed")), env=env)
    assert "revisions.archive" in modules and "httpx" in modules  # it did pack and upload
    packing = {"revisions", "revisions.archive", "revisions.digest"}
    assert [m for m in heavy(modules, HEAVY_PACKAGES - {"httpx", "httpcore"}) if m not in packing] == []
