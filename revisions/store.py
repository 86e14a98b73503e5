"""The content-addressed artifact store: one immutable artifact per revision digest.

An artifact is the set of files a digest names (see `revisions.digest`) plus an *index* recording
each file's sha256. Every store follows the same two rules:

- **Commit last.** `put` writes all files first and the index last; an artifact exists exactly when
  its index does. A crash mid-put leaves files no reader will ever look at, never a half artifact that
  looks complete; the next `put` of the same digest replaces them.
- **Trust nothing on the way out.** `materialize` re-hashes every file against the index, and the index
  against the digest, and raises `ArtifactIntegrityError` naming the digest and the file at fault.

`LocalArtifactStore` (the default, under DATA/artifacts) lays an artifact out as a plain function
directory, so `materialize(digest)` with no destination verifies it and returns the stored directory
itself: replicas load revisions straight from the store, without a copy per replica. Its files are
read-only; treat the directory as read-only too. `S3ArtifactStore` (revisions.store_s3) always copies
into a destination directory.

Permissions (local store): everything is private to the platform's user (directories 0700, files
0400) except `objects/sha256/` (0711: a function's user may pass through to its own artifact, whose
name it is given, but may not list the others). The supervisor gives a function's group read access
to that function's artifact only (functions.isolation.files.share_read_only).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import Protocol

from revisions.digest import DIGEST_ALGORITHM, digest_of_files, sha256_file

_DIGEST = re.compile(rf"^{DIGEST_ALGORITHM}:([0-9a-f]{{64}})$")
_CHUNK = 1 << 20
INDEX_FORMAT = 1
S3_ENDPOINT_ENV_VARS = ("ZEROSERVE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")


class ArtifactError(Exception):
    """A store operation that cannot be done; the message names the digest and the file."""


class ArtifactNotFoundError(ArtifactError, LookupError):
    def __init__(self, digest: str):
        self.digest = digest
        super().__init__(f"artifact {digest} is not in the store")


class ArtifactIntegrityError(ArtifactError):
    """A stored artifact that no longer matches its digest: tampered, truncated or missing files."""

    def __init__(self, digest: str, path: str, reason: str):
        self.digest = digest
        self.path = path
        self.reason = reason
        super().__init__(f"artifact {digest}: {path}: {reason}")


def parse_digest(digest: str) -> str:
    """'sha256:<64 hex>' -> the hex; anything else (a path, a short id) is refused before any I/O."""
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise ValueError(f"'{digest}' is not a revision digest ('{DIGEST_ALGORITHM}:<64 hex digits>')")
    return match.group(1)


def check_artifact_path(path: str) -> str:
    """A file path inside an artifact: relative, POSIX, no '..' or '.' parts (never escapes a dest)."""
    pure = PurePosixPath(path)
    if (
        not path or "\\" in path or "\0" in path or pure.is_absolute()
        or any(part in ("..", ".") for part in path.split("/")) or "" in path.split("/")
    ):
        raise ValueError(f"'{path}' is not a relative file path inside an artifact")
    return path


def check_files(digest: str, files: Mapping[str, str]) -> None:
    """The files handed to `put` must be well-formed and add up to the digest they are stored under."""
    parse_digest(digest)
    if not files:
        raise ValueError(f"artifact {digest}: no files")
    for path, sha in files.items():
        check_artifact_path(path)
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ValueError(f"artifact {digest}: {path}: '{sha}' is not a sha256 hex digest")
    actual = digest_of_files(files)
    if actual != digest:
        raise ValueError(f"artifact {digest}: the files add up to {actual}, not to the digest given")


def encode_index(digest: str, files: Mapping[str, str]) -> bytes:
    body = {"format": INDEX_FORMAT, "digest": digest, "files": dict(sorted(files.items()))}
    return json.dumps(body, sort_keys=True, indent=1).encode("utf-8")


def decode_index(digest: str, data: bytes) -> dict[str, str]:
    """The files an index records, checked against the digest it is stored under."""
    try:
        body = json.loads(data)
        files = body["files"]
        if body.get("digest") != digest or not isinstance(files, dict):
            raise ValueError
        for path, sha in files.items():
            check_artifact_path(path)
            if not isinstance(sha, str):
                raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ArtifactIntegrityError(digest, "(index)", "the index is unreadable or malformed") from None
    if digest_of_files(files) != digest:
        raise ArtifactIntegrityError(digest, "(index)", "the recorded files do not add up to the digest")
    return files


class ReadableBytes(Protocol):
    """What copy_hashing reads: a file, an S3 object's body, or a _BytesReader."""

    def read(self, size: int = -1, /) -> bytes: ...


