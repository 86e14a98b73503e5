"""Who a request is: the operator's admin token (DATA/token) or a scoped token, and what it may do.

One `Credentials` per platform serves every door: the control API (zeroserve/api/auth.py), the git
remote (`git_access`) and the function URLs of `auth: token` functions (`invoke_check`, handed to the
activator as a callable, so the activator never imports the registry).

Every check runs in memory: the tokens are loaded once at start and again after each create or
revoke (both go through this object), so a function URL never waits on SQLite. A presented token
is hashed and looked up by its hash; the admin token is compared with `hmac.compare_digest`, so
neither path's timing depends on how much of a guess was right. A use updates `last_used` in
memory and is written to the registry at most once a minute per token, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from activator.contracts import CallerCheck
from protocol.manifest import check_dns1035
from protocol.tokens import (
    MAX_FUNCTIONS,
    SCOPES,
    Action,
    Grant,
    Scope,
    check_token_name,
    generate_token,
    refusal,
    token_hash,
)
from revisions.registry import TokenRecord, TokenTable

logger = logging.getLogger("zeroserve.credentials")

ADMIN = Grant(name="admin", scope="admin")  # the operator's DATA/token
LAST_USED_WRITE_INTERVAL = 60.0  # seconds between writes of one token's last use
_BEARER = re.compile(rb"^[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *$")


class CredentialError(Exception):
    """A request without a valid credential (401) or beyond its grant (403); the message names the token
    and its scope, never the secret."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class NewToken:
    secret: str  # shown once, then never again: only its hash is stored
    record: TokenRecord


