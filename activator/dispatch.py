"""One listening port for both planes: function URLs to the activator, the rest to the control plane."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from activator.routing import is_function_request

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


class HostDispatcher:
    """Function hosts (`<fn>.<domain>`, `<tag>-<fn>.<domain>`) and `/fn/` paths go to `activator_app`;
    everything else (`/api/v1`, `/git/`, `/metrics`, lifespan) goes to `fallback_app`.

    Lifespan events reach only the fallback: whoever composes the two closes the activator.
    """

    def __init__(self, activator_app: ASGIApp, fallback_app: ASGIApp, domain: str = "localhost"):
        self.activator_app = activator_app
        self.fallback_app = fallback_app
        self.domain = domain.lower().strip(".")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] in ("http", "websocket") and is_function_request(scope, self.domain):
            await self.activator_app(scope, receive, send)
        else:
            await self.fallback_app(scope, receive, send)
