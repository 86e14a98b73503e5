"""How the platform keeps functions away from itself and from each other, decided once at start-up.

- As root with `run_as: auto` (the default): every function, its builds included, runs as a user of
  its own (deploy.local.identities) and sees only its own files (functions.isolation).
- As root with `run_as: UID[:GID]`: functions and builds run as that one user.
- As root with `run_as: root`, or not as root at all: functions run as the platform's own user. Their
  environment is still only the allowlist plus their own `env`, but they can read what that user can,
  the API token included. `zeroserve up` says so in its first lines.

Whatever the identity, the data dir is made private to the platform's user: the directory 0700, the
token and registry.db* 0600, and files the platform creates get umask 077 (docs/security.md).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.identities import IdentityPolicy, PerFunctionIdentities, SharedIdentity, base_for
from functions.isolation import Identity
from functions.isolation.view import views_available
from zeroserve.settings import Settings, SettingsError

FUNCTION_USERS_FILE = "function-users.json"


@dataclass(frozen=True)
class PlatformIsolation:
    identities: IdentityPolicy | None   # None: functions run as the platform's own user
    notice: list[str] = field(default_factory=list)  # what `zeroserve up` prints first


def plan_isolation(settings: Settings, euid: int | None = None) -> PlatformIsolation:
    euid = os.geteuid() if euid is None else euid
    run_as = settings.run_as
    if euid != 0:
        if run_as not in ("auto", "root"):
            raise SettingsError(f"settings: run_as (ZEROSERVE_RUN_AS): running functions as {run_as} needs the "
                                f"platform to run as root; it runs as uid {euid}")
        return PlatformIsolation(None, [
            f"WARNING: zeroserve runs as uid {euid}, not root, so functions run as this same user. A function "
            f"can then read whatever uid {euid} can: the data dir {settings.data_dir} (the API token, which "
            "controls the whole platform, and registry.db with every function's env), other functions' "
            "artifacts, and the platform's memory. Each function still gets only an allowlisted environment "
            "and its own env. Deploy only trusted functions, or run zeroserve as root to give every function a "
            "user of its own (docs/security.md).",
        ])
    if run_as == "auto" and not views_available():
        # The artifacts live under the 0700 data dir (and Python often under /root): without a private view
        # a function's own user could not even start, so running at all beats refusing every replica.
        return PlatformIsolation(None, [
            "WARNING: zeroserve runs as root but may not create mount namespaces here (no CAP_SYS_ADMIN, as in "
            "an unprivileged container, or a kernel before 5.2), so functions cannot get users of their own "
            "and run as root. Any function can then read the API token and every other function's env. Deploy "
            "only trusted functions, or run zeroserve where it may (docs/security.md).",
        ])
    if run_as == "auto":
        data_dir = Path(settings.data_dir)
        identities: IdentityPolicy = PerFunctionIdentities(data_dir / FUNCTION_USERS_FILE, base_for(data_dir))
    elif run_as == "root" or run_as.split(":")[0] == "0":
        return PlatformIsolation(None, [
            "WARNING: run_as is root: functions and builds run as root. Any function can read the API token "
            "and every other function's env, and take over the machine. Use run_as auto unless every function "
            "is yours (docs/security.md).",
        ])
    else:
        uid, _, gid = run_as.partition(":")
        identities = SharedIdentity(Identity(int(uid), int(gid or uid)))
    return PlatformIsolation(identities, [f"isolation: {identities.describe()} (docs/security.md)"])


def secure_data_dir(settings: Settings) -> None:
    """The data dir and the secrets in it: the platform's user's only, also when an older run left them open."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    registry = settings.registry_path
    for path in (settings.token_path, registry, Path(f"{registry}-wal"), Path(f"{registry}-shm"),
                 Path(f"{registry}-journal")):
        if path.exists():
            os.chmod(path, 0o600)


def print_notice(isolation: PlatformIsolation) -> None:
    for line in isolation.notice:
        print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout, flush=True)
