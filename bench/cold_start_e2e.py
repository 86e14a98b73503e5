"""Cold start end to end: first response from a function at zero, through the activator.

Starts a real `zeroserve up`, deploys N copies of examples/iris (distinct names, `initial_scale: 0`, so each
sits at zero), then sends each its first request over HTTP and times it: routing, the activator's hold,
the fork (from the revision's warm template, or the zygote), the model load when there is no template, the
replica's first answer. Prints p50/p99, the replica's own breakdown and how many starts a warm template served.

A warm template needs a load that starts no thread: ONNX Runtime's intra-op pool starts one per core beyond the
first unless `resources.threads` is 1, so on a multi-core machine examples/iris as shipped (threads unset) gets
no template. `--threads 1` deploys the copies with `resources.threads: 1`; `--warm-templates-memory 0` turns
templates off, for the comparison (docs/supervisor.md).

    .venv/bin/python bench/cold_start_e2e.py [--functions 20] [--threads 1] [--warm-templates-memory 0]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="resources.threads of the copies (default: unset)")
    parser.add_argument("--warm-templates-memory", default=None, help="zeroserve up's flag (default: its default)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zs-bench-"))
    env = {} if args.warm_templates_memory is None else {"ZEROSERVE_WARM_TEMPLATES_MEMORY": args.warm_templates_memory}
    platform = PlatformProcess(work / "data", env=env).start()
    try:
        names = [f"cold{i:02d}" for i in range(args.functions)]
        with platform.client() as client:
            for name in names:
                dest = work / name
                shutil.copytree(REPO / "examples" / "iris", dest, ignore=shutil.ignore_patterns("make_model.py"))
                manifest = yaml.safe_load((dest / "function.yaml").read_text())
                manifest.update(name=name, scaling={**manifest.get("scaling", {}), "initial_scale": 0})
                if args.threads is not None:
                    manifest["resources"] = {**manifest.get("resources", {}), "threads": args.threads}
                (dest / "function.yaml").write_text(yaml.safe_dump(manifest))
                result = client.deploy(dest)
                assert result["status"] == "created", result
        # Let the zygote finish its imports and the deploy-time materialization settle.
        time.sleep(2.0)
        cold, warm, breakdown = [], [], []
        with httpx.Client(timeout=30) as http:
            for name in names:
                url = f"{platform.url}/fn/{name}/v2/models/{name}/infer"
                started = time.perf_counter()
                response = http.post(url, json=BODY)
                cold.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                started = time.perf_counter()
                assert http.post(url, json=BODY).status_code == 200
                warm.append((time.perf_counter() - started) * 1000)
                with platform.client() as client:
                    info = client.status(name)
                replicas = info["revisions"][0]["replicas"]
                if replicas and replicas[0].get("timings_ms"):
                    breakdown.append(replicas[0]["timings_ms"])
                templates = info.get("warm_templates") or {}
    finally:
        platform.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {describe_machine()}")
    threads = "unset" if args.threads is None else args.threads
    print(f"cold start through the activator, {len(cold)} functions at zero (examples/iris copies, "
          f"resources.threads {threads}, --warm-templates-memory {args.warm_templates_memory or 'default'}):")
    print(f"  p50 {percentile(cold, 50):.1f} ms   p99 {percentile(cold, 99):.1f} ms   "
          f"min {min(cold):.1f} ms   max {max(cold):.1f} ms   (targets: p50 <= 15 ms, p99 <= 40 ms)")
    print(f"  starts forked from a warm template: {templates.get('hits', 0)} of {len(cold)} "
          f"(misses {templates.get('misses', 0)}; {templates.get('count', 0)} templates holding "
          f"{templates.get('bytes', 0) / (1 << 20):.1f} MiB)")
    print(f"  the next (warm) request: p50 {statistics.median(warm):.2f} ms")
    if breakdown:
        keys = list(breakdown[0])
        print("  replica start breakdown, median ms: " + ", ".join(
            f"{k} {statistics.median(b.get(k, 0.0) for b in breakdown):.1f}" for k in keys))


if __name__ == "__main__":
    main()
