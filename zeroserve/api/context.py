"""What the control API's routes need from the platform, in one object (no module-level globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploy.service import DeployService
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

    def function_urls(self, function: str, tags: list[str] | None = None) -> dict[str, object]:
        """Where a function answers: host URL, path URL, one host URL per tag (docs/architecture.md, Function URLs)."""
        base = self.base_url().rstrip("/")
        scheme, _, rest = base.partition("://")
        port = rest.rsplit(":", 1)[1] if ":" in rest else ""
        suffix = f":{port}" if port else ""
        domain = self.settings.domain
        return {
            "url": f"{scheme}://{function}.{domain}{suffix}/",
            "path_url": f"{base}/fn/{function}/",
            "tags": {tag: f"{scheme}://{tag}-{function}.{domain}{suffix}/" for tag in tags or []},
        }
