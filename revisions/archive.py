"""Function directories as tar.gz: packed by the CLI, unpacked by the control API and the git builder.

An archive comes from outside (an upload, a pushed tree), so extraction refuses anything that could
write outside the destination or create something other than files and directories: absolute paths,
'..' parts, symlinks and hard links leaving the destination, devices and FIFOs, and archives bigger
than `max_bytes` once unpacked. Each refusal is an `ArchiveError` naming the member and the rule (the
control API answers it with a 400). The checks run on every member before anything is written, and
extraction itself runs under tarfile's "data" filter as a second line of defence.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from revisions.digest import list_function_files

DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB unpacked
MAX_MEMBERS = 100_000
_ALLOWED_TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link",
}


class ArchiveError(ValueError):
    """An archive refused; `member` is the offending entry (None for the archive as a whole)."""

    def __init__(self, message: str, member: str | None = None):
        self.member = member
        super().__init__(message)


def pack_function_dir(function_dir: Path) -> bytes:
    """A reproducible tar.gz of the function's files (the digest's file list: no .git, caches).

    Reproducible (sorted entries, zero mtimes and owners, fixed modes) so packing the same directory
    twice uploads the same bytes. Symlinks inside the directory are stored as the files they name.
    """
    root = Path(function_dir)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for relative in list_function_files(root):
                path = root / relative
                info = tarfile.TarInfo(relative)
                info.size = path.stat().st_size
                info.mtime = 0
                info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
    return buffer.getvalue()


def extract_archive(data: bytes, dest: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Unpack a tar or tar.gz held in memory into `dest` (created when missing); returns `dest`."""
    return extract_archive_stream(io.BytesIO(data), dest, max_bytes=max_bytes)


def extract_archive_file(archive: Path, dest: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Like extract_archive for an archive on disk (`git archive` output), not read into memory."""
    with open(archive, "rb") as handle:
        return extract_archive_stream(handle, dest, max_bytes=max_bytes)


def extract_archive_stream(stream: BinaryIO, dest: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    dest = Path(dest)
    try:
        with tarfile.open(fileobj=stream, mode="r:*") as tar:
            members = _checked_members(tar, max_bytes)
            created = not dest.exists()
            dest.mkdir(parents=True, exist_ok=True)
            try:
                tar.extractall(dest, members=members, filter="data")
            except BaseException as exc:
                if created:  # a refused archive leaves nothing behind
                    shutil.rmtree(dest, ignore_errors=True)
                if isinstance(exc, tarfile.FilterError):
                    member = exc.tarinfo.name if getattr(exc, "tarinfo", None) is not None else None
                    raise ArchiveError(f"archive member '{member}': {exc}", member) from None
                raise
    except (tarfile.ReadError, EOFError, gzip.BadGzipFile, tarfile.HeaderError) as exc:
        raise ArchiveError(f"not a readable tar or tar.gz archive: {exc}") from None
    return dest


def _checked_members(tar: tarfile.TarFile, max_bytes: int) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        if len(members) >= MAX_MEMBERS:
            raise ArchiveError(f"archive has more than {MAX_MEMBERS} members")
        name = member.name
        _check_name(name)
        kind = _ALLOWED_TYPES.get(member.type)
        if kind is None:
            raise ArchiveError(
                f"archive member '{name}': is a {_type_name(member)}; only files, directories and links "
                "inside the archive are allowed", name,
            )
        if member.issym():
            _check_symlink(member)
        elif member.islnk():
            _check_hardlink(member)
        if member.isfile():
            total += member.size
            if total > max_bytes:
                raise ArchiveError(
                    f"archive member '{name}': unpacked size exceeds the {_human(max_bytes)} limit", name,
                )
        members.append(member)
    return members


def _check_name(name: str) -> None:
    if not name or "\0" in name:
        raise ArchiveError("archive member with an empty name", name)
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise ArchiveError(f"archive member '{name}': absolute paths are not allowed", name)
    if ".." in PurePosixPath(name).parts:
        raise ArchiveError(f"archive member '{name}': '..' path parts are not allowed", name)


def _check_symlink(member: tarfile.TarInfo) -> None:
    target = member.linkname
    if target.startswith("/"):
        raise ArchiveError(
            f"archive member '{member.name}': symlink to absolute path '{target}' is not allowed",
            member.name,
        )
    if _escapes(PurePosixPath(member.name).parent, target):
        raise ArchiveError(
            f"archive member '{member.name}': symlink to '{target}' points outside the destination",
            member.name,
        )


def _check_hardlink(member: tarfile.TarInfo) -> None:
    # Hard link targets are archive paths, relative to the archive root.
    target = member.linkname
    if target.startswith("/") or _escapes(PurePosixPath("."), target):
        raise ArchiveError(
            f"archive member '{member.name}': hard link to '{target}' points outside the destination",
            member.name,
        )


def _escapes(base: PurePosixPath, target: str) -> bool:
    """Lexical check; symlinks through earlier symlinks are caught by the 'data' filter's realpath."""
    depth = len([p for p in base.parts if p not in ("", ".")])
    for part in PurePosixPath(target).parts:
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            return True
    return False


def _type_name(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return f"entry of type {member.type!r}"


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


__all__ = [
    "ArchiveError", "DEFAULT_MAX_BYTES", "extract_archive", "extract_archive_file", "pack_function_dir",
]
