"""Control-API request bodies read as RFC 8259 JSON with a nesting limit (`protocol.strict_json`).

FastAPI parses bodies with `json.loads`: `NaN` and `Infinity` pass, and nesting past the interpreter's
recursion limit ends as a bare "There was an error parsing the body". Routers built with
`route_class=StrictJsonRoute` parse with `strict_json.loads` instead, so such a body is a 400 naming
the rule, and a syntax error a 400 naming its line and column.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from protocol import strict_json


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            # FastAPI passes HTTPException through as it is (other errors become an unnamed 400).
            try:
                self._json = strict_json.loads(body)
            except strict_json.JsonRuleError as exc:
                raise HTTPException(400, f"invalid request: the JSON body breaks a rule: {exc}") from None
            except ValueError as exc:  # syntax (with line and column), or bytes that are not UTF-8/16/32
                raise HTTPException(400, f"invalid request: the body is not JSON: {exc}") from None
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
