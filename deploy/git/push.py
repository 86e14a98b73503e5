"""The platform's side of a push: the pre-receive hook's request in, the deploy's log and verdict out.

For each `POST .../git-receive-pack` the remote opens a `PushSession`: a Unix socket in a private temp
dir, named to `git http-backend` (and so to the hook it runs) in ZEROSERVE_HOOK_SOCKET. The socket is
the push's capability: it exists only while that push runs, only this user can open it, and it is
bound to one function and one repository, so a hook can deploy nothing but the push it belongs to.

Why the hook calls back rather than building itself: there is one deploy path. The build runs in the
platform's deploy service (`deploy_git`), under the same per-function lock as API uploads and
webhooks, with the same builder, artifact store and registry transaction; the hook only carries git's
quarantine variables across, because the pushed objects are visible nowhere else.

Serialising pushes of one function: the first push that reaches its hook with an update of the deploy
branch takes the function's *push lock* and holds it until its `git http-backend` has exited, that is
until git has moved (or not) the branch. A second push waits there ("waiting for another push"), then
checks that the branch is still where its client saw it: if the first push moved it, the second is
refused before building ("fetch and push again"), exactly as git refuses a stale push. So two
concurrent pushes end in two revisions in branch order, or one revision and one clear refusal; the
registry and the branch never disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from deploy.git.push_options import PushOptionError, parse_push_options
from deploy.git.repos import Repositories, is_zero_id

logger = logging.getLogger("zeroserve.git")

SOCKET_VARIABLE = "ZEROSERVE_HOOK_SOCKET"
_MAX_REQUEST = 1 << 20
_REQUEST_TIMEOUT = 30.0
_QUARANTINE_NAMES = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")


class DeployOutcome(Protocol):
    """What the remote reads of a deploy's result (deploy.results.DeployResult)."""

    @property
    def status(self) -> str: ...  # "created", "unchanged" or "failed" (read-only: a narrower type fits)

    message: str
    revision: str | None
    digest: str | None
    traffic: list[dict[str, Any]] | None
    rollout: dict[str, Any] | None

    @property
    def ok(self) -> bool: ...

    def traffic_summary(self) -> str: ...


class GitDeployer(Protocol):
    """The platform's deploy service, as the git remote uses it."""

    async def deploy_git(self, repo_dir: Path, commit: str, on_line: Callable[[str], None] | None = None, *,
                         function: str, git_env: Mapping[str, str] | None = None,
                         traffic_override: Mapping[str, Any] | None = None) -> DeployOutcome: ...


FunctionUrls = Callable[[str, list[str]], Mapping[str, Any]]


@dataclass
class PushSession:
    """One `git-receive-pack` request: its function, its repository and whether it holds the push lock."""

    function: str
    repo_dir: Path
    socket_path: Path
    holds_push_lock: bool = False
    closed: bool = False  # the backend has exited: a hook still waiting for the lock must not take it

    @property
    def backend_env(self) -> dict[str, str]:
        return {SOCKET_VARIABLE: str(self.socket_path)}


