"""The file system as a confined process sees it: the directories it needs, reachable; their private
neighbours, gone.

A function runs as an unprivileged user, so it cannot cross a directory others may not search (the
data dir is 0700; so is /root, where pyenv installs Python, and pytest's temp root). It still needs
some directories below such ancestors: the Python installation, the runtime's packages, its artifact,
its home. `enter_view(paths)` gives this process a private mount namespace in which every such
blocking ancestor is covered by an empty tmpfs holding only the path down to each needed directory,
with the real directory bind-mounted back at its own path (the skeleton's directories are 0711:
they can be crossed, not listed). Paths stay what they were (so imports and
`__file__`s work), and the rest of what was private (the token, registry.db, other functions' files,
/root's dot files) does not exist in this view at all.

Needs CAP_SYS_ADMIN (root) and Linux >= 5.2 (open_tree, move_mount). When no needed directory has a
blocking ancestor, nothing is done and nothing is needed. The zygote enters its view once, before it
imports anything; replicas inherit it with fork, so a cold start pays nothing for it.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from collections.abc import Iterable

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
OPEN_TREE_CLONE, AT_RECURSIVE, AT_FDCWD, MOVE_MOUNT_F_EMPTY_PATH = 0x1, 0x8000, -100, 0x4
# Numbered alike on every architecture since Linux 5.1's unified syscall table.
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429
# 0711: the way down to each needed directory, nothing to list on the way.
SKELETON_OPTIONS = b"mode=0711,size=1m,nr_inodes=4096"


class ViewError(RuntimeError):
    """The view could not be built; the message names the directory and the system call."""


def runtime_paths() -> list[str]:
    """What any Python process of ours reads: the installation, the standard library, every import root."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)), *sys.path]
    return [path for path in candidates if path and os.path.isdir(path)]


def blocked(path: str) -> bool:
    """A directory that users other than its owner and group may not search."""
    return not os.stat(path).st_mode & stat.S_IXOTH


def needed_leaves(paths: Iterable[str]) -> list[str]:
    """The real paths of `paths`, deduplicated, in the order enter_view places them (parents first)."""
    leaves = {os.path.realpath(path) for path in paths}
    return sorted((leaf for leaf in leaves if leaf != "/"), key=lambda p: (p.count("/"), p))


def hidden_behind_blocked_ancestor(leaf: str) -> bool:
    return any(blocked(ancestor) for ancestor in _ancestors(leaf))


def enter_view(paths: Iterable[str]) -> bool:
    """Build this process's view (see module doc); returns False when nothing needed one."""
    leaves = needed_leaves(paths)
    hidden = [leaf for leaf in leaves if hidden_behind_blocked_ancestor(leaf)]
    if not hidden:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private: nothing mounted here propagates back to the platform's namespace.
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    clones: dict[str, int] = {}
    umask = os.umask(0o066)  # skeleton directories must be 0711 whatever the platform's umask (077)
    try:
        # Clones of the real directories, taken before anything is covered up.
        for leaf in hidden:
            clones[leaf] = _open_tree(libc, leaf)
        ours: dict[str, str] = {}  # mount point -> "skeleton" | "bind"
        for leaf in hidden:
            for ancestor in _ancestors(leaf):
                if _inside_skeleton(ours, ancestor):
                    if not os.path.isdir(ancestor):
                        os.mkdir(ancestor, 0o711)
                elif ancestor not in ours and blocked(ancestor):
                    _check(libc.mount(b"zeroserve-view", ancestor.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                                      SKELETON_OPTIONS), f"mount tmpfs on {ancestor}")
                    ours[ancestor] = "skeleton"
            if _inside_skeleton(ours, leaf):
                os.makedirs(leaf, 0o711, exist_ok=True)
                _check(libc.syscall(SYS_MOVE_MOUNT, clones[leaf], b"", AT_FDCWD, leaf.encode(),
                                    MOVE_MOUNT_F_EMPTY_PATH), f"move_mount to {leaf}")
                ours[leaf] = "bind"
    finally:
        os.umask(umask)
        for fd in clones.values():
            os.close(fd)
    # The working directory may still be a real directory under a covered ancestor: leave it.
    os.chdir("/")
    return True


def views_available() -> bool:
    """Whether this process may build views: a forked child tries the same system calls and exits.

    A container without CAP_SYS_ADMIN (Docker's default), a seccomp filter or a kernel before 5.2 refuses
    unshare, mount or open_tree; the platform then cannot give functions users of their own, and says so.
    """
    pid = os.fork()
    if pid == 0:  # the child only makes system calls and leaves with os._exit: safe after fork
        code = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            if libc.unshare(CLONE_NEWNS) == 0 and libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0:
                fd = libc.syscall(SYS_OPEN_TREE, AT_FDCWD, b"/", OPEN_TREE_CLONE)
                code = 0 if fd >= 0 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _ancestors(path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b'] (not '/', not the path itself)."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def _inside_skeleton(ours: dict[str, str], path: str) -> bool:
    """True when the deepest of our mounts covering `path` is a skeleton and `path` is below its root."""
    covering = [mount for mount in ours if path == mount or path.startswith(mount + "/")]
    if not covering:
        return False
    deepest = max(covering, key=len)
    return ours[deepest] == "skeleton" and path != deepest


def _open_tree(libc: ctypes.CDLL, path: str) -> int:
    fd = libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), OPEN_TREE_CLONE | AT_RECURSIVE)
    _check(fd, f"open_tree({path})")
    return int(fd)


def _check(result: int, what: str) -> None:
    if result < 0:
        errno = ctypes.get_errno()
        raise ViewError(f"{what} failed: {os.strerror(errno)}")
