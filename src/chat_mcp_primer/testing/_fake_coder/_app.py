"""The ASGI app of a served fake: the REST API, the app proxy, Coder's 404/405 bodies, and a lifespan
that hosts the workspace MCP servers."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from chat_mcp_primer.testing._fake_coder._mcp_host import McpHost
from chat_mcp_primer.testing._fake_coder._proxy import AppProxy
from chat_mcp_primer.testing._fake_coder._routes import ApiRoutes
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._wire import json_response


def build_app(state: CoderState, stopping: threading.Event) -> Starlette:
    """A fresh app over ``state``; build it on the thread whose event loop will serve it."""
    host = McpHost()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with host.running():
            yield

    async def route_not_found(request: Request, exc: Exception) -> Response:
        return json_response(404, {"message": "Route not found."})

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        # chi's default: 405 with the allowed methods and no body.
        headers = exc.headers if isinstance(exc, HTTPException) and exc.headers else None
        return Response(status_code=405, headers=headers)

    proxy = AppProxy(state, host)
    return Starlette(
        routes=[*ApiRoutes(state, stopping).routes(), *proxy.routes()],
        middleware=[Middleware(_SubdomainApps, state=state, proxy=proxy)],
        lifespan=lifespan,
        exception_handlers={404: route_not_found, 405: method_not_allowed},
    )


class _SubdomainApps:
    """Requests to a host under the wildcard access URL go to the subdomain app it names, whatever their
    path, before any route of the API sees them (as coderd's subdomain middleware)."""

    def __init__(self, app: ASGIApp, *, state: CoderState, proxy: AppProxy) -> None:
        self._app = app
        self._state = state
        self._proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wildcard = self._state.wildcard
        if scope["type"] == "http" and wildcard is not None:
            host = Headers(scope=scope).get("host", "")
            label = wildcard.label_of(host)
            if label is not None:
                await self._proxy.subdomain(scope, receive, send, label)
                return
        await self._app(scope, receive, send)
