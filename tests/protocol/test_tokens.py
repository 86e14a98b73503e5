"""Scoped tokens, the pure part: format, hash, expiry, and what each scope allows."""

from __future__ import annotations

import hashlib

import pytest

from protocol.tokens import Grant, check_token_name, generate_token, parse_expiry, refusal, token_hash


def test_tokens_are_prefixed_random_and_stored_as_their_sha256():
    first, second = generate_token(), generate_token()
    assert first.startswith("zst_") and len(first) == 4 + 43 and first != second
    assert token_hash(first) == hashlib.sha256(first.encode()).hexdigest()


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("2w", 14 * 86400), ("12h", 43200),
                                               ("90m", 5400), ("45s", 45), ("1h30m", 5400)])
def test_expiry_forms(text, seconds):
    assert parse_expiry(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0s", "-1d", "", "4000w"])
def test_bad_expiries_name_the_rule(text):
    with pytest.raises(ValueError, match="expiry"):
        parse_expiry(text)


def test_token_names():
    assert check_token_name("ci-demo.v2_a") == "ci-demo.v2_a"
    for bad in ("", "-x", "x-", "Upper", "a" * 64, "sp ace", "../x"):
        with pytest.raises(ValueError, match="token name"):
            check_token_name(bad)


ADMIN = Grant("op", "admin")
DEPLOY = Grant("ci", "deploy", ("demo",))
READ_ONE = Grant("r1", "read", ("demo",))
READ_ALL = Grant("ra", "read")
INVOKE = Grant("inv", "invoke", ("priv",))
INVOKE_ALL = Grant("inva", "invoke")


@pytest.mark.parametrize(("grant", "action", "function", "allowed"), [
    (ADMIN, "admin", None, True), (ADMIN, "invoke", "x", True), (ADMIN, "read", None, True),
    (DEPLOY, "deploy", "demo", True), (DEPLOY, "read", "demo", True), (DEPLOY, "deploy", "other", False),
    (DEPLOY, "read", "other", False), (DEPLOY, "read", None, False), (DEPLOY, "invoke", "demo", False),
    (DEPLOY, "admin", "demo", False),
    (READ_ONE, "read", "demo", True), (READ_ONE, "deploy", "demo", False), (READ_ONE, "read", None, False),
    (READ_ALL, "read", "anything", True), (READ_ALL, "read", None, True), (READ_ALL, "deploy", "x", False),
    (INVOKE, "invoke", "priv", True), (INVOKE, "invoke", "demo", False), (INVOKE, "read", "priv", False),
    (INVOKE_ALL, "invoke", "anything", True), (INVOKE_ALL, "read", None, False),
])
def test_what_each_scope_allows(grant, action, function, allowed):
    assert grant.allows(action, function) is allowed


def test_a_refusal_names_the_token_its_scope_and_what_was_needed():
    message = refusal(DEPLOY, "read", "other", "GET /api/v1/functions/other")
    assert message == ("forbidden: token ci (scope deploy: demo) cannot GET /api/v1/functions/other; that needs "
                       "a read or deploy token for other (or an admin token)")
    assert "needs an admin token" in refusal(DEPLOY, "admin", "demo", "delete demo")
    assert "scope read: every function" in refusal(READ_ALL, "deploy", "x", "deploy x")
