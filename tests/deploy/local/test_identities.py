"""With identities (the platform runs as root), each function's replicas run as its own user, in a view
of the file system that shows them their own files and the runtime, and nothing of another function's."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest

from deploy.local.identities import PerFunctionIdentities, base_for
from protocol.manifest import load_manifest
from tests.deploy.local.harness import http, run, running_supervisor, write_echo_function

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root can run replicas as other users")


@pytest.mark.parametrize("factory", ["echo_app:create_app", "threaded_echo:create_app"], ids=["forked", "spawned"])
def test_each_function_runs_as_its_own_user_and_reaches_only_its_own_files(tmp_path: Path, factory: str) -> None:
    functions = tmp_path / "functions"  # under pytest's 0700 temp root: only the view makes it reachable
    beta = write_echo_function(functions / "beta", name="beta")
    probes = ":".join([str(beta / "model.json"), str(tmp_path / "run" / "replicas"), str(tmp_path),
                       str(tmp_path / "run" / "home" / "beta")])
    alpha = write_echo_function(functions / "alpha", name="alpha", extra_yaml=f"env:\n  ECHO_PROBE: '{probes}'\n")
    identities = PerFunctionIdentities(tmp_path / "users.json", base_for(tmp_path))

    async def scenario() -> None:
        async with running_supervisor(tmp_path / "run", app_factory=factory, identities=identities,
                                      shared_dirs=(functions,)) as (sv, owner):
            for name, directory in (("alpha", alpha), ("beta", beta)):
                sv.register_revision(f"{name}-00001", directory, load_manifest(directory))
                await sv.set_scale(f"{name}-00001", 1)
            seen = {}
            for name in ("alpha", "beta"):
                revision = f"{name}-00001"
                (endpoint,) = await owner.wait_for(partial(owner.endpoints, revision), f"a {name} replica", 60)
                seen[name] = (await http(endpoint, "GET", "/debug"))[1]
            for name, directory in (("alpha", alpha), ("beta", beta)):
                identity = identities.for_function(name)
                assert (seen[name]["uid"], seen[name]["gid"], seen[name]["groups"]) == (identity.uid,
                                                                                      identity.gid, [])
                assert seen[name]["cwd"] == str(directory.resolve())
                # The spec (with the env) came in a memfd that nobody keeps open, and no other function's.
                assert not [f for f in seen[name]["open_files"] if "zeroserve-spec" in f]
            assert seen["alpha"]["uid"] != seen["beta"]["uid"]
            assert all(result != "readable" for result in seen["alpha"]["probe"].values()), seen["alpha"]["probe"]
            assert len(seen["alpha"]["probe"]) == 4
            # Its own files: the artifact is the platform's, read-only to the function's group.
            assert alpha.stat().st_gid == identities.for_function("alpha").gid
            assert (alpha.stat().st_mode & 0o777) == 0o750 and ((alpha / "model.json").stat().st_mode & 0o777) == 0o440

    run(scenario(), timeout=120)