def copy_hashing(source: ReadableBytes, dest: Path) -> str:
    """Copy a stream to `dest` (fsynced), returning the sha256 of the bytes written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    with open(dest, "wb") as out:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return hasher.hexdigest()


def mismatch(actual: str, expected: str) -> str:
    return f"content does not match its recorded sha256 (got {actual[:12]}…, expected {expected[:12]}…)"


def copy_verified(source: ReadableBytes, dest: Path, *, digest: str, path: str, expected_sha: str) -> None:
    """Copy out of a store; bytes that do not hash to the index's sha256 are an integrity error."""
    actual = copy_hashing(source, dest)
    if actual != expected_sha:
        raise ArtifactIntegrityError(digest, path, mismatch(actual, expected_sha))


def copy_into_store(source_dir: Path, path: str, dest: Path, *, digest: str, expected_sha: str,
                    generated: Mapping[str, bytes]) -> None:
    """Copy one file into a store's staging area, checking it is still the file that was digested."""
    try:
        if path in generated:
            actual = copy_hashing(_BytesReader(generated[path]), dest)
        else:
            with open(Path(source_dir) / path, "rb") as source:
                actual = copy_hashing(source, dest)
    except FileNotFoundError:
        raise ArtifactError(f"artifact {digest}: {path}: not found in {source_dir}") from None
    if actual != expected_sha:
        raise ArtifactError(f"artifact {digest}: {path}: changed after it was digested; build again")


def prepare_destination(dest_dir: Path) -> None:
    """Materializing never merges into existing files: the destination is new or an empty directory."""
    if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
        raise FileExistsError(f"{dest_dir}: destination exists and is not an empty directory")
    dest_dir.parent.mkdir(parents=True, exist_ok=True)


def commit_destination(staging: Path, dest_dir: Path) -> None:
    if dest_dir.exists():
        dest_dir.rmdir()  # empty, checked by prepare_destination
    os.replace(staging, dest_dir)


def staging_dir_beside(dest_dir: Path) -> Path:
    # Beside the destination so the final rename stays on one file system (atomic).
    return Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.materializing-", dir=dest_dir.parent))


def remove_tree(path: Path) -> None:
    """rmtree that also clears read-only bits (stored artifacts are read-only)."""

    def make_writable_and_retry(function: Callable[[str], object], target: str,
                                _exc_info: object) -> None:  # shutil's onerror callback
        os.chmod(target, stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        function(target)

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=make_writable_and_retry)


