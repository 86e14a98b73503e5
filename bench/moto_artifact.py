"""A function's artifact in moto's S3 server on 127.0.0.1: the store a benchmarked runtime fetches from.

For the benchmarks that time a runtime's start against S3 (bench/runtime_start.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from revisions.artifact_uri import format_artifact_uri
from revisions.digest import FunctionDigest, digest_function

# What the runtime's boto3 reads from its environment; moto accepts any.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}
PREFIX = "zeroserve"


@dataclass(frozen=True)
class S3Artifact:
    endpoint: str  # moto's S3 server, for ZEROSERVE_S3_ENDPOINT_URL
    digest: FunctionDigest
    uri: str  # s3://bucket/zeroserve@sha256:...


@contextmanager
def artifact_in_moto(function_dir: Path) -> Iterator[S3Artifact]:
    """Start moto's S3 server, store `function_dir` in a fresh bucket as the builder does; stop it afterwards."""
    import logging
    import uuid

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise

    from revisions.store_s3 import S3ArtifactStore

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        digest = digest_function(function_dir)
        client = boto3.client("s3", endpoint_url=endpoint, region_name=CREDENTIALS["AWS_REGION"],
                              aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        client.create_bucket(Bucket=bucket)
        S3ArtifactStore(bucket, PREFIX, client=client).put(digest.digest, function_dir, digest.files,
                                                           generated=digest.generated)
        yield S3Artifact(endpoint, digest, format_artifact_uri(f"s3://{bucket}/{PREFIX}", digest.digest))
    finally:
        server.stop()
