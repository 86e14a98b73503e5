"""What the control API's routes need from the platform, in one object (no module-level globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploy.local.replica_logs import FunctionLogs
from deploy.service import DeployService
from protocol.function_urls import function_urls
from revisions.registry import Registry
from zeroserve.credentials import Credentials
from zeroserve.scale_history import ScaleHistory
from zeroserve.settings import Settings


@dataclass
class ControlContext:
    settings: Settings
    registry: Registry
    deployer: DeployService
    token: str
    credentials: Credentials  # who a request is and what it may do (admin token and scoped tokens)
    # The platform's base URL once it is bound (the port may be chosen at start).
    base_url: Callable[[], str]
    # The data plane's per-function scale status; None while only the control plane runs.
    scale_status: Callable[[str], dict[str, Any]] | None = None
    # What the data plane's replicas wrote (deploy/local/replica_logs.py); None while only the control plane runs.
    function_logs: FunctionLogs | None = None
    # Each function's requests/s, p95 and replicas over the last minutes (the console's chart); None likewise.
    scale_history: ScaleHistory | None = None

    def function_urls(self, function: str, tags: list[str] | None = None) -> dict[str, Any]:
        """Where a function answers: `url`, `path_url` and `tags` (tag -> URL), as `FunctionUrls` has them."""
        return function_urls(self.base_url(), self.settings.domain, function, tags or ()).model_dump()
