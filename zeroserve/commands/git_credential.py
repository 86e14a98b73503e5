"""`zeroserve git-credential get`: git's credential helper for a function repository's deploy token.

`zeroserve init` creates a deploy token for the new function, writes it to `.git/zeroserve-credentials`
(mode 0600, inside the repository's git dir, so it is never committed) and configures, for the
platform's URL only:

    credential.http://HOST:PORT.helper = ""                                  (no other helper sees it)
    credential.http://HOST:PORT.helper = !'PYTHON' -m zeroserve.cli git-credential

So the remote URL carries no secret (`git remote -v` shows none), `.git/config` holds no token, and
no keychain or `store` helper configured globally ever receives it. git runs the helper in the
repository's top level; it answers only for the protocol and host the token was made for, and
ignores `store` and `erase` (the token stays until `zeroserve token revoke`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

CREDENTIALS_FILE = "zeroserve-credentials"
USERNAME = "zeroserve"


def git_credential(
    operation: Annotated[str, typer.Argument(help="get, store or erase (git passes it)")],
) -> None:
    """Git's credential helper for repositories made by `zeroserve init` (git runs it; see docs/security.md)."""
    attributes = read_attributes(sys.stdin.read())
    if operation != "get":
        return  # store / erase: the token lives in .git/zeroserve-credentials until it is revoked
    stored = load_credentials(Path.cwd())
    if stored is None:
        return
    if attributes.get("protocol") != stored.get("protocol") or attributes.get("host") != stored.get("host"):
        return  # another server: not ours to answer
    sys.stdout.write(f"username={stored.get('username', USERNAME)}\npassword={stored['password']}\n")


def read_attributes(text: str) -> dict[str, str]:
    """git's credential protocol: `key=value` lines up to a blank line."""
    attributes = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition("=")
        if sep:
            attributes[key] = value
    return attributes


def git_common_dir(cwd: Path) -> Path | None:
    try:
        result = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=cwd, capture_output=True,
                                text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return (cwd / result.stdout.strip()).resolve()


def load_credentials(cwd: Path) -> dict[str, str] | None:
    git_dir = git_common_dir(cwd)
    if git_dir is None:
        return None
    try:
        stored = json.loads((git_dir / CREDENTIALS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or not isinstance(stored.get("password"), str):
        return None
    return stored


def save_credentials(git_dir: Path, protocol: str, host: str, token: str) -> Path:
    """Write the token for `protocol://host` beside the repository's config, readable by its owner only."""
    path = git_dir / CREDENTIALS_FILE
    document = json.dumps({"protocol": protocol, "host": host, "username": USERNAME, "password": token})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # also when the file existed with wider permissions
        handle.write(document + "\n")
    return path


def helper_command() -> str:
    """The credential.helper value: this interpreter running this CLI, so no PATH lookup is needed."""
    import shlex

    return f"!{shlex.quote(sys.executable)} -m zeroserve.cli git-credential"
