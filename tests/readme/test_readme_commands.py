"""Every command README.md shows is exercised, so the README cannot rot.

The commands are read from the README itself (tests/readme/commands.py). Each must appear in COVERAGE,
which names the test that exercises it: most are run here, as shown, against a platform that `make run`'s
own recipe starts in a temporary directory (a user's checkout: the CLI finds the token in `./.zeroserve/`,
`.venv/bin/` holds the CLI); the rest name the existing test that runs them. A command added to the
README without an entry here, or an entry whose command left the README, fails the suite.

What differs from a user's terminal, and why: the platform listens on a free port (ZEROSERVE_PORT=0, since
8080 may be taken), so the CLI is told where it is with ZEROSERVE_URL and URLs shown with :8080 are run
with that port; `.venv/bin/zeroserve` is a two-line script running `python -m zeroserve.cli` with the
interpreter running these tests.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.git.gitrepo import git_env
from tests.readme.commands import README, REPO, readme_commands
from tests.zeroserve.control.harness import IRIS, change_model

THIS = "tests/readme/test_readme_commands.py"
QUICKSTART = f"{THIS}::test_make_run_starts_the_platform_and_the_curl_it_prints_answers"
CLI_SESSION = f"{THIS}::test_the_quick_start_cli_session"
GIT_PUSH = f"{THIS}::test_git_push_deploys_and_push_options_set_the_traffic_policy"
DEVELOPMENT = f"{THIS}::test_the_development_commands_run"
TRAFFIC_CLI = "tests/zeroserve/control/test_cli.py::test_deploy_redeploy_traffic_tags_and_rollback"

# README command (normalised: no `.venv/bin/`, `zeroserve ` before a bare subcommand) -> the test running it.
COVERAGE: dict[str, str] = {
    "make run": QUICKSTART,
    "curl -s -d @examples/iris/sample.json http://iris.localhost:8080/v2/models/iris/infer": QUICKSTART,
    "zeroserve invoke iris":
        "tests/zeroserve/control/test_invoke.py::test_the_readme_command_wakes_a_function_at_zero_and_says_so",
    "zeroserve invoke FN [--data @file.json | --sample] [--tag T] [--protocol v1|v2]":
        "tests/zeroserve/control/test_invoke.py::test_v1_and_v2_and_inline_data",
    "zeroserve init NAME": GIT_PUSH,
    "zeroserve logs FN [--revision R] [--since 10m] [-f]":
        "tests/observability/test_observability.py::test_logs_follow_shows_a_line_printed_while_following",
    "zeroserve token create --function F --scope deploy|invoke|read [--expires 30d]":
        "tests/security/test_tokens.py::test_token_cli_create_list_and_refusals",
    "zeroserve status iris": CLI_SESSION,
    "zeroserve deploy examples/echo-python": CLI_SESSION,
    "zeroserve traffic iris": CLI_SESSION,
    "zeroserve traffic iris iris-00001=90 iris-00002=10": CLI_SESSION,
    "zeroserve deploy DIR": CLI_SESSION,
    "zeroserve loadtest iris --shape spike --users 50 --duration 60s":
        "tests/loadtests/test_readme_command.py::test_the_readme_loadtest_command_from_any_directory_without_out",
    "zeroserve up --help": f"{THIS}::test_up_help_has_a_flag_for_each_setting_the_readme_names",
    # Named in the benchmark table; the harness every control test uses starts `zeroserve up` as a process.
    "zeroserve up": TRAFFIC_CLI,
    "zeroserve serve": "tests/functions/test_serve_artifact.py::test_serve_dir_still_works_and_takes_port_from_env",
    "git push": GIT_PUSH,
    "git push -o traffic=10 -o tag=canary -o rollout=5m": GIT_PUSH,
    "zeroserve traffic FN REV=PCT ... [--tag T=REV]": TRAFFIC_CLI,
    "zeroserve rollback FN": TRAFFIC_CLI,
    "zeroserve promote FN TAG": TRAFFIC_CLI,
    "python -m autoscaler.simulate TRACE": f"{THIS}::test_the_autoscaler_simulator_replays_a_shipped_trace",
    "zeroserve loadtest FN --shape spike|step|ramp|sine --users N --duration 60s [--expect FILE]":
        "tests/loadtests/test_spike.py::test_a_spike_from_zero_scales_up_panics_and_returns_to_zero",
    "make test": DEVELOPMENT,
    "make check": DEVELOPMENT,
    "python -m pytest tests/autoscaler -q": DEVELOPMENT,
    "python bench/cold_start_e2e.py": DEVELOPMENT,
    "zeroserve export knative FN":
        "tests/deploy/knative/test_platform_knative.py::test_deploy_split_promote_rollback_failed_revision_and_delete",
}

READY_TIMEOUT = 90.0  # under pytest's 120 s, so a hang reports what make run printed
COMMAND_TIMEOUT = 120.0
GIT_PUSH_DOC = REPO / "docs" / "git-push.md"


def shown(text: str) -> str:
    """The README's own spelling of a normalised command (e.g. with its `.venv/bin/` prefix)."""
    by_text = {c.text: c for c in readme_commands()}
    assert text in by_text, f"README.md no longer shows `{text}`; update COVERAGE and this test"
    command = by_text[text].shown
    # A bare subcommand shown in a comment (`traffic iris ...`) is run the way the block around it runs one.
    return command if command.split()[0] in ("make", "git", "curl", "python", "zeroserve") or \
        command.startswith(".venv/bin/") else f".venv/bin/zeroserve {command}"


