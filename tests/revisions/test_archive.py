"""Function archives: reproducible packing, and extraction that refuses every escape, naming the member."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from revisions.archive import ArchiveError, extract_archive, pack_function_dir
from revisions.digest import digest_function


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def link_member(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def special_member(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


def test_pack_then_extract_round_trips_and_is_reproducible(onnx_function: Path, tmp_path: Path):
    (onnx_function / ".git").mkdir()
    (onnx_function / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (onnx_function / "__pycache__").mkdir()
    (onnx_function / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"cache")
    (onnx_function / ".DS_Store").write_bytes(b"finder")

    packed = pack_function_dir(onnx_function)
    assert packed == pack_function_dir(onnx_function), "packing the same directory twice differs"
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        assert sorted(tar.getnames()) == ["function.yaml", "model.onnx", "sample.json"]

    out = extract_archive(packed, tmp_path / "out")
    assert (out / "model.onnx").read_bytes() == (onnx_function / "model.onnx").read_bytes()
    assert digest_function(out).digest == digest_function(onnx_function).digest


def test_links_that_stay_inside_are_extracted(tmp_path: Path):
    data = tar_of(
        file_member("models/model.onnx", b"weights"),
        link_member("model.onnx", "models/model.onnx"),
        link_member("again.onnx", "models/model.onnx", tarfile.LNKTYPE),
        gz=True,
    )
    out = extract_archive(data, tmp_path / "out")
    assert (out / "model.onnx").is_symlink() and (out / "model.onnx").read_bytes() == b"weights"
    assert (out / "again.onnx").read_bytes() == b"weights" and not (out / "again.onnx").is_symlink()


@pytest.mark.parametrize(
    ("members", "member", "rule"),
    [
        ([file_member("../evil")], "../evil", "'..' path parts are not allowed"),
        ([file_member("ok/../../evil")], "ok/../../evil", "'..' path parts are not allowed"),
        ([file_member("/etc/passwd")], "/etc/passwd", "absolute paths are not allowed"),
        ([link_member("escape", "/etc/passwd")], "escape", "symlink to absolute path '/etc/passwd'"),
        ([link_member("sub/escape", "../../outside")], "sub/escape", "points outside the destination"),
        ([link_member("hard", "../outside", tarfile.LNKTYPE)], "hard", "hard link to '../outside'"),
        ([special_member("fifo", tarfile.FIFOTYPE)], "fifo", "is a FIFO"),
        ([special_member("null", tarfile.CHRTYPE)], "null", "is a device"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-absolute", "symlink-relative", "hardlink",
         "fifo", "device"],
)
def test_unsafe_members_are_refused_by_name(members, member: str, rule: str, tmp_path: Path):
    # A harmless file first: nothing at all may be written when any member is refused.
    data = tar_of(file_member("function.yaml", b"name: ok\n"), *members)
    with pytest.raises(ArchiveError) as info:
        extract_archive(data, tmp_path / "out")
    assert info.value.member == member
    assert f"'{member}'" in str(info.value) and rule in str(info.value)
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == []


def test_a_symlink_through_an_earlier_symlink_cannot_escape(tmp_path: Path):
    # Lexically "here/up" -> ".." stays inside (here/..), but "here" is itself "." so it really points
    # at the parent of the destination; the extraction filter resolves links on disk and refuses it.
    data = tar_of(link_member("here", "."), link_member("here/up", ".."))
    with pytest.raises(ArchiveError, match="here/up") as info:
        extract_archive(data, tmp_path / "out")
    assert info.value.member == "here/up"
    assert not (tmp_path / "up").exists() and not (tmp_path / "out").exists()


def test_oversized_archives_are_refused(tmp_path: Path):
    data = tar_of(file_member("a.bin", b"a" * 600), file_member("b.bin", b"b" * 600), gz=True)
    with pytest.raises(ArchiveError, match=r"'b\.bin': unpacked size exceeds the 1000 bytes limit"):
        extract_archive(data, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "out").exists()
    assert extract_archive(data, tmp_path / "ok", max_bytes=1200).joinpath("b.bin").stat().st_size == 600


def test_garbage_is_not_an_archive(tmp_path: Path):
    with pytest.raises(ArchiveError, match="not a readable tar"):
        extract_archive(b"this is not a tarball at all" * 40, tmp_path / "out")
