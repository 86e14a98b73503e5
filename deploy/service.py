"""The deploy service: build a function, record the revision and its route, collect unused artifacts.

Transport-independent: the control API's upload calls `deploy_dir`; the git remote (push and webhook)
calls `deploy_git`, which builds a commit with the same builder and records it the same way. Every
deploy ends in a `DeployResult` (deploy/results.py), a failed build included; what the service raises
is typed (`revisions.errors`), and the control API alone maps both to HTTP statuses. The order is what
makes a kill -9 at any instant safe: the builder stores the artifact, then one registry transaction
records the revision and its route; an artifact stored by a build that never got recorded is an orphan
that `sweep_orphans` removes at the next start.

Deploys of one function are serialised (an asyncio lock per function, so a waiting deploy holds no
thread); builds of different functions run in parallel on a thread pool (the smoke test inside a build
is a child process).

A function whose function.yaml lists targets besides `local` (deploy/targets.py) is built once, then,
before the registry records anything: each target checks it can run it, the revision number is
reserved (a Knative Revision is named when it is created), and each target makes the revision ready
with its traffic untouched. Only then does the registry record the revision and move the route, which
every target follows before the transaction commits. A target that cannot make the revision ready, or
cannot follow, fails the deploy: the route stays as it was, here and on every target, and the number is
spent (never reused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.deploy_metrics import DeployMetrics
from deploy.overrides import DeployRefused, TrafficOverride, apply_traffic_override
from deploy.path_scrubbing import PathScrubber, scrub_git_export
from deploy.results import DeployResult, describe_outcome
from deploy.targets import (
    DeployPlan,
    NewRevision,
    TargetError,
    TargetRefused,
    Targets,
    check_plan,
    describe_route,
    dropped_targets,
    plan_deploy,
)
from protocol.manifest import (
    MANIFEST_FILE,
    FunctionManifest,
    ManifestError,
    check_dns1035,
    load_yaml,
    parse_manifest,
    read_manifest_text,
)
from revisions.build_log import BuildLog
from revisions.errors import RegistryError
from revisions.records import DeployOutcome, Removal
from revisions.registry import Registry
from revisions.registry.notices import LOCAL
from revisions.store import ArtifactStore

if TYPE_CHECKING:
    from revisions.builder import BuiltFunction
    from revisions.smoke_sandbox import SmokeSandbox

logger = logging.getLogger("zeroserve.deploys")

LineSink = Callable[[str], None]
Clean = Callable[[str], str]  # what build messages pass through before anyone sees them (path_scrubbing)


class DeployService:
    def __init__(self, registry: Registry, store: ArtifactStore, *, keep_unrouted: int = 5,
                 build_workers: int = 2, smoke_timeout: float = 120.0, smoke_sandbox: SmokeSandbox | None = None,
                 targets: Targets | None = None):
        self.registry = registry
        self.store = store
        # Where functions run besides this machine (knative, ...); None: local only.
        self.targets = targets
        self.keep_unrouted = keep_unrouted
        self.smoke_timeout = smoke_timeout
        self.smoke_sandbox = smoke_sandbox  # who the smoke child runs as, and where (revisions.smoke_sandbox)
        self._builds = ThreadPoolExecutor(max_workers=build_workers, thread_name_prefix="zeroserve-build")
        self._function_locks: dict[str, asyncio.Lock] = {}
        # Artifact deletion waits until no build is in flight: a build may be about to record a revision
        # whose digest (already in the store, so not stored again) the registry no longer references.
        self._gc_lock = threading.Lock()
        self._builds_in_flight = 0
        self._pending_gc: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.metrics = DeployMetrics()  # builds and deploys by outcome and duration, for /metrics

    # ---------------------------------------------------------------------------------------- deploy

    async def deploy_dir(self, source_dir: Path, on_line: LineSink | None = None, *,
                         traffic_override: TrafficOverride | None = None) -> DeployResult:
        """Build `source_dir` and record it; never raises for a failed build (see `DeployResult`)."""
        sink = on_line or (lambda _line: None)
        function = _peek_function_name(source_dir)
        lock = self._lock_for(function) if function is not None else None
        if lock is not None and lock.locked():
            sink(f"waiting for another deploy of {function} to finish")
        if lock is None:
            return await self._run(self._build_and_record, source_dir, sink, traffic_override)
        async with lock:
            return await self._run(self._build_and_record, source_dir, sink, traffic_override)

    async def deploy_git(self, repo_dir: Path, commit: str, on_line: LineSink | None = None, *, function: str,
                         git_env: Mapping[str, str] | None = None,
                         traffic_override: TrafficOverride | None = None) -> DeployResult:
        """Build `commit` of the git repository `repo_dir` as a revision of `function` and record it.

        The git remote's pre-receive hook passes git's quarantine variables in `git_env` (the pushed
        objects are not in the repository yet). A commit whose function.yaml names another function is
        refused: the repository belongs to `function`. The log has one more step than the builder's,
        "traffic", so the pusher sees the route change as a numbered step too.
        """
        sink = on_line or (lambda _line: None)
        lock = self._lock_for(check_dns1035(function))
        if lock.locked():
            sink(f"waiting for another deploy of {function} to finish")
        async with lock:
            return await self._run(self._build_git_and_record, Path(repo_dir), commit, function,
                                   dict(git_env or {}), sink, traffic_override)

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a reference to a deploy task whose watcher may go away (the deploy still completes)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _build_and_record(self, source_dir: Path, sink: LineSink,
                          traffic_override: TrafficOverride | None = None) -> DeployResult:
        from revisions.builder import build_function  # the builder imports the runtime's smoke test

        return self._build_then_record(
            lambda log: build_function(source_dir, self.store, log, smoke_timeout=self.smoke_timeout,
                                       sandbox=self.smoke_sandbox),
            PathScrubber(source_dir), sink, failed_function=lambda: _peek_function_name(source_dir),
            traffic_override=traffic_override,
        )

    def _build_git_and_record(self, repo_dir: Path, commit: str, function: str, git_env: dict[str, str],
                              sink: LineSink, traffic_override: TrafficOverride | None) -> DeployResult:
        from revisions.builder import GIT_BUILD_STEPS, build_from_git

        def build(log: BuildLog) -> BuiltFunction:
            log.expect_steps(GIT_BUILD_STEPS + 1)  # + the traffic step
            # expected_name: the builder refuses another function's manifest before its code runs.
            return build_from_git(repo_dir, commit, self.store, log, git_env=git_env,
                                  smoke_timeout=self.smoke_timeout, expected_name=function,
                                  sandbox=self.smoke_sandbox)

        return self._build_then_record(build, scrub_git_export, sink, failed_function=lambda: function,
                                       traffic_override=traffic_override, expected_name=function,
                                       traffic_step=True)

    def _build_then_record(self, build: Callable[[BuildLog], BuiltFunction], clean: Clean, sink: LineSink, *,
                           failed_function: Callable[[], str | None],
                           traffic_override: TrafficOverride | None = None, expected_name: str | None = None,
                           traffic_step: bool = False) -> DeployResult:
        from revisions.builder import BuildError

        log = BuildLog(on_line=lambda line: sink(clean(line)))
        started = time.monotonic()
        with self._gc_lock:
            self._builds_in_flight += 1
        try:
            try:
                built = build(log)
            except BuildError as exc:
                self.metrics.build_finished(False, time.monotonic() - started)
                return self._counted(self._build_failed(failed_function(), clean(str(exc)), log, clean), started)
            self.metrics.build_finished(True, time.monotonic() - started)
            try:
                outcome = self._record(built, log, clean, traffic_override, expected_name, traffic_step)
            # TrafficError, DeployRefused or TargetRefused: the deploy cannot apply; TargetError: a target
            # could not make the revision ready or follow the route.
            except (ValueError, TargetError) as exc:
                return self._counted(self._refused(built, exc, expected_name or built.name, log, clean), started)
            if outcome.status == "created":
                self._apply_retention(built.name, log)
            return self._counted(DeployResult.from_outcome(outcome, [clean(line) for line in log.lines]), started)
        finally:
            with self._gc_lock:
                self._builds_in_flight -= 1
                self._collect_locked()

    def _counted(self, result: DeployResult, started: float) -> DeployResult:
        self.metrics.deploy_finished(result.status, time.monotonic() - started)
        return result

    def _record(self, built: BuiltFunction, log: BuildLog, clean: Clean, traffic_override: TrafficOverride | None,
                expected_name: str | None, traffic_step: bool) -> DeployOutcome:
        """Record a built function as a revision: one registry transaction."""
        if expected_name is not None and built.name != expected_name:
            raise DeployRefused(f"{MANIFEST_FILE} names the function '{built.name}', but this is the "
                                f"repository of '{expected_name}': push it to {built.name}.git instead")
        manifest = apply_traffic_override(built.manifest, traffic_override)
        plan, number = None, None
        if self.targets is not None:
            plan = plan_deploy(self.registry, built.name, built.digest, manifest, time.time())
            if not plan.unchanged and any(t != LOCAL for t in manifest.targets):
                number = self._ready_on_targets(built, manifest, plan, log)
        with log.step("traffic") if traffic_step else contextlib.nullcontext() as step:
            try:
                outcome = self.registry.record_deploy(
                    built.name, digest=built.digest, manifest=manifest, files=built.files,
                    build_log=clean(log.text()), smoke=built.smoke, number=number,
                )
            except TargetError as exc:  # a target could not follow the new route: the transaction rolled back
                raise self._unchanged(exc, built.name) from None
            if step is not None:
                step.detail = describe_outcome(outcome)
        if plan is not None and outcome.status == "created":
            self._after_targets_followed(built.name, manifest, plan, log)
        return outcome

    def _ready_on_targets(self, built: BuiltFunction, manifest: FunctionManifest, plan: DeployPlan,
                          log: BuildLog) -> int:
        """Check, reserve the revision's number, and make it ready on every target other than local.

        Raises DeployRefused / TrafficError / TargetRefused before anything changed, TargetError when a
        target could not make the revision ready (the number is spent then; the route is unchanged).
        """
        assert self.targets is not None
        targets = self.targets.remote(manifest.targets)
        check_plan(plan, manifest.targets)
        new = NewRevision(built.name, plan.revision, built.digest, manifest, routed=plan.routed, route=plan.route)
        for target in targets:
            for note in target.check(new):
                log.info(f"{target.name}: note: {note}")
        number = self.registry.reserve_revision_number(built.name)
        if number != plan.number:  # deploys of a function are serialised: only another process could do this
            raise DeployRefused(f"revision number {plan.number} of '{built.name}' was taken meanwhile; deploy again")
        for target in targets:
            with log.step(target.name) as step:
                try:
                    target.apply_revision(log, new)
                except TargetError as exc:
                    raise self._unchanged(exc, built.name) from None
                step.detail = f"{new.revision} ready" + ("; traffic moves next" if plan.routed else "")
        return number

    def _after_targets_followed(self, function: str, manifest: FunctionManifest, plan: DeployPlan,
                                log: BuildLog) -> None:
        """Once the route committed: wait for the targets to serve it; remove the function from dropped ones."""
        assert self.targets is not None
        for target in self.targets.remote(manifest.targets):
            try:
                target.settle(function, log)
            except (TargetError, TargetRefused) as exc:  # the route is recorded; say what the target reports
                log.info(f"warning: {exc}")
        for name in dropped_targets(plan, manifest.targets):
            try:
                removed = self.targets.get(name).delete(function)
                log.info(f"{name}: {function} removed (targets no longer list {name})" if removed
                         else f"{name}: {function} was not there")
            except (TargetError, TargetRefused) as exc:
                log.info(f"warning: {name}: {function} could not be removed (targets no longer list {name}): {exc}")

    def _unchanged(self, exc: TargetError, function: str) -> TargetError:
        """`exc`, saying that the route (here and on every target) is the one before the deploy."""
        try:
            route = self.registry.get_route(function)
        except RegistryError:
            route = None
        current = describe_route(tuple(route.targets) if route is not None else ())
        return TargetError(exc.target, f"{str(exc).removeprefix(exc.target + ': ')}; traffic unchanged: {current}")

    def _apply_retention(self, function: str, log: BuildLog) -> None:
        removal = self.registry.apply_retention(function, self.keep_unrouted)
        for name in removal.revisions:
            log.info(f"retention: deleted unrouted revision {name}")
        with self._gc_lock:
            self._pending_gc.update(removal.unused_digests)

    def _build_failed(self, function: str | None, reason: str, log: BuildLog, clean: Clean) -> DeployResult:
        message = reason if reason.startswith("build failed") else f"build failed: {reason}"
        lines = [clean(line) for line in log.lines]
        # A manifest that names no function (unreadable, refused YAML) is no function's history:
        # the uploader has the whole answer, and the registry stays as it was.
        if function is not None:
            self.registry.record_build_failure(function, message, log=lines)  # kept for the console
        return DeployResult("failed", message, function=function, log=lines)

    def _refused(self, built: BuiltFunction, exc: ValueError | TargetError, function: str, log: BuildLog,
                 clean: Clean) -> DeployResult:
        if isinstance(exc, DeployRefused):
            message = str(exc)
        elif isinstance(exc, TargetError):
            message = f"deploy failed: {exc}"
        else:
            message = f"deploy refused: {exc}"
        lines = [clean(line) for line in log.lines]
        self.registry.record_build_failure(function, message, log=lines)
        if not built.already_stored:  # stored for nothing: collect it once no build needs it
            with self._gc_lock:
                self._pending_gc.add(built.digest)
        return DeployResult("failed", message, function=function, digest=built.digest, log=lines)

    # ---------------------------------------------------------------------------------------- delete

    async def delete_function(self, function: str) -> Removal:
        async with self._lock_for(function):
            return await self._run(self._delete, function)

    def _delete(self, function: str) -> Removal:
        removal = self.registry.delete_function(function)
        with self._gc_lock:
            self._pending_gc.update(removal.unused_digests)
            self._collect_locked()
        return removal

    # ------------------------------------------------------------------------------- artifact garbage

    def _collect_locked(self) -> None:
        if self._builds_in_flight or not self._pending_gc:
            return
        pending, self._pending_gc = self._pending_gc, set()
        for digest in sorted(pending):
            if self.registry.digest_in_use(digest):
                continue
            try:
                self.store.delete(digest)
                logger.info("deleted unused artifact %s", digest)
            except Exception:  # a store hiccup must not fail the deploy that triggered it
                logger.exception("could not delete unused artifact %s; will retry", digest)
                self._pending_gc.add(digest)

    def sweep_orphans(self) -> list[str]:
        """Delete stored artifacts no revision references (builds that never got recorded).

        Only safe when no build is in flight, so the platform calls it at start, before serving.
        """
        with self._gc_lock:
            if self._builds_in_flight:
                return []
            used = self.registry.digests_in_use()
            orphans = [d for d in self.store.list_digests() if d not in used]
            self._pending_gc.update(orphans)
            self._collect_locked()
            return orphans

    # ------------------------------------------------------------------------------------------ misc

    def _lock_for(self, function: str) -> asyncio.Lock:
        lock = self._function_locks.get(function)
        if lock is None:
            lock = self._function_locks[function] = asyncio.Lock()
        return lock

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._builds, fn, *args)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run registry/store work off the event loop, on the default pool (not the build pool)."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def close(self) -> None:
        self._builds.shutdown(wait=False, cancel_futures=True)


def _peek_function_name(source_dir: Path) -> str | None:
    """The function's name, to pick its lock; a broken manifest is the build's to report."""
    # Read with the manifest's own bounded reader (size cap, no YAML aliases): this runs before the build.
    try:
        text, source = read_manifest_text(source_dir)
        data = load_yaml(text, source)
    except (ManifestError, OSError):
        return None
    try:
        return parse_manifest(data, source).name
    except ManifestError:
        pass
    # An invalid manifest still usually names its function: file the failed build under that name.
    name = data.get("name") if isinstance(data, dict) else None
    try:
        return check_dns1035(name) if isinstance(name, str) else None
    except ValueError:
        return None
