"""`zeroserve up`: the local platform in one process.

`create_platform(settings)` assembles the parts (registry, artifact store, route table, deploy service,
control API) without starting anything; `Platform.start()`/`stop()` run and end its background work;
`run_platform(settings)` serves it with uvicorn in the foreground and prints one line when ready.

The data plane (activator, autoscaler, supervisor) plugs in here: read routes from `platform.route_table`
(kept current by a registry subscription, so no request ever queries SQLite), add start/stop hooks with
`platform.on_start` / `platform.on_stop`, and serve your ASGI app in front of `platform.asgi_app` (which
answers /api/v1).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType

import uvicorn
import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from activator.otel_export import SpanExport
from deploy.git import create_git_remote
from deploy.local.smoke_fork import ForkedSmoke
from deploy.local.supervisor import PROCESSES_DIR_NAME
from deploy.service import DeployService
from deploy.targets import Target, Targets
from functions.http_protocol import limited_http_protocol
from functions.isolation.orphans import ProcessRecords
from revisions.errors import NotFoundError
from revisions.registry import Registry
from revisions.registry.notices import LOCAL
from revisions.smoke_sandbox import SmokeSandbox
from revisions.store import S3_ENDPOINT_ENV_VARS, ArtifactStore, open_store
from revisions.traffic import ResolvedRoute, RouteTable
from zeroserve.api import ControlContext, create_control_app
from zeroserve.api.auth import token_matches
from zeroserve.console import ConsoleRoute
from zeroserve.credentials import Credentials
from zeroserve.dataplane import LocalDataPlane
from zeroserve.host_dispatch import HostDispatcher
from zeroserve.isolation import plan_isolation, print_notice, secure_data_dir
from zeroserve.metrics import DeployCollector
from zeroserve.platform_log import configure_platform_logging
from zeroserve.scale_history import ScaleHistory
from zeroserve.settings import Settings, ensure_token

logger = logging.getLogger("zeroserve.platform")

Hook = Callable[[], Awaitable[None]]


class Platform:
    def __init__(self, settings: Settings, registry: Registry, store: ArtifactStore, token: str):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.token = token
        # The admin token and the scoped tokens, for the API, the git remote and `auth: token` functions.
        self.credentials = Credentials(token, registry.tokens)
        self.route_table = RouteTable()
        # Who functions and builds run as (zeroserve/isolation.py); builds' smoke children are recorded
        # beside the supervisor's processes, so a restart sweeps what a killed platform left running.
        self.isolation = plan_isolation(settings)
        identities = self.isolation.identities
        # Smoke children fork from the data plane's zygote once it runs (deploy.local.smoke_fork).
        self.smoke_fork = ForkedSmoke(run_dir_for(settings.data_dir))
        sandbox = SmokeSandbox(run_as=identities.for_function if identities is not None else None,
                               scratch_dir=settings.scratch_dir,
                               processes=ProcessRecords(run_dir_for(settings.data_dir) / PROCESSES_DIR_NAME),
                               fork=self.smoke_fork)
        # Targets besides local (deploy/targets.py), built on first use; the registry tells them of every
        # route change before it commits.
        self.targets = Targets({"knative": lambda: knative_target(settings), "lambda": lambda: lambda_target(settings)})
        registry.route_observer = self.targets.follow
        self.deployer = DeployService(registry, store, keep_unrouted=settings.keep_unrouted,
                                      build_workers=settings.build_workers, smoke_timeout=settings.smoke_timeout,
                                      smoke_sandbox=sandbox, targets=self.targets)
        self.base_url = f"http://{settings.host}:{settings.port}"
        self.control = ControlContext(settings=settings, registry=registry, deployer=self.deployer, token=token,
                                      credentials=self.credentials,
                                      base_url=lambda: self.base_url)
        self.control_app = create_control_app(self.control)
        # `git push` to /git/<fn>.git deploys through the same deploy service (deploy/git).
        self.git_remote = create_git_remote(settings.git_dir, self.credentials.git_access, self.deployer,
                                            deploy_branch=settings.deploy_branch,
                                            function_urls=self.control.function_urls,
                                            max_push_bytes=settings.max_upload_bytes)
        # Everything that is not a function URL: /console/ (static files), /git/ to the remote, the rest to the
        # control API.
        self.platform_app: ASGIApp = ConsoleRoute(self.git_remote.mount(self.control_app))
        # What uvicorn serves; attach_data_plane() puts the HostDispatcher (function URLs to the activator)
        # and /metrics in front of it.
        self.asgi_app: ASGIApp = self.platform_app
        self.data_plane: LocalDataPlane | None = None
        self.on_start: list[Hook] = []
        self.on_stop: list[Hook] = []
        self._rollout_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def _refresh_route(self, function: str) -> None:
        route = self.registry.resolved_route(function)
        self.route_table.update(function, route if route is not None and self._runs_here(function) else None)

    def _local_routes(self) -> dict[str, ResolvedRoute]:
        return {name: route for name, route in self.registry.resolved_routes().items() if self._runs_here(name)}

    def _runs_here(self, function: str) -> bool:
        """Whether the function's newest revision lists the local target (`targets: [knative]` runs only there)."""
        try:
            revisions = self.registry.list_revisions(function)
        except NotFoundError:
            return False
        return not revisions or LOCAL in (revisions[-1].manifest.get("targets") or [LOCAL])

    async def start(self) -> None:
        """Load every route, clear what a killed run left behind, start advancing rollouts, run hooks."""
        shutil.rmtree(self.settings.scratch_dir, ignore_errors=True)
        self.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        self._unsubscribe = self.registry.subscribe(self._refresh_route)
        self.route_table.replace_all(await self.deployer.run_blocking(self._local_routes))
        orphans = await self.deployer.run_blocking(self.deployer.sweep_orphans)
        if orphans:
            logger.info("deleted %d artifact(s) of builds that were never recorded", len(orphans))
        self._rollout_task = asyncio.create_task(self._advance_rollouts(), name="zeroserve-rollouts")
        for hook in self.on_start:
            await hook()

    async def stop(self) -> None:
        for hook in reversed(self.on_stop):
            await hook()
        if self._rollout_task is not None:
            self._rollout_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rollout_task
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.credentials.flush()  # tokens' last uses still only in memory
        self.deployer.close()
        self.registry.close()

    async def _advance_rollouts(self) -> None:
        """Every tick, move gradual rollouts to their split at the current time (persisted by the registry);
        every target follows each step, and one that missed a step gets the route again."""
        while True:
            try:
                await self.deployer.run_blocking(self.registry.advance_rollouts, time.time())
                if self.targets.unsynced():
                    await self.deployer.run_blocking(self.targets.retry_unsynced, self.registry)
            except Exception:  # a locked database or a bad row must not end rollouts for good
                logger.exception("advancing rollouts failed; retrying")
            await asyncio.sleep(self.settings.rollout_tick)


