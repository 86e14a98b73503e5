"""Scoped API tokens: their format, how they are stored (a hash), and what each scope may do.

A token is `zst_` + 43 URL-safe characters (32 random bytes). The prefix lets secret scanners and
people recognise one; the 256 random bits make guessing hopeless, which is why a plain SHA-256 is the
right way to store it: bcrypt and argon2 exist to slow down guessing *low-entropy passwords*, and
here they would only add tens of milliseconds to every request (invokes included) while making a
lookup by hash impossible (each salted hash would have to be tried in turn).

Scopes, each limited to the functions a token names (none named: every function, for `read` and
`invoke`; a `deploy` token must name its functions):

- `read`: read the functions it names (describe, revisions, traffic, status, events) and clone their
  git repositories; with no function named, also list functions and read every event.
- `deploy`: what `read` may on its functions (but never list functions), plus deploy them (upload,
  `git push`) and change their traffic (traffic, tags, rollback, promote).
- `invoke`: call the `auth: token` functions it names at their function URL; nothing on the control API.
- `admin`: everything, like the operator's `DATA/token`: delete functions, manage tokens and webhook secrets.

Pure: no I/O, no clock reads (`now` is passed in).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal, get_args

Scope = Literal["read", "deploy", "invoke", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
TOKEN_PREFIX = "zst_"
TOKEN_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
MAX_FUNCTIONS = 100  # functions one token may name
_EXPIRY = re.compile(r"^(\d+)(d|w)$")
_EXPIRY_UNITS = {"d": 86400, "w": 7 * 86400}
MAX_EXPIRY_SECONDS = 10 * 365 * 86400

# What a request wants to do to a function (or, for None, to the platform as a whole).
Action = Literal["read", "deploy", "invoke", "admin"]


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(secret: str) -> str:
    """What is stored of a token: its SHA-256, hex (see the module docstring for why not bcrypt)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_token_name(name: str) -> str:
    if not isinstance(name, str) or not TOKEN_NAME.match(name):
        raise ValueError(f"token name {name[:64]!r} must be 1-63 characters of a-z, 0-9, '.', '_' and '-', "
                         "starting and ending with a letter or digit")
    return name


def parse_expiry(text: str) -> float:
    """Seconds from '30d', '2w', '12h', '90m' or '45s' (the token then expires that long after creation)."""
    from protocol.durations import parse_duration

    value = text.strip()
    match = _EXPIRY.match(value)
    try:
        seconds = int(match[1]) * _EXPIRY_UNITS[match[2]] if match else parse_duration(value)
    except ValueError:
        raise ValueError(f"expiry '{value[:40]}' is not a duration: use forms like '30d', '2w', '12h', '90m'") from None
    if not 0 < seconds <= MAX_EXPIRY_SECONDS:
        raise ValueError(f"expiry '{value[:40]}' must be more than 0s and at most 10 years")
    return float(seconds)


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a request is (a token's name) and what it may do."""

    name: str
    scope: Scope
    functions: tuple[str, ...] = ()  # () = every function (read, invoke, admin)

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    def covers(self, function: str) -> bool:
        return not self.functions or function in self.functions

    def allows(self, action: Action, function: str | None) -> bool:
        """Whether this grant may do `action` to `function` (None: to the platform, e.g. list functions)."""
        if self.scope == "admin":
            return True
        if action == "admin":
            return False
        if function is None:  # platform-wide: listing functions, every function's events
            return action == "read" and self.scope == "read" and not self.functions
        if not self.covers(function):
            return False
        if self.scope == "invoke":
            return action == "invoke"
        if self.scope == "read":
            return action == "read"
        return action in ("read", "deploy")  # deploy

    def describe(self) -> str:
        """'token ci-demo (scope deploy: demo)', for a refusal; never the secret."""
        reach = ", ".join(self.functions) if self.functions else "every function"
        if self.scope == "admin":
            return f"token {self.name} (scope admin)"
        return f"token {self.name} (scope {self.scope}: {reach})"


def refusal(grant: Grant, action: Action, function: str | None, what: str) -> str:
    """The 403 message: who asked, what its scope allows, and what `what` would need."""
    if action == "admin":
        need = "an admin token"
    elif function is None:
        need = "a read token for every function (or an admin token)"
    else:
        need = {"read": "a read or deploy", "deploy": "a deploy", "invoke": "an invoke"}[action]
        need = f"{need} token for {function} (or an admin token)"
    return f"forbidden: {grant.describe()} cannot {what}; that needs {need}"


__all__ = [
    "MAX_FUNCTIONS", "SCOPES", "TOKEN_PREFIX", "Action", "Grant", "Scope", "check_token_name",
    "generate_token", "parse_expiry", "refusal", "token_hash",
]
