"""Who may call an `auth: token` function, what reaches the replica, and the cold-start header.

The activator holds no token store: it asks the `check_caller` callable the platform passes in
(zeroserve/credentials.py's `invoke_check`); here a small table of known tokens plays that part.
"""

from __future__ import annotations

import asyncio

from activator import RevisionSettings
from activator.contracts import CallerCheck
from tests.activator.harness import StaticResolver, client_session, run, running_activator, wait_for

KNOWN = {b"Bearer invoke-private": True, b"Bearer deploy-other": False}


def check_caller(authorization: bytes | None, function: str) -> CallerCheck:
    """A stand-in for the platform's verifier: one token may invoke `private`, another is a platform token
    of the wrong scope; anything else is unknown."""
    if authorization not in KNOWN:
        return CallerCheck(False, 401, "unauthorized: the token is not valid")
    if KNOWN[authorization] and function == "private":
        return CallerCheck(True, platform_credential=True)
    return CallerCheck(False, 403, "forbidden: token deploy-other (scope deploy: other) cannot invoke",
                       platform_credential=True)


def routes() -> StaticResolver:
    return StaticResolver(routes={"private": {None: "private-00001"}, "public": {None: "public-00001"}},
                          settings={"private-00001": RevisionSettings(requires_token=True)})


def test_token_functions_need_a_token_the_checker_accepts(shared_replicas):
    r1, _ = shared_replicas

    async def scenario():
        async with running_activator(routes(), check_caller=check_caller) as (activator, url), \
                client_session() as client:
            activator.set_endpoints("private-00001", [r1.endpoint])
            async with client.get(f"{url}/fn/private/echo") as missing:
                assert missing.status == 401 and missing.headers["www-authenticate"].startswith("Bearer")
                assert "auth: token" in (await missing.json())["error"]
            async with client.get(f"{url}/fn/private/echo", headers={"Authorization": "Bearer guess"}) as wrong:
                assert wrong.status == 401 and "not valid" in (await wrong.json())["error"]
            async with client.get(f"{url}/fn/private/echo",
                                  headers={"Authorization": "Bearer deploy-other"}) as scoped:
                assert scoped.status == 403 and "www-authenticate" not in scoped.headers
                assert "scope deploy: other" in (await scoped.json())["error"]
            async with client.get(f"{url}/fn/private/echo",
                                  headers={"Authorization": "Bearer invoke-private"}) as allowed:
                assert allowed.status == 200
                seen = {name for name, _ in (await allowed.json())["headers"]}
                assert "authorization" not in seen  # the replica never sees the token

    run(scenario())


def test_without_a_checker_token_functions_refuse_everyone(shared_replicas):
    async def scenario():
        async with running_activator(routes()) as (activator, url), client_session() as client:
            activator.set_endpoints("private-00001", [shared_replicas[0].endpoint])
            async with client.get(f"{url}/fn/private/echo",
                                  headers={"Authorization": "Bearer invoke-private"}) as refused:
                assert refused.status == 401

    run(scenario())


def test_public_functions_get_foreign_authorization_but_never_a_platform_token(shared_replicas):
    async def scenario():
        async with running_activator(routes(), check_caller=check_caller) as (activator, url), \
                client_session() as client:
            activator.set_endpoints("public-00001", [shared_replicas[0].endpoint])
            for header, forwarded in (("Bearer their-own-scheme", True), ("Bearer deploy-other", False),
                                      ("Bearer invoke-private", False)):
                async with client.get(f"{url}/fn/public/echo", headers={"Authorization": header}) as response:
                    assert response.status == 200
                    headers = dict((await response.json())["headers"])
                    assert (headers.get("authorization") == header) is forwarded, header

    run(scenario())


def test_a_request_that_waited_at_zero_says_cold_start_and_a_warm_one_does_not(shared_replicas):
    async def scenario():
        async with running_activator(routes()) as (activator, url), client_session() as client:
            async def call():
                async with client.get(f"{url}/fn/public/echo") as response:
                    return response.status, response.headers.get("zeroserve-cold-start")

            cold = asyncio.create_task(call())
            await wait_for(lambda: activator.queue_depth("public-00001") == 1, what="the request waiting at zero")
            activator.set_endpoints("public-00001", [shared_replicas[0].endpoint])
            assert await cold == (200, "true")
            assert await call() == (200, None)

    run(scenario())
