"""Cold start end to end: first response from a function at zero, through the activator.

Starts a real `zeroserve up`, deploys N copies of examples/iris (distinct names, `initial_scale: 0`, so each
sits at zero), then sends each its first request over HTTP and times it: routing, the activator's hold,
the fork (from the revision's warm template, or the zygote), the model load when there is no template, the
replica's first answer. Prints p50/p99, the replica's own breakdown and how many starts a warm template served.

By default it runs twice, side by side: with warm templates (the platform's default) and without
(`--warm-templates-memory 0`), and prints both and their ratio. A warm template needs a load that starts no
thread: ONNX Runtime's intra-op pool starts one per core beyond the first unless `resources.threads` is 1, as
examples/iris sets; `--threads N` overrides it in the copies (docs/supervisor.md).

    .venv/bin/python bench/cold_start_e2e.py [--functions 20] [--threads N] [--only-templates-memory SIZE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import describe_machine  # noqa: E402
from tests.zeroserve.control.harness import PlatformProcess  # noqa: E402

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Run:
    label: str
    cold: list[float] = field(default_factory=list)       # ms, first request to a function at zero
    warm: list[float] = field(default_factory=list)       # ms, the request right after it
    breakdown: list[dict[str, float]] = field(default_factory=list)  # the replica's own start timings
    templates: dict[str, float] = field(default_factory=dict)


def wait_for_templates(platform: PlatformProcess, names: list[str], timeout: float = 60) -> None:
    """Until every copy's warm template has loaded (or said why it cannot), so no start races its load."""
    deadline = time.monotonic() + timeout
    with platform.client() as client:
        while time.monotonic() < deadline:
            states = [(client.status(n)["revisions"][0].get("warm_template") or {}).get("state") for n in names]
            if all(state not in (None, "starting") for state in states):
                return
            time.sleep(0.1)
    raise SystemExit(f"warm templates not ready after {timeout:.0f}s: {states}")


def measure(work: Path, count: int, threads: int | None, templates_memory: str | None) -> Run:
    env = {} if templates_memory is None else {"ZEROSERVE_WARM_TEMPLATES_MEMORY": templates_memory}
    run = Run("templates " + ("off" if templates_memory == "0" else f"on ({templates_memory or 'default'})"))
    platform = PlatformProcess(work / "data", env=env).start()
    try:
        names = [f"cold{i:02d}" for i in range(count)]
        with platform.client() as client:
            for name in names:
                dest = work / name
                shutil.copytree(REPO / "examples" / "iris", dest, ignore=shutil.ignore_patterns("make_model.py"))
                manifest = yaml.safe_load((dest / "function.yaml").read_text())
                manifest.update(name=name, scaling={**manifest.get("scaling", {}), "initial_scale": 0})
                if threads is not None:
                    manifest["resources"] = {**manifest.get("resources", {}), "threads": threads}
                (dest / "function.yaml").write_text(yaml.safe_dump(manifest))
                result = client.deploy(dest)
                assert result["status"] == "created", result
        if templates_memory != "0":
            wait_for_templates(platform, names)
        time.sleep(1.0)  # the zygote's deferred work (gc, page faults of the deploys) settles; not a sync point
        with httpx.Client(timeout=30) as http:
            for name in names:
                url = f"{platform.url}/fn/{name}/v2/models/{name}/infer"
                started = time.perf_counter()
                response = http.post(url, json=BODY)
                run.cold.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                started = time.perf_counter()
                assert http.post(url, json=BODY).status_code == 200
                run.warm.append((time.perf_counter() - started) * 1000)
                with platform.client() as client:
                    info = client.status(name)
                replicas = info["revisions"][0]["replicas"]
                if replicas and replicas[0].get("timings_ms"):
                    run.breakdown.append(replicas[0]["timings_ms"])
                run.templates = info.get("warm_templates") or {}
    finally:
        platform.stop()
        shutil.rmtree(work, ignore_errors=True)
    return run


def report(run: Run) -> None:
    cold, templates = run.cold, run.templates
    print(f"{run.label}:")
    print(f"  p50 {percentile(cold, 50):.1f} ms   p99 {percentile(cold, 99):.1f} ms   "
          f"min {min(cold):.1f} ms   max {max(cold):.1f} ms   (targets: p50 <= 15 ms, p99 <= 40 ms)")
    print(f"  starts forked from a warm template: {templates.get('hits', 0)} of {len(cold)} "
          f"(misses {templates.get('misses', 0)}; {templates.get('count', 0)} templates holding "
          f"{templates.get('bytes', 0) / (1 << 20):.1f} MiB)")
    print(f"  the next (warm) request: p50 {statistics.median(run.warm):.2f} ms")
    if run.breakdown:
        keys = list(run.breakdown[0])
        print("  replica start breakdown, median ms: " + ", ".join(
            f"{k} {statistics.median(b.get(k, 0.0) for b in run.breakdown):.1f}" for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None,
                        help="resources.threads of the copies (default: examples/iris's own, 1)")
    parser.add_argument("--only-templates-memory", default=None, metavar="SIZE",
                        help="run once with this --warm-templates-memory (0: off) instead of on and off side by side")
    args = parser.parse_args()
    settings = [args.only_templates_memory] if args.only_templates_memory is not None else [None, "0"]
    runs = [measure(Path(tempfile.mkdtemp(prefix="zs-bench-")), args.functions, args.threads, memory)
            for memory in settings]
    print(f"machine: {describe_machine()}")
    threads = "examples/iris's (1)" if args.threads is None else args.threads
    print(f"cold start through the activator, {args.functions} functions at zero (examples/iris copies, "
          f"resources.threads {threads}):")
    for run in runs:
        report(run)
    if len(runs) == 2:
        on, off = (statistics.median(run.cold) for run in runs)
        print(f"with templates / without, p50: {on / off:.2f}")


if __name__ == "__main__":
    main()
