"""A discovery report served beside a test MCP server, as the workspace gateway serves its own.

``GET /discovery`` answers the report as JSON with an ``ETag``. With ``If-None-Match`` naming the current
report it answers 304, after holding the request up to the seconds of ``Prefer: wait=N`` for the report
to change (a long poll); any other request goes to the app behind.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

REPORT_PATH = "/discovery"
_PREFER_WAIT = re.compile(r"\bwait=(\d+)")
# The longest a long poll is held, whatever the client prefers: a test server need not hold longer.
_MAX_WAIT_S = 60
# How often a held request looks whether the report changed (it is set from the test's thread).
_LOOK_S = 0.005


def report_etag(report: Mapping[str, Any]) -> str:
    return '"' + hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16] + '"'


class ReportRoute:
    """Serves ``report()`` at `REPORT_PATH` in front of ``app``; None from ``report()``: no such route."""

    def __init__(self, app: ASGIApp, report: Callable[[], Mapping[str, Any] | None], *, waits: bool = True) -> None:
        self._app = app
        self._report = report
        # False: a conditional read is answered at once, as by a server without long polls.
        self._waits = waits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != REPORT_PATH or self._report() is None:
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._answer(request)
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Response:
        seen = request.headers.get("if-none-match")
        wait = _PREFER_WAIT.search(request.headers.get("prefer", "")) if self._waits else None
        deadline = anyio.current_time() + min(int(wait.group(1)), _MAX_WAIT_S) if wait else 0.0
        while True:
            report = self._report()
            if report is None:
                return Response(status_code=404)
            etag = report_etag(report)
            if seen != etag:
                return JSONResponse(dict(report), headers={"etag": etag})
            if anyio.current_time() >= deadline:
                return Response(status_code=304, headers={"etag": etag})
            await anyio.sleep(_LOOK_S)
