"""The artifact store, local and S3 (moto's server over HTTP): atomic puts, verified materialize."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from protocol.manifest import load_manifest
from revisions.digest import FunctionDigest, digest_function
from revisions.store import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
    LocalArtifactStore,
    open_store,
    parse_digest,
)
from revisions.store_s3 import S3ArtifactStore


def put(store: ArtifactStore, function_dir: Path) -> FunctionDigest:
    digested = digest_function(function_dir)
    store.put(digested.digest, function_dir, digested.files, generated=digested.generated)
    return digested


def overwrite_stored(store: ArtifactStore, digest: str, path: str, data: bytes | None) -> None:
    """Tamper with a stored file behind the store's back (None deletes it)."""
    hex_digest = parse_digest(digest)
    if isinstance(store, LocalArtifactStore):
        target = store.root / "objects" / "sha256" / hex_digest / path
        target.chmod(0o644)
        if data is None:
            target.unlink()
        else:
            target.write_bytes(data)
        return
    assert isinstance(store, S3ArtifactStore)
    key = f"{store.prefix}/objects/sha256/{hex_digest}/{path}"
    if data is None:
        store._s3.delete_object(Bucket=store.bucket, Key=key)
    else:
        store._s3.put_object(Bucket=store.bucket, Key=key, Body=data)


def flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


def test_put_then_materialize_round_trips(artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path):
    digested = put(artifact_store, onnx_function)
    assert artifact_store.exists(digested.digest)
    assert artifact_store.list_digests() == [digested.digest]
    assert artifact_store.files(digested.digest) == digested.files

    out = artifact_store.materialize(digested.digest, tmp_path / "out")
    assert out == tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["function.yaml", "model.onnx", "sample.json"]
    assert (out / "model.onnx").read_bytes() == (onnx_function / "model.onnx").read_bytes()
    # The stored manifest is the normalised one: loadable, equal, and digesting to the same revision.
    assert load_manifest(out) == load_manifest(onnx_function)
    assert digest_function(out).digest == digested.digest


def test_put_is_idempotent(artifact_store: ArtifactStore, onnx_function: Path):
    first = put(artifact_store, onnx_function)
    second = put(artifact_store, onnx_function)
    assert first.digest == second.digest
    assert artifact_store.list_digests() == [first.digest]


def test_tampered_file_is_refused_naming_digest_and_file(
    artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path
):
    digested = put(artifact_store, onnx_function)
    original = (onnx_function / "model.onnx").read_bytes()
    overwrite_stored(artifact_store, digested.digest, "model.onnx", flip_first_byte(original))

    with pytest.raises(ArtifactIntegrityError) as info:
        artifact_store.materialize(digested.digest, tmp_path / "out")
    assert info.value.digest == digested.digest and info.value.path == "model.onnx"
    assert digested.digest in str(info.value) and "model.onnx" in str(info.value)
    assert not (tmp_path / "out").exists(), "a failed materialize must not leave a destination behind"
    assert [p.name for p in tmp_path.iterdir() if "materializing" in p.name] == []


def test_missing_stored_file_is_refused(artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path):
    digested = put(artifact_store, onnx_function)
    overwrite_stored(artifact_store, digested.digest, "sample.json", None)
    with pytest.raises(ArtifactIntegrityError, match=r"sample\.json: file is missing"):
        artifact_store.materialize(digested.digest, tmp_path / "out")


def test_unknown_and_malformed_digests(artifact_store: ArtifactStore, tmp_path: Path):
    unknown = "sha256:" + "0" * 64
    assert not artifact_store.exists(unknown)
    with pytest.raises(ArtifactNotFoundError, match=unknown):
        artifact_store.materialize(unknown, tmp_path / "out")
    for bad in ("sha256:../../etc/passwd", "0" * 64, "md5:abc", "sha256:" + "A" * 64):
        with pytest.raises(ValueError, match="not a revision digest"):
            artifact_store.exists(bad)