def create_platform(settings: Settings, *, data_plane: bool = True) -> Platform:
    data_dir = Path(settings.data_dir)
    secure_data_dir(settings)
    token = ensure_token(data_dir)
    registry = Registry(settings.registry_path)
    try:
        store = open_store(settings.artifacts, data_dir)
    except BaseException:
        registry.close()
        raise
    platform = Platform(settings, registry, store, token)
    if data_plane:
        attach_data_plane(platform)
    return platform


def knative_target(settings: Settings) -> Target:
    """The Knative target as the settings describe it (imported on first use: most platforms never need it)."""
    from deploy.knative.service import KnativeSettings
    from deploy.knative.target import KnativeTarget

    # The pods reach the store at the platform's endpoint (MinIO, R2, ...) with the platform's region.
    endpoint = next((os.environ[n] for n in S3_ENDPOINT_ENV_VARS if os.environ.get(n)), None)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    knative = KnativeSettings(image=settings.runtime_image or "", namespace=settings.kube_namespace,
                              secret_name=settings.kube_store_secret, service_account=settings.kube_service_account,
                              s3_endpoint=endpoint, s3_region=region)
    return KnativeTarget(knative, store=settings.artifacts, context=settings.kube_context,
                         ready_timeout=settings.kube_ready_timeout)


