"""How long the CLI takes to print: `zeroserve --help`, `ls`, `status FN`, `describe FN`, wall clock.

Each command runs as a fresh process (what a user waits for, interpreter start included), in `--runs`
rounds that run every command once (after a warm-up round), against a real platform (`zeroserve up
--port 0` on a temporary data dir, with examples/iris deployed). Reported per command: median, min and
max in ms; alongside, the floors it cannot go below on this machine (`python -c pass`, `import typer`),
measured in the same rounds, and the import time of `zeroserve.cli` from `python -X importtime`.
Target: every median < 300 ms. On a shared machine, read the load averages printed with the results.

    .venv/bin/python bench/cli_startup.py [--runs 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402

TARGET_MS = 300.0
READY_TIMEOUT = 60.0
BIN = Path(sys.executable).parent
ZEROSERVE = str(BIN / "zeroserve")


def timed_rounds(commands: dict[str, list[str]], runs: int, env: dict[str, str], cwd: Path) -> dict[str, list[float]]:
    """Wall-clock ms per command over `runs` rounds, each running every command once, so a burst of load from
    elsewhere on a shared machine hits all of them alike; round 0 is a warm-up (page cache, .pyc files)."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, argv in commands.items():
            start = time.perf_counter()
            result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
            elapsed = (time.perf_counter() - start) * 1000
            if result.returncode != 0:
                raise SystemExit(f"{name} exited {result.returncode}:\n{result.stdout}{result.stderr}")
            if round_:
                samples[name].append(elapsed)
    return samples


def cli_import_ms(env: dict[str, str]) -> float:
    """Cumulative import time of zeroserve.cli as `python -X importtime` reports it (one run)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import zeroserve.cli"], env=env,
                            capture_output=True, text=True, check=True)
    for line in result.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "zeroserve.cli":
            return int(parts[1]) / 1000
    raise SystemExit("python -X importtime did not report zeroserve.cli")


class Platform:
    """`zeroserve up --port 0 --data DIR` with its URL read from the ready line."""

    def __init__(self, data_dir: Path, env: dict[str, str]):
        self.proc = subprocess.Popen([ZEROSERVE, "up", "--port", "0", "--data", str(data_dir)], env=env,
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        self.url = ""
        while not self.url:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise SystemExit(f"zeroserve up not ready within {READY_TIMEOUT:g}s") from None
            if line is None:
                raise SystemExit("zeroserve up exited before it was ready")
            if line.startswith("zeroserve ready at "):
                self.url = line.split()[3]

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.put(line)
        lines.put(None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1),
            "max_ms": round(max(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed rounds (after one warm-up round)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="zeroserve-cli-bench-"))
    data = workdir / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROSERVE_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    results: dict[str, Any] = {"machine": describe_machine(), "runs": args.runs, "target_ms": TARGET_MS}
    results["import_zeroserve_cli_ms"] = round(cli_import_ms(env), 1)

    platform = Platform(data, env)
    try:
        client_env = {**env, "ZEROSERVE_URL": platform.url, "ZEROSERVE_DATA": str(data)}
        deployed = subprocess.run([ZEROSERVE, "deploy", str(ROOT / "examples" / "iris")], env=client_env,
                                  cwd=workdir, capture_output=True, text=True, check=False)
        if deployed.returncode != 0:
            raise SystemExit(f"zeroserve deploy examples/iris failed:\n{deployed.stdout}{deployed.stderr}")
        floors = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import typer'": [sys.executable, "-c", "import typer"],
        }
        commands = {
            "zeroserve --help": [ZEROSERVE, "--help"],
            "zeroserve ls": [ZEROSERVE, "ls"],
            "zeroserve status iris": [ZEROSERVE, "status", "iris"],
            "zeroserve describe iris": [ZEROSERVE, "describe", "iris"],
        }
        samples = timed_rounds({**floors, **commands}, args.runs, client_env, workdir)
        results["floors"] = {name: summary(samples[name]) for name in floors}
        results["commands"] = {name: summary(samples[name]) for name in commands}
    finally:
        platform.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_average_after"] = round(os.getloadavg()[0], 2)

    print(f"machine: {results['machine']} (at the start; {results['load_average_after']} at the end)")
    print(f"import zeroserve.cli (python -X importtime): {results['import_zeroserve_cli_ms']} ms")
    print(f"{'command':<30} {'median':>9} {'min':>9} {'max':>9}   ({args.runs} rounds, wall clock)")
    for group in ("floors", "commands"):
        for name, row in results[group].items():
            mark = "" if group == "floors" else ("  ok" if row["median_ms"] < TARGET_MS else "  OVER TARGET")
            print(f"{name:<30} {row['median_ms']:>7.1f}ms {row['min_ms']:>7.1f}ms {row['max_ms']:>7.1f}ms{mark}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
