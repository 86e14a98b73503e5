"""The artifact store on S3 (or anything that speaks its API: MinIO, moto, R2).

Layout under `s3://bucket/prefix/`:

    objects/sha256/<hex>/<path>   the artifact's files
    index/sha256/<hex>.json       the commit: written after every file, deleted before any file

Listing revisions is one listing of `index/`; an upload that dies half-way leaves objects without an
index, which `exists` and `materialize` never see and the next `put` of that digest overwrites.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from revisions.digest import DIGEST_ALGORITHM, sha256_file
from revisions.store import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
    ReadableBytes,
    check_files,
    decode_index,
    encode_index,
    parse_digest,
)

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client  # the stubs (a dev dependency) type the client; boto3 builds it at run time

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


def _is_not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES


class S3ArtifactStore(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "", *, client: S3Client | None = None,
                 endpoint_url: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            # Region only matters to AWS itself; S3-compatible endpoints need one to sign with.
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self._s3 = client

    def __repr__(self) -> str:
        return f"S3ArtifactStore(s3://{self.bucket}/{self.prefix})"

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _index_key(self, hex_digest: str) -> str:
        return self._key("index", DIGEST_ALGORITHM, f"{hex_digest}.json")

    def _object_key(self, hex_digest: str, path: str) -> str:
        return self._key("objects", DIGEST_ALGORITHM, hex_digest, path)

    def put(self, digest: str, source_dir: Path, files: Mapping[str, str], *,
            generated: Mapping[str, bytes] | None = None) -> None:
        check_files(digest, files)
        hex_digest = parse_digest(digest)
        if self.exists(digest):
            return
        generated = generated or {}
        for path, sha in files.items():
            key = self._object_key(hex_digest, path)
            if path in generated:
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=generated[path])
                continue
            source = Path(source_dir) / path
            try:
                actual = sha256_file(source)
            except FileNotFoundError:
                raise ArtifactError(f"artifact {digest}: {path}: not found in {source_dir}") from None
            if actual != sha:
                raise ArtifactError(f"artifact {digest}: {path}: changed after it was digested; build again")
            # A change between this hash and the upload is caught by materialize, which re-hashes.
            self._s3.upload_file(str(source), self.bucket, key)
        self._s3.put_object(
            Bucket=self.bucket, Key=self._index_key(hex_digest), Body=encode_index(digest, files),
            ContentType="application/json",
        )

    def files(self, digest: str) -> dict[str, str]:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self._index_key(parse_digest(digest)))
        except ClientError as exc:
            if _is_not_found(exc):
                raise ArtifactNotFoundError(digest) from None
            raise
        with response["Body"] as body:
            return decode_index(digest, body.read())

    def materialize(self, digest: str, dest_dir: Path | None = None) -> Path:
        if dest_dir is None:
            raise ValueError("S3ArtifactStore.materialize needs a dest_dir to copy the artifact into")
        return self._copy_verified(digest, self.files(digest), Path(dest_dir))

    def _open_stored(self, digest: str, path: str) -> AbstractContextManager[ReadableBytes]:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self._object_key(parse_digest(digest), path))
        except ClientError as exc:
            if _is_not_found(exc):
                raise ArtifactIntegrityError(digest, path, "file is missing from the store") from None
            raise
        return response["Body"]

    def exists(self, digest: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._index_key(parse_digest(digest)))
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def delete(self, digest: str) -> None:
        hex_digest = parse_digest(digest)
        self._s3.delete_object(Bucket=self.bucket, Key=self._index_key(hex_digest))
        keys = list(self._keys_under(self._key("objects", DIGEST_ALGORITHM, hex_digest) + "/"))
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start:start + _DELETE_BATCH]
            self._s3.delete_objects(Bucket=self.bucket,
                                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})

    def list_digests(self) -> list[str]:
        index_prefix = self._key("index", DIGEST_ALGORITHM) + "/"
        found = []
        for key in self._keys_under(index_prefix):
            name = key[len(index_prefix):]
            if name.endswith(".json") and "/" not in name:
                digest = f"{DIGEST_ALGORITHM}:{name[:-len('.json')]}"
                try:
                    parse_digest(digest)
                except ValueError:
                    continue
                found.append(digest)
        return sorted(found)

    def _keys_under(self, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]


__all__ = ["S3ArtifactStore"]
