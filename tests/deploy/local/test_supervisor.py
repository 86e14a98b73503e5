"""The local supervisor with real processes: a zygote forks replicas that serve on real Unix sockets."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from deploy.local import Backoff, UnknownRevisionError
from functions.isolation.environment import INHERITED_NAMES, INHERITED_PREFIXES
from protocol.manifest import load_manifest
from tests.deploy.local.harness import (
    Owner,
    alive,
    http,
    make_supervisor,
    run,
    running_supervisor,
    write_echo_function,
)

REV = "echo-00001"


def test_scale_up_serves_over_uds_then_scale_down_drains_and_removes_everything(tmp_path: Path,
                                                                                 run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "echo")

    async def scenario() -> None:
        async with running_supervisor(run_dir) as (sv, owner):
            sv.register_revision(REV, fn, load_manifest(fn))
            await sv.set_scale(REV, 1)
            assert sv.status(REV).desired == 1
            (first,) = await owner.wait_for(lambda: owner.endpoints(REV), "one ready replica")
            status, body, headers = await http(first, "GET", "/v2/health/ready")
            assert (status, body) == (200, {"ready": True})
            status, body, headers = await http(first, "POST", "/v2/models/echo/infer",
                                               {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",
                                                            "data": [1.5]}]})
            assert status == 200 and body["outputs"][0]["data"] == [1.5]
            assert headers["zeroserve-revision"] == REV
            (info,) = sv.replicas(REV)
            assert info.pid == body["pid"] and info.mode == "fork" and info.state == "ready"
            assert Path(f"/proc/{info.pid}/comm").read_text().strip() == first.replica_id[-15:]
            assert set(info.timings_ms) == {"fork", "load", "listen", "report", "total"}

            await sv.set_scale(REV, 3)
            endpoints = await owner.wait_for(lambda: len(owner.endpoints(REV)) == 3 and owner.endpoints(REV),
                                             "three ready replicas")
            pids = {(await http(e, "GET", "/debug"))[1]["pid"] for e in endpoints}
            assert len(pids) == 3
            assert len({e.socket_path for e in endpoints}) == 3
            assert sv.status(REV).ready == 3

            # While a replica drains it must already be out of routing, and still alive.
            async def check_alive_while_draining(revision: str, replica_id: str) -> None:
                endpoint = next(e for e in endpoints if e.replica_id == replica_id)
                assert (await http(endpoint, "GET", "/v2/health/ready"))[0] == 200

            owner.drain_hook = check_alive_while_draining
            await sv.set_scale(REV, 0)
            assert owner.endpoints(REV) == []  # routing is updated before set_scale returns
            await owner.wait_for(lambda: not sv.replicas(REV), "all replicas gone")
            assert sorted(d[1] for d in owner.drains) == sorted(e.replica_id for e in endpoints)
            for _, replica_id, timeout, routable in owner.drains:
                assert timeout == 7.0 and replica_id not in routable
            assert not [pid for pid in pids if alive(pid)]
            assert not [e for e in endpoints if os.path.exists(e.socket_path)]
            status_now = sv.status(REV)
            counts = (status_now.desired, status_now.ready, status_now.starting, status_now.draining)
            assert counts == (0, 0, 0, 0)
            assert status_now.restarts == 0 and status_now.last_error is None

    run(scenario())


def test_sigkilled_replica_is_seen_at_once_and_replaced(tmp_path: Path, run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "echo")

    async def scenario() -> None:
        async with running_supervisor(run_dir) as (sv, owner):
            sv.register_revision(REV, fn, load_manifest(fn))
            await sv.set_scale(REV, 1)
            (victim,) = await owner.wait_for(lambda: owner.endpoints(REV), "a ready replica")
            pid = (await http(victim, "GET", "/debug"))[1]["pid"]
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            # The exit is an event (pidfd), not found by a periodic check or a failed request: seen within
            # seconds even on a slow, busy machine (it takes milliseconds here).
            await owner.wait_for(lambda: all(e != victim for e in owner.endpoints(REV)), "victim unrouted",
                                 timeout=5.0)
            seen_at = next(t for t, rev, eps in owner.changes if t >= killed_at and victim not in eps)
            assert seen_at - killed_at < 5.0
            (replacement,) = await owner.wait_for(lambda: owner.endpoints(REV), "a replacement")
            assert replacement.replica_id != victim.replica_id
            new_pid = (await http(replacement, "GET", "/debug"))[1]["pid"]
            assert new_pid != pid and not alive(pid)
            status = sv.status(REV)
            assert status.restarts == 1 and status.ready == 1
            await owner.wait_for(lambda: sv.status(REV).last_error, "crash recorded")
            assert "SIGKILL" in sv.status(REV).last_error and victim.replica_id in sv.status(REV).last_error
            assert not owner.failures  # a crash after ready is not a start failure

    run(scenario())


def test_corrupt_model_reports_the_load_error_and_backs_off(tmp_path: Path, run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "broken", name="broken", model="{not json")
    rev = "broken-00001"

    async def scenario() -> None:
        async with running_supervisor(run_dir, backoff=Backoff(initial=0.2, factor=4.0, maximum=30.0)) as (sv, owner):
            sv.register_revision(rev, fn, load_manifest(fn))
            await sv.set_scale(rev, 1)
            await owner.wait_for(lambda: len(owner.failures) >= 3, "three failed starts")
            times = [t for t, _, _ in owner.failures]
            _, revision, error = owner.failures[0]
            assert revision == rev
            assert "ModelLoadError" in error and "model.json could not be loaded" in error
            # Attempts wait 0.2 s, then 0.8 s (then 3.2 s): growing, never a tight loop. (Lower bounds
            # only: each gap also holds a start, whose length varies with the machine's load.)
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert gaps[0] >= 0.2 and gaps[1] >= 0.8
            status = sv.status(rev)
            assert status.ready == 0 and status.restarts >= 3 and "model.json" in status.last_error
            assert owner.endpoints(rev) == []
            # Someone asking again during the backoff hears the error at once instead of waiting.
            before = len(owner.failures)
            await sv.set_scale(rev, 1)
            await owner.wait_for(lambda: len(owner.failures) > before, "error re-reported", timeout=1.0)
            assert sv.status(rev).starting == 0  # told from memory: no start began (the next is 3.2 s out)
            assert owner.failures[-1][2] == error

    run(scenario())


def test_replica_that_exits_during_load_is_a_start_failure_with_its_exit_status(tmp_path: Path,
                                                                                 run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "crashy", name="crashy",
                             extra_yaml="env:\n  ECHO_EXIT_ON_LOAD: '3'\n")

    async def scenario() -> None:
        async with running_supervisor(run_dir, backoff=Backoff(initial=5.0)) as (sv, owner):
            sv.register_revision("crashy-00001", fn, load_manifest(fn))
            await sv.set_scale("crashy-00001", 2)
            await owner.wait_for(lambda: len(owner.failures) >= 2, "both starts failed")
            for _, _, error in owner.failures:
                assert error == "the replica process exited before it was ready (exit status 3)"
            # Two replicas launched together failing count as one attempt: the first backoff step.
            assert sv.status("crashy-00001").starting == 0
            assert not sv.replicas("crashy-00001")

    run(scenario())


def test_replica_limits_and_env_are_applied_in_the_child(tmp_path: Path, run_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The platform's own credentials: a replica's environment is an allowlist, so none of these reach it.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "platform-aws-secret")
    monkeypatch.setenv("ZEROSERVE_TOKEN", "platform-token")
    monkeypatch.setenv("SOME_DSN", "postgres://platform:secret@db/x")
    limited = write_echo_function(tmp_path / "limited", name="limited", extra_yaml=(
        "env:\n  GREETING: hello\nresources:\n  threads: 2\n  memory: 4Gi\n"))
    tiny = write_echo_function(tmp_path / "tiny", name="tiny", extra_yaml="resources:\n  memory: 16Mi\n",
                               model='{"allocate_mb": 64}')

    async def scenario() -> None:
        async with running_supervisor(run_dir, backoff=Backoff(initial=5.0)) as (sv, owner):
            sv.register_revision("limited-00001", limited, load_manifest(limited))
            sv.register_revision("tiny-00001", tiny, load_manifest(tiny))
            await sv.set_scale("limited-00001", 1)
            await sv.set_scale("tiny-00001", 1)
            (endpoint,) = await owner.wait_for(lambda: owner.endpoints("limited-00001"), "limited replica")
            _, seen, _ = await http(endpoint, "GET", "/debug")
            # RLIMIT_DATA: what the replica had mapped when confined (the runtime, < 1 GiB) + resources.memory.
            soft, hard = seen["rlimit_data"]
            assert soft == hard and (4 << 30) < soft < (5 << 30)
            assert seen["env"]["OMP_NUM_THREADS"] == "2" and seen["env"]["ZEROSERVE_THREADS"] == "2"
            assert seen["env"]["GREETING"] == "hello"
            assert seen["cwd"] == str(limited.resolve())
            # Inherited from the zygote, which must not start BLAS or telemetry threads before forking.
            assert seen["env"]["OPENBLAS_NUM_THREADS"] == "1" and seen["env"]["ORT_DISABLE_TELEMETRY"] == "1"
            names = set(seen["env_names"])
            assert not names & {"AWS_SECRET_ACCESS_KEY", "ZEROSERVE_TOKEN", "SOME_DSN", "USER", "LOGNAME"}
            assert {"HOME", "TMPDIR", "GREETING", "PATH"} <= names
            assert not names - {"HOME", "TMPDIR", "GREETING", "NUMEXPR_NUM_THREADS", "ZEROSERVE_THREADS"} - set(
                INHERITED_NAMES) - {n for n in names if n.startswith(INHERITED_PREFIXES)}
            home = run_dir / "home" / "limited"
            assert home.is_dir() and (home.stat().st_mode & 0o777) == 0o700
            await owner.wait_for(lambda: owner.failures, "tiny replica refused")
            _, revision, error = owner.failures[0]
            assert revision == "tiny-00001"
            assert error.startswith("out of memory: 16Mi (resources.memory) while loading: MemoryError"), error
            assert "out of memory: 16Mi" in (sv.status("tiny-00001").last_error or "")

    run(scenario())


def test_scale_down_while_starting_calls_the_start_off(tmp_path: Path, run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "echo")

    async def scenario() -> None:
        async with running_supervisor(run_dir) as (sv, owner):
            sv.register_revision(REV, fn, load_manifest(fn))
            await sv.set_scale(REV, 2)
            assert sv.status(REV).starting == 2
            await sv.set_scale(REV, 0)  # before the zygote has even answered
            await owner.wait_for(lambda: not sv.replicas(REV), "starts called off")
            assert all(eps == [] for _, rev, eps in owner.changes if rev == REV)
            assert not owner.failures and not owner.drains
            assert sv.status(REV).restarts == 0
            assert not list((run_dir / "replicas").glob("*.sock"))
            # And the revision still scales normally afterwards.
            await sv.set_scale(REV, 1)
            await owner.wait_for(lambda: owner.endpoints(REV), "a ready replica")

    run(scenario())


def test_stop_leaves_no_process_and_no_socket_and_start_clears_stale_ones(tmp_path: Path,
                                                                          run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "echo")
    stale_dir = run_dir / "replicas"
    stale_dir.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(stale_dir / "r1.sock"))  # left behind by a platform that crashed
    stale.close()

    async def scenario() -> None:
        owner = Owner()
        sv = make_supervisor(run_dir, owner)
        await sv.start()
        assert not (stale_dir / "r1.sock").exists()
        try:
            sv.register_revision(REV, fn, load_manifest(fn))
            await sv.set_scale(REV, 2)
            endpoints = await owner.wait_for(lambda: len(owner.endpoints(REV)) == 2 and owner.endpoints(REV),
                                             "two replicas")
            pids = [(await http(e, "GET", "/debug"))[1]["pid"] for e in endpoints]
            zygote_pid = sv.zygotes()["default"]["pid"]
            assert sv.zygotes()["default"]["threads"] == 1 and sv.zygotes()["default"]["fork_safe"]
            await sv.set_scale(REV, 3)  # one still starting when stop() comes
        finally:
            await sv.stop()
        assert owner.endpoints(REV) == []
        assert len(owner.drains) == 2
        assert not [pid for pid in [*pids, zygote_pid] if alive(pid)]
        assert list(stale_dir.iterdir()) == []
        # A second supervisor can take the run directory over.
        again = make_supervisor(run_dir, Owner())
        await again.start()
        await again.stop()

    run(scenario())


def test_bad_calls_are_refused_clearly(tmp_path: Path, run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "echo")

    async def scenario() -> None:
        owner = Owner()
        sv = make_supervisor(run_dir, owner)
        with pytest.raises(RuntimeError, match="not running"):
            sv.register_revision(REV, fn, load_manifest(fn))
            await sv.set_scale(REV, 1)
        await sv.start()
        try:
            with pytest.raises(UnknownRevisionError, match="'nope-00001' is not registered"):
                await sv.set_scale("nope-00001", 1)
            with pytest.raises(UnknownRevisionError):
                sv.status("nope-00001")
            with pytest.raises(ValueError, match="scale must be >= 0"):
                await sv.set_scale(REV, -1)
            with pytest.raises(RuntimeError, match="another zeroserve supervisor is using"):
                await make_supervisor(run_dir, owner).start()
        finally:
            await sv.stop()
        with pytest.raises(ValueError, match="too long for Unix socket paths"):
            await make_supervisor(tmp_path / ("x" * 120), owner).start()

    run(scenario())


class SteppableClock:
    """time.monotonic plus an offset a test moves forward: the supervisor's only source of time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_the_backoff_runs_on_the_injected_clock(tmp_path: Path, run_dir: Path) -> None:
    fn = write_echo_function(tmp_path / "broken", name="broken", model="{not json")
    rev = "broken-00001"
    clock = SteppableClock()

    async def scenario() -> None:
        async with running_supervisor(run_dir, backoff=Backoff(initial=600.0), clock=clock) as (sv, owner):
            sv.register_revision(rev, fn, load_manifest(fn))
            await sv.set_scale(rev, 1)
            await owner.wait_for(lambda: owner.failures and not sv.replicas(rev), "the first failed start")
            await sv.set_scale(rev, 1)
            assert sv.status(rev).starting == 0  # 600 s to wait, by the clock it was given
            clock.offset += 601.0
            await sv.set_scale(rev, 1)
            assert sv.status(rev).starting == 1  # the same clock says the backoff is over: a start begins now
            await owner.wait_for(lambda: len(owner.failures) >= 3, "the second attempt's failure")
            assert sv.status(rev).restarts == 2

    run(scenario())