def lambda_target(settings: Settings) -> Target:
    """The Lambda target as the settings describe it (boto3 imported on first use, like the target itself)."""
    from deploy.aws_lambda.mapping import LambdaSettings
    from deploy.aws_lambda.target import LambdaTarget

    region = settings.aws_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    # The functions reach an S3-compatible store (MinIO, R2) at the platform's own S3 endpoint; AWS_ENDPOINT_URL
    # is the platform's way to the AWS APIs (Lambda's too), not the functions'.
    lambda_settings = LambdaSettings(region=region, role=settings.lambda_role or "", image=settings.lambda_image or "",
                                     function_prefix=settings.lambda_prefix,
                                     s3_endpoint=os.environ.get("ZEROSERVE_S3_ENDPOINT_URL") or None)
    return LambdaTarget(lambda_settings, store=settings.artifacts)


def attach_data_plane(platform: Platform) -> LocalDataPlane:
    """Function URLs, the activator, the autoscaler loop and the replicas, on the platform's one port."""
    settings = platform.settings
    span_export = SpanExport.to_endpoint(settings.otel_endpoint) if settings.otel_endpoint else None
    plane = LocalDataPlane(platform.registry, platform.store, platform.route_table, run_dir_for(settings.data_dir),
                           domain=settings.domain, queue_limit=settings.queue_limit,
                           check_caller=platform.credentials.invoke_check,
                           identities=platform.isolation.identities,
                           logs_dir=Path(settings.data_dir) / "logs", access_log=settings.access_log,
                           export_span=span_export.record if span_export is not None else None,
                           warm_templates_memory=settings.warm_templates_bytes)
    platform.data_plane = plane
    platform.control.scale_status = plane.status
    platform.control.function_logs = plane.logs
    history = ScaleHistory(plane.activator.metrics_registry)  # the console's chart: a point a second per function
    platform.control.scale_history = history
    plane.activator.metrics_registry.register(DeployCollector(platform.deployer.metrics))
    fallback = MetricsEndpoint(platform.platform_app, plane.activator.metrics_registry,
                               token=None if settings.metrics_public else platform.token)
    platform.asgi_app = HostDispatcher(plane.activator, fallback, settings.domain)
    platform.on_start.extend((plane.start, history.start))

    async def fork_smoke_children() -> None:
        platform.smoke_fork.attach(plane.supervisor)

    async def spawn_smoke_children() -> None:
        platform.smoke_fork.detach()

    platform.on_start.append(fork_smoke_children)
    if span_export is not None:
        # Hooks stop in reverse order: this runs after plane.stop, so the spans of draining requests go too.
        async def flush_spans() -> None:
            await asyncio.to_thread(span_export.shutdown)
        platform.on_stop.append(flush_spans)
    platform.on_stop.extend((plane.stop, history.stop))
    platform.on_stop.append(spawn_smoke_children)  # hooks stop in reverse: this one before the zygotes stop
    grpc_port = settings.grpc_listen_port
    if grpc_port is not None:
        attach_grpc_front(platform, plane, grpc_port)
    return plane


def attach_grpc_front(platform: Platform, plane: LocalDataPlane, port: int) -> None:
    """The Open Inference Protocol over gRPC on its own port, through the activator (docs/grpc.md)."""
    from activator.grpc_front import GrpcFront  # grpc's core starts threads: only platforms that serve it pay

    front = GrpcFront(plane.activator, platform.settings.host, port)

    async def start() -> None:
        try:
            await front.start()
        except OSError as exc:
            if platform.settings.grpc_port is not None:
                raise  # a port the user chose: not serving it is an error
            # The default port taken (another platform, another server): REST still serves; say why gRPC does not.
            print(f"zeroserve gRPC is off: {exc}; choose another port with --grpc-port (-1: no gRPC)", flush=True)
            return
        print(f"zeroserve gRPC (Open Inference Protocol, every function by model name) at {front.address}",
              flush=True)

    platform.on_start.insert(0, start)  # first: a port in use stops the start before any replica runs
    platform.on_stop.append(front.stop)  # hooks stop in reverse: calls in flight end before the data plane stops


