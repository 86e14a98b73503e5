"""Fetch one revision's artifact out of its store, every file verified, for a runtime outside the platform.

A Knative pod (or anyone running `zeroserve serve --artifact URI`) has only the artifact URI
(revisions.artifact_uri). The store's own `materialize` does the work: it reads the index, checks
that the recorded files add up to the digest, copies every file through its sha256 and only then
moves the directory into place, so nothing is loaded from a tampered, truncated or partial artifact
(`ArtifactIntegrityError` names the file). What this module adds is reaching the store from outside:
an S3 client with bounded timeouts and retries, and errors that say which store could not be read and
why (unreachable endpoint, no credentials, access denied, no such bucket, no such artifact).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from revisions.artifact_uri import ArtifactURI
from revisions.store import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactStore,
    LocalArtifactStore,
    s3_endpoint_from_env,
)

# A pod that cannot reach its store should fail in seconds (and be restarted), not hang.
S3_CONNECT_TIMEOUT = 5.0
S3_READ_TIMEOUT = 60.0
S3_MAX_ATTEMPTS = 3


class ArtifactFetchError(ArtifactError):
    """The store could not be read (or does not hold the artifact); the message names the store and why."""


def fetch_artifact(uri: ArtifactURI, dest_dir: Path, *, endpoint_url: str | None = None) -> Path:
    """Copy the artifact `uri` names into `dest_dir` (new or empty) and return it, every file verified.

    `endpoint_url` is the S3 endpoint of an S3-compatible store (MinIO, R2, moto); without it,
    ZEROSERVE_S3_ENDPOINT_URL or AWS_ENDPOINT_URL, else AWS itself. Credentials come from boto3's chain.
    Raises ArtifactIntegrityError (a file does not match its sha256: the message names it) or
    ArtifactFetchError (store unreachable, access refused, artifact absent).
    """
    if uri.scheme == "s3":
        return _fetch_from_s3(uri, Path(dest_dir), endpoint_url or s3_endpoint_from_env())
    return _fetch_from_directory(uri, Path(dest_dir))


def _fetch_from_directory(uri: ArtifactURI, dest_dir: Path) -> Path:
    root = Path(uri.local_path)
    if not root.is_dir():  # LocalArtifactStore would create it: a read must never make a store appear
        raise ArtifactFetchError(f"artifact store {uri.store}: no such directory")
    try:
        return _materialize(LocalArtifactStore(root), uri, dest_dir)
    except PermissionError as exc:
        raise ArtifactFetchError(f"artifact store {uri.store}: permission denied ({exc.filename})") from None


def _fetch_from_s3(uri: ArtifactURI, dest_dir: Path, endpoint_url: str | None) -> Path:
    # boto3 costs ~0.2 s to import: only a runtime fetching from S3 pays it.
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from revisions.store_s3 import S3ArtifactStore

    bucket, prefix = uri.s3_bucket_and_prefix
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(connect_timeout=S3_CONNECT_TIMEOUT, read_timeout=S3_READ_TIMEOUT,
                    retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"})
    where = f"{uri.store}" + (f" (endpoint {endpoint_url})" if endpoint_url else "")
    try:
        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        return _materialize(S3ArtifactStore(bucket, prefix, client=client), uri, dest_dir)
    except ClientError as exc:
        raise ArtifactFetchError(f"artifact store {where}: {_describe_client_error(exc)}") from None
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, timeouts
        raise ArtifactFetchError(f"artifact store {where}: {exc}") from None


def _materialize(store: ArtifactStore, uri: ArtifactURI, dest_dir: Path) -> Path:
    try:
        return store.materialize(uri.digest, dest_dir)
    except ArtifactNotFoundError:
        raise ArtifactFetchError(f"artifact {uri.digest} is not in the store {uri.store}") from None


def _describe_client_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return "the bucket does not exist"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access denied ({code}): check the credentials the runtime is given"
    return f"{code or status}: {message or exc}"


__all__ = ["ArtifactFetchError", "fetch_artifact"]
