"""The registry: functions, revisions, routes, rollouts and events, in SQLite.

Nothing lives in memory only, so a restart of the platform loses nothing. The rules that keep it
consistent when the platform is killed at any instant:

- a revision row, its route change, its rollout and its event are one transaction, written only after
  the builder has stored the artifact: a kill -9 mid-deploy leaves either no revision or a routed one;
- writers are serialised (an in-process lock, then `BEGIN IMMEDIATE` with a busy timeout for other
  processes), readers see a snapshot (WAL), foreign keys are enforced;
- the schema is versioned (`schema_version`) and upgraded by ordered migration steps at open.

Route history: every settled route is a row of `route_history`; `routes` holds the current one. A
gradual rollout moves `routes` step by step without writing history, so a rollback goes to the route
before the deploy rather than to an intermediate step.

One job per module: `database` (connections, transactions, listeners), `schema` (migrations),
`tables` (rows to records and back), `events`, `failed_builds` (the logs of failed builds), `retention`,
`tokens` (scoped API tokens, hashed), and `registry` (`Registry`: each operation loads, decides with
`revisions.route_decisions`, and stores, in one transaction).
"""

from revisions.errors import ConflictError, NotFoundError, RegistryError
from revisions.naming import revision_name
from revisions.records import (
    FAILED,
    READY,
    DeployOutcome,
    EventRecord,
    FunctionRecord,
    Removal,
    RevisionRecord,
    RouteRecord,
)
from revisions.registry.events import DEFAULT_KEEP_EVENTS, MAX_EVENT_MESSAGE
from revisions.registry.failed_builds import KEEP_FAILED_BUILDS, MAX_FAILED_BUILD_LOG, FailedBuildRecord
from revisions.registry.registry import Registry
from revisions.registry.retention import DEFAULT_KEEP_UNROUTED
from revisions.registry.schema import MIGRATIONS
from revisions.registry.tokens import TokenRecord, TokenTable

__all__ = [
    "DEFAULT_KEEP_EVENTS", "DEFAULT_KEEP_UNROUTED", "FAILED", "KEEP_FAILED_BUILDS", "MAX_EVENT_MESSAGE",
    "MAX_FAILED_BUILD_LOG", "MIGRATIONS", "READY", "ConflictError", "DeployOutcome", "EventRecord",
    "FailedBuildRecord", "FunctionRecord", "NotFoundError", "Registry",
    "RegistryError", "Removal", "RevisionRecord", "RouteRecord", "TokenRecord", "TokenTable", "revision_name",
]
