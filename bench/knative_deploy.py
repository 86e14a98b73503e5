"""What the Knative target adds to a deploy, and how long `zeroserve export knative FN` takes.

Starts moto's S3 server and the Kubernetes API test server (tests/deploy/knative/apiserver.py: the real REST paths,
schema checks and a reconciler that answers at once) on 127.0.0.1, and one real `zeroserve up` with
ZEROSERVE_ARTIFACTS=s3://... and KUBECONFIG pointing at the test server. Then, interleaved, deploys a new
revision of examples/iris with `targets: [local]` and of a copy with `targets: [local, knative]` (same model,
new bytes each round) through the control API, and times each deploy from upload to answer. The difference
of the medians is what the Knative target adds: translate, check the cluster, apply, wait for Ready, patch
traffic, wait again. Finally times the export: the CLI as a user runs it (process start to exit) and the
API call alone.

    .venv/bin/python bench/knative_deploy.py [--rounds 9] [--exports 15]

No cluster is involved: the test server's controller is instant, so the figure is the platform's own cost
(Knative's own, scheduling a pod and pulling an image, comes on top on a real cluster).
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.deploy_timing import function_copy, median_ms, timed_deploy  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from tests.deploy.knative.apiserver import running_apiserver  # noqa: E402
from tests.zeroserve.control.harness import PlatformProcess, _env, change_model  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1"}
STEP = re.compile(r"\] knative ok \((\d+) ms\)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="deploys of each kind")
    parser.add_argument("--exports", type=int, default=15, help="exports timed")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="zs-bench-knative-"))
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
                     aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=bucket)
        with running_apiserver() as api:
            kubeconfig = api.write_kubeconfig(work / "kubeconfig")
            env = {"KUBECONFIG": str(kubeconfig), "ZEROSERVE_ARTIFACTS": f"s3://{bucket}/functions",
                   "ZEROSERVE_S3_ENDPOINT_URL": endpoint, "ZEROSERVE_RUNTIME_IMAGE": "registry.example/runtime:bench",
                   **CREDENTIALS}
            platform = PlatformProcess(work / "data", env).start()
            try:
                run(platform, work, args.rounds, args.exports)
            finally:
                platform.stop()
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def run(platform: PlatformProcess, work: Path, rounds: int, exports: int) -> None:
    local = function_copy(work, "bench-local", ["local"])
    knative = function_copy(work, "bench-knative", ["local", "knative"])
    # A first deploy of each (the platform's first knative deploy imports the kubernetes client) is not timed.
    timed_deploy(platform, local)
    timed_deploy(platform, knative)
    local_times: list[float] = []
    knative_times: list[float] = []
    steps: list[float] = []
    for round_number in range(rounds):
        for directory, times in ((local, local_times), (knative, knative_times)):
            change_model(directory, f"round {round_number}")
            elapsed, log = timed_deploy(platform, directory)
            times.append(elapsed)
            steps += [int(m.group(1)) / 1000 for line in log if (m := STEP.search(line))]

    cli_times: list[float] = []
    api_times: list[float] = []
    env = _env(ZEROSERVE_URL=platform.url, ZEROSERVE_DATA=str(platform.data_dir))
    for _ in range(exports):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zeroserve.cli", "export", "knative", "bench-knative"], cwd=REPO,
                       env=env, check=True, capture_output=True, timeout=60)
        cli_times.append(time.perf_counter() - started)
        with platform.client() as client:
            started = time.perf_counter()
            client.export("bench-knative", "knative")
            api_times.append(time.perf_counter() - started)

    added = statistics.median(knative_times) - statistics.median(local_times)
    print(f"machine: {describe_machine()}")
    print(f"deploy, targets [local]:          median {median_ms(local_times)} ({rounds} deploys)")
    print(f"deploy, targets [local, knative]: median {median_ms(knative_times)} ({rounds} deploys)")
    print(f"  added by the Knative target:    {added * 1000:.0f} ms (target <= 1000 ms); its build-log step "
          f"(check, apply, wait for Ready) median {median_ms(steps)}")
    print(f"export knative, CLI process:      median {median_ms(cli_times)} (target < 500 ms; {exports} runs)")
    print(f"export knative, API call alone:   median {median_ms(api_times)}")


if __name__ == "__main__":
    main()