def make_rule(target: str) -> tuple[list[str], list[str]]:
    """A Makefile target's prerequisites and recipe lines, with the Makefile's own variables expanded."""
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*?)\s*$", text, re.M))
    rule = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n?)*)", text, re.M)
    assert rule, f"the Makefile has no '{target}' target"
    prerequisites, lines = rule.group(1).split(), [line.strip() for line in rule.group(2).splitlines()]
    for _ in range(5):  # nested references: $(PY) -> $(VENV)/bin/python -> .venv/bin/python
        lines = [re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line) for line in lines]
    return prerequisites, lines


def make_recipe(target: str) -> list[str]:
    return make_rule(target)[1]


def install_venv_shims(directory: Path) -> Path:
    """`.venv/bin/{zeroserve,python}` that run this interpreter: the CLI a user's checkout has."""
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    runs = {"zeroserve": "-m zeroserve.cli", "python": ""}
    for name, module in runs.items():
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {module} "$@"\n')
        shim.chmod(0o755)
    return bin_dir


class UserShell:
    """A user's checkout in a temporary directory: examples/ and .venv/bin/ in place, commands run by bash."""

    def __init__(self, home: Path):
        self.cwd = home
        self.bin_dir = install_venv_shims(home)
        (home / "examples").symlink_to(REPO / "examples")
        self.url = ""

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in git_env(self.cwd).items() if not k.startswith("LOCUST_")}
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])  # as if the venv were active
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        if self.url:
            env["ZEROSERVE_URL"] = self.url
        env.update(extra)
        return env

    def run(self, script: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["bash", "-c", script], cwd=cwd or self.cwd, env=self.env(), capture_output=True,
                                text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, f"`{script}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
        return result


class Quickstart:
    """`make run`'s recipe in a UserShell, until it has printed its instructions; stopped like Ctrl-C."""

    def __init__(self, shell: UserShell):
        self.shell = shell
        self.recipe = make_recipe("run")
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Quickstart:
        self.proc = subprocess.Popen(["bash", "-c", "\n".join(self.recipe)], cwd=self.shell.cwd,
                                     env=self.shell.env(ZEROSERVE_PORT="0"), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"make run printed no instructions in {READY_TIMEOUT:g}s:\n{self.output}") from None
            if line is None:
                raise AssertionError(f"make run exited early:\n{self.output}")
            if line.startswith("zeroserve ready at "):
                self.shell.url = line.split()[3]
            if "Ctrl-C stops the platform" in line:
                return self
            if line.startswith("deploying ") and " failed: " in line:  # the platform runs on, without iris
                raise AssertionError(f"make run could not deploy examples/iris:\n{self.output}")

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def port(self) -> str:
        return self.shell.url.rsplit(":", 1)[1]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGTERM: the platform stops its replicas first
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=20)
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quickstart]:
    started = Quickstart(UserShell(tmp_path_factory.mktemp("checkout")))
    try:
        yield started.start()
    finally:
        started.stop()


def infer_result(body: str) -> dict:
    result = json.loads(body)
    assert result.get("model_name") == "iris", body
    return result


def run_curl(shell: UserShell, line: str) -> str:
    """A `curl -s -d DATA URL` line: run by curl itself, or (no curl here) sent the same way with httpx."""
    if shutil.which("curl"):
        return shell.run(line).stdout
    words = shlex.split(line)
    data, url = words[words.index("-d") + 1], words[-1]
    body = (shell.cwd / data[1:]).read_bytes() if data.startswith("@") else data.encode()
    host = httpx.URL(url).netloc.decode()  # iris.localhost:PORT, resolved to loopback as curl does
    response = httpx.post(httpx.URL(url).copy_with(host="127.0.0.1"), content=body, headers={"Host": host},
                          timeout=60)
    return response.text


