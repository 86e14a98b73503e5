"""A deploy's smoke step: a fresh interpreter versus a child forked from the zygote, side by side.

Each round runs `revisions.builder.run_smoke` on examples/iris (load the model, run its sample once, in a
confined child) both ways, interleaved: `spawn` starts `python -m functions.isolation.confined_smoke` (what
every deploy paid before), `fork` forks the child from a running supervisor's zygote
(deploy.local.smoke_fork, what `zeroserve up` does now). Prints the medians and their ratio.

    .venv/bin/python bench/smoke_start.py [--rounds 10] [--example iris]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import describe_machine  # noqa: E402
from deploy.local import Supervisor  # noqa: E402
from deploy.local.smoke_fork import ForkedSmoke  # noqa: E402
from protocol.manifest import load_manifest  # noqa: E402
from revisions.builder import run_smoke  # noqa: E402
from revisions.smoke_sandbox import SmokeSandbox  # noqa: E402


async def measure(rounds: int, function_dir: Path) -> dict[str, list[float]]:
    manifest = load_manifest(function_dir)
    with tempfile.TemporaryDirectory(prefix="zs-smoke-") as work:
        run_dir = Path(work) / "run"
        supervisor = Supervisor(run_dir, on_replicas_changed=lambda *_: None, on_start_failed=lambda *_: None)
        await supervisor.start()
        try:
            forked = ForkedSmoke(run_dir)
            forked.attach(supervisor)
            sandboxes = {"spawn": SmokeSandbox(), "fork": SmokeSandbox(fork=forked)}
            await asyncio.to_thread(run_smoke, function_dir, manifest, timeout=60, sandbox=sandboxes["fork"])
            times: dict[str, list[float]] = {"spawn": [], "fork": []}
            for _ in range(rounds):
                for way, sandbox in sandboxes.items():
                    started = time.perf_counter()
                    report = await asyncio.to_thread(run_smoke, function_dir, manifest, timeout=60, sandbox=sandbox)
                    times[way].append((time.perf_counter() - started) * 1000)
                    assert report["ok"], report
            assert forked.forked == rounds + 1, "the fork rounds fell back to a fresh interpreter"
        finally:
            await supervisor.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--example", default="iris")
    args = parser.parse_args()
    times = asyncio.run(measure(args.rounds, REPO / "examples" / args.example))
    spawn, fork = statistics.median(times["spawn"]), statistics.median(times["fork"])
    print(f"machine: {describe_machine()}")
    print(f"smoke step of examples/{args.example}, {args.rounds} rounds each, interleaved (median ms):")
    print(f"  fresh interpreter (before): {spawn:.1f}   forked from the zygote (now): {fork:.1f}   "
          f"ratio {spawn / fork:.1f}x")


if __name__ == "__main__":
    main()
