"""What the control API's routes need from the platform, in one object (no module-level globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploy.service import DeployService
from protocol.function_urls import function_urls
from revisions.registry import Registry
from zeroserve.settings import Settings


@dataclass
class ControlContext:
    settings: Settings
    registry: Registry
    deployer: DeployService
    token: str
    # The platform's base URL once it is bound (the port may be chosen at start).
    base_url: Callable[[], str]
    # The data plane's per-function scale status; None while only the control plane runs.
    scale_status: Callable[[str], dict[str, Any]] | None = None

    def function_urls(self, function: str, tags: list[str] | None = None) -> dict[str, Any]:
        """Where a function answers: `url`, `path_url` and `tags` (tag -> URL), as `FunctionUrls` has them."""
        return function_urls(self.base_url(), self.settings.domain, function, tags or ()).model_dump()