def run_dir_for(data_dir: Path) -> Path:
    """Replica sockets live here; Unix socket paths are capped at 108 bytes, so long data dirs get /tmp."""
    run_dir = Path(data_dir).resolve() / "run"
    if len(str(run_dir / "sockets" / "r999999999.sock")) <= 100:
        return run_dir
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"zeroserve-{digest}"


class MetricsEndpoint:
    """`GET /metrics` in Prometheus text format; everything else to the control API.

    The metrics name every function and revision, so they need the platform token like /api/v1
    (Prometheus: `authorization: {credentials_file: DATA/token}`), unless `token` is None
    (the `metrics_public` setting).
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, token: str | None):
        self.app = app
        self.registry = registry
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
            if self.token is not None and not token_matches(authorization, self.token):
                body = json.dumps({"error": "unauthorized: /metrics needs 'Authorization: Bearer <token>' (the "
                                            "token is in DATA/token), or the metrics_public setting"}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            body = generate_latest(self.registry)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class PlatformServer(uvicorn.Server):
    """uvicorn that returns from serve() after a graceful SIGTERM/SIGINT instead of re-raising the signal.

    uvicorn re-raises a captured signal once it has shut down, which would end the process before the
    platform's own stop (drain, replicas, zygotes, sockets) runs; the zygotes, which die with the
    platform, would take their replicas along without draining them.
    """

    # Called on SIGTERM/SIGINT, before uvicorn waits for open responses: streams that never end on their own
    # (`zeroserve logs -f`) end here, or that wait would last forever.
    on_exit: list[Callable[[], None]]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
        for hook in getattr(self, "on_exit", ()):
            hook()


def run_platform(settings: Settings, *, ready: Callable[[str], None] | None = None,
                 after_ready: Callable[[Platform], Awaitable[None]] | None = None) -> None:
    """Serve the platform in the foreground until SIGINT/SIGTERM."""
    # uvloop, like replicas and `zeroserve serve`: on the stdlib loop the activator's socket writes and
    # event loop cost it about half its throughput (docs/activator.md, "Benchmark").
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_platform(settings, ready=ready, after_ready=after_ready))


async def serve_platform(settings: Settings, *, ready: Callable[[str], None] | None = None,
                         after_ready: Callable[[Platform], Awaitable[None]] | None = None) -> None:
    os.umask(0o077)  # what the platform writes (registry, uploads, git objects) is its user's alone
    configure_platform_logging()
    platform = create_platform(settings)
    print_notice(platform.isolation)  # the first lines: who functions run as, and what that leaves open
    # Lifespan off: the platform's start/stop run here, around the server, whatever app is in front.
    # The HTTP protocol enforces the connection settings (header limits, timeouts, connection cap).
    config = uvicorn.Config(platform.asgi_app, host=settings.host, port=settings.port, lifespan="off",
                            log_level="warning", access_log=False, server_header=False,
                            http=limited_http_protocol(settings.connection_limits))
    server = PlatformServer(config)
    server.on_exit = [platform.data_plane.logs.stop_following] if platform.data_plane is not None else []
    await platform.start()
    try:
        watcher = asyncio.create_task(_announce_when_bound(server, platform, ready or _print_ready, after_ready))
        try:
            await server.serve()
        finally:
            watcher.cancel()
    finally:
        await platform.stop()


async def _announce_when_bound(server: uvicorn.Server, platform: Platform, ready: Callable[[str], None],
                               after_ready: Callable[[Platform], Awaitable[None]] | None) -> None:
    while not server.started:
        await asyncio.sleep(0.02)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    platform.base_url = f"http://{host}:{port}"
    ready(f"zeroserve ready at {platform.base_url} (data: {platform.settings.data_dir})")
    if after_ready is not None:
        try:
            await after_ready(platform)
        except Exception:  # the platform keeps serving; whoever asked sees why in the log
            logger.exception("start-up task failed")


def _print_ready(line: str) -> None:
    print(line, flush=True)
    sys.stdout.flush()
