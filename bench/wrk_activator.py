"""What the activator costs seen from an outside client: wrk against a function URL of a real `zeroserve up`
versus wrk against `zeroserve serve` on the same function directly, same machine, same request.

    .venv/bin/python bench/wrk_activator.py [--rounds 5] [--seconds 5] [--route host|path] [--json out.json]

Needs wrk (`apt-get install -y wrk`); without it the script says so and exits with status 2. Two servers:

* direct: `python -m functions.server examples/iris --port 0` (what `zeroserve serve` runs), over TCP;
* activator: `zeroserve up --port 0` in a temporary data dir with a copy of examples/iris deployed with
  min_scale = max_scale = 1 (one warm replica, like the direct server), reached by its function URL
  (`Host: iris.localhost:PORT`, or `/fn/iris/...` with --route path).

Every wrk run POSTs the iris V2 sample (examples/iris/sample.json) with a Lua script, on one wrk thread so
wrk takes one core at most. Each round runs c=1 (latency: wrk's p50 and p99) and then c=32 (throughput) on
both targets, alternating; the medians over rounds and the median of the per-round ratios are reported,
because the machine may be shared. Any non-2xx answer or socket error fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import describe_machine  # noqa: E402
from tests.zeroserve.control.harness import PlatformProcess  # noqa: E402

IRIS = REPO / "examples" / "iris"
INFER_PATH = "/v2/models/iris/infer"
LATENCY_CONNECTIONS = 1
THROUGHPUT_CONNECTIONS = 32
READY_TIMEOUT = 120.0

LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{host_line}
"""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        print("bench/wrk_activator.py needs wrk, which is not installed: `apt-get install -y wrk` "
              "(Debian/Ubuntu) or build it from https://github.com/wg/wrk", file=sys.stderr)
        raise SystemExit(2)
    return found


# -- the two servers --------------------------------------------------------------------------