def test_every_readme_command_is_covered_by_a_test_that_exists() -> None:
    commands = readme_commands()
    assert commands, "no command found in README.md: is the parser broken?"
    uncovered = [f"`{c.shown}` ({c.where})" for c in commands if c.text not in COVERAGE]
    assert not uncovered, ("README.md shows commands no test exercises; run them in a test and add them to "
                           "COVERAGE in " + THIS + ":\n" + "\n".join(uncovered))
    shown_texts = {c.text for c in commands}
    stale = [text for text in COVERAGE if text not in shown_texts]
    assert not stale, f"COVERAGE lists commands README.md no longer shows: {stale}"
    for test_id in sorted(set(COVERAGE.values())):
        path, _, name = test_id.partition("::")
        tree = ast.parse((REPO / path).read_text())
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name.startswith("test_") and name in defined, f"{test_id} does not exist"


def test_the_parser_finds_commands_in_blocks_comments_output_and_prose(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "Run `zeroserve describe iris` or `rollback FN`; the `zeroserve-revision` header, `make`.\n\n"
        "```sh\n.venv/bin/zeroserve ls   # all; `events iris` too\n# a comment\nsomething-new --flag\n```\n\n"
        "```\nzeroserve ready at http://127.0.0.1:8080\n  curl -s http://x/\n```\n\n"
        "```console\n$ git push zeroserve main\nremote: git push ignored\n```\n\n"
        "```yaml\nmake: run\n```\n")
    found = {c.text: c.where for c in readme_commands(readme)}
    assert set(found) == {"zeroserve ls", "zeroserve events iris", "something-new --flag", "curl -s http://x/",
                          "git push zeroserve main", "zeroserve describe iris", "zeroserve rollback FN"}, found
    assert found["something-new --flag"] == "sh block, README.md line 6"  # strict: every line of a sh block
    assert found["zeroserve describe iris"] == "prose, README.md line 1"


def test_make_run_starts_the_platform_and_the_curl_it_prints_answers(quickstart: Quickstart) -> None:
    assert any("zeroserve quickstart" in line for line in quickstart.recipe), quickstart.recipe
    output = quickstart.output
    # The output the README shows, with this run's port and timings.
    assert re.search(r"^zeroserve ready at http://127\.0\.0\.1:\d+ \(data: \.zeroserve\)$", output, re.M), output
    assert re.search(r"^  \[1/5\] manifest ok \(\d+ ms\): iris \(onnx\)$", output, re.M), output
    assert "iris is deployed (created: iris-00001)" in output
    port = quickstart.port
    assert f"  function URL: http://iris.localhost:{port}/   (also http://127.0.0.1:{port}/fn/iris/)" in output
    assert (quickstart.shell.cwd / ".zeroserve" / "token").is_file()

    printed = [line.strip() for line in quickstart.lines if line.strip().startswith("curl ")]
    assert len(printed) == 2, output  # V2 infer with the sample, V1 predict
    v2 = infer_result(run_curl(quickstart.shell, printed[0]))
    probabilities = v2["outputs"][0]
    assert probabilities["name"] == "probabilities" and probabilities["shape"] == [2, 3]
    v1 = json.loads(run_curl(quickstart.shell, printed[1]))
    assert len(v1["predictions"]) == 1 and len(v1["predictions"][0]) == 3, v1

    readme_curl = shown("curl -s -d @examples/iris/sample.json http://iris.localhost:8080/v2/models/iris/infer")
    same = infer_result(run_curl(quickstart.shell, readme_curl.replace(":8080/", f":{port}/")))
    assert same["outputs"][0]["shape"] == [2, 3]
    # The sample's two flowers are a setosa and a virginica.
    data = same["outputs"][0]["data"]
    assert [max(range(3), key=row.__getitem__) for row in (data[:3], data[3:])] == [0, 2]