class ArtifactStore(ABC):
    """Immutable artifacts keyed by revision digest."""

    @abstractmethod
    def put(self, digest: str, source_dir: Path, files: Mapping[str, str], *,
            generated: Mapping[str, bytes] | None = None) -> None:
        """Store `files` (path -> sha256) read from `source_dir` under `digest`.

        Idempotent (an existing artifact is left as it is) and atomic (see module doc). `generated`
        gives bytes for paths that are not read from `source_dir` (the normalised function.yaml,
        `FunctionDigest.generated`). Every file is checked against its sha256 as it is stored.
        """

    @abstractmethod
    def materialize(self, digest: str, dest_dir: Path | None = None) -> Path:
        """A verified directory holding the artifact's files.

        With `dest_dir` (new or empty) the files are copied there; the directory appears only once
        every file has been verified. Without it, a local store returns its own read-only directory.
        Raises ArtifactNotFoundError or ArtifactIntegrityError.
        """

    @abstractmethod
    def _open_stored(self, digest: str, path: str) -> AbstractContextManager[ReadableBytes]:
        """One stored file of the artifact, for reading; ArtifactIntegrityError when it is missing."""

    def _copy_verified(self, digest: str, files: Mapping[str, str], dest_dir: Path) -> Path:
        """Copy every file through its sha256 check; `dest_dir` appears only once all of them passed."""
        dest_dir = Path(dest_dir)
        prepare_destination(dest_dir)
        staging = staging_dir_beside(dest_dir)
        try:
            for path, sha in files.items():
                with self._open_stored(digest, path) as source:
                    copy_verified(source, staging / path, digest=digest, path=path, expected_sha=sha)
            commit_destination(staging, dest_dir)
        finally:
            if staging.exists():
                remove_tree(staging)
        return dest_dir

    @abstractmethod
    def exists(self, digest: str) -> bool: ...

    @abstractmethod
    def delete(self, digest: str) -> None:
        """Remove the artifact; the index goes first so a half-deleted artifact never looks complete."""

    @abstractmethod
    def list_digests(self) -> list[str]: ...

    @abstractmethod
    def files(self, digest: str) -> dict[str, str]:
        """The files (path -> sha256) recorded for a stored artifact, checked against the digest."""


