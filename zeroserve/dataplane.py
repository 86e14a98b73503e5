"""The local data plane: activator + replica supervisor + one KPA autoscaler per revision.

Wiring (docs/architecture.md, "How a request flows"):
  activator --collect_stats every second--> RevisionAutoscaler.record
  autoscaler tick every 2 s (or at once on a cold request) --> Supervisor.set_scale
  supervisor --replicas ready/gone--> activator.set_endpoints; --start failed--> activator.fail_pending
  supervisor --start failed / replica died (e.g. "out of memory: 512Mi")--> registry events
  supervisor scale-down --> activator.drain (in-flight requests finish first)
  a scale change --> a "scale" event naming the decider's reason (`zeroserve events FN`)
  replicas' stdout/stderr --> FunctionLogs (DATA/logs; `zeroserve logs FN`)
  activator cold start answered --> ColdStarts, with its phases from the replica's start timings
Metrics: `PlatformCollector` (zeroserve/metrics.py) joins the activator's registry that /metrics serves.
Routes come from the registry's RouteTable (kept current by a subscription), so the hot path never reads
SQLite. Revisions are materialized (verified against their digest) when they become routed, not on the
cold path, so a cold start pays only for the fork and the model load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activator.app import Activator
from activator.contracts import CallerChecker, ReplicaEndpoint, RevisionSettings
from activator.tracing import SpanRecorder
from autoscaler.decider import TICK_INTERVAL
from autoscaler.revision import RevisionAutoscaler, ScaleDecision
from deploy.local.identities import IdentityPolicy
from deploy.local.replica_logs import FunctionLogs
from deploy.local.supervisor import Supervisor, UnknownRevisionError
from deploy.local.warm_templates import DEFAULT_BUDGET_BYTES
from protocol.manifest import FunctionManifest
from revisions.naming import function_of
from revisions.registry import Registry, RegistryError
from revisions.store import ArtifactStore, LocalArtifactStore
from revisions.traffic import RouteTable
from zeroserve.metrics import (
    ColdStarts,
    PlatformCollector,
    RevisionScale,
    WarmTemplateCollector,
    cold_start_phases,
)

log = logging.getLogger("zeroserve.dataplane")

SAMPLE_INTERVAL = 1.0  # Knative's activator reports stats every second


@dataclass
class _RevisionState:
    name: str
    manifest: FunctionManifest
    settings: RevisionSettings
    function_dir: Path | None = None  # set once materialized and registered with the supervisor
    autoscaler: RevisionAutoscaler | None = None
    prepared: asyncio.Future[None] | None = None
    logged_scale: int | None = None  # the scale last written to the log, so only changes are logged


class _Resolver:
    """The activator's RouteResolver over the registry's route table and the revisions we know."""

    def __init__(self, plane: LocalDataPlane):
        self._plane = plane
        self._routes = plane.route_table

    def has_function(self, function: str) -> bool:
        return self._routes.has_function(function)

    def has_tag(self, function: str, tag: str) -> bool:
        return self._routes.has_tag(function, tag)

    def pick(self, function: str, tag: str | None, u: float) -> str | None:
        return self._routes.pick(function, tag, u)

    def revision_settings(self, revision: str) -> RevisionSettings:
        return self._plane.revision(revision).settings


class LocalDataPlane:
    def __init__(self, registry: Registry, store: ArtifactStore, route_table: RouteTable, run_dir: Path, *,
                 domain: str = "localhost", queue_limit: int = 10_000,
                 check_caller: CallerChecker | None = None,
                 clock: Callable[[], float] = time.monotonic, identities: IdentityPolicy | None = None,
                 logs_dir: Path | None = None, access_log: bool = False, export_span: SpanRecorder | None = None,
                 warm_templates_memory: int = DEFAULT_BUDGET_BYTES):
        self.registry = registry
        self.store = store
        self.route_table = route_table
        self._clock = clock
        self.run_dir = Path(run_dir)
        self.queue_limit = queue_limit
        self._revisions: dict[str, _RevisionState] = {}
        self.activator = Activator(_Resolver(self), domain=domain, on_cold_request=self._on_cold_request,
                                   check_caller=check_caller, on_cold_start=self._on_cold_start,
                                   access_log=access_log, export_span=export_span, clock=clock)
        # Replicas' stdout and stderr, per revision (the platform puts them in DATA/logs).
        self.logs = FunctionLogs(logs_dir if logs_dir is not None else self.run_dir / "logs")
        self.cold_starts = ColdStarts()
        self.activator.metrics_registry.register(PlatformCollector(self.cold_starts, self._scale_rows))
        self.activator.metrics_registry.register(WarmTemplateCollector(lambda: self.supervisor.warm_templates()))
        # With identities, each function's replicas run as its own user and reach the artifact store's files.
        shared_dirs = (store.objects_root,) if isinstance(store, LocalArtifactStore) else ()
        self.supervisor = Supervisor(run_dir, on_replicas_changed=self._on_replicas_changed,
                                     on_start_failed=self._on_start_failed, drain=self.activator.drain,
                                     on_replica_failed=self._on_replica_failed, identities=identities,
                                     shared_dirs=shared_dirs, logs=self.logs,
                                     warm_templates_memory=warm_templates_memory)
        self._last_start_error: dict[str, str] = {}  # per revision: the start error last recorded as an event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_at = 0.0
        self._unsubscribe: Callable[[], None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started_at = self._clock()
        await self.supervisor.start()
        self._unsubscribe = self.registry.subscribe(self._route_changed_threadsafe)
        for function in self.route_table.functions():
            self._route_changed(function, at_boot=True)
        self._spawn(self._sample_loop(), "zeroserve-autoscaler")

    async def stop(self) -> None:
        """Fail what waits, let what runs finish, then stop every replica (drained) and the zygotes."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.activator.close()
        await self.supervisor.stop()
        self.logs.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- revisions -----------------------------------------------------------------------------------

    def revision(self, name: str) -> _RevisionState:
        """What we know of a revision; read from the registry the first time (immutable afterwards)."""
        state = self._revisions.get(name)
        if state is None:
            record = self.registry.get_revision(function_of(name), name)
            manifest = record.function_manifest
            settings = RevisionSettings(container_concurrency=manifest.concurrency,
                                        timeout_seconds=float(manifest.timeout_seconds),
                                        queue_limit=self.queue_limit,
                                        requires_token=manifest.auth == "token", function=manifest.name)
            state = _RevisionState(name, manifest, settings)
            self._revisions[name] = state
        return state

    async def _prepare(self, state: _RevisionState) -> None:
        """Materialize (verify) the artifact once and make the revision startable."""
        if state.prepared is None:
            state.prepared = asyncio.get_running_loop().create_future()
            try:
                record = await asyncio.to_thread(self.registry.get_revision, function_of(state.name), state.name)
                function_dir = await asyncio.to_thread(self._materialize, state.name, record.digest)
                self.supervisor.register_revision(state.name, Path(function_dir), state.manifest)
                state.function_dir = Path(function_dir)
                state.prepared.set_result(None)
            except Exception as exc:  # a tampered artifact must fail its requests, not the platform
                log.error("revision %s cannot be prepared: %s", state.name, exc)
                state.prepared.set_exception(exc)
                state.prepared.exception()  # mark retrieved
                self.activator.fail_pending(state.name, f"revision '{state.name}' cannot start: {exc}")
                state.prepared = None
                raise
        else:
            await asyncio.shield(state.prepared)

    def _materialize(self, revision: str, digest: str) -> Path:
        if isinstance(self.store, LocalArtifactStore):
            return self.store.materialize(digest)  # verified in place, read-only: no copy
        copies = self.run_dir / "revisions"
        copies.mkdir(mode=0o711, exist_ok=True)
        os.chmod(copies, 0o711)  # replicas' users pass through to their own copy only (its group: theirs)
        dest = copies / revision
        shutil.rmtree(dest, ignore_errors=True)
        return self.store.materialize(digest, dest)

    def _autoscaler(self, state: _RevisionState, *, initialized: bool) -> RevisionAutoscaler:
        if state.autoscaler is None:
            state.autoscaler = RevisionAutoscaler.for_manifest(state.manifest, now=self._clock(),
                                                               initialized=initialized,
                                                               reachable=self._reachable(state.name))
        return state.autoscaler

    def _reachable(self, revision: str) -> bool:
        route = self.route_table.route(function_of(revision))
        return route is not None and (revision in route.slots or revision in route.tags.values())

    # --- events from the registry, the activator and the supervisor ----------------------------------

    def _route_changed_threadsafe(self, function: str) -> None:
        # Registry writes happen on build threads; everything here belongs to the event loop.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._route_changed, function)

    def _route_changed(self, function: str, *, at_boot: bool = False) -> None:
        route = self.route_table.route(function)
        routed = set() if route is None else set(route.slots) | set(route.tags.values())
        for name in routed:
            try:
                state = self.revision(name)
            except RegistryError as exc:
                log.warning("route of %s names %s: %s", function, name, exc)
                continue
            if state.autoscaler is None and not at_boot:
                # A new revision starts with initial_scale replicas, as Knative does; after a restart,
                # revisions start at zero and wake on their first request.
                self._autoscaler(state, initialized=False)
            self._spawn(self._prepare_and_apply(state), f"prepare-{name}")
        for name, state in list(self._revisions.items()):
            if function_of(name) == function and state.autoscaler is not None:
                state.autoscaler.set_reachable(name in routed)

    async def _prepare_and_apply(self, state: _RevisionState) -> None:
        """Materialize ahead of the first request; a revision with an autoscaler gets its scale now."""
        with contextlib.suppress(Exception):  # _prepare logged it and failed the waiting requests
            await self._prepare(state)
        if state.autoscaler is not None:
            await self._apply(state, state.autoscaler.applied)

    def _on_cold_request(self, revision: str) -> None:
        """First request waiting at zero: scale to at least one now, not at the next tick."""
        self._spawn(self._wake(revision), f"wake-{revision}")

    async def _wake(self, revision: str) -> None:
        try:
            state = self.revision(revision)
            await self._prepare(state)
        except Exception as exc:
            self.activator.fail_pending(revision, f"revision '{revision}' cannot start: {exc}")
            return
        decision = self._autoscaler(state, initialized=True).poke(self._clock())
        self._remember(state, decision)
        await self._apply(state, decision.applied)

    def _on_replicas_changed(self, revision: str, endpoints: list[ReplicaEndpoint]) -> None:
        self.activator.set_endpoints(revision, endpoints)

    def _on_start_failed(self, revision: str, error: str) -> None:
        self.activator.fail_pending(revision, f"revision '{revision}' failed to start: {error}")
        if self._last_start_error.get(revision) != error:  # a revision backing off repeats itself
            self._last_start_error[revision] = error
            self._record_event(revision, "replica-start-failed", f"{revision}: a replica failed to start: {error}")

    def _on_replica_failed(self, revision: str, error: str) -> None:
        self._record_event(revision, "replica-exited", f"{revision}: {error}")

    def _record_event(self, revision: str, kind: str, message: str) -> None:
        async def record() -> None:
            try:
                await asyncio.to_thread(self.registry.record_event, function_of(revision), revision, kind, message)
            except Exception:  # a busy database must not break supervision; the log still has it
                log.exception("recording event %s of %s failed", kind, revision)
        self._spawn(record(), f"event-{revision}")

    async def _apply(self, state: _RevisionState, n: int) -> None:
        if state.function_dir is None:
            return
        current = self.supervisor.status(state.name).desired
        if current != n:
            reason = state.autoscaler.last.reason if state.autoscaler is not None else ""
            self._record_event(state.name, "scale", f"{state.name}: {current} -> {n} replicas ({reason})")
            await self.supervisor.set_scale(state.name, n)

    def _on_cold_start(self, revision: str, replica_id: str, since: float, answered: float) -> None:
        """The request that found `revision` at zero got its response head from `replica_id`."""
        try:
            replica = next((r for r in self.supervisor.replicas(revision) if r.replica_id == replica_id), None)
        except UnknownRevisionError:
            replica = None
        phases = {} if replica is None else cold_start_phases(since, answered, replica.requested_at,
                                                             replica.timings_ms)
        self.cold_starts.observe(function_of(revision), revision, answered - since, phases)

    # --- the autoscaler loop -------------------------------------------------------------------------

    async def _sample_loop(self) -> None:
        next_tick = self._clock() + TICK_INTERVAL
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            now = self._clock()
            try:
                for name, stats in self.activator.collect_stats(now).items():
                    state = self._revisions.get(name)
                    if state is not None and state.autoscaler is not None:
                        state.autoscaler.record(now, stats.average_concurrency, stats.request_count)
                if now >= next_tick:
                    next_tick = now + TICK_INTERVAL
                    await self._tick(now)
            except Exception:  # one bad revision must not stop autoscaling for all
                log.exception("autoscaler tick failed")

    async def _tick(self, now: float) -> None:
        for state in list(self._revisions.values()):
            if state.autoscaler is None or state.function_dir is None:
                continue
            ready = self.supervisor.status(state.name).ready
            decision = state.autoscaler.tick(now, ready)
            self._remember(state, decision)
            await self._apply(state, decision.applied)

    def _remember(self, state: _RevisionState, decision: ScaleDecision) -> None:
        if state.logged_scale != decision.applied:
            state.logged_scale = decision.applied
            log.info("%s: scale %d (%s)", state.name, decision.applied, decision.reason)

    # --- status --------------------------------------------------------------------------------------

    def _scale_rows(self) -> list[RevisionScale]:
        """Each revision with an autoscaler, for /metrics (called on the event loop's thread by the scrape)."""
        rows = []
        for name, state in list(self._revisions.items()):
            if state.autoscaler is None or state.function_dir is None:
                continue
            last = state.autoscaler.last
            replicas = self.supervisor.status(name)
            rows.append(RevisionScale(
                function=state.manifest.name, revision=name, metric=state.manifest.scaling.metric,
                desired=last.desired, requested=replicas.desired, ready=replicas.ready, starting=replicas.starting,
                terminating=replicas.draining, panicking=last.panicking, stable_value=last.stable_value,
                panic_value=last.panic_value, target=state.autoscaler.decider.spec.target_value,
                excess_burst_capacity=last.excess_burst_capacity, replicas=self.supervisor.counters(name)))
        return rows

    def status(self, function: str) -> dict[str, Any]:
        """Per revision: replicas, panic mode, observed load, queue and the last decision with its reason."""
        route = self.route_table.route(function)
        percents: dict[str, int] = {}
        if route is not None:
            for name in route.slots:
                percents[name] = percents.get(name, 0) + 1
        names = sorted({n for n in self._revisions if function_of(n) == function} | set(percents))
        revisions = []
        for name in names:
            state = self._revisions.get(name)
            replicas = self.supervisor.status(name) if state and state.function_dir else None
            last = state.autoscaler.last if state and state.autoscaler else None
            revisions.append({
                "revision": name,
                "percent": percents.get(name, 0),
                "tags": sorted(t for t, r in (route.tags.items() if route else ()) if r == name),
                "ready": replicas.ready if replicas else 0,
                "desired": replicas.desired if replicas else 0,
                "starting": replicas.starting if replicas else 0,
                "draining": replicas.draining if replicas else 0,
                "panicking": bool(last and last.panicking),
                # Averages of `metric` over the stable and panic windows: requests in flight, or per second.
                "metric": state.manifest.scaling.metric if state else "concurrency",
                "stable_value": round(last.stable_value, 3) if last else 0.0,
                "panic_value": round(last.panic_value, 3) if last else 0.0,
                "queue_depth": self.activator.queue_depth(name),
                "in_flight": self.activator.in_flight(name),
                "last_decision": ({"applied": last.applied, "desired": last.desired, "reason": last.reason,
                                   "age_seconds": round(self._clock() - last.at, 3)} if last else None),
                "last_error": replicas.last_error if replicas else None,
                "restarts": replicas.restarts if replicas else 0,
                "replicas": ([{"id": r.replica_id, "pid": r.pid, "state": r.state, "timings_ms": r.timings_ms}
                              for r in self.supervisor.replicas(name)] if replicas else []),
                "warm_template": self.supervisor.templates.revision_status(name),
            })
        templates = self.supervisor.warm_templates()
        return {"function": function, "revisions": revisions,
                "warm_templates": {key: templates[key] for key in
                                   ("budget_bytes", "count", "bytes", "hits", "misses", "evictions")}}
