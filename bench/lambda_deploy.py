"""What the Lambda target adds to a deploy, and to a traffic change.

Starts moto's server (IAM, S3, Lambda) on 127.0.0.1 with the proxy the tests put in front of it
(tests/deploy/aws_lambda/lambda_proxy.py: function URLs, policies and provisioned concurrency per alias), and one real
`zeroserve up` with ZEROSERVE_ARTIFACTS=s3://... and AWS_ENDPOINT_URL pointing at the proxy. Then, interleaved,
deploys a new revision of examples/iris with `targets: [local]` and of a copy with `targets: [local, lambda]`
(same model, new bytes each round) through the control API, timing each from upload to answer. The difference
of the medians is what the Lambda target adds: map and check, update $LATEST, publish a version, then set
aliases, URLs, permissions and concurrency, and read it all back for the log. Then times traffic changes
(90/10 and back) of each function through the API.

    .venv/bin/python bench/lambda_deploy.py [--rounds 9] [--changes 15]

No AWS is involved: moto answers at once, so the figure is the platform's own cost in calls (on AWS each call
is a round trip to the region, and Lambda's update of $LATEST takes seconds, which the target waits for).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.deploy_timing import function_copy, median_ms, timed_deploy  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from tests.deploy.aws_lambda.lambda_proxy import LambdaProxy  # noqa: E402
from tests.zeroserve.control.harness import PlatformProcess, change_model  # noqa: E402

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": REGION}
IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/zeroserve:bench"
ASSUME_ROLE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
STEP = re.compile(r"\] lambda ok \((\d+) ms\)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="deploys of each kind")
    parser.add_argument("--changes", type=int, default=15, help="traffic changes of each kind")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="zs-bench-lambda-"))
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    proxy = None
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        aws: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION,
                               "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                               "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", **aws).create_bucket(Bucket=bucket)
        role = boto3.client("iam", **aws).create_role(RoleName=f"bench-{uuid.uuid4().hex[:8]}",
                                                      AssumeRolePolicyDocument=json.dumps(ASSUME_ROLE))["Role"]["Arn"]
        proxy = LambdaProxy(endpoint).start()
        env = {"ZEROSERVE_ARTIFACTS": f"s3://{bucket}/functions", "ZEROSERVE_S3_ENDPOINT_URL": endpoint,
               "AWS_ENDPOINT_URL": proxy.url, "ZEROSERVE_AWS_REGION": REGION, "ZEROSERVE_LAMBDA_ROLE": role,
               "ZEROSERVE_LAMBDA_IMAGE": IMAGE, **CREDENTIALS}
        platform = PlatformProcess(work / "data", env).start()
        try:
            run(platform, work, args.rounds, args.changes)
        finally:
            platform.stop()
    finally:
        if proxy is not None:
            proxy.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def run(platform: PlatformProcess, work: Path, rounds: int, changes: int) -> None:
    local = function_copy(work, "bench-local", ["local"])
    on_lambda = function_copy(work, "bench-lambda", ["local", "lambda"])
    # A first deploy of each (the platform's first Lambda deploy imports boto3 and makes its client) is not timed.
    timed_deploy(platform, local)
    timed_deploy(platform, on_lambda)
    local_times: list[float] = []
    lambda_times: list[float] = []
    steps: list[float] = []
    for round_number in range(rounds):
        for directory, times in ((local, local_times), (on_lambda, lambda_times)):
            change_model(directory, f"round {round_number}")
            elapsed, log = timed_deploy(platform, directory)
            times.append(elapsed)
            steps += [int(m.group(1)) / 1000 for line in log if (m := STEP.search(line))]

    traffic: dict[str, list[float]] = {"bench-local": [], "bench-lambda": []}
    with platform.client() as client:
        for _ in range(changes):
            for function, times in traffic.items():
                newest = f"{function}-{rounds + 1:05d}"
                previous = f"{function}-{rounds:05d}"
                for split in ({previous: 90, newest: 10}, {newest: 100}):
                    started = time.perf_counter()
                    client.edit_traffic(function, percents=split, tags={}, untag=[])
                    times.append(time.perf_counter() - started)

    added = statistics.median(lambda_times) - statistics.median(local_times)
    traffic_added = statistics.median(traffic["bench-lambda"]) - statistics.median(traffic["bench-local"])
    print(f"machine: {describe_machine()}")
    print(f"deploy, targets [local]:         median {median_ms(local_times)} ({rounds} deploys)")
    print(f"deploy, targets [local, lambda]: median {median_ms(lambda_times)} ({rounds} deploys)")
    print(f"  added by the Lambda target:    {added * 1000:.0f} ms; its build-log step (update $LATEST, publish) "
          f"median {median_ms(steps)}")
    print(f"traffic change, [local]:         median {median_ms(traffic['bench-local'])} ({2 * changes} changes)")
    print(f"traffic change, [local, lambda]: median {median_ms(traffic['bench-lambda'])}; added "
          f"{traffic_added * 1000:.0f} ms (aliases, URLs, permissions, concurrency, read-compare-write)")


if __name__ == "__main__":
    main()
