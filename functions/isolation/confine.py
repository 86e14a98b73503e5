"""Confine this process before it runs a function's code: environment, limits, identity, parent death.

Every step is a few system calls (tens of microseconds in all), done in the child after fork/exec and
before the first line of user code. The order matters:

1. the environment is replaced, not extended: nothing of the platform's survives but the allowlist;
2. limits, while the process may still set them (a hard limit set as root cannot be raised later);
3. umask 077: what the function writes is its own;
4. the identity: setgroups([]), setgid, setuid. From root, setuid also clears every capability, and
   the process becomes non-dumpable, so no other uid (another function) can read its memory or
   /proc/<pid>/environ; PR_SET_NO_NEW_PRIVS then keeps a setuid binary from giving any back;
5. PR_SET_PDEATHSIG, after the identity change because a change of credentials clears it;
6. the working directory, as the new user (a directory it may not enter fails here, with its name).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ConfigDict, TypeAdapter

from functions.isolation.limits import apply_memory_limit, apply_thread_limit

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
# Loaded once, at import: a zygote imports this before forking, so a replica pays nothing for it.
_LIBC = ctypes.CDLL(None, use_errno=True)


class ConfinementError(RuntimeError):
    """A step of the confinement failed; the process must not go on to run user code."""


@dataclass(frozen=True)
class Identity:
    """The unprivileged user and group a function's processes run as."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    uid: int
    gid: int

    def __str__(self) -> str:
        return f"uid {self.uid}, gid {self.gid}"


@dataclass(frozen=True)
class Confinement:
    """What `confine` applies; sent to the child as JSON (a memfd or a pipe, never argv: env may hold secrets).

    Encoded and decoded by a pydantic TypeAdapter, like every record the local platform sends to a process
    (deploy.local.messages): a field that is missing or of the wrong type fails where it is read, naming it.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")
    env: dict[str, str]                     # the process's whole environment
    identity: Identity | None = None        # None: stay this process's user (the platform is not root)
    workdir: str | None = None
    threads: int | None = None
    memory_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON values, for a request that carries the confinement among other things."""
        return _CONFINEMENT.dump_python(self, mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Confinement:
        return _CONFINEMENT.validate_python(data)


_CONFINEMENT: Final = TypeAdapter(Confinement)


def confine(confinement: Confinement, *, parent_pid: int | None) -> list[str]:
    """Apply `confinement` to this process; returns warnings (a limit the OS refused). Raises ConfinementError."""
    warnings: list[str] = []
    replace_environment(confinement.env)
    apply_thread_limit(confinement.threads)
    if confinement.memory_bytes is not None:
        _, warning = apply_memory_limit(confinement.memory_bytes)
        if warning:
            warnings.append(warning)
    os.umask(0o077)
    if confinement.identity is not None:
        drop_privileges(confinement.identity)
    if parent_pid is not None:
        die_with_parent(parent_pid)
    if confinement.workdir is not None:
        try:
            os.chdir(confinement.workdir)
        except OSError as exc:
            raise ConfinementError(f"cannot enter the function directory {confinement.workdir} as "
                                   f"{confinement.identity or 'this user'}: {exc.strerror}") from None
    return warnings


def replace_environment(env: dict[str, str]) -> None:
    """Make os.environ exactly `env`, touching only the variables that differ (most come from the zygote)."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def drop_privileges(identity: Identity) -> None:
    try:
        os.setgroups([])
        os.setgid(identity.gid)
        os.setuid(identity.uid)
    except OSError as exc:
        raise ConfinementError(f"cannot run as {identity}: {exc.strerror} (only root can switch users)") from None
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (identity.uid, identity.uid, identity.gid,
                                                                   identity.gid):
        raise ConfinementError(f"switching to {identity} did not take")
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise ConfinementError(f"{identity}: could switch back to root; refusing to run user code")
    if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfinementError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: errno {ctypes.get_errno()}")


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies, so a killed platform leaves no function running."""
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        print(f"zeroserve: prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}", file=sys.stderr)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
