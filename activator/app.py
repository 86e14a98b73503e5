"""The activator: the ASGI app in front of every function URL.

Per request: route (Host or /fn/ path) -> function and tag -> weighted pick of a revision ->
that revision's throttler (wait for a free replica, bounded queue, deadline) -> proxy over the
replica's Unix socket. Requests at zero replicas wait while `on_cold_request` asks for one.

All methods run on the event loop that serves requests; call them from that loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator

from activator.breaker import PendingFailed, QueueFull
from activator.contracts import CallerChecker, ReplicaEndpoint, RevisionSettings, RevisionStats, RouteResolver
from activator.metrics import ActivatorCollector, RevisionCounters, RevisionGauges, registry_with
from activator.proxy import (
    ClientGone,
    ReplicaClient,
    ReplicaFailed,
    ReplicaUnreachable,
    RequestBody,
    relay_response,
    replica_target,
    request_content_length,
    request_headers,
    send_upstream,
)
from activator.routing import RouteError, resolve_label, target_of
from activator.stats import ConcurrencyMeter
from activator.throttler import ReplicaTracker, RevisionThrottler
from activator.tracing import RequestTrace, SpanRecorder, log_access
from protocol.asgi import Receive, Scope, Send, send_json_error, serve_lifespan

log = logging.getLogger("zeroserve.activator")

REVISION_HEADER = b"zeroserve-revision"
# On a response to a request that found its revision at zero replicas and waited for one to start.
COLD_START_HEADER = (b"zeroserve-cold-start", b"true")
RETRY_AFTER_SECONDS = b"1"
# How long a replica that dropped a connection before answering gets no new request, unless the supervisor
# relists the replicas sooner (it does within milliseconds of a death): RevisionThrottler.suspect.
SUSPECT_SECONDS = 1.0
# nginx's code for "the client closed the request"; only ever recorded, never sent.
CLIENT_CLOSED = 499


class _Revision:
    """Everything the activator keeps per revision."""

    __slots__ = ("name", "settings", "throttler", "meter", "counters", "header", "cold_header")

    def __init__(self, name: str, settings: RevisionSettings, throttler: RevisionThrottler[ReplicaClient],
                 now: float):
        self.name = name
        self.settings = settings
        self.throttler = throttler
        self.meter = ConcurrencyMeter(now)
        self.counters = RevisionCounters()
        self.header = [(REVISION_HEADER, name.encode("latin-1"))]
        self.cold_header = [*self.header, COLD_START_HEADER]


class Activator:
    def __init__(
        self,
        resolver: RouteResolver,
        *,
        domain: str = "localhost",
        on_cold_request: Callable[[str], None] | None = None,
        check_caller: CallerChecker | None = None,
        on_cold_start: Callable[[str, str, float, float], None] | None = None,
        access_log: bool = False,
        export_span: SpanRecorder | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ):
        self._resolver = resolver
        self.domain = domain.lower().strip(".")
        self._on_cold_request = on_cold_request
        # (revision, replica, since, answered), clock times: the request that found no replica and asked for
        # one has its response head from `replica` (zeroserve/dataplane.py breaks it into phases).
        self._on_cold_start = on_cold_start
        # One line per request on the "zeroserve.access" logger (activator.tracing.log_access).
        self._access_log = access_log
        # Each finished request as a span, for OpenTelemetry (activator.otel_export); None: no export.
        self._export_span = export_span
        self._timed = access_log or export_span is not None  # requests take their times only when someone reads them
        # Who may call `auth: token` functions; None: nobody (they answer 401), and nothing is dropped.
        self._check_caller = check_caller
        self._clock = clock
        self._rng = rng
        self._revisions: dict[str, _Revision] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.metrics = ActivatorCollector(self._metric_rows)
        self.metrics_registry = registry_with(self.metrics)

    # -- what the platform wiring (zeroserve/dataplane.py) calls --------------------------------

    def set_endpoints(self, revision: str, endpoints: list[ReplicaEndpoint]) -> None:
        """Replace the ready replicas of `revision`; capacity and waiting requests follow at once."""
        self._revision(revision).throttler.set_endpoints(endpoints)

    def fail_pending(self, revision: str, message: str) -> int:
        """Answer every request waiting for `revision` with 503 {"error": message}; returns how many."""
        state = self._revisions.get(revision)
        return 0 if state is None else state.throttler.fail_pending(message)

    async def drain(self, revision: str, replica_id: str, timeout: float) -> None:
        """Stop routing to a replica and wait until its in-flight requests end, or `timeout` passes."""
        state = self._revisions.get(revision)
        tracker = None if state is None else state.throttler.start_drain(replica_id)
        if tracker is not None and not await tracker.wait_idle(timeout):
            log.warning("drain of replica %s (revision %s) timed out after %.1fs with %d in flight",
                        replica_id, revision, timeout, tracker.in_flight)

    def collect_stats(self, now: float) -> dict[str, RevisionStats]:
        """Time-weighted concurrency and arrivals per revision since the previous call.

        `now` must come from the same clock the activator was built with (time.monotonic by default).
        """
        return {name: state.meter.collect(now) for name, state in self._revisions.items()}

    def function_of(self, label: str) -> tuple[str, str | None]:
        """(function, tag) a function URL label names, or RouteError: for fronts that route by a name in the
        request rather than by Host or path (activator/grpc_front.py routes by the model name)."""
        return resolve_label(self._resolver, label)

    @property
    def closed(self) -> bool:
        return self._closed

    def queue_depth(self, revision: str) -> int:
        state = self._revisions.get(revision)
        return 0 if state is None else state.throttler.queue_depth

    def in_flight(self, revision: str) -> int:
        state = self._revisions.get(revision)
        return 0 if state is None else state.throttler.in_flight

    async def close(self) -> None:
        """Fail waiting requests with 503 and stop routing; requests being proxied run to their end,
        and each replica's connections close once it has none in flight."""
        self._closed = True
        for state in self._revisions.values():
            state.throttler.fail_pending("the activator is shutting down")
            state.throttler.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(receive, send, self.close)
        else:  # websockets are not part of the function URL contract
            await send({"type": "websocket.close", "code": 1003})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        trace = RequestTrace(scope["headers"])
        if not self._timed:
            await self._answer(scope, receive, send, trace)
            return
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        status = 500
        try:
            status = await self._answer(scope, receive, send, trace)
        finally:
            finished = loop.time()
            if self._access_log:
                log_access(trace, scope["method"], scope["path"], status, arrived, finished)
            if self._export_span is not None:
                self._export_span(trace, scope["method"], scope["path"], status, arrived, finished)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, trace: RequestTrace) -> int:
        """Route, check the caller, serve; returns the status answered (499: the client went away)."""
        try:
            target = target_of(scope, self.domain)
            function, tag = resolve_label(self._resolver, target.label)
        except RouteError as error:
            return await send_json_error(send, error.status, error.message, trace.headers, trace.request_id)
        trace.function = function
        revision = self._resolver.pick(function, tag, self._rng())
        if revision is None:
            return await send_json_error(send, 503, f"function '{function}' has no revision receiving traffic",
                                         trace.headers, trace.request_id)
        trace.revision = revision
        try:
            state = self._revision(revision)
        except LookupError:
            return await send_json_error(send, 404, f"revision '{revision}' of function '{function}' not found",
                                         trace.headers, trace.request_id)
        authorization = _authorization(scope)
        drop_authorization = False
        if state.settings.requires_token:
            check = None if self._check_caller is None else self._check_caller(authorization, function)
            if check is None or (not check.allowed and check.status == 401):
                why = "" if check is None or authorization is None else f" ({check.reason})"
                return await send_json_error(send, 401, f"function '{function}' requires 'Authorization: Bearer "
                                             f"<token>', an invoke token for it (its function.yaml says auth: "
                                             f"token){why}", [(b"www-authenticate", b'Bearer realm="zeroserve"'),
                                                              *trace.headers], trace.request_id)
            if not check.allowed:  # a valid token that does not cover this function: the reason names its scope
                return await send_json_error(send, check.status, f"function '{function}' (auth: token): "
                                             f"{check.reason}", trace.headers, trace.request_id)
            drop_authorization = True
        elif authorization is not None and self._check_caller is not None:
            # A platform token sent to a public function stays here too: user code never sees one.
            drop_authorization = self._check_caller(authorization, function).platform_credential
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        state.meter.arrive(self._clock())
        status = 500
        try:
            status = await self._serve(state, scope, target.raw_path, target.prefix, receive, send, arrived,
                                       drop_authorization, trace)
        finally:
            state.meter.depart(self._clock())
            state.counters.count_response(status)
        return status

    async def _serve(self, state: _Revision, scope: Scope, raw_path: bytes, prefix: bytes,
                     receive: Receive, send: Send, arrived: float, drop_authorization: bool,
                     trace: RequestTrace) -> int:
        settings = state.settings
        throttler = state.throttler
        # No replica to route to on arrival: this request waits for a start (a cold start), and says so.
        answer_headers = [*(state.cold_header if not throttler.routable else state.header), *trace.headers]
        request_id = trace.request_id
        deadline = arrived + settings.timeout_seconds
        has_body, length = request_content_length(scope)
        body = RequestBody(receive, length) if has_body else None
        target = replica_target(raw_path, scope.get("query_string", b""))
        headers = request_headers(scope, prefix, drop_authorization=drop_authorization)
        headers += trace.headers
        retry = False
        while True:
            if self._closed:
                state.counters.count_rejection("shutting_down")
                return await send_json_error(send, 503, "the activator is shutting down", answer_headers, request_id)
            if not throttler.routable and throttler.queue_depth == 0:
                if trace.cold_since is None:
                    trace.cold_since = self._clock()
                self._poke(state.name)
            try:
                tracker = await throttler.acquire(deadline, retry=retry)
            except QueueFull:
                state.counters.count_rejection("queue_full")
                return await send_json_error(
                    send, 503,
                    f"revision '{state.name}' has {settings.queue_limit} requests waiting already; "
                    "retry later",
                    [*answer_headers, (b"retry-after", RETRY_AFTER_SECONDS)], request_id,
                )
            except TimeoutError:
                state.counters.count_rejection("timeout")
                return await send_json_error(
                    send, 504,
                    f"revision '{state.name}' had no free replica within {settings.timeout_seconds:g}s",
                    answer_headers, request_id,
                )
            except PendingFailed as error:
                state.counters.count_rejection("start_failed")
                return await send_json_error(send, 503, error.message, answer_headers, request_id)
            if self._timed:
                trace.acquired = asyncio.get_running_loop().time()
            unreachable = False
            try:
                return await self._forward(state, tracker, scope, target, headers, body, receive, send,
                                           arrived, deadline, answer_headers, trace)
            except ReplicaUnreachable as error:
                log.info("replica %s of revision %s is unreachable (%s); retrying elsewhere",
                         tracker.replica_id, state.name, error)
                unreachable = True
                retry = True
            finally:
                throttler.release(tracker, unreachable=unreachable)

    async def _forward(self, state: _Revision, tracker: ReplicaTracker[ReplicaClient], scope: Scope,
                       target: bytes, headers: list[tuple[bytes, bytes]], body: RequestBody | None,
                       receive: Receive, send: Send, arrived: float, deadline: float,
                       answer_headers: list[tuple[bytes, bytes]], trace: RequestTrace) -> int:
        try:
            response = await send_upstream(tracker.client, scope["method"], target, headers, body, deadline)
        except ReplicaFailed as error:
            if error.status == 502:
                # The replica dropped a connection before answering: it crashed or is being killed. Its other
                # pooled connections have not told us yet; sending the next requests over them would lose
                # those too. New connections are no better until the process is gone (its listening socket
                # may still accept, then reset), so no request goes to it until the supervisor relists it.
                tracker.client.discard_idle()
                state.throttler.suspect(tracker, SUSPECT_SECONDS)
            state.counters.observe_latency(asyncio.get_running_loop().time() - arrived)
            message = (f"replica {tracker.replica_id} of revision '{state.name}' {error.message}"
                       + (f" (timeout {state.settings.timeout_seconds:g}s)" if error.status == 504 else ""))
            return await send_json_error(send, error.status, message, answer_headers, trace.request_id)
        except ClientGone:
            return CLIENT_CLOSED
        state.counters.observe_latency(asyncio.get_running_loop().time() - arrived)
        if trace.cold_since is not None:
            self._cold_started(state.name, tracker.replica_id, trace.cold_since)
        failure = await relay_response(response, answer_headers, receive, send, body)
        if failure is not None:
            log.warning("replica %s of revision '%s' failed mid-response (%s); closing the client connection",
                        tracker.replica_id, state.name, failure)
        return response.status

    # -- helpers ----------------------------------------------------------------------------

    def _revision(self, revision: str) -> _Revision:
        state = self._revisions.get(revision)
        if state is None:
            settings = self._resolver.revision_settings(revision)
            throttler: RevisionThrottler[ReplicaClient] = RevisionThrottler(
                revision, settings, make_client=_client_for, close_client=self._close_client, rng=self._rng
            )
            state = self._revisions[revision] = _Revision(revision, settings, throttler, self._clock())
        return state

    def _close_client(self, client: ReplicaClient) -> None:
        try:
            task = asyncio.get_running_loop().create_task(client.close())
        except RuntimeError:  # no loop running: no connection was ever opened (they open in requests)
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _poke(self, revision: str) -> None:
        if self._on_cold_request is None:
            return
        try:
            self._on_cold_request(revision)
        except Exception:  # a failing hook must not fail the request that is about to wait
            log.exception("on_cold_request(%r) failed", revision)

    def _cold_started(self, revision: str, replica_id: str, since: float) -> None:
        if self._on_cold_start is None:
            return
        try:
            self._on_cold_start(revision, replica_id, since, self._clock())
        except Exception:  # metrics must never fail the response that is about to go out
            log.exception("on_cold_start(%r) failed", revision)

    def _metric_rows(self) -> Iterator[RevisionGauges]:
        for name, state in list(self._revisions.items()):
            yield RevisionGauges(name, state.counters, state.throttler.queue_depth, state.throttler.in_flight,
                                 state.settings.function)


def _client_for(endpoint: ReplicaEndpoint) -> ReplicaClient:
    return ReplicaClient(endpoint.socket_path)


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value
    return None
