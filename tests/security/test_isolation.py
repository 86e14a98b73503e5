"""Functions cannot touch the platform or each other, against a real `zeroserve up` (docs/security.md).

A spy function probes everything it must not reach (the API token, registry.db, another function's
artifact, env and memory, the platform's environment) at build time and while serving, and reports
what it found. The platform runs with credentials in its own environment that must never show up.
Memory limits kill the replica that exceeds them and say so; nothing outlives a killed platform.

The identity checks need root (only root can switch users): without it they are skipped, and
docs/security.md says what isolation is then missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from functions.isolation.environment import INHERITED_NAMES, INHERITED_PREFIXES
from functions.isolation.view import views_available
from tests.polling import wait_for
from tests.zeroserve.control.harness import IRIS
from tests.zeroserve.platform.conftest import Platform, pid_alive, stop_leaving_nothing

NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or not views_available(),
    reason="functions get users of their own only when zeroserve runs as root and may create mount namespaces "
           "(CAP_SYS_ADMIN); otherwise they run as the platform's user and can read its files "
           "(docs/security.md, 'Running without root')")

# Credentials in the platform's own environment: no function may see any of these values.
PLATFORM_SECRETS = {
    "ZEROSERVE_TOKEN": "zs-platform-token-canary-3141",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-canary-2718",
    "GITHUB_TOKEN": "ghp-canary-1618",
}
VICTIM_SECRET = "victim-secret-canary-1414"

SPY_HANDLER = textwrap.dedent('''
    """Probes what a function must not reach; load() fails the build if anything leaks, predict() reports."""
    import json
    import os

    import numpy as np

    FORBIDDEN_ENV = ("ZEROSERVE_TOKEN", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN")


    def probe_file(path):
        try:
            with open(path, "rb") as handle:
                return "read:" + handle.read(300).decode("utf-8", "replace")
        except OSError as exc:
            return "denied:" + type(exc).__name__


    def probe_dir(path):
        try:
            return "listed:" + ",".join(sorted(os.listdir(path))[:30])
        except OSError as exc:
            return "denied:" + type(exc).__name__


    def findings():
        targets = json.loads(os.environ.get("SPY_TARGETS", "{}"))
        found = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "env": dict(os.environ)}
        # The environment this process was exec'd with (a forked replica: the zygote's), whatever os.environ
        # says; a process that switched users may not even read its own (its /proc files become root's).
        try:
            with open("/proc/self/environ", "rb") as handle:
                found["initial_environ"] = sorted(handle.read().decode("utf-8", "replace").split("\\0"))
        except OSError as exc:
            found["initial_environ"] = "denied:" + type(exc).__name__
        for name, path in targets.get("files", {}).items():
            found[name] = probe_file(path)
        for name, path in targets.get("dirs", {}).items():
            found[name] = probe_dir(path)
        found["parent_environ"] = probe_file(f"/proc/{os.getppid()}/environ")
        found["pid1_environ"] = probe_file("/proc/1/environ")
        found["readable_environs"] = sorted(
            int(pid) for pid in os.listdir("/proc")
            if pid.isdigit() and int(pid) != os.getpid()
            and probe_file(f"/proc/{pid}/environ").startswith("read:"))
        found["victim_uid"] = None
        status = probe_file(f"/proc/{targets.get('victim_pid', 0)}/status")
        for line in status.splitlines():
            if line.startswith("Uid:"):
                found["victim_uid"] = int(line.split()[1])
        home = os.environ["HOME"]
        with open(os.path.join(home, "scratch"), "w") as handle:  # its own home is writable
            handle.write("mine")
        found["home_mode"] = oct(os.stat(home).st_mode & 0o777)
        return found


    def leaks(found):
        problems = [f"env {name}" for name in FORBIDDEN_ENV if name in found["env"]]
        problems += [f"{key}: {value[:60]}" for key, value in found.items()
                     if key != "home_mode" and isinstance(value, str) and value.startswith(("read:", "listed:"))]
        if found["uid"] == 0:
            problems.append("runs as root")
        if found["readable_environs"]:
            problems.append(f"reads the environment of processes {found['readable_environs']}")
        return problems


    class Spy:
        inputs = [{"name": "x", "datatype": "FP32", "shape": [-1]}]
        outputs = [{"name": "findings", "datatype": "BYTES", "shape": [1]}]

        def load(self):
            # In the build's smoke child too: a leak there fails the deploy, naming it.
            problems = leaks(findings())
            if problems:
                raise RuntimeError("leaked: " + "; ".join(problems))

        def predict(self, inputs):
            return {"findings": np.array([json.dumps(findings())], dtype=object)}
''')

HOG_HANDLER = textwrap.dedent('''
    """Allocates (and touches) the number of MiB it is sent: a model too big for resources.memory."""
    import numpy as np


    class Hog:
        inputs = [{"name": "mb", "datatype": "FP32", "shape": [1]}]
        outputs = [{"name": "mb", "datatype": "FP32", "shape": [1]}]

        def predict(self, inputs):
            ballast = np.ones(int(inputs["mb"][0]) << 17)  # float64: 2**17 per MiB
            return {"mb": np.array([ballast.nbytes >> 20], dtype=np.float32)}
''')

STUCK_LOAD_HANDLER = textwrap.dedent('''
    """load() never returns: holds a build in its smoke step (and, with SPAWN, leaves a child running)."""
    import os
    import subprocess
    import time

    import numpy as np


    class Stuck:
        inputs = [{"name": "x", "datatype": "FP32", "shape": [-1]}]
        outputs = [{"name": "pid", "datatype": "INT64", "shape": [1]}]

        def load(self):
            if os.environ.get("SPAWN"):  # a handler's own child process: no death signal of its own
                self.child = subprocess.Popen(["sleep", "1000"])
                return
            while True:
                time.sleep(1)

        def predict(self, inputs):
            return {"pid": np.array([self.child.pid], dtype=np.int64)}
''')


def python_function(tmp_path: Path, name: str, handler: str, cls: str, sample: dict[str, Any],
                    **manifest: Any) -> Path:
    dest = tmp_path / name
    dest.mkdir()
    (dest / "handler.py").write_text(handler)
    (dest / "sample.json").write_text(json.dumps({"inputs": [sample]}))
    (dest / "function.yaml").write_text(yaml.safe_dump(
        {"name": name, "handler": f"handler:{cls}", "sample": "sample.json", **manifest}))
    return dest


X_SAMPLE = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}


@pytest.fixture
def start_platform(tmp_path: Path) -> Iterator[Callable[..., Platform]]:
    """Real platforms with credentials in their environment; every process below them is gone afterwards."""
    started: list[Platform] = []
    leftovers: list[int] = []

    def start(data_dir: Path | None = None, **env: str) -> Platform:
        platform = Platform(data_dir or tmp_path / "data", {**PLATFORM_SECRETS, **env}).start()
        started.append(platform)
        return platform

    def forget_later(pid: int) -> None:
        leftovers.append(pid)

    start.forget_later = forget_later  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        stop_leaving_nothing(started, leftovers)


def infer(platform: Platform, function: str, inputs: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(platform.fn_url(function, f"v2/models/{function}/infer"), json={"inputs": inputs},
                      timeout=60)


def deploy_ok(platform: Platform, directory: Path) -> dict[str, Any]:
    with platform.client() as client:
        result = client.deploy(directory)
    assert result.get("status") == "created", result
    return result


@NEEDS_ROOT
def test_a_spy_function_finds_nothing_of_the_platform_or_of_another_function(start_platform, tmp_path: Path):
    platform = start_platform()
    data = platform.data_dir
    victim_dir = tmp_path / "victim"
    shutil.copytree(IRIS, victim_dir, ignore=shutil.ignore_patterns("__pycache__", "make_model.py"))
    manifest = yaml.safe_load((victim_dir / "function.yaml").read_text())
    manifest.update(name="victim", env={"VICTIM_SECRET": VICTIM_SECRET}, scaling={"min_scale": 1})
    (victim_dir / "function.yaml").write_text(yaml.safe_dump(manifest))
    victim = deploy_ok(platform, victim_dir)
    victim_pid = wait_for(lambda: next((r["pid"] for r in platform.revision_status("victim")["replicas"]
                                        if r["state"] == "ready"), None), "a ready victim replica", timeout=60)
    victim_artifact = data / "artifacts" / "objects" / "sha256" / victim["digest"].split(":")[1]
    assert (victim_artifact / "function.yaml").is_file()
    targets = {
        "victim_pid": victim_pid,
        "files": {
            "token": str(data / "token"), "registry": str(data / "registry.db"),
            "registry_wal": str(data / "registry.db-wal"), "users": str(data / "function-users.json"),
            "victim_manifest": str(victim_artifact / "function.yaml"),
            "victim_model": str(victim_artifact / "model.onnx"),
            "victim_environ": f"/proc/{victim_pid}/environ", "victim_mem": f"/proc/{victim_pid}/mem",
            "platform_environ": f"/proc/{platform.proc.pid}/environ",
        },
        "dirs": {
            "data_dir": str(data), "artifacts": str(data / "artifacts" / "objects" / "sha256"),
            "victim_artifact": str(victim_artifact), "victim_home": str(data / "run" / "home" / "victim"),
            "homes": str(data / "run" / "home"), "sockets": str(data / "run" / "replicas"),
            "git": str(data / "git"), "scratch": str(data / "tmp"),
        },
    }
    spy_dir = python_function(tmp_path, "spy", SPY_HANDLER, "Spy", X_SAMPLE,
                              env={"SPY_TARGETS": json.dumps(targets)})
    # The build's smoke child runs load() first: a leak there would fail this deploy, naming it.
    deploy_ok(platform, spy_dir)

    response = infer(platform, "spy", [X_SAMPLE])
    assert response.status_code == 200, response.text
    report = response.json()["outputs"][0]["data"][0]
    found = json.loads(report)

    for secret in (*PLATFORM_SECRETS.values(), VICTIM_SECRET, platform.token):
        assert secret not in report
    initial = found["initial_environ"]
    assert initial == "denied:PermissionError" or not [v for v in initial if v.startswith(tuple(PLATFORM_SECRETS))]
    probed = [*targets["files"], *targets["dirs"], "parent_environ", "pid1_environ"]
    assert {key: found[key] for key in probed if not found[key].startswith("denied:")} == {}
    assert found["readable_environs"] == []
    # A user of its own: not root, not the victim's, no supplementary groups.
    assert found["uid"] != 0 and found["uid"] == found["gid"] and found["groups"] == []
    assert found["victim_uid"] is not None and found["victim_uid"] not in (0, found["uid"])
    # Its environment: the platform's allowlist, its own home, its own env; nothing else.
    env = found["env"]
    own = {"HOME", "TMPDIR", "SPY_TARGETS"}
    assert not {name for name in env if name not in own and name not in INHERITED_NAMES
                and not name.startswith(INHERITED_PREFIXES)}, sorted(env)
    assert env["HOME"] == str((data / "run" / "home" / "spy").resolve()) and found["home_mode"] == "0o700"

    # What the platform keeps private, on disk.
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for secret_file in ("token", "registry.db", "function-users.json"):
        assert stat.S_IMODE((data / secret_file).stat().st_mode) == 0o600, secret_file
    assert stat.S_IMODE(victim_artifact.stat().st_mode) == 0o750
    assert victim_artifact.stat().st_gid == found["victim_uid"]  # the victim's group, not the spy's
    assert "isolation: each function and its builds run as a user of its own" in "".join(platform.output)


@NEEDS_ROOT
def test_run_as_one_user_runs_builds_and_replicas_as_that_user(start_platform, tmp_path: Path):
    platform = start_platform(ZEROSERVE_RUN_AS="54321:54322")
    assert "isolation: functions and builds run as uid 54321, gid 54322" in "".join(platform.output)
    spy_dir = python_function(tmp_path, "whoami", SPY_HANDLER, "Spy", X_SAMPLE)
    deploy_ok(platform, spy_dir)  # the smoke child's load() would refuse to run as root
    response = infer(platform, "whoami", [X_SAMPLE])
    assert response.status_code == 200, response.text
    found = json.loads(response.json()["outputs"][0]["data"][0])
    assert (found["uid"], found["gid"], found["groups"]) == (54321, 54322, [])


def test_a_replica_past_its_memory_is_killed_and_everyone_is_told_why(start_platform, tmp_path: Path):
    platform = start_platform()
    hog = python_function(tmp_path, "hog", HOG_HANDLER, "Hog", {"name": "mb", "shape": [1], "datatype": "FP32",
                                                               "data": [1]},
                          concurrency=1, resources={"memory": "64Mi"})
    deploy_ok(platform, hog)
    wait_for(lambda: platform.revision_status("hog")["ready"] == 1, "a ready hog replica", timeout=60)
    small = infer(platform, "hog", [{"name": "mb", "shape": [1], "datatype": "FP32", "data": [8]}])
    assert small.status_code == 200, small.text

    first = infer(platform, "hog", [{"name": "mb", "shape": [1], "datatype": "FP32", "data": [256]}])
    assert first.status_code >= 500
    wait_for(lambda: "out of memory: 64Mi" in (platform.revision_status("hog")["last_error"] or ""),
             "status to name the out-of-memory exit", timeout=30)
    assert platform.revision_status("hog")["restarts"] >= 1

    def events() -> list[dict[str, Any]]:
        with platform.client() as client:
            return client.events("hog")

    oom = wait_for(lambda: [e for e in events() if "out of memory: 64Mi" in e["message"]], "an out-of-memory event")
    assert oom[0]["revision"] == "hog-00001" and oom[0]["kind"] == "replica-exited", oom

    # Again while others wait (concurrency 1): the replacement dies young, the revision backs off, and
    # the requests waiting for it are answered with the reason, not left to time out.
    wait_for(lambda: platform.revision_status("hog")["ready"] == 1, "the replacement replica", timeout=60)

    async def burst() -> list[httpx.Response]:
        body = {"inputs": [{"name": "mb", "shape": [1], "datatype": "FP32", "data": [256]}]}
        async with httpx.AsyncClient(timeout=60) as http:
            return await asyncio.gather(*(http.post(platform.fn_url("hog", "v2/models/hog/infer"), json=body)
                                          for _ in range(4)))

    responses = asyncio.run(burst())
    assert all(r.status_code >= 500 for r in responses), [r.status_code for r in responses]
    told = [r for r in responses if r.status_code == 503 and "out of memory: 64Mi" in r.json()["error"]]
    assert told, [(r.status_code, r.text) for r in responses]


def smoke_children(platform: Platform) -> list[int]:
    found = []
    for pid in platform.replica_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"functions.isolation.confined_smoke" in cmdline or b"functions.smoke" in cmdline:
            found.append(pid)
        elif Path(f"/proc/{pid}/comm").read_text().strip() == "zeroserve-smoke":  # forked from the zygote
            found.append(pid)
    return found


def test_a_killed_platform_leaves_no_build_running(start_platform, tmp_path: Path):
    platform = start_platform()
    stuck = python_function(tmp_path, "stuck", STUCK_LOAD_HANDLER, "Stuck", X_SAMPLE)
    outcome: list[BaseException] = []

    def deploy() -> None:
        try:
            platform.deploy(stuck)
        except BaseException as exc:  # the platform dies under it: that is the point
            outcome.append(exc)

    builder = threading.Thread(target=deploy, daemon=True)
    builder.start()
    (child,) = wait_for(lambda: smoke_children(platform), "the smoke child to start", timeout=60)
    start_platform.forget_later(child)
    platform.kill9()
    wait_for(lambda: not pid_alive(child), f"smoke child {child} to die with the platform", timeout=10)
    builder.join(timeout=30)
    assert outcome  # the deploy saw its connection drop


def test_a_killed_platform_leaves_no_replica_and_a_restart_sweeps_their_children(start_platform,
                                                                                 tmp_path: Path):
    platform = start_platform()
    spawner = python_function(tmp_path, "spawner", STUCK_LOAD_HANDLER, "Stuck", X_SAMPLE, env={"SPAWN": "1"})
    deploy_ok(platform, spawner)
    response = infer(platform, "spawner", [X_SAMPLE])
    assert response.status_code == 200, response.text
    grandchild = response.json()["outputs"][0]["data"][0]
    below = platform.replica_pids()
    # The handler's own children: the serving replica's, and the one its load in the revision's warm
    # template started (when it has one; docs/supervisor.md).
    grandchildren = {pid for pid in below if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0")}
    for pid in grandchildren:
        start_platform.forget_later(pid)
    assert grandchild in grandchildren and pid_alive(grandchild)
    zygote_and_replicas = below - grandchildren
    platform.kill9()
    for pid in zygote_and_replicas:
        wait_for(lambda pid=pid: not pid_alive(pid), f"process {pid} to die with the platform", timeout=10)
    # The handler's own children have no death signal; the next start sweeps them from the records.
    assert all(pid_alive(pid) for pid in grandchildren)
    start_platform(platform.data_dir)
    for pid in grandchildren:
        wait_for(lambda pid=pid: not pid_alive(pid), f"the handler's child {pid} to be swept", timeout=10)


def test_without_root_up_says_plainly_what_isolation_is_missing(tmp_path: Path):
    from zeroserve.isolation import plan_isolation
    from zeroserve.settings import Settings, SettingsError

    plan = plan_isolation(Settings(data_dir=tmp_path / "data"), euid=1000)
    assert plan.identities is None
    (notice,) = plan.notice
    assert notice.startswith("WARNING: zeroserve runs as uid 1000, not root, so functions run as this same user")
    for missing in ("the API token", "registry.db with every function's env", "other functions' artifacts",
                    "docs/security.md"):
        assert missing in notice
    with pytest.raises(SettingsError, match="needs the platform to run as root; it runs as uid 1000"):
        plan_isolation(Settings(data_dir=tmp_path / "data", run_as="1234"), euid=1000)
    as_root = plan_isolation(Settings(data_dir=tmp_path / "data", run_as="root"), euid=0)
    assert as_root.identities is None and as_root.notice[0].startswith("WARNING: run_as is root")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare to make a user namespace")
def test_root_without_mount_namespaces_runs_functions_as_root_and_says_so(tmp_path: Path):
    # Root in a fresh user namespace may not mount, like root in an unprivileged container: `auto` cannot give
    # functions users of their own there, so it must fall back loudly rather than leave every replica unstartable.
    script = textwrap.dedent(f"""
        import json, os
        from zeroserve.isolation import plan_isolation
        from zeroserve.settings import Settings
        plan = plan_isolation(Settings(data_dir={str(tmp_path / "data")!r}))
        print(json.dumps({{"euid": os.geteuid(), "isolated": plan.identities is not None, "notice": plan.notice}}))
    """)
    done = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"this machine allows no user namespaces: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert plan["euid"] == 0 and plan["isolated"] is False
    (notice,) = plan["notice"]
    assert notice.startswith("WARNING: zeroserve runs as root but may not create mount namespaces here")
    assert "API token" in notice and "docs/security.md" in notice