class Credentials:
    def __init__(self, admin_token: str, tokens: TokenTable, *, clock: Callable[[], float] = time.time):
        self._admin = admin_token.encode()
        self._table = tokens
        self._clock = clock
        self._by_hash: dict[str, TokenRecord] = tokens.by_hash()
        self._used: dict[str, float] = {}  # token name -> last use, not yet written
        self._written: dict[str, float] = {}  # token name -> when its last use was last written
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------ identify

    def identify(self, secret: str | None) -> Grant:
        """The grant of a presented secret; CredentialError 401 when it is none of the platform's."""
        if not secret:
            raise CredentialError(401, "unauthorized: send 'Authorization: Bearer <token>' (an API token: "
                                       "`zeroserve token create`, or the operator's DATA/token)")
        presented = secret.encode("utf-8", "surrogatepass")
        if hmac.compare_digest(presented, self._admin):
            return ADMIN
        record = self._by_hash.get(token_hash(secret))  # keyed by a hash: the lookup's timing says nothing
        if record is None:
            raise CredentialError(401, "unauthorized: the token is not valid (revoked, or never issued)")
        now = self._clock()
        if record.expired(now):
            raise CredentialError(401, f"unauthorized: token {record.name} expired "
                                       f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(record.expires))}")
        self._note_use(record.name, now)
        return Grant(name=record.name, scope=record.scope, functions=record.functions)

    def is_ours(self, secret: str) -> bool:
        """Whether `secret` is one of the platform's tokens (admin, or scoped and not revoked): never for user code."""
        presented = secret.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(presented, self._admin) or token_hash(secret) in self._by_hash

    def authorize(self, secret: str | None, action: Action, function: str | None, what: str) -> Grant:
        """The grant, when it may do `action` to `function`; else CredentialError 401 or 403 naming its scope."""
        grant = self.identify(secret)
        if not grant.allows(action, function):
            raise CredentialError(403, refusal(grant, action, function, what))
        return grant

    # ------------------------------------------------------------------- the doors other than the API

    def invoke_check(self, authorization: bytes | None, function: str) -> CallerCheck:
        """For the activator: may this Authorization header call the `auth: token` function `function`?"""
        secret = _bearer(authorization)
        try:
            self.authorize(secret, "invoke", function, f"invoke function '{function}'")
        except CredentialError as refused:
            return CallerCheck(False, refused.status, refused.message,
                               platform_credential=secret is not None and self.is_ours(secret))
        return CallerCheck(True, platform_credential=True)

    def git_access(self, authorization: str | None, function: str, push: bool) -> tuple[int, str] | None:
        """For the git remote: None when the request may fetch (or push, with `push`) `function`'s
        repository; else (401 or 403, message)."""
        secret = _git_secret(authorization)
        action: Action = "deploy" if push else "read"
        what = f"{'push to' if push else 'fetch'} {function}.git"
        try:
            self.authorize(secret, action, function, what)
        except CredentialError as refused:
            return refused.status, refused.message
        return None

    # ----------------------------------------------------------------------------------- manage

    def create(self, *, scope: str, functions: Sequence[str] = (), name: str | None = None,
               expires_in: float | None = None) -> NewToken:
        """A new token; ValueError naming the field for a bad request, ConflictError for a taken name."""
        if scope not in SCOPES:
            raise ValueError(f"scope '{str(scope)[:40]}' must be one of {', '.join(SCOPES)}")
        checked: Scope = scope  # type: ignore[assignment]  # checked against SCOPES just above
        names = tuple(dict.fromkeys(check_dns1035(f, "function") for f in functions))
        if len(names) > MAX_FUNCTIONS:
            raise ValueError(f"a token may name at most {MAX_FUNCTIONS} functions (got {len(names)})")
        if checked == "admin" and names:
            raise ValueError("an admin token covers every function; name no --function for scope admin")
        if checked == "deploy" and not names:
            raise ValueError("a deploy token must name the functions it deploys (--function F); "
                             "for every function use an admin token")
        if expires_in is not None and not 0 < expires_in <= 10 * 365 * 86400:
            raise ValueError("expires_in must be more than 0 seconds and at most 10 years")
        if name is None:
            name = f"{checked}-{'-'.join(names)[:40].rstrip('-') or 'all'}-{secrets.token_hex(3)}"
        check_token_name(name)
        secret = generate_token()
        expires = None if expires_in is None else self._clock() + expires_in
        record = self._table.create(name, token_hash(secret), checked, names, expires)
        self._reload()
        logger.info("token %s created (scope %s)", name, checked)
        return NewToken(secret, record)

    def revoke(self, name: str) -> TokenRecord:
        record = self._table.revoke(name)
        self._reload()
        logger.info("token %s revoked", name)
        return record

    def list(self) -> list[TokenRecord]:
        self.flush()
        return self._table.list()

    def flush(self) -> None:
        """Write the last uses noted in memory (blocking: call it off the event loop)."""
        with self._lock:
            pending, self._used = self._used, {}
        try:
            self._table.touch(pending)
        except Exception:  # a busy database: the times stay in memory for the next write
            logger.exception("recording when tokens were last used failed")
            with self._lock:
                for token, when in pending.items():
                    self._used[token] = max(when, self._used.get(token, 0.0))

    def _reload(self) -> None:
        self._by_hash = self._table.by_hash()  # one assignment: a concurrent check sees the old or new set

    def _note_use(self, name: str, now: float) -> None:
        with self._lock:
            self._used[name] = now
            if now - self._written.get(name, 0.0) < LAST_USED_WRITE_INTERVAL:
                return
            self._written[name] = now
        try:
            asyncio.get_running_loop().run_in_executor(None, self.flush)
        except RuntimeError:  # no event loop in this thread (a thread-pool caller): write here
            self.flush()


def _bearer(authorization: bytes | str | None) -> str | None:
    if authorization is None:
        return None
    raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    match = _BEARER.match(raw.strip())
    return match[1].decode("latin-1") if match else None


def _git_secret(authorization: str | None) -> str | None:
    """The token of a git request: HTTP basic's password (any user name), or a bearer token."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded.partition(b":")[2].decode("latin-1") or None


__all__ = ["ADMIN", "CredentialError", "Credentials", "NewToken"]
