"""Deploys for code hosted elsewhere: GitHub-style signed push events, and the fetch of the commit they name.

A repository host POSTs a push event to `/api/v1/hooks/git?function=<fn>`, signed with the function's
shared secret (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`). Only a verified event
is read further; its `repository.clone_url` and `after` commit are fetched into a scratch repository
and deployed through the same `deploy_git` path as a push. Sources are limited to http(s), file:// and
local paths, and git runs with GIT_ALLOW_PROTOCOL set accordingly, so an event cannot make the
platform run `ext::` commands or reach out over ssh.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from deploy.git.repos import git_environment
from protocol.manifest import check_dns1035

SIGNATURE_HEADER = "X-Hub-Signature-256"
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
ALLOWED_PROTOCOLS = "file:http:https"
FETCH_TIMEOUT = 300.0
_COMMIT_ID = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
_OUTPUT_TAIL = 1500


class WebhookError(ValueError):
    """An event the platform will not act on; the message names the field and the rule."""


class FetchError(Exception):
    """The event's repository or commit could not be fetched; the message never holds credentials."""


@dataclass(frozen=True)
class PushEvent:
    ref: str
    after: str
    clone_url: str
    repository: str | None
    deleted: bool


def signature_for(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value a sender computes: "sha256=" + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature_for(secret, body).encode(), header.strip().encode())


def parse_push_event(payload: Any) -> PushEvent:
    """The fields of a push event the deploy needs; WebhookError names the one missing or malformed."""
    if not isinstance(payload, dict):
        raise WebhookError("event: the body must be a JSON object (a GitHub-style push event)")
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise WebhookError("event.ref: must be a full ref name such as 'refs/heads/main'")
    deleted = bool(payload.get("deleted", False))
    after = payload.get("after")
    if not isinstance(after, str) or not _COMMIT_ID.match(after):
        raise WebhookError("event.after: must be the pushed commit's full id (40 or 64 hex digits)")
    repository = payload.get("repository")
    if not isinstance(repository, dict):
        raise WebhookError("event.repository: must be an object with clone_url")
    clone_url = repository.get("clone_url")
    if not isinstance(clone_url, str) or not clone_url.strip():
        raise WebhookError("event.repository.clone_url: must be the repository's URL")
    name = repository.get("name")
    return PushEvent(ref=ref, after=after, clone_url=check_source_url(clone_url.strip()),
                     repository=name if isinstance(name, str) else None, deleted=deleted)


def check_source_url(url: str) -> str:
    """http(s)://, file:// or an absolute local path; anything else (ssh, git://, ext::) is refused."""
    if url.startswith("-"):
        raise WebhookError("event.repository.clone_url: must not start with '-'")
    if url.startswith("/"):
        return url
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise WebhookError(f"event.repository.clone_url: {redact(url)!r} is not an http(s)://, file:// URL "
                           "or an absolute path")
    return url


def redact(url: str) -> str:
    """The URL with any user:password removed, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def fetch_commit(url: str, commit: str, ref: str, workdir: Path, *, timeout: float = FETCH_TIMEOUT) -> Path:
    """Fetch `commit` of `url` into a new bare repository under `workdir`; returns the repository.

    Asks for the commit itself first (what GitHub and protocol v2 servers allow), then falls back to
    the event's ref, and checks that the commit arrived either way.
    """
    repo = Path(workdir) / "source.git"
    env = git_environment({"GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS})
    _git(["init", "--quiet", "--bare", str(repo)], env, timeout, url)
    attempts = [[commit], [f"+{ref}:refs/zeroserve/fetched"]]
    failure = ""
    for refspec in attempts:
        fetch = ["-C", str(repo), "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--depth=1"]
        result = _git([*fetch, "--", url, *refspec], env, timeout, url, check=False)
        if result.returncode == 0 and _has_commit(repo, commit, env):
            return repo
        failure = _clean(result.stderr, url) or failure
    if failure:
        raise FetchError(f"fetching {commit[:12]} from {redact(url)} failed: {failure}")
    raise FetchError(f"commit {commit[:12]} is not in {redact(url)} ({ref})")


def _has_commit(repo: Path, commit: str, env: dict[str, str]) -> bool:
    result = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"], env=env,
                            capture_output=True, stdin=subprocess.DEVNULL, check=False)
    return result.returncode == 0


def _git(args: list[str], env: dict[str, str], timeout: float, url: str, *,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        result = subprocess.run(["git", *args], env=env, capture_output=True, stdin=subprocess.DEVNULL,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(f"fetching from {redact(url)} took longer than {timeout:g} s") from None
    if check and result.returncode != 0:
        raise FetchError(f"git {args[0]} failed: {_clean(result.stderr, url)}")
    return result


def _clean(stderr: bytes, url: str) -> str:
    text = stderr.decode("utf-8", "replace").strip().replace(url, redact(url))
    return text if len(text) <= _OUTPUT_TAIL else "…" + text[-_OUTPUT_TAIL:]


class WebhookSecrets:
    """One secret per function, DATA/webhooks/<fn>.secret (mode 0600), set through the control API."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, function: str) -> Path:
        return self.directory / f"{check_dns1035(function, 'function')}.secret"

    def get(self, function: str) -> bytes | None:
        try:
            secret = self._path(function).read_bytes().strip()
        except FileNotFoundError:
            return None
        return secret or None

    def set(self, function: str, secret: str | None = None) -> str:
        """Store `secret` (or a new random one) for `function`; returns it (the only time it is shown)."""
        if secret is None:
            secret = secrets.token_hex(32)
        elif not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or not secret.isprintable():
            raise WebhookError(f"secret: must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} "
                               "printable characters")
        path = self._path(function)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
        staging.replace(path)
        return secret

    def delete(self, function: str) -> bool:
        try:
            self._path(function).unlink()
        except FileNotFoundError:
            return False
        return True


__all__ = [
    "SIGNATURE_HEADER", "FetchError", "PushEvent", "WebhookError", "WebhookSecrets", "check_source_url",
    "fetch_commit", "parse_push_event", "redact", "signature_for", "verify_signature",
]
