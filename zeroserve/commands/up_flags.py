"""The flags of `zeroserve up`, one per setting (zeroserve/settings.py documents each).

Kept apart from the command so that `up` reads as what it does. Each help text names the flag's variable and
default itself (with escaped brackets, which rich would otherwise take for markup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PortFlag = Annotated[int | None, typer.Option("--port", help="TCP port (0: any free port) \\[default 8080]",
                                              show_default=False)]
GrpcPortFlag = Annotated[int | None, typer.Option("--grpc-port", help="TCP port of gRPC (Open Inference Protocol) "
                                                  "for every function; 0: any free port; -1: no gRPC \\[env "
                                                  "ZEROSERVE_GRPC_PORT; default 8081, any free port with --port 0]",
                                                  show_default=False)]
WarmTemplatesMemoryFlag = Annotated[str | None, typer.Option("--warm-templates-memory", help="Memory the warm "
                                                           "templates of recently used revisions may hold, e.g. "
                                                           "512Mi; 0: none \\[env ZEROSERVE_WARM_TEMPLATES_MEMORY; "
                                                           "default 512Mi]", show_default=False)]
HostFlag = Annotated[str | None, typer.Option("--host", help="Address to bind \\[default 127.0.0.1]",
                                              show_default=False)]
DataFlag = Annotated[Path | None, typer.Option("--data", help="Data dir: registry, artifacts, token "
                                               "\\[env ZEROSERVE_DATA; default ./.zeroserve]", show_default=False)]
ArtifactsFlag = Annotated[str | None, typer.Option("--artifacts", help="Artifact store: s3://bucket/prefix "
                                                   "\\[default DATA/artifacts]", show_default=False)]
DomainFlag = Annotated[str | None, typer.Option("--domain", help="Domain of function URLs \\[default localhost]",
                                                show_default=False)]
KeepUnroutedFlag = Annotated[int | None, typer.Option("--keep-unrouted", help="Unrouted revisions kept per "
                                                      "function \\[default 5]", show_default=False)]
DeployBranchFlag = Annotated[str | None, typer.Option("--deploy-branch", help="Branch whose pushes deploy "
                                                      "\\[env ZEROSERVE_DEPLOY_BRANCH; default main]",
                                                      show_default=False)]
QueueLimitFlag = Annotated[int | None, typer.Option("--queue-limit", help="Requests held per revision while "
                                                    "no replica is free \\[env ZEROSERVE_QUEUE_LIMIT; default "
                                                    "10000]", show_default=False)]
MaxHeaderBytesFlag = Annotated[int | None, typer.Option("--max-header-bytes", help="Largest request head "
                                                         "(request line + headers); more gets 431 \\[env "
                                                         "ZEROSERVE_MAX_HEADER_BYTES; default 65536]",
                                                         show_default=False)]
MaxHeadersFlag = Annotated[int | None, typer.Option("--max-headers", help="Most headers in one request; more "
                                                    "gets 431 \\[env ZEROSERVE_MAX_HEADERS; default 100]",
                                                    show_default=False)]
HeaderTimeoutFlag = Annotated[float | None, typer.Option("--header-timeout", help="Seconds for a request head "
                                                         "to arrive whole, else 408 and close \\[env "
                                                         "ZEROSERVE_HEADER_TIMEOUT; default 10]",
                                                         show_default=False)]
KeepAliveTimeoutFlag = Annotated[float | None, typer.Option("--keep-alive-timeout", help="Seconds an idle "
                                                             "keep-alive connection stays open \\[env "
                                                             "ZEROSERVE_KEEP_ALIVE_TIMEOUT; default 5]",
                                                             show_default=False)]
MaxConnectionsFlag = Annotated[int | None, typer.Option("--max-connections", help="Open client connections; "
                                                        "one more gets 503 \\[env ZEROSERVE_MAX_CONNECTIONS; "
                                                        "default 1000]", show_default=False)]
RunAsFlag = Annotated[str | None, typer.Option("--run-as", help="When zeroserve runs as root, who functions and "
                                               "builds run as: auto (a user per function), UID\\[:GID] (one "
                                               "user for all) or root (no isolation) \\[env ZEROSERVE_RUN_AS; "
                                               "default auto]", show_default=False)]
MetricsPublicFlag = Annotated[bool | None, typer.Option("--metrics-public/--metrics-private", help="Serve "
                                                        "/metrics without the token (it names every function) "
                                                        "\\[env ZEROSERVE_METRICS_PUBLIC; default private]",
                                                        show_default=False)]
AccessLogFlag = Annotated[bool | None, typer.Option("--access-log/--no-access-log", help="Log one line per "
                                                    "function request: request id, revision, status, queue time, "
                                                    "duration \\[env ZEROSERVE_ACCESS_LOG; default off]",
                                                    show_default=False)]
OtelEndpointFlag = Annotated[str | None, typer.Option("--otel-endpoint", help="Export a span per function request "
                                                      "over OTLP/HTTP to this collector, e.g. http://localhost:4318 "
                                                      "(needs the otel extra) \\[env ZEROSERVE_OTEL_ENDPOINT; "
                                                      "default off]", show_default=False)]
KubeContextFlag = Annotated[str | None, typer.Option("--kube-context", help="Knative target: the kubeconfig "
                                                     "context (kubeconfig from KUBECONFIG or ~/.kube/config, or "
                                                     "the pod's service account) \\[env ZEROSERVE_KUBE_CONTEXT; "
                                                     "default: the current context]", show_default=False)]
KubeNamespaceFlag = Annotated[str | None, typer.Option("--kube-namespace", help="Knative target: namespace of "
                                                       "the Services \\[env ZEROSERVE_KUBE_NAMESPACE; default "
                                                       "default]", show_default=False)]
RuntimeImageFlag = Annotated[str | None, typer.Option("--runtime-image", help="Knative target: the runtime image "
                                                      "the pods run (docker build of the Dockerfile) \\[env "
                                                      "ZEROSERVE_RUNTIME_IMAGE]", show_default=False)]
KubeStoreSecretFlag = Annotated[str | None, typer.Option("--kube-store-secret", help="Knative target: the "
                                                          "Secret holding the artifact store's credentials "
                                                          "\\[env ZEROSERVE_KUBE_STORE_SECRET]",
                                                          show_default=False)]
KubeServiceAccountFlag = Annotated[str | None, typer.Option("--kube-service-account", help="Knative target: "
                                                             "the pods' service account (instead of a Secret) "
                                                             "\\[env ZEROSERVE_KUBE_SERVICE_ACCOUNT]",
                                                             show_default=False)]
KubeReadyTimeoutFlag = Annotated[float | None, typer.Option("--kube-ready-timeout", help="Knative target: "
                                                             "seconds a deploy waits for the revision to be "
                                                             "Ready \\[env ZEROSERVE_KUBE_READY_TIMEOUT; default "
                                                             "300]", show_default=False)]
AwsRegionFlag = Annotated[str | None, typer.Option("--aws-region", help="Lambda target: the functions' region "
                                                   "(credentials from boto3's standard chain) \\[env "
                                                   "ZEROSERVE_AWS_REGION; default AWS_REGION]",
                                                   show_default=False)]
LambdaRoleFlag = Annotated[str | None, typer.Option("--lambda-role", help="Lambda target: the execution role's "
                                                    "ARN \\[env ZEROSERVE_LAMBDA_ROLE]", show_default=False)]
LambdaImageFlag = Annotated[str | None, typer.Option("--lambda-image", help="Lambda target: the runtime image "
                                                     "(Dockerfile stage lambda) in ECR, same region \\[env "
                                                     "ZEROSERVE_LAMBDA_IMAGE]", show_default=False)]
LambdaPrefixFlag = Annotated[str | None, typer.Option("--lambda-prefix", help="Lambda target: prefix of the "
                                                      "Lambda function names \\[env ZEROSERVE_LAMBDA_PREFIX]",
                                                      show_default=False)]
