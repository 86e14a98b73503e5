"""Artifact URIs (`STORE@sha256:<hex>`): formatted and parsed in one place, refused with the rule broken."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revisions.artifact_uri import ArtifactURI, ArtifactURIError, format_artifact_uri, parse_artifact_uri

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(("store", "normalised"), [
    ("s3://models", "s3://models"),
    ("s3://models/", "s3://models"),
    ("s3://models/zeroserve/prod/", "s3://models/zeroserve/prod"),
    ("s3://my.bucket-1/a", "s3://my.bucket-1/a"),
    ("file:///srv/artifacts/", "file:///srv/artifacts"),
    ("file:///srv/some@where", None),  # '@' is the separator: refused in a store
])
def test_format_and_parse_round_trip(store: str, normalised: str | None) -> None:
    if normalised is None:
        with pytest.raises(ArtifactURIError, match="must not contain '@'"):
            format_artifact_uri(store, DIGEST)
        return
    text = format_artifact_uri(store, DIGEST)
    assert text == f"{normalised}@{DIGEST}"
    uri = parse_artifact_uri(text)
    assert uri == ArtifactURI(normalised, DIGEST) and str(uri) == text


def test_parts_of_a_uri() -> None:
    uri = parse_artifact_uri(f"s3://models/zs/prod@{DIGEST}")
    assert (uri.scheme, uri.s3_bucket_and_prefix) == ("s3", ("models", "zs/prod"))
    assert parse_artifact_uri(f"file:///srv/a@{DIGEST}").local_path == "/srv/a"
    with pytest.raises(ArtifactURIError, match="not a file:// artifact URI"):
        _ = uri.local_path


@pytest.mark.parametrize(("text", "message"), [
    ("", "the artifact URI is empty"),
    ("s3://models/zs", "names no digest"),
    ("s3://models/zs@sha256:abc", "is not a revision digest"),
    (f"s3://models/zs@SHA256:{'0' * 64}", "is not a revision digest"),
    (f"gs://models/zs@{DIGEST}", "use s3://bucket/prefix or file:///path"),
    (f"/srv/artifacts@{DIGEST}", "use s3://bucket/prefix or file:///path"),
    (f"s3://ab@{DIGEST}", "is not an S3 bucket name"),
    (f"s3://Models@{DIGEST}", "is not an S3 bucket name"),
    (f"s3://models/a//b@{DIGEST}", "empty, '.' or '..' part"),
    (f"s3://models/../b@{DIGEST}", "empty, '.' or '..' part"),
    (f"file://srv/a@{DIGEST}", "needs an absolute path"),
    (f"file:///srv/../etc@{DIGEST}", "must not contain '..'"),
    (f"s3://models/a\nb@{DIGEST}", "control characters"),
])
def test_malformed_uris_are_refused_naming_the_rule(text: str, message: str) -> None:
    with pytest.raises(ArtifactURIError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_artifact_uri(text)


def test_format_refuses_a_bad_digest() -> None:
    with pytest.raises(ArtifactURIError, match="is not a revision digest"):
        format_artifact_uri("s3://models", "iris-00001")


@given(bucket=st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True),
       prefix=st.lists(st.from_regex(r"[A-Za-z0-9_.@-]{1,8}", fullmatch=True).filter(
           lambda p: p not in (".", "..") and "@" not in p), max_size=3),
       hex_digest=st.from_regex(r"[0-9a-f]{64}", fullmatch=True))
def test_any_valid_s3_uri_round_trips(bucket: str, prefix: list[str], hex_digest: str) -> None:
    store = "/".join([f"s3://{bucket}", *prefix])
    uri = parse_artifact_uri(format_artifact_uri(store, f"sha256:{hex_digest}"))
    assert uri.s3_bucket_and_prefix == (bucket, "/".join(prefix)) and uri.digest == f"sha256:{hex_digest}"
