"""The README's load test, as a user types it: from their own directory, no --out, a report folder there.

    .venv/bin/zeroserve loadtest iris --shape spike --users 50 --duration 60s

The command is read from README.md and run with only --duration shortened (60 s of load plus the cooldown
would not fit a test), from a temporary working directory whose `.zeroserve/` holds the platform's token,
as after `make run`. The function is examples/iris deployed as `iris` with a short stable window, so the
automatic cooldown ends within seconds of the load.
"""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
import sys

from tests.loadtests.conftest import cli_env
from tests.readme.commands import readme_commands
from tests.zeroserve.control.harness import PlatformProcess, function_dir

README_LOADTEST = "zeroserve loadtest iris --shape spike --users 50 --duration 60s"
SHORT_DURATION = "5s"
# Locust's own complaint when it is given --run-time/--users/--spawn-rate alongside a shape.
LOCUST_SHAPE_WARNING = re.compile(r"have no impact on LoadShapes|will be ignored: --")


def test_the_readme_loadtest_command_from_any_directory_without_out(platform: PlatformProcess,
                                                                       tmp_path) -> None:
    shown = {c.text: c.shown for c in readme_commands()}
    assert README_LOADTEST in shown, "README.md changed its loadtest command; update this test"
    argv = shlex.split(shown[README_LOADTEST])
    assert argv[0].endswith("zeroserve") and "--out" not in argv
    argv[argv.index("--duration") + 1] = SHORT_DURATION
    platform.client().deploy(function_dir(tmp_path, "iris", scaling={
        "window": "6s", "scale_to_zero_grace_period": "1s", "initial_scale": 1}))
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    (cwd / ".zeroserve").symlink_to(platform.data_dir)  # where `make run` leaves the data dir and token
    env = {k: v for k, v in cli_env(platform).items() if k != "ZEROSERVE_DATA"}

    result = subprocess.run([sys.executable, "-m", "zeroserve.cli", *argv[1:]], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=90)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (report,) = [p for p in cwd.iterdir() if p.name.startswith("loadtest-iris-")]
    assert report.is_dir() and f"report in {report.name}/" in output, output  # shown as the user would type it
    with (report / "locust_stats.csv").open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    assert int(rows["V2 infer"]["Request Count"]) > 0, rows
    assert int(rows["V2 infer"]["Failure Count"]) == 0, rows
    assert "requests" in output and "failures      0" in output, output
    for text in (output, (report / "locust.log").read_text()):
        assert not LOCUST_SHAPE_WARNING.search(text), text