def start_direct() -> tuple[subprocess.Popen[str], str]:
    """`zeroserve serve examples/iris` on a free port; returns the process and its base URL."""
    from functions.server import READY_PREFIX

    proc = subprocess.Popen([sys.executable, "-m", "functions.server", str(IRIS), "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env())
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    for line in proc.stdout:
        if line.startswith(READY_PREFIX):
            url = re.search(r" at (http://\S+) ", line)
            if url is None:
                break
            # Drain the rest of its output so a full pipe can never block it.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, url.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("zeroserve serve did not print its ready line")


def start_platform(work: Path) -> PlatformProcess:
    """`zeroserve up` with a copy of examples/iris deployed and held at one warm replica."""
    import yaml

    platform = PlatformProcess(work / "data").start()
    function = work / "iris"
    shutil.copytree(IRIS, function, ignore=shutil.ignore_patterns("make_model.py", "__pycache__"))
    manifest = yaml.safe_load((function / "function.yaml").read_text())
    manifest["scaling"] = {**manifest.get("scaling", {}), "min_scale": 1, "max_scale": 1, "initial_scale": 1}
    (function / "function.yaml").write_text(yaml.safe_dump(manifest))
    with platform.client() as client:
        result = client.deploy(function)
    if result.get("status") not in ("created", "unchanged"):
        platform.stop()
        raise RuntimeError(f"deploy failed: {result}")
    return platform


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROSERVE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


# -- wrk --------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    latency = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if latency is None:
        raise RuntimeError(f"wrk printed a latency that is not a number of us, ms or s: {text!r}")
    number, unit = latency.groups()
    return float(number) * _UNITS[unit]


def _report_field(pattern: str, text: str) -> str:
    """The first group of `pattern` in wrk's report; a report without it is an error, not a None."""
    found = re.search(pattern, text, re.M)
    if found is None:
        raise RuntimeError(f"wrk's report has nothing matching {pattern!r}:\n{text}")
    return found.group(1)


def run_wrk(wrk: str, url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{text}")
    if "Non-2xx or 3xx responses" in text or "Socket errors" in text:
        raise RuntimeError(f"wrk saw errors against {url}:\n{text}")
    requests_per_s = float(_report_field(r"Requests/sec:\s+([\d.]+)", text))
    p50 = _ms(_report_field(r"^\s+50%\s+(\S+)", text))
    p99 = _ms(_report_field(r"^\s+99%\s+(\S+)", text))
    return {"rps": requests_per_s, "p50_ms": p50, "p99_ms": p99}


def write_script(path: Path, body: bytes, host: str | None) -> Path:
    host_line = f'wrk.headers["Host"] = {json.dumps(host)}' if host else ""
    path.write_text(LUA.format(body=json.dumps(body.decode()), host_line=host_line))
    return path


# -- orchestration ----------------------------------------------------------------------------


def measure(wrk: str, targets: dict[str, tuple[str, Path]], rounds: int, seconds: float) -> dict:
    runs: dict[str, dict[int, list[dict[str, float]]]] = {
        name: {LATENCY_CONNECTIONS: [], THROUGHPUT_CONNECTIONS: []} for name in targets}
    for round_number in range(rounds):
        for connections in (LATENCY_CONNECTIONS, THROUGHPUT_CONNECTIONS):
            for name, (url, script) in targets.items():
                result = run_wrk(wrk, url, script, connections, seconds)
                runs[name][connections].append(result)
                print(f"  round {round_number + 1} c={connections:<2} {name:<9} {result['rps']:8.0f} req/s  "
                      f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms", flush=True)
    direct, through = runs["direct"], runs["activator"]
    summary: dict = {"latency": {}, "throughput": {}}
    for name, by_c in runs.items():
        latency = by_c[LATENCY_CONNECTIONS]
        summary["latency"][name] = {"p50_ms": statistics.median(r["p50_ms"] for r in latency),
                                    "p99_ms": statistics.median(r["p99_ms"] for r in latency)}
    summary["latency"]["added_p50_ms"] = statistics.median(
        a["p50_ms"] - d["p50_ms"] for a, d in zip(through[1], direct[1], strict=True))
    summary["latency"]["added_p99_ms"] = statistics.median(
        a["p99_ms"] - d["p99_ms"] for a, d in zip(through[1], direct[1], strict=True))
    for connections in (LATENCY_CONNECTIONS, THROUGHPUT_CONNECTIONS):
        ratios = [a["rps"] / d["rps"] for a, d in zip(through[connections], direct[connections], strict=True)]
        summary["throughput"][str(connections)] = {
            "direct_rps": statistics.median(r["rps"] for r in direct[connections]),
            "activator_rps": statistics.median(r["rps"] for r in through[connections]),
            "ratio": statistics.median(ratios), "ratios": ratios}
    return summary


def report(results: dict) -> None:
    latency = results["latency"]
    print(f"machine: {results['machine_start']}")
    print(f"         load average at end {results['load_end']:.2f}")
    print(f"wrk {results['wrk']}; activator via {results['route']}; {results['rounds']} alternating rounds of "
          f"{results['seconds']:g} s; medians (ratio: median of per-round ratios)")
    print("latency c=1 (wrk's percentiles)")
    for name in ("direct", "activator"):
        print(f"  {name:<10} p50 {latency[name]['p50_ms']:.3f} ms   p99 {latency[name]['p99_ms']:.3f} ms")
    print(f"  added      p50 {latency['added_p50_ms']:+.3f} ms   p99 {latency['added_p99_ms']:+.3f} ms"
          "   (target p50 <= +0.3 ms)")
    for connections, row in results["throughput"].items():
        target = "   target >= 0.90" if connections == str(THROUGHPUT_CONNECTIONS) else ""
        print(f"  c={connections:<3} direct {row['direct_rps']:8.0f} req/s   activator {row['activator_rps']:8.0f} "
              f"req/s   ratio {row['ratio']:.2f} (rounds: {' '.join(f'{r:.2f}' for r in row['ratios'])}){target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each wrk run")
    parser.add_argument("--route", choices=("host", "path"), default="host",
                        help="reach the function by Host header (iris.localhost) or by /fn/iris/ path")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    wrk = wrk_binary()
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    body = (IRIS / "sample.json").read_bytes()
    work = Path(tempfile.mkdtemp(prefix="zs-wrk-"))
    direct = platform = None
    try:
        machine_start = describe_machine()
        direct, direct_url = start_direct()
        platform = start_platform(work)
        port = platform.url.rsplit(":", 1)[1]
        if args.route == "host":
            through_url, host = platform.url + INFER_PATH, f"iris.localhost:{port}"
        else:
            through_url, host = f"{platform.url}/fn/iris{INFER_PATH}", None
        targets = {"direct": (direct_url + INFER_PATH, write_script(work / "direct.lua", body, None)),
                   "activator": (through_url, write_script(work / "activator.lua", body, host))}
        for url, script in targets.values():  # warm both (the replica's first inference, pooled connections)
            run_wrk(wrk, url, script, 4, 1)
        results = measure(wrk, targets, args.rounds, args.seconds)
        results.update(machine_start=machine_start, load_end=os.getloadavg()[0], wrk=wrk_version,
                       route=args.route, rounds=args.rounds, seconds=args.seconds)
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        if direct is not None:
            direct.send_signal(signal.SIGTERM)
            try:
                direct.wait(timeout=20)
            except subprocess.TimeoutExpired:
                direct.kill()
        if platform is not None:
            platform.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