def test_the_quick_start_cli_session(quickstart: Quickstart) -> None:
    shell = quickstart.shell
    status = shell.run(shown("zeroserve status iris")).stdout
    assert "iris-00001" in status and "100%" in status, status

    deployed = shell.run(shown("zeroserve deploy examples/echo-python")).stdout
    assert "created echo-python-00001" in deployed, deployed
    echo = httpx.post(f"{shell.url}/fn/echo-python/v2/models/echo-python/infer",
                      content=(REPO / "examples" / "echo-python" / "sample.json").read_bytes(), timeout=60)
    assert echo.status_code == 200 and echo.headers["zeroserve-revision"] == "echo-python-00001", echo.text

    traffic = shown("zeroserve traffic iris")
    assert "iris: iris-00001=100" in shell.run(traffic).stdout

    # `zeroserve deploy DIR` of a retrained iris makes the second revision the split names.
    retrained = shell.cwd / "iris-retrained"
    shutil.copytree(IRIS, retrained, ignore=shutil.ignore_patterns("__pycache__"))
    change_model(retrained, "retrained")
    deploy_dir = shown("zeroserve deploy DIR").replace("DIR", retrained.name)
    assert "created iris-00002" in shell.run(deploy_dir).stdout

    split = shell.run(shown("zeroserve traffic iris iris-00001=90 iris-00002=10")).stdout
    assert "iris-00001=90, iris-00002=10" in split, split
    assert "iris: iris-00001=90, iris-00002=10" in shell.run(traffic).stdout


def test_git_push_deploys_and_push_options_set_the_traffic_policy(quickstart: Quickstart) -> None:
    shell = quickstart.shell
    # README: "`git push`: see docs/git-push.md"; its first steps, as that page shows them.
    steps = ["zeroserve init iris2", 'cd iris2 && git add -A && git commit -m "first revision"',
             "git push zeroserve main"]
    doc = GIT_PUSH_DOC.read_text()
    assert all(f"$ {step}" in doc for step in steps), "docs/git-push.md changed its first steps; update them here"
    pushed = shell.run("set -e\n" + "\n".join(steps))
    assert "revision iris2-00001 created" in pushed.stderr and "traffic: iris2-00001=100" in pushed.stderr, \
        pushed.stderr

    repo = shell.cwd / "iris2"
    change_model(repo, "second")
    shell.run('git commit -qam "retrained"', cwd=repo)
    options = shown("git push -o traffic=10 -o tag=canary -o rollout=5m")
    second = shell.run(f"{options} zeroserve main", cwd=repo).stderr
    assert "revision iris2-00002 created" in second, second
    assert "rollout: iris2-00002 to 10% over 300 s" in second, second
    assert f"url (canary): http://canary-iris2.localhost:{quickstart.port}/" in second, second


def test_up_help_has_a_flag_for_each_setting_the_readme_names(tmp_path: Path) -> None:
    shell = UserShell(tmp_path)
    text = README.read_text()
    settings = sorted(set(re.findall(r"`ZEROSERVE_([A-Z_]+)(?:=[^`]*)?`", text)))
    assert "PORT" in settings and "DATA" in settings, settings
    help_text = shell.run(shown("zeroserve up --help"), check=True).stdout
    for name in settings:
        flag = "--" + name.lower().replace("_", "-")
        assert flag in help_text, f"README names ZEROSERVE_{name}, but `zeroserve up --help` has no {flag}"


def test_the_autoscaler_simulator_replays_a_shipped_trace(tmp_path: Path) -> None:
    shell = UserShell(tmp_path)
    trace = REPO / "autoscaler" / "traces" / "spike-from-zero.yaml"
    command = shown("python -m autoscaler.simulate TRACE").replace("TRACE", str(trace))
    output = shell.run(command, cwd=REPO).stdout
    assert "trace spike-from-zero" in output and "peak replicas" in output, output


def test_the_development_commands_run(tmp_path: Path) -> None:
    shell = UserShell(tmp_path)
    # `make test` is what CI runs (.ci/run): `make check` first, then this very suite. Running either
    # from here would run the suite inside itself, so here: that they are wired so.
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), re.M)
    test_prerequisites, test_recipe = make_rule("test")
    assert "check" in test_prerequisites and any("pytest" in line for line in test_recipe)
    checks = [line for target in make_rule("check")[0] for line in make_recipe(target)]
    assert any("ruff check" in line for line in checks) and any("mypy" in line for line in checks), checks
    # The suite's own path, as the README's pytest command names it.
    pytest_paths = [word for word in shown("python -m pytest tests/autoscaler -q").split() if "/" in word
                    and not word.startswith(".venv/")]
    assert pytest_paths and all(list((REPO / p).glob("test_*.py")) for p in pytest_paths), pytest_paths
    # Benchmarks are run by hand (they measure, tests never do); the script must start and parse its options.
    bench = shown("python bench/cold_start_e2e.py")
    usage = shell.run(f"{bench.replace('.venv/bin/', f'{shell.bin_dir}/')} --help", cwd=REPO).stdout
    assert usage.startswith("usage: cold_start_e2e.py"), usage