def test_files_that_do_not_add_up_to_the_digest_are_refused(
    artifact_store: ArtifactStore, onnx_function: Path
):
    digested = digest_function(onnx_function)
    other = "sha256:" + "1" * 64
    with pytest.raises(ValueError, match="add up to"):
        artifact_store.put(other, onnx_function, digested.files, generated=digested.generated)
    with pytest.raises(ValueError, match="not a relative file path"):
        files = {"../escape": "0" * 64}
        artifact_store.put(digested.digest, onnx_function, files)
    assert artifact_store.list_digests() == []


def test_a_failed_put_leaves_nothing_that_looks_stored(
    artifact_store: ArtifactStore, tmp_path: Path, function_factory
):
    function_dir = function_factory.onnx(tmp_path / "fn")
    digested = digest_function(function_dir)
    # The model changes between digest and store: the put stops part-way through its files.
    (function_dir / "model.onnx").write_bytes(b"changed after digest")
    with pytest.raises(ArtifactError, match=r"model\.onnx: changed after it was digested"):
        artifact_store.put(digested.digest, function_dir, digested.files, generated=digested.generated)
    assert not artifact_store.exists(digested.digest)
    assert artifact_store.list_digests() == []
    with pytest.raises(ArtifactNotFoundError):
        artifact_store.materialize(digested.digest, tmp_path / "out")

    # Rebuilding from the original content commits normally over whatever the failed put left.
    fresh = function_factory.onnx(tmp_path / "fresh")
    assert put(artifact_store, fresh).digest == digested.digest
    assert artifact_store.exists(digested.digest)


def test_tampered_index_is_refused(artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path):
    digested = put(artifact_store, onnx_function)
    forged = dict(digested.files, **{"model.onnx": hashlib.sha256(b"evil").hexdigest()})
    body = json.dumps({"format": 1, "digest": digested.digest, "files": forged}).encode()
    hex_digest = parse_digest(digested.digest)
    if isinstance(artifact_store, LocalArtifactStore):
        (artifact_store.root / "index" / "sha256" / f"{hex_digest}.json").write_bytes(body)
    else:
        assert isinstance(artifact_store, S3ArtifactStore)
        key = f"{artifact_store.prefix}/index/sha256/{hex_digest}.json"
        artifact_store._s3.put_object(Bucket=artifact_store.bucket, Key=key, Body=body)
    with pytest.raises(ArtifactIntegrityError, match=r"\(index\): the recorded files do not add up"):
        artifact_store.materialize(digested.digest, tmp_path / "out")


def test_delete(artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path):
    digested = put(artifact_store, onnx_function)
    artifact_store.delete(digested.digest)
    assert not artifact_store.exists(digested.digest)
    assert artifact_store.list_digests() == []
    with pytest.raises(ArtifactNotFoundError):
        artifact_store.materialize(digested.digest, tmp_path / "out")
    artifact_store.delete(digested.digest)  # deleting what is gone is a no-op
    put(artifact_store, onnx_function)
    assert artifact_store.exists(digested.digest)


def test_materialize_never_merges_into_existing_files(
    artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path
):
    digested = put(artifact_store, onnx_function)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        artifact_store.materialize(digested.digest, occupied)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert artifact_store.materialize(digested.digest, empty) == empty
    assert (empty / "model.onnx").is_file()


# ------------------------------------------------------------------------------- local store only


