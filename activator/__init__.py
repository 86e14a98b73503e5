"""The data-plane ingress: function URL -> revision -> throttled, pooled proxy to a replica socket."""

from activator.app import Activator
from activator.breaker import Breaker, PendingFailed, QueueFull
from activator.contracts import ReplicaEndpoint, RevisionSettings, RevisionStats, RouteResolver

__all__ = [
    "Activator", "Breaker", "PendingFailed", "QueueFull", "ReplicaEndpoint",
    "RevisionSettings", "RevisionStats", "RouteResolver",
]