class PushReceiver:
    def __init__(self, deployer: GitDeployer, repos: Repositories, function_urls: FunctionUrls | None = None):
        self.deployer = deployer
        self.repos = repos
        self.function_urls = function_urls
        self._push_locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def session(self, function: str, repo_dir: Path) -> AsyncIterator[PushSession]:
        """Listen for this push's hook while the caller runs `git http-backend` with `backend_env`."""
        directory = Path(tempfile.mkdtemp(prefix="zeroserve-push-"))  # 0700: only this user connects
        session = PushSession(function, repo_dir, directory / "hook.sock")

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self._serve_hook(session, reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_unix_server(on_connect, path=str(session.socket_path),
                                                 limit=_MAX_REQUEST)
        try:
            yield session
        finally:
            server.close()
            # The backend has exited, so git has moved the branch (or refused to): the next push may look.
            # A deploy still running for a client that went away keeps running (under the deploy lock);
            # its commit never reaches the branch, so the next push's stale check still holds.
            session.closed = True
            if session.holds_push_lock:
                session.holds_push_lock = False
                self._push_lock(function).release()
            shutil.rmtree(directory, ignore_errors=True)

    def _push_lock(self, function: str) -> asyncio.Lock:
        lock = self._push_locks.get(function)
        if lock is None:
            lock = self._push_locks[function] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------------------------ the hook

    async def _serve_hook(self, session: PushSession, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()

        def say(line: str) -> None:
            if not writer.is_closing():
                writer.write(json.dumps({"line": line}).encode() + b"\n")

        def say_from_thread(line: str) -> None:  # build-log lines arrive on the build thread
            loop.call_soon_threadsafe(say, line)

        try:
            raw = await asyncio.wait_for(reader.readline(), _REQUEST_TIMEOUT)
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except (TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
            logger.warning("pre-receive hook of %s sent an unreadable request: %s", session.function, exc)
            say("zeroserve: the pre-receive hook's request could not be read; push rejected")
            await self._finish(writer, 1)
            return
        try:
            code = await self._decide(session, request, say, say_from_thread)
        except Exception:
            logger.exception("push to %s failed", session.function)
            say("zeroserve: internal error while handling this push (see the platform log); push rejected")
            code = 1
        await self._finish(writer, code)

    async def _finish(self, writer: asyncio.StreamWriter, code: int) -> None:
        # After every line the build thread queued (call_soon_threadsafe keeps their order).
        await asyncio.sleep(0)
        if not writer.is_closing():
            writer.write(json.dumps({"exit": code}).encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def _decide(self, session: PushSession, request: dict[str, Any], say: Callable[[str], None],
                      say_from_thread: Callable[[str], None]) -> int:
        """Check the push, deploy the deploy branch's new commit; returns the hook's exit status."""
        updates = _updates(request.get("updates"))
        deploy_ref = self.repos.deploy_ref
        branch = self.repos.deploy_branch
        try:
            override = parse_push_options(_options(request.get("push_options")))
        except PushOptionError as exc:
            say(f"error: {exc}")
            say("push rejected: nothing stored, nothing deployed")
            return 1
        deploy = [u for u in updates if u["ref"] == deploy_ref]
        # Said only once the push is accepted: a rejected push stores none of its refs.
        notices = [_notice(u, branch) for u in updates if u["ref"] != deploy_ref]
        if not deploy:
            for notice in notices:
                say(notice)
            if override:
                say("note: push options apply to deploys only; nothing was deployed")
            return 0
        update = deploy[0]
        if is_zero_id(update["new"]):
            say(f"error: deleting {branch} is refused: it is the source of {session.function}'s revisions "
                f"(delete the function with `zeroserve delete {session.function}`)")
            return 1
        if not await self._take_push_lock(session, say):
            return 1
        current = await asyncio.to_thread(self.repos.read_ref, session.repo_dir, deploy_ref)
        expected = None if is_zero_id(update["old"]) else update["old"]
        if current != expected:
            now = current[:12] if current else "nothing"
            say(f"error: {branch} moved to {now} while this push waited (another push deployed it); "
                f"fetch, merge and push again")
            return 1
        git_env = _quarantine_env(request.get("git_env"), session.repo_dir)
        say(f"zeroserve: deploying {session.function} from {branch} at {update['new'][:12]}")
        result = await self.deployer.deploy_git(session.repo_dir, update["new"], say_from_thread,
                                                function=session.function, git_env=git_env,
                                                traffic_override=override or None)
        await asyncio.sleep(0)  # let the build's last lines go out before the verdict
        for line in self.summary(session.function, result):
            say(line)
        if not result.ok:
            return 1
        for notice in notices:
            say(notice)
        return 0

    async def _take_push_lock(self, session: PushSession, say: Callable[[str], None]) -> bool:
        """Hold the function's push lock until this push's backend exits; False if it already has."""
        if session.holds_push_lock:
            return True
        lock = self._push_lock(session.function)
        if lock.locked():
            say(f"zeroserve: waiting for another push to {session.function} to finish")
        await lock.acquire()
        if session.closed:  # the pusher went away while waiting: nobody would release it
            lock.release()
            return False
        session.holds_push_lock = True
        return True

    def summary(self, function: str, result: DeployOutcome) -> list[str]:
        """The last lines a pusher reads: the verdict, the revision, the route and where it answers."""
        if not result.ok:
            lines = [f"error: {line}" if index == 0 else f"  {line}"
                     for index, line in enumerate(result.message.splitlines() or [result.message])]
            return [*lines, "push rejected: no revision created, traffic and branch unchanged"]
        lines = []
        if result.status == "created":
            lines.append(f"revision {result.revision} created ({(result.digest or '')[:19]})")
        else:
            lines.append(f"{result.message} (no new revision)")
        lines.append(f"traffic: {result.traffic_summary()}")
        if result.rollout:
            rollout = result.rollout
            lines.append(f"rollout: {rollout.get('revision')} to {rollout.get('target_percent')}% over "
                         f"{float(rollout.get('duration') or 0):g} s")
        if self.function_urls is not None:
            tags = sorted({t["tag"] for t in result.traffic or [] if t.get("tag")})
            urls = self.function_urls(function, tags)
            lines.append(f"url: {urls.get('url')}")
            lines.append(f"url: {urls.get('path_url')}")
            for tag, url in dict(urls.get("tags") or {}).items():
                lines.append(f"url ({tag}): {url}")
        lines.append(f"try it: zeroserve invoke {function}")
        return lines


def _notice(update: dict[str, str], branch: str) -> str:
    if is_zero_id(update["new"]):
        return f"{update['ref']}: deleted"
    return (f"{update['ref']}: stored, not deployed (deploys come from {branch}: "
            f"git push zeroserve HEAD:{branch})")


def _updates(raw: object) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        return []
    updates = []
    for item in raw:
        if isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("old", "new", "ref")):
            updates.append({k: item[k] for k in ("old", "new", "ref")})
    return updates


def _options(raw: object) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise PushOptionError("push options could not be read")
    return [str(option) for option in raw]


def _quarantine_env(raw: object, repo_dir: Path) -> dict[str, str]:
    """git's quarantine variables from the hook, kept only if they point into this repository."""
    if not isinstance(raw, dict):
        return {}
    root = repo_dir.resolve()
    env = {}
    for name in _QUARANTINE_NAMES:
        value = raw.get(name)
        if not isinstance(value, str) or not value:
            continue
        paths = value.split(":") if name == "GIT_ALTERNATE_OBJECT_DIRECTORIES" else [value]
        if all(Path(p).resolve().is_relative_to(root) for p in paths):
            env[name] = value
        else:
            logger.warning("ignoring %s outside the repository of this push", name)
    return env


__all__ = ["GitDeployer", "PushReceiver", "PushSession", "SOCKET_VARIABLE"]
