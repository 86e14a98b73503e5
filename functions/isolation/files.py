"""File ownership for function users: what a function may read, and the one directory it may write.

Artifacts stay owned by the platform's user (root): a function's group may read and enter its own
artifact (directories 0750, files 0440, or 0550 for executables) and nobody else may do anything; so
a function can neither change its code nor read another function's. Its home (HOME, TMPDIR) is the
only directory it owns.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from functions.isolation.confine import Identity


def share_read_only(directory: Path, gid: int) -> None:
    """Owner unchanged, group `gid`: the group may read and enter, others nothing. Symlinks are left alone."""
    _share(str(directory), gid, is_dir=True)
    for current, dirs, files in os.walk(directory):
        for name in dirs:
            _share(os.path.join(current, name), gid, is_dir=True)
        for name in files:
            _share(os.path.join(current, name), gid, is_dir=False)


def _share(path: str, gid: int, *, is_dir: bool) -> None:
    if os.path.islink(path):
        return
    info = os.stat(path)
    if info.st_gid != gid:
        os.chown(path, -1, gid)
    mode = 0o750 if is_dir else (0o550 if info.st_mode & 0o100 else 0o440)
    if info.st_mode & 0o7777 != mode:
        os.chmod(path, mode)


def private_dir(path: Path, identity: Identity | None, *, fresh: bool = False) -> Path:
    """A directory only `identity` (or this process's user) may use: mode 0700, owned by it."""
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    if identity is not None:
        os.chown(path, identity.uid, identity.gid)
    return path
