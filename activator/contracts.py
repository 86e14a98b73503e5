"""The types the composition root exchanges with the activator.

The activator knows nothing about the registry or the supervisor: routes come in through a
`RouteResolver`, replicas through `ReplicaEndpoint` lists, and load goes out as `RevisionStats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Knative's activator holds at most this many requests per revision (breakerQueueDepth).
DEFAULT_QUEUE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RevisionSettings:
    """What the throttler needs to know about a revision; revisions are immutable, so it is read once."""

    container_concurrency: int = 0  # requests one replica takes at once; 0 = unlimited
    timeout_seconds: float = 300.0  # from arrival until the replica starts answering
    queue_limit: int = DEFAULT_QUEUE_LIMIT  # requests allowed to wait for a free replica
    # `auth: token` functions: the bearer token a request must carry (None: a public function URL).
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.container_concurrency < 0:
            raise ValueError(f"container_concurrency must be >= 0 (got {self.container_concurrency})")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0 (got {self.timeout_seconds})")
        if self.queue_limit < 0:
            raise ValueError(f"queue_limit must be >= 0 (got {self.queue_limit})")


@dataclass(frozen=True, slots=True)
class ReplicaEndpoint:
    """A ready replica of a revision, serving HTTP/1.1 on a Unix domain socket."""

    replica_id: str
    socket_path: str


@dataclass(frozen=True, slots=True)
class RevisionStats:
    """Load seen by the activator over one collect interval (what Knative's activator reports)."""

    average_concurrency: float  # time-weighted: waiting plus proxied requests
    request_count: int  # requests that arrived during the interval


class RouteResolver(Protocol):
    """Function/tag -> revision lookups; zeroserve/dataplane.py implements it over the registry's route table."""

    def has_function(self, function: str) -> bool: ...

    def has_tag(self, function: str, tag: str) -> bool: ...

    def pick(self, function: str, tag: str | None, u: float) -> str | None:
        """The revision to serve this request; `u` is uniform in [0, 1) for the weighted split."""
        ...

    def revision_settings(self, revision: str) -> RevisionSettings: ...
