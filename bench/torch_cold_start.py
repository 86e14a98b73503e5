"""A torch function's cold starts after `zeroserve up`: the first one, and the ones after it.

Deploys N copies of examples/torch-linear (`initial_scale: 0`), stops the platform, and starts a fresh
`zeroserve up` on the same data: the torch zygote now starts at `up` (its revisions are routed), so
importing torch (seconds) is not paid by a request. The bench waits for the zygote's "ready" log line
(and says how long after `up` was ready it came), then sends each copy its first request through the
activator, in turn, and times it. Targets: the first <= 300 ms, later ones <= 100 ms.

    .venv/bin/python bench/torch_cold_start.py [--functions 5] [--warm-templates-memory 0]
"""

from __future__ import annotations

import argparse
import json
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

ZYGOTE_TIMEOUT = 120.0


def wait_for_line(platform: PlatformProcess, text: str, timeout: float) -> float:
    """Seconds until a line containing `text` appeared in the platform's output."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(text in line for line in list(platform.output)):
            return time.monotonic() - started
        time.sleep(0.01)
    raise SystemExit(f"no '{text}' in the platform's output after {timeout:.0f}s:\n{''.join(platform.output)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=5)
    parser.add_argument("--warm-templates-memory", default=None, help="zeroserve up's flag (default: its default)")
    args = parser.parse_args()
    body = json.loads((REPO / "examples" / "torch-linear" / "sample.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="zs-bench-torch-"))
    env = {} if args.warm_templates_memory is None else {"ZEROSERVE_WARM_TEMPLATES_MEMORY": args.warm_templates_memory}
    names = [f"torch{i:02d}" for i in range(args.functions)]
    platform = PlatformProcess(work / "data", env=env).start()
    try:
        with platform.client() as client:
            for name in names:
                dest = work / name
                shutil.copytree(REPO / "examples" / "torch-linear", dest)
                manifest = yaml.safe_load((dest / "function.yaml").read_text())
                manifest.update(name=name, scaling={**manifest.get("scaling", {}), "initial_scale": 0})
                (dest / "function.yaml").write_text(yaml.safe_dump(manifest))
                assert client.deploy(dest)["status"] == "created"
    finally:
        platform.stop()
    platform = PlatformProcess(work / "data", env=env).start()  # a fresh `zeroserve up` on the same data
    try:
        zygote_s = wait_for_line(platform, "zygote 'torch' ready", ZYGOTE_TIMEOUT)
        cold, warm = [], []
        with httpx.Client(timeout=60) as http:
            for name in names:
                url = f"{platform.url}/fn/{name}/v2/models/{name}/infer"
                started = time.perf_counter()
                response = http.post(url, json=body)
                cold.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                started = time.perf_counter()
                assert http.post(url, json=body).status_code == 200
                warm.append((time.perf_counter() - started) * 1000)
            with platform.client() as client:
                templates = client.status(names[0]).get("warm_templates") or {}
    finally:
        platform.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {describe_machine()}")
    print(f"torch cold starts after `zeroserve up`, {len(cold)} examples/torch-linear copies at zero "
          f"(--warm-templates-memory {args.warm_templates_memory or 'default'}):")
    print(f"  the torch zygote was ready {zygote_s * 1000:.0f} ms after `up` said ready")
    print(f"  first request {cold[0]:.1f} ms (target <= 300 ms); later cold starts: median "
          f"{statistics.median(cold[1:]) if len(cold) > 1 else float('nan'):.1f} ms, max "
          f"{max(cold[1:]) if len(cold) > 1 else float('nan'):.1f} ms (target <= 100 ms)")
    print(f"  the next (warm) request: median {statistics.median(warm):.2f} ms; starts from a warm template: "
          f"{templates.get('hits', 0)} of {len(cold)}")


if __name__ == "__main__":
    main()
