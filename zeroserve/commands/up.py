"""`zeroserve up`: run the platform in the foreground."""

from __future__ import annotations

from zeroserve.commands.connection import fail
from zeroserve.commands.up_flags import (
    AccessLogFlag,
    ArtifactsFlag,
    AwsRegionFlag,
    DataFlag,
    DeployBranchFlag,
    DomainFlag,
    GrpcPortFlag,
    HeaderTimeoutFlag,
    HostFlag,
    KeepAliveTimeoutFlag,
    KeepUnroutedFlag,
    KubeContextFlag,
    KubeNamespaceFlag,
    KubeReadyTimeoutFlag,
    KubeServiceAccountFlag,
    KubeStoreSecretFlag,
    LambdaImageFlag,
    LambdaPrefixFlag,
    LambdaRoleFlag,
    MaxConnectionsFlag,
    MaxHeaderBytesFlag,
    MaxHeadersFlag,
    MetricsPublicFlag,
    OtelEndpointFlag,
    PortFlag,
    QueueLimitFlag,
    RunAsFlag,
    RuntimeImageFlag,
    WarmTemplatesMemoryFlag,
)


def up(
    port: PortFlag = None,
    grpc_port: GrpcPortFlag = None,
    host: HostFlag = None,
    data: DataFlag = None,
    artifacts: ArtifactsFlag = None,
    domain: DomainFlag = None,
    keep_unrouted: KeepUnroutedFlag = None,
    deploy_branch: DeployBranchFlag = None,
    queue_limit: QueueLimitFlag = None,
    max_header_bytes: MaxHeaderBytesFlag = None,
    max_headers: MaxHeadersFlag = None,
    header_timeout: HeaderTimeoutFlag = None,
    keep_alive_timeout: KeepAliveTimeoutFlag = None,
    max_connections: MaxConnectionsFlag = None,
    run_as: RunAsFlag = None,
    metrics_public: MetricsPublicFlag = None,
    access_log: AccessLogFlag = None,
    otel_endpoint: OtelEndpointFlag = None,
    kube_context: KubeContextFlag = None,
    kube_namespace: KubeNamespaceFlag = None,
    runtime_image: RuntimeImageFlag = None,
    kube_store_secret: KubeStoreSecretFlag = None,
    kube_service_account: KubeServiceAccountFlag = None,
    kube_ready_timeout: KubeReadyTimeoutFlag = None,
    aws_region: AwsRegionFlag = None,
    lambda_role: LambdaRoleFlag = None,
    lambda_image: LambdaImageFlag = None,
    lambda_prefix: LambdaPrefixFlag = None,
    warm_templates_memory: WarmTemplatesMemoryFlag = None,
) -> None:
    """Run the platform until Ctrl-C: function URLs (activator, autoscaler, replicas), /api/v1, /git/."""
    flags = dict(locals())  # every flag under its setting's name; only --data is named differently
    flags["data_dir"] = flags.pop("data")
    # The platform (pydantic settings, FastAPI, uvicorn, the data plane) is imported only when it runs.
    from zeroserve.settings import Settings, SettingsError
    from zeroserve.up import run_platform

    try:
        settings = Settings.load(**flags)
    except SettingsError as exc:
        fail(str(exc))
    try:
        run_platform(settings)
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        fail(str(exc))