class LocalArtifactStore(ArtifactStore):
    """Artifacts under `root`: `objects/sha256/<hex>/` (the files), `index/sha256/<hex>.json` (the commit)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._objects = self.root / "objects" / DIGEST_ALGORITHM
        self._index = self.root / "index" / DIGEST_ALGORITHM
        self._tmp = self.root / "tmp"
        for directory in (self._objects, self._index, self._tmp):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for directory in (self.root, self.root / "objects", self._index.parent, self._index, self._tmp):
            os.chmod(directory, 0o700)
        os.chmod(self._objects, 0o711)

    @property
    def objects_root(self) -> Path:
        """Where artifacts' files live (`<objects_root>/<hex>/`): what a function's view must reach."""
        return self._objects

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def put(self, digest: str, source_dir: Path, files: Mapping[str, str], *,
            generated: Mapping[str, bytes] | None = None) -> None:
        check_files(digest, files)
        hex_digest = parse_digest(digest)
        if self.exists(digest):
            return
        generated = generated or {}
        staging = Path(tempfile.mkdtemp(prefix=f"put-{hex_digest[:12]}-", dir=self._tmp))
        try:
            for path, sha in files.items():
                target = staging / path
                copy_into_store(source_dir, path, target, digest=digest, expected_sha=sha,
                                generated=generated)
                target.chmod(0o400)
            with self._commit_lock():
                if self._index_path(hex_digest).exists():
                    return  # a concurrent put committed the same artifact
                objects = self._objects / hex_digest
                if objects.exists():  # files of a put that crashed before its commit
                    self._discard(objects)
                os.replace(staging, objects)
                _write_atomically(self._index_path(hex_digest), encode_index(digest, files), self._tmp)
        finally:
            if staging.exists():
                remove_tree(staging)

    def materialize(self, digest: str, dest_dir: Path | None = None) -> Path:
        files = self.files(digest)
        objects = self._objects / parse_digest(digest)
        if not objects.is_dir():
            raise ArtifactIntegrityError(digest, "(files)", "the artifact's directory is missing")
        if dest_dir is None:
            self._verify_in_place(digest, objects, files)
            return objects
        return self._copy_verified(digest, files, dest_dir)

    def _open_stored(self, digest: str, path: str) -> AbstractContextManager[ReadableBytes]:
        try:
            return open(self._objects / parse_digest(digest) / path, "rb")  # the caller closes it
        except FileNotFoundError:
            raise ArtifactIntegrityError(digest, path, "file is missing from the store") from None

    def exists(self, digest: str) -> bool:
        return self._index_path(parse_digest(digest)).is_file()

    def files(self, digest: str) -> dict[str, str]:
        try:
            data = self._index_path(parse_digest(digest)).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(digest) from None
        return decode_index(digest, data)

    def delete(self, digest: str) -> None:
        hex_digest = parse_digest(digest)
        with self._commit_lock():
            self._index_path(hex_digest).unlink(missing_ok=True)
            objects = self._objects / hex_digest
            if objects.exists():
                self._discard(objects)

    def list_digests(self) -> list[str]:
        found = []
        for entry in self._index.glob("*.json"):
            digest = f"{DIGEST_ALGORITHM}:{entry.stem}"
            if _DIGEST.match(digest):
                found.append(digest)
        return sorted(found)

    def _index_path(self, hex_digest: str) -> Path:
        return self._index / f"{hex_digest}.json"

    def _verify_in_place(self, digest: str, objects: Path, files: Mapping[str, str]) -> None:
        on_disk = set()
        for current, dir_names, file_names in os.walk(objects):
            # Python writes __pycache__ beside a handler imported from the store; it is not content.
            dir_names[:] = [name for name in dir_names if name != "__pycache__"]
            for name in file_names:
                on_disk.add((Path(current) / name).relative_to(objects).as_posix())
        extra = sorted(on_disk - set(files))
        if extra:
            raise ArtifactIntegrityError(digest, extra[0], "file is not part of the artifact")
        for path, sha in files.items():
            target = objects / path
            if path not in on_disk:
                raise ArtifactIntegrityError(digest, path, "file is missing from the store")
            actual = sha256_file(target)
            if actual != sha:
                raise ArtifactIntegrityError(digest, path, mismatch(actual, sha))

    def _discard(self, directory: Path) -> None:
        # Rename first: a directory being deleted must stop looking like an artifact at once.
        trash = self._tmp / f"trash-{uuid.uuid4().hex}"
        os.replace(directory, trash)
        remove_tree(trash)

    @contextmanager
    def _commit_lock(self) -> Iterator[None]:
        # Serialises commits and deletes across threads and processes sharing the same root.
        with open(self._tmp / ".commit.lock", "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


class _BytesReader:
    """A minimal readable stream over bytes (io.BytesIO would copy the buffer)."""

    def __init__(self, data: bytes):
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._pos + size)
        chunk = bytes(self._view[self._pos:end])
        self._pos = end
        return chunk


def _write_atomically(path: Path, data: bytes, tmp_dir: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=f"{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def s3_endpoint_from_env() -> str | None:
    for name in S3_ENDPOINT_ENV_VARS:
        value = os.environ.get(name)
        if value:
            return value
    return None


def open_store(spec: str | None, data_dir: Path) -> ArtifactStore:
    """The store a settings string names.

    None or "" -> local under `data_dir/artifacts`; "s3://bucket[/prefix]" -> S3 (endpoint from
    ZEROSERVE_S3_ENDPOINT_URL or AWS_ENDPOINT_URL when set, credentials from boto3's usual chain);
    "file:///path" or a plain path -> local at that path.
    """
    if not spec:
        return LocalArtifactStore(Path(data_dir) / "artifacts")
    if spec.startswith("s3://"):
        bucket, _, prefix = spec[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError(f"artifact store '{spec}': an S3 store needs a bucket: s3://bucket/prefix")
        from revisions.store_s3 import S3ArtifactStore  # boto3 is slow to import; only when used

        return S3ArtifactStore(bucket, prefix, endpoint_url=s3_endpoint_from_env())
    if spec.startswith("file://"):
        return LocalArtifactStore(Path(spec[len("file://"):]))
    if "://" in spec:
        raise ValueError(f"artifact store '{spec}': unknown scheme; use s3://bucket/prefix or a local path")
    return LocalArtifactStore(Path(spec))


__all__ = [
    "ArtifactError", "ArtifactIntegrityError", "ArtifactNotFoundError", "ArtifactStore",
    "LocalArtifactStore", "open_store", "parse_digest",
]
