"""How fast deploys are: one iris deploy through the CLI until it answers, and many deploys at once.

    .venv/bin/python bench/deploy_throughput.py [--single 10] [--many 200] [--concurrency 8] [--same 6]
                                                [--build-workers N] [--json out.json]

Against a real platform (`zeroserve up --port 0` on a temporary data dir):

(a) `--single` times: `zeroserve deploy DIR` of a fresh copy of examples/iris under a new name, as a
    user runs it (a new CLI process, interpreter start included), timed from the CLI's start to its
    exit, then to the first inference answered through the activator (the function starts from zero
    on that request, so this adds a cold start). Reported: medians, and the build log's steps
    (manifest, files, smoke, digest, store) with what is left of the CLI's time outside them (the CLI
    process, packing and upload, unpacking, the registry write, the reply). Goal: ≤ 1 s to servable.
(b) `--many` deploys of distinct functions (copies of iris) from `--concurrency` client threads over
    the control API, timed in total; the time for 1,000 is estimated from it. Goal: 1,000 in < 5 min.
(c) `--same` deploys of ONE function at once, each with different content: the revisions must come
    out numbered 1..N with no gap (deploys of a function stay ordered).

The machine may be shared: read the load average printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402
from tests.zeroserve.control.harness import PlatformProcess, change_model, function_dir  # noqa: E402

STEP = re.compile(r"^\s*\[\d+/\d+\] (\w+) ok \((\d+) ms\)")
STEPS = ("manifest", "files", "smoke", "digest", "store")
SINGLE_GOAL_S = 1.0
THOUSAND_GOAL_S = 300.0


def platform_cpu_s(platform: PlatformProcess) -> float:
    """CPU seconds used so far by the platform's process tree: live processes, plus the children each reaped.

    Independent of what else loads the machine, so CPU per deploy is comparable across runs.
    """
    assert platform.proc is not None
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, CPU seconds of it and its reaped children)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    total, todo = 0.0, [platform.proc.pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(child for child, (parent, _) in stats.items() if parent == pid)
    return total


def cli_deploy(platform: PlatformProcess, directory: Path) -> tuple[float, dict[str, float]]:
    """`zeroserve deploy DIR` as a new process; returns its wall time and the build steps' times (s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROSERVE_")}
    env.update(ZEROSERVE_URL=platform.url, ZEROSERVE_DATA=str(platform.data_dir))
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "zeroserve"), "deploy", str(directory)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"zeroserve deploy {directory} failed:\n{done.stdout}\n{done.stderr}")
    steps = {}
    for line in done.stdout.splitlines():
        match = STEP.match(line)
        if match:
            steps[match.group(1)] = int(match.group(2)) / 1000
    return elapsed, steps


def first_answer(platform: PlatformProcess, function: str) -> None:
    body = (ROOT / "examples" / "iris" / "sample.json").read_bytes()
    response = httpx.post(f"{platform.url}/fn/{function}/v2/models/{function}/infer", content=body,
                          headers={"Content-Type": "application/json"}, timeout=60)
    if response.status_code != 200:
        raise SystemExit(f"{function}: first request answered {response.status_code}: {response.text}")


def single(platform: PlatformProcess, work: Path, runs: int) -> dict[str, Any]:
    rows = []
    for run in range(runs + 1):  # the first is a warm-up (the platform's first build imports more)
        name = f"single-{run}"
        directory = function_dir(work, name)
        started = time.perf_counter()
        cli_s, steps = cli_deploy(platform, directory)
        first_answer(platform, name)
        servable_s = time.perf_counter() - started
        if run:
            rows.append({"cli_s": cli_s, "servable_s": servable_s, **steps})
            print(f"  deploy {run}: CLI {cli_s * 1000:6.0f} ms, answered {servable_s * 1000:6.0f} ms  "
                  + " ".join(f"{s} {steps.get(s, 0) * 1000:.0f}" for s in STEPS))
    median = {key: statistics.median(r.get(key, 0.0) for r in rows) for key in ("cli_s", "servable_s", *STEPS)}
    median["outside_steps_s"] = median["cli_s"] - sum(median[s] for s in STEPS)
    return {"runs": rows, "median": median}


