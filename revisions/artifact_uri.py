"""Artifact URIs: one string naming a revision's artifact and the store that holds it.

    <store>@sha256:<64 hex>

    s3://models/zeroserve@sha256:5f0c...      an S3 (or S3-compatible) store at s3://bucket/prefix
    file:///srv/zeroserve/artifacts@sha256:5f0c...   a local store directory (tests, one machine)

Like an image reference pinned by digest (`image@sha256:...`): the store part is what
`ZEROSERVE_ARTIFACTS` names (revisions.store.open_store), the digest is the revision's content digest
(revisions.digest), which is also the artifact's key in a content-addressed store. Nothing else (the
function or revision name) is needed to find or verify the files, so a URI cannot point at one
revision's name and another's bytes. The last '@' separates the two: bucket names cannot contain
one and the digest never does.

Formatted and parsed only here; `zeroserve serve --artifact URI` reads it and the Knative target
writes it into the pod's ZEROSERVE_ARTIFACT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from revisions.digest import DIGEST_ALGORITHM

SCHEMES = ("s3://", "file://")
_DIGEST = re.compile(rf"^{DIGEST_ALGORITHM}:[0-9a-f]{{64}}$")
# S3's bucket naming rules (virtual-hosted style): 3-63 of lower-case letters, digits, '.', '-'.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
FORMAT_HINT = f"STORE@{DIGEST_ALGORITHM}:<64 hex digits>, e.g. s3://bucket/prefix@{DIGEST_ALGORITHM}:5f0c..."


class ArtifactURIError(ValueError):
    """A string that is not an artifact URI; the message quotes it and names the rule."""


@dataclass(frozen=True)
class ArtifactURI:
    store: str  # "s3://bucket[/prefix]" or "file:///absolute/path", normalised (no trailing '/')
    digest: str  # "sha256:<64 hex>"

    @property
    def scheme(self) -> str:
        return self.store.split("://", 1)[0]

    @property
    def s3_bucket_and_prefix(self) -> tuple[str, str]:
        """('bucket', 'prefix') of an s3:// store (prefix may be '')."""
        if self.scheme != "s3":
            raise ArtifactURIError(f"'{self}' is not an s3:// artifact URI")
        bucket, _, prefix = self.store[len("s3://"):].partition("/")
        return bucket, prefix

    @property
    def local_path(self) -> str:
        """The directory of a file:// store."""
        if self.scheme != "file":
            raise ArtifactURIError(f"'{self}' is not a file:// artifact URI")
        return self.store[len("file://"):]

    def __str__(self) -> str:
        return f"{self.store}@{self.digest}"


def _quote(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:119] + "…")


def normalise_store(store: str) -> str:
    """The store part, checked: s3://bucket[/prefix] with a valid bucket, or file:///absolute/path."""
    if not isinstance(store, str) or not store.startswith(SCHEMES):
        raise ArtifactURIError(f"artifact store {_quote(str(store))}: use s3://bucket/prefix or file:///path")
    if "@" in store or any(ord(c) < 0x20 for c in store):
        raise ArtifactURIError(f"artifact store {_quote(store)}: must not contain '@' or control characters")
    if store.startswith("s3://"):
        bucket, _, prefix = store[len("s3://"):].partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ArtifactURIError(f"artifact store {_quote(store)}: '{bucket}' is not an S3 bucket name "
                                   "(3-63 lower-case letters, digits, '.' and '-')")
        prefix = prefix.strip("/")
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ArtifactURIError(f"artifact store {_quote(store)}: the prefix has an empty, '.' or '..' part")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    path = store[len("file://"):]
    if not path.startswith("/"):
        raise ArtifactURIError(f"artifact store {_quote(store)}: a file:// store needs an absolute path "
                               "(file:///srv/artifacts)")
    if ".." in path.split("/"):
        raise ArtifactURIError(f"artifact store {_quote(store)}: the path must not contain '..'")
    return "file://" + (path.rstrip("/") or "/")


def format_artifact_uri(store: str, digest: str) -> str:
    """('s3://bucket/prefix', 'sha256:<hex>') -> 's3://bucket/prefix@sha256:<hex>'."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ArtifactURIError(f"{_quote(str(digest))} is not a revision digest ('{DIGEST_ALGORITHM}:<64 hex>')")
    return str(ArtifactURI(normalise_store(store), digest))


def remote_artifact_uri(store: str | None, digest: str, *, target: str, reached_by: str, hint: str) -> str:
    """The artifact URI for a target outside this machine (Knative, Lambda), which can fetch only from S3.

    The message names the target, who must reach the store and where to read more (`hint`).
    """
    if not store or not store.startswith("s3://"):
        where = "the local artifact store" if not store else f"the artifact store '{store}'"
        raise ArtifactURIError(
            f"the {target} target needs an artifact store {reached_by} can reach, not {where}: start the platform "
            f"with ZEROSERVE_ARTIFACTS=s3://bucket/prefix ({hint})")
    return format_artifact_uri(store, digest)


def check_remote_artifact_uri(artifact_uri: str, *, target: str, reached_by: str) -> ArtifactURI:
    """An artifact URI handed to a target outside this machine, parsed; ArtifactURIError unless it names S3."""
    uri = parse_artifact_uri(artifact_uri)
    if uri.scheme != "s3":
        raise ArtifactURIError(f"the artifact {artifact_uri} is in a store {reached_by} cannot reach; the {target} "
                               "target needs ZEROSERVE_ARTIFACTS=s3://bucket/prefix")
    return uri


def parse_artifact_uri(text: str) -> ArtifactURI:
    """'STORE@sha256:<hex>' -> ArtifactURI; anything else raises ArtifactURIError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ArtifactURIError(f"the artifact URI is empty; expected {FORMAT_HINT}")
    store, at, digest = text.strip().rpartition("@")
    if not at:
        raise ArtifactURIError(f"artifact URI {_quote(text)} names no digest; expected {FORMAT_HINT}")
    if not _DIGEST.match(digest):
        raise ArtifactURIError(f"artifact URI {_quote(text)}: {_quote(digest)} is not a revision digest "
                               f"('{DIGEST_ALGORITHM}:<64 hex digits>')")
    return ArtifactURI(normalise_store(store), digest)


__all__ = ["ArtifactURI", "ArtifactURIError", "format_artifact_uri", "normalise_store", "parse_artifact_uri"]
