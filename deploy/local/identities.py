"""Which unprivileged user each function's processes run as, when the platform runs as root.

`PerFunctionIdentities` (the default, `--run-as auto`) gives every function a uid and gid of its own,
like Android's per-app uids: `base + index`, index >= 1, allocated the first time the function is
built and kept in a file in the data dir, so it survives restarts and is never handed to another
function (a deleted function's index is not reused). `base_for(data_dir)` gives each data dir a range
of its own, so two platforms on one machine rarely share a user. A function's builds (smoke children)
run as that same user. Separate users are what make "a function cannot read another function's
artifact, env or memory, nor signal its processes" hold.

`SharedIdentity` (`--run-as UID[:GID]`) runs every function and build as one user: still not root,
but functions are no longer isolated from each other.
"""

from __future__ import annotations

import os
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from pydantic import ConfigDict, TypeAdapter, ValidationError

from functions.isolation import Identity

# Far above login users; below 2**31, which some tools still read as a signed number.
FIRST_BASE_ID = 1_000_000_000
RANGE_SIZE = 1_000_000           # functions per data dir
RANGES = 1_000
MAX_ID = 2**31 - 1


def base_for(data_dir: Path) -> int:
    """The first id of this data dir's range: stable for its path, different for most other paths."""
    slot = zlib.crc32(str(Path(data_dir).resolve()).encode()) % RANGES
    return FIRST_BASE_ID + slot * RANGE_SIZE


@dataclass(frozen=True)
class FunctionUsers:
    """The file PerFunctionIdentities keeps: each function's index, and the next one to hand out."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    functions: dict[str, int]
    next: int


FUNCTION_USERS: Final = TypeAdapter(FunctionUsers)


class IdentityPolicy(Protocol):
    def for_function(self, function: str) -> Identity: ...

    def describe(self) -> str: ...


class SharedIdentity:
    def __init__(self, identity: Identity):
        self.identity = identity

    def for_function(self, function: str) -> Identity:
        return self.identity

    def describe(self) -> str:
        return f"functions and builds run as {self.identity} (one user for all: functions are not isolated " \
               "from each other)"


class PerFunctionIdentities:
    """uid = gid = base + index; indexes persisted in `path` (JSON, mode 0600)."""

    def __init__(self, path: Path, base: int):
        self.path = Path(path)
        self.base = base
        self._lock = threading.Lock()
        self._indexes, self._next = self._read()

    def for_function(self, function: str) -> Identity:
        with self._lock:
            index = self._indexes.get(function)
            if index is None:
                index = self._next
                self._indexes[function] = index
                self._next += 1
                self._write()
        return self._identity(index)

    def describe(self) -> str:
        return (f"each function and its builds run as a user of its own (uid = gid = {self.base} + n, n >= 1, "
                f"kept in {self.path.name})")

    def _identity(self, index: int) -> Identity:
        uid = self.base + index
        if index >= RANGE_SIZE or uid > MAX_ID:
            raise ValueError(f"function user ids ran out: {index} functions in {self.path}")
        return Identity(uid, uid)

    def _read(self) -> tuple[dict[str, int], int]:
        try:
            users = FUNCTION_USERS.validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return {}, 1
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'the file'}: {e['msg']}"
                                 for e in exc.errors())
            raise ValueError(f"{self.path}: unreadable function user ids ({problems}); it maps functions to the "
                             "users that own their files: fix it rather than delete it") from None
        return dict(users.functions), max(users.next, max(users.functions.values(), default=0) + 1)

    def _write(self) -> None:
        data = FUNCTION_USERS.dump_json(FunctionUsers(dict(sorted(self._indexes.items())), self._next), indent=1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:  # mkstemp: mode 0600
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
