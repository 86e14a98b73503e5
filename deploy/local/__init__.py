"""The local platform: a supervisor that forks replicas from a pre-imported zygote onto Unix sockets."""

from deploy.local.replica_plan import Backoff
from deploy.local.supervisor import DEFAULT_APP_FACTORY, Supervisor, UnknownRevisionError
from deploy.local.types import ReplicaEndpoint, ReplicaInfo, ReplicaSetStatus

__all__ = [
    "DEFAULT_APP_FACTORY", "Backoff", "ReplicaEndpoint", "ReplicaInfo", "ReplicaSetStatus", "Supervisor",
    "UnknownRevisionError",
]
