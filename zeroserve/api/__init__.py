"""The control-plane API (FastAPI): functions, revisions, traffic, events under /api/v1."""

from zeroserve.api.app import API_PREFIX, create_control_app
from zeroserve.api.context import ControlContext

__all__ = ["API_PREFIX", "ControlContext", "create_control_app"]
