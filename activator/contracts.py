"""The types the composition root exchanges with the activator.

The activator knows nothing about the registry or the supervisor: routes come in through a
`RouteResolver`, replicas through `ReplicaEndpoint` lists, and load goes out as `RevisionStats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Knative's activator holds at most this many requests per revision (breakerQueueDepth).
DEFAULT_QUEUE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RevisionSettings:
    """What the throttler needs to know about a revision; revisions are immutable, so it is read once."""

    container_concurrency: int = 0  # requests one replica takes at once; 0 = unlimited
    timeout_seconds: float = 300.0  # from arrival until the replica starts answering
    queue_limit: int = DEFAULT_QUEUE_LIMIT  # requests allowed to wait for a free replica
    # `auth: token` functions: a request must carry a token the activator's `check_caller` accepts.
    requires_token: bool = False
    function: str = ""  # the function the revision belongs to: a label of its metrics

    def __post_init__(self) -> None:
        if self.container_concurrency < 0:
            raise ValueError(f"container_concurrency must be >= 0 (got {self.container_concurrency})")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0 (got {self.timeout_seconds})")
        if self.queue_limit < 0:
            raise ValueError(f"queue_limit must be >= 0 (got {self.queue_limit})")


@dataclass(frozen=True, slots=True)
class CallerCheck:
    """What the platform says of a request's Authorization header, for one function."""

    allowed: bool  # it may call an `auth: token` function
    status: int = 401  # when not allowed: 401 (no valid token) or 403 (a token that does not cover it)
    reason: str = ""  # when not allowed: why, naming the token and its scope (never the secret)
    platform_credential: bool = False  # one of the platform's tokens: never forwarded to user code


# (the Authorization header as received, or None; the function) -> CallerCheck. The composition root
# passes one in (zeroserve/credentials.py); the activator never sees a token store.
CallerChecker = Callable[[bytes | None, str], CallerCheck]


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
