"""One listening port for both planes: function URLs to the activator, the rest to the control plane.

Part of the composition root: it composes the platform's apps (`zeroserve/up.py` builds it around the
activator and the control plane's stack).
"""

from __future__ import annotations

from activator.routing import is_function_request
from protocol.asgi import ASGIApp, Receive, Scope, Send


class HostDispatcher:
    """Function hosts (`<fn>.<domain>`, `<tag>-<fn>.<domain>`) and `/fn/` paths go to `activator_app`;
    everything else (`/api/v1`, `/git/`, `/metrics`, lifespan) goes to `fallback_app`.

    Lifespan events reach only the fallback: whoever composes the two closes the activator.
    """

    def __init__(self, activator_app: ASGIApp, fallback_app: ASGIApp, domain: str = "localhost"):
        self.activator_app = activator_app
        self.fallback_app = fallback_app
        self.domain = domain.lower().strip(".")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and is_function_request(scope, self.domain):
            await self.activator_app(scope, receive, send)
        else:
            await self.fallback_app(scope, receive, send)