def test_local_materialize_without_destination_verifies_the_stored_directory(
    onnx_function: Path, tmp_path: Path
):
    store = LocalArtifactStore(tmp_path / "artifacts")
    digested = put(store, onnx_function)
    stored = store.materialize(digested.digest)
    assert stored.is_relative_to(store.root)
    assert load_manifest(stored).name == "linear"
    assert not (stored / "model.onnx").stat().st_mode & 0o222, "stored files are read-only"

    # Python's own bytecode cache beside an imported handler is not tampering.
    (stored / "__pycache__").mkdir()
    (stored / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"cache")
    assert store.materialize(digested.digest) == stored

    (stored / "extra.py").write_text("import os")
    with pytest.raises(ArtifactIntegrityError, match=r"extra\.py: file is not part of the artifact"):
        store.materialize(digested.digest)
    (stored / "extra.py").unlink()
    tampered = flip_first_byte((stored / "model.onnx").read_bytes())
    overwrite_stored(store, digested.digest, "model.onnx", tampered)
    with pytest.raises(ArtifactIntegrityError, match=r"model\.onnx: content does not match"):
        store.materialize(digested.digest)


def test_local_store_recovers_from_a_crash_between_files_and_commit(onnx_function: Path, tmp_path: Path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    digested = digest_function(onnx_function)
    # What a crash after writing the files but before the index leaves behind.
    leftover = store.root / "objects" / "sha256" / parse_digest(digested.digest)
    leftover.mkdir(parents=True)
    (leftover / "model.onnx").write_bytes(b"half")
    assert not store.exists(digested.digest) and store.list_digests() == []
    put(store, onnx_function)
    assert store.materialize(digested.digest) == leftover
    assert (leftover / "model.onnx").read_bytes() == (onnx_function / "model.onnx").read_bytes()


def test_s3_materialize_needs_a_destination(s3_bucket, onnx_function: Path):
    client, bucket = s3_bucket
    store = S3ArtifactStore(bucket, "p", client=client)
    digested = put(store, onnx_function)
    with pytest.raises(ValueError, match="needs a dest_dir"):
        store.materialize(digested.digest)


# ------------------------------------------------------------------------------------ open_store


def test_open_store_local_by_default_and_by_path(tmp_path: Path):
    default = open_store(None, tmp_path / "data")
    assert isinstance(default, LocalArtifactStore) and default.root == tmp_path / "data" / "artifacts"
    explicit = open_store(str(tmp_path / "elsewhere"), tmp_path / "data")
    assert isinstance(explicit, LocalArtifactStore) and explicit.root == tmp_path / "elsewhere"
    by_url = open_store(f"file://{tmp_path / 'url'}", tmp_path / "data")
    assert isinstance(by_url, LocalArtifactStore) and by_url.root == tmp_path / "url"
    with pytest.raises(ValueError, match="unknown scheme"):
        open_store("ftp://host/x", tmp_path)
    with pytest.raises(ValueError, match="needs a bucket"):
        open_store("s3://", tmp_path)


def test_open_store_s3_uses_the_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, s3_bucket, onnx_function: Path, tmp_path: Path,
    function_factory,
):
    credentials = function_factory.credentials
    _client, bucket = s3_bucket
    monkeypatch.setenv("ZEROSERVE_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["aws_secret_access_key"])
    store = open_store(f"s3://{bucket}/team/artifacts", tmp_path)
    assert isinstance(store, S3ArtifactStore) and store.prefix == "team/artifacts"
    digested = put(store, onnx_function)
    listed = _client.list_objects_v2(Bucket=bucket, Prefix="team/artifacts/index/")["Contents"]
    index_key = f"team/artifacts/index/sha256/{parse_digest(digested.digest)}.json"
    assert [item["Key"] for item in listed] == [index_key]
    assert store.materialize(digested.digest, tmp_path / "out").joinpath("model.onnx").is_file()


def test_concurrent_puts_of_one_digest_commit_one_artifact(
    artifact_store: ArtifactStore, onnx_function: Path, tmp_path: Path
):
    digested = digest_function(onnx_function)
    errors: list[BaseException] = []

    def store_it() -> None:
        try:
            artifact_store.put(digested.digest, onnx_function, digested.files, generated=digested.generated)
        except BaseException as exc:  # collected: an exception in a thread would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=store_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    assert artifact_store.list_digests() == [digested.digest]
    materialized = artifact_store.materialize(digested.digest, tmp_path / "out")
    assert digest_function(materialized).digest == digested.digest