def many(platform: PlatformProcess, work: Path, count: int, concurrency: int) -> dict[str, Any]:
    directories = [function_dir(work, f"many-{i}") for i in range(count)]
    clients = [platform.client() for _ in range(concurrency)]
    latencies: list[float] = []

    def deploy(index: int) -> None:
        client = clients[index % concurrency]
        started = time.perf_counter()
        result = client.deploy(directories[index])
        latencies.append(time.perf_counter() - started)
        if result["status"] != "created":
            raise SystemExit(f"deploy {index} answered {result}")

    cpu_before = platform_cpu_s(platform)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(deploy, range(count)))
    finally:
        for client in clients:
            client.close()
    total = time.perf_counter() - started
    cpu_per_deploy = (platform_cpu_s(platform) - cpu_before) / count
    return {"count": count, "concurrency": concurrency, "total_s": total, "per_s": count / total,
            "platform_cpu_per_deploy_s": cpu_per_deploy,
            "estimate_1000_s": total * 1000 / count, "latency_p50_s": statistics.median(latencies)}


def same_function(platform: PlatformProcess, work: Path, count: int) -> dict[str, Any]:
    directories = []
    for i in range(count):
        directory = function_dir(work, "same")
        change_model(directory, f"version {i}")
        directories.append(directory)
    with ThreadPoolExecutor(max_workers=count) as pool:
        def deploy(directory: Path) -> str:
            with platform.client() as client:
                return str(client.deploy(directory)["revision"])
        revisions = sorted(pool.map(deploy, directories))
    expected = [f"same-{n:05d}" for n in range(1, count + 1)]
    return {"count": count, "revisions": revisions, "dense": revisions == expected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=10, help="CLI deploys timed one at a time")
    parser.add_argument("--many", type=int, default=200, help="deploys of distinct functions, timed in total")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads for --many")
    parser.add_argument("--same", type=int, default=6, help="concurrent deploys of one function")
    parser.add_argument("--build-workers", type=int, default=None,
                        help="the platform's ZEROSERVE_BUILD_WORKERS (default: the platform's own default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    print(f"machine: {describe_machine()}")
    print(f"build workers: {args.build_workers or 'the platform default'}")
    results: dict[str, Any] = {"build_workers": args.build_workers}
    with tempfile.TemporaryDirectory(prefix="deploy-bench-") as scratch:
        work = Path(scratch)
        env = {} if args.build_workers is None else {"ZEROSERVE_BUILD_WORKERS": str(args.build_workers)}
        platform = PlatformProcess(work / "data", env=env).start()
        try:
            if args.single:
                print(f"(a) {args.single} CLI deploys of iris, one at a time (after one warm-up)")
                results["single"] = single(platform, work / "single", args.single)
            if args.many:
                print(f"(b) {args.many} deploys of distinct functions, {args.concurrency} at a time")
                results["many"] = many(platform, work / "many", args.many, args.concurrency)
            if args.same:
                print(f"(c) {args.same} concurrent deploys of one function")
                results["same"] = same_function(platform, work / "same", args.same)
        finally:
            platform.stop()
            shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {describe_machine()}")
    if "single" in results:
        m = results["single"]["median"]
        steps = ", ".join(f"{s} {m[s] * 1000:.0f}" for s in STEPS)
        goal = "met" if m["servable_s"] <= SINGLE_GOAL_S else "not met"
        print(f"(a) median CLI start to result {m['cli_s'] * 1000:.0f} ms; to first answer "
              f"{m['servable_s'] * 1000:.0f} ms (goal <= {SINGLE_GOAL_S * 1000:.0f} ms: {goal})")
        print(f"    build steps (ms): {steps}; outside the steps (CLI process, pack, upload, unpack, "
              f"registry, reply): {m['outside_steps_s'] * 1000:.0f} ms")
    if "many" in results:
        r = results["many"]
        goal = "met" if r["estimate_1000_s"] < THOUSAND_GOAL_S else "not met"
        print(f"(b) {r['count']} deploys at concurrency {r['concurrency']}: {r['total_s']:.1f} s "
              f"({r['per_s']:.1f}/s, p50 {r['latency_p50_s'] * 1000:.0f} ms each); 1,000 would take "
              f"~{r['estimate_1000_s']:.0f} s (goal < {THOUSAND_GOAL_S:.0f} s: {goal})")
        cores = os.cpu_count() or 1
        print(f"    platform CPU per deploy {r['platform_cpu_per_deploy_s'] * 1000:.0f} ms: on {cores} idle cores, "
              f"1,000 need at least {r['platform_cpu_per_deploy_s'] * 1000 / cores:.0f} s")
    if "same" in results:
        r = results["same"]
        print(f"(c) {r['count']} concurrent deploys of one function -> {', '.join(r['revisions'])} "
              f"({'dense and ordered' if r['dense'] else 'NOT DENSE'})")
    if args.json:
        args.json.write_text(json.dumps({"machine": describe_machine(), **results}, indent=2))


if __name__ == "__main__":
    main()
