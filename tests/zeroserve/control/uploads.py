"""Deploy uploads as `POST /api/v1/functions` takes them: a gzipped tar, built member by member so a test
can send what no real function directory holds (`../evil.py`, a YAML bomb, an oversized manifest)."""

from __future__ import annotations

import io
import tarfile


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
