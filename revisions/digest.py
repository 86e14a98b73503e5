"""The revision digest: what makes two deploys "the same revision".

digest = sha256 of the sorted list of (relative path, sha256 of the file's bytes) over every file of
the function directory, where `function.yaml` counts as the *normalised* manifest
(`FunctionManifest.canonical_json()`), so editing a comment or re-indenting function.yaml is not a new
revision, while a one-byte change to the model is.

Left out, because they are not part of a function but appear in directories people deploy from:
`.git/` and `__pycache__/` directories at any depth, `*.pyc` files and `.DS_Store` files.

The artifact store keeps the normalised manifest as the revision's `function.yaml` (JSON is YAML, so
`load_manifest` reads it): a content-addressed artifact must hold exactly the bytes its digest names.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocol.manifest import FunctionManifest

DIGEST_ALGORITHM = "sha256"
EXCLUDED_DIR_NAMES = frozenset({".git", "__pycache__"})
EXCLUDED_FILE_NAMES = frozenset({".DS_Store"})
EXCLUDED_SUFFIXES = (".pyc",)
_CHUNK = 1 << 20


class DigestError(ValueError):
    """A function directory that cannot be digested; the message names the file and the rule."""


@dataclass(frozen=True)
class FunctionDigest:
    digest: str  # "sha256:<hex>"
    files: dict[str, str]  # relative POSIX path -> sha256 hex of the bytes stored for it
    # Files whose stored bytes are generated, not copied from the directory: function.yaml -> the
    # normalised manifest. The store writes these instead of reading the source file.
    generated: dict[str, bytes] = field(default_factory=dict)


def is_excluded(relative_path: str) -> bool:
    """True for paths the digest (and the artifact) leaves out."""
    parts = relative_path.split("/")
    if any(part in EXCLUDED_DIR_NAMES for part in parts[:-1]):
        return True
    name = parts[-1]
    return name in EXCLUDED_FILE_NAMES or name.endswith(EXCLUDED_SUFFIXES) or name in EXCLUDED_DIR_NAMES


def list_function_files(function_dir: Path) -> list[str]:
    """Relative POSIX paths of every file that belongs to the function, sorted.

    A symlink counts as the file it points to when that file lies inside the function directory; one
    that leaves the directory, dangles, or names a directory is refused, so an artifact can never
    pull in a host file (`model.onnx -> /etc/shadow`).
    """
    root = Path(function_dir)
    if not root.is_dir():
        raise DigestError(f"{root}: not a directory")
    real_root = root.resolve()
    found: list[str] = []
    for current, dir_names, file_names in os.walk(root):
        here = Path(current)
        kept_dirs = []
        for name in sorted(dir_names):
            relative = _relative(here / name, root)
            if name in EXCLUDED_DIR_NAMES:
                continue
            if (here / name).is_symlink():
                raise DigestError(f"{relative}: is a symlink to a directory; copy the files in instead")
            kept_dirs.append(name)
        dir_names[:] = kept_dirs
        for name in file_names:
            path = here / name
            relative = _relative(path, root)
            if is_excluded(relative):
                continue
            _check_regular_file(path, relative, real_root)
            found.append(relative)
    return sorted(found)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_of_files(files: Mapping[str, str]) -> str:
    """The revision digest over (path, sha256) pairs; JSON keeps odd file names unambiguous."""
    pairs = sorted(files.items())
    encoded = json.dumps(pairs, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return f"{DIGEST_ALGORITHM}:{hashlib.sha256(encoded).hexdigest()}"


def digest_function(function_dir: Path, manifest: FunctionManifest | None = None) -> FunctionDigest:
    """Digest a function directory; `manifest` saves re-reading function.yaml when already loaded.

    Raises ManifestError for a bad function.yaml and DigestError for files that cannot be part of a
    revision.
    """
    # Imported here: `zeroserve deploy` packs with list_function_files, and starts ~70 ms sooner
    # without the manifest's models (pydantic, YAML) it never uses.
    from protocol.manifest import MANIFEST_FILE, load_manifest

    root = Path(function_dir)
    if manifest is None:
        manifest = load_manifest(root)
    manifest_bytes = manifest.canonical_json()
    files: dict[str, str] = {}
    for relative in list_function_files(root):
        if relative == MANIFEST_FILE:
            continue
        files[relative] = sha256_file(root / relative)
    files[MANIFEST_FILE] = hashlib.sha256(manifest_bytes).hexdigest()
    return FunctionDigest(
        digest=digest_of_files(files), files=dict(sorted(files.items())),
        generated={MANIFEST_FILE: manifest_bytes},
    )


def short_digest(digest: str, length: int = 12) -> str:
    """'sha256:0123abcd...' -> '0123abcd4567' for log lines."""
    return digest.partition(":")[2][:length] or digest[:length]


def _relative(path: Path, root: Path) -> str:
    relative = path.relative_to(root).as_posix()
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise DigestError(f"{relative!r}: file name is not valid UTF-8") from None
    return relative


def _check_regular_file(path: Path, relative: str, real_root: Path) -> None:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(real_root):
            raise DigestError(f"{relative}: is a symlink pointing outside the function directory")
        if not target.exists():
            raise DigestError(f"{relative}: is a dangling symlink")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise DigestError(f"{relative}: is not a regular file (device, FIFO or socket)")


__all__ = [
    "DIGEST_ALGORITHM", "DigestError", "FunctionDigest", "digest_function", "digest_of_files",
    "is_excluded", "list_function_files", "sha256_file", "short_digest",
]
