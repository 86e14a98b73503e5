"""zeroserve/credentials.py over a real registry: who a secret is, at each door, and the token lifecycle."""

from __future__ import annotations

import base64

import pytest

from revisions.registry import Registry
from zeroserve.credentials import ADMIN, CredentialError, Credentials

ADMIN_TOKEN = "the-operators-admin-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    registry = Registry(tmp_path / "registry.db", clock=clock)
    try:
        yield Credentials(ADMIN_TOKEN, registry.tokens, clock=clock), registry, clock
    finally:
        registry.close()


def basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"anyone:{secret}".encode()).decode()


def test_admin_unknown_expired_and_revoked(setup):
    credentials, _, clock = setup
    assert credentials.identify(ADMIN_TOKEN) is ADMIN
    for bad in (None, "", "nope", ADMIN_TOKEN + "x"):
        with pytest.raises(CredentialError) as refused:
            credentials.identify(bad)
        assert refused.value.status == 401
    brief = credentials.create(scope="read", functions=["demo"], name="brief", expires_in=60)
    assert credentials.identify(brief.secret).name == "brief"
    clock.now += 60
    with pytest.raises(CredentialError, match="token brief expired"):
        credentials.identify(brief.secret)
    kept = credentials.create(scope="read", name="kept")
    credentials.revoke("kept")
    with pytest.raises(CredentialError, match="not valid"):
        credentials.identify(kept.secret)


def test_create_refuses_what_makes_no_sense(setup):
    credentials, _, _ = setup
    for kwargs, message in (({"scope": "owner"}, "scope 'owner'"), ({"scope": "deploy"}, "must name the functions"),
                            ({"scope": "admin", "functions": ["x"]}, "covers every function"),
                            ({"scope": "read", "functions": ["Bad_Name"]}, "DNS-1035"),
                            ({"scope": "read", "name": "Bad Name"}, "token name"),
                            ({"scope": "read", "expires_in": 0}, "expires_in")):
        with pytest.raises(ValueError, match=message):
            credentials.create(**kwargs)
    generated = credentials.create(scope="deploy", functions=["demo", "demo"])
    assert generated.record.functions == ("demo",) and generated.record.name.startswith("deploy-demo-")


def test_each_door_asks_for_its_own_action(setup):
    credentials, _, _ = setup
    deployer = credentials.create(scope="deploy", functions=["demo"], name="ci").secret
    caller = credentials.create(scope="invoke", functions=["priv"], name="caller").secret

    assert credentials.git_access(basic(deployer), "demo", push=True) is None
    assert credentials.git_access(f"Bearer {deployer}", "demo", push=False) is None
    status, message = credentials.git_access(basic(deployer), "other", push=True)
    assert status == 403 and "scope deploy: demo" in message and "push to other.git" in message
    assert credentials.git_access(None, "demo", push=False)[0] == 401
    assert credentials.git_access("Basic !!!not-base64", "demo", push=False)[0] == 401
    assert credentials.git_access(basic(caller), "priv", push=False)[0] == 403

    allowed = credentials.invoke_check(f"Bearer {caller}".encode(), "priv")
    assert allowed.allowed and allowed.platform_credential
    other = credentials.invoke_check(f"bearer {caller}".encode(), "demo")  # the scheme is case-insensitive
    assert (other.allowed, other.status, other.platform_credential) == (False, 403, True)
    deploy_as_caller = credentials.invoke_check(f"Bearer {deployer}".encode(), "priv")
    assert deploy_as_caller.status == 403 and "cannot invoke function 'priv'" in deploy_as_caller.reason
    foreign = credentials.invoke_check(b"Bearer someone-elses", "priv")
    assert (foreign.allowed, foreign.status, foreign.platform_credential) == (False, 401, False)
    assert credentials.invoke_check(f"Bearer {ADMIN_TOKEN}".encode(), "priv").allowed
    revoked = credentials.create(scope="read", name="gone").secret
    credentials.revoke("gone")  # unknown now, and never sent on to a function either way
    assert credentials.invoke_check(f"Bearer {revoked}".encode(), "demo").platform_credential is False


def test_last_use_is_kept_and_written(setup):
    credentials, registry, clock = setup
    secret = credentials.create(scope="read", name="watcher").secret
    credentials.identify(secret)  # no event loop here: the first use is written at once
    assert registry.tokens.list()[0].last_used == clock.now
    clock.now += 10
    credentials.identify(secret)  # within a minute: only in memory ...
    assert registry.tokens.list()[0].last_used == clock.now - 10
    assert credentials.list()[0].last_used == clock.now  # ... until listed (or the platform stops)
