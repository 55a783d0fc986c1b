"""Injected faults waiting to hit: bursts of error responses, and build outcomes for builds not yet made.

Each fault is consumed by the request or build it hits, in the order faults were injected. The owner
(`CoderState`) serialises access with its lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chat_mcp_primer.testing._fake_coder._records import BuildFailure
from chat_mcp_primer.testing._fake_coder._wire import json_response

# The bodies Coder (or the proxy in front of it) sends for the statuses tests inject most.
_ERROR_MESSAGES = {
    500: "An internal server error occurred.",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
# Coder's default API rate limit (`--api-rate-limit`): 512 requests per minute per user; named in its 429 body.
_RATE_LIMIT_REQUESTS = 512
_RATE_LIMIT_WINDOW = "1m0s"
_FIRST_SERVER_ERROR = 500
_LAST_SERVER_ERROR = 599
RATE_LIMITED = 429
# A status no response of ours carries: marks a burst of connections cut before the answer is complete.
DROPPED = 0
# The length a cut answer announces, longer than the little it sends.
_CUT_ANSWER_LENGTH = 64


class _CutAnswer(Response):
    """Starts an answer and stops midway; the server then closes the connection, as happens when a load
    balancer or a Coder replica restarts. The client sees the connection drop before the answer ends."""

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(_CUT_ANSWER_LENGTH).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"message": ', "more_body": True})


@dataclass(slots=True)
class _ResponseFault:
    status: int
    remaining: int
    route: str | None
    retry_after_seconds: int | None

    def matches(self, route: str) -> bool:
        return self.route is None or self.route == route

    def response(self) -> Response:
        if self.status == DROPPED:
            return _CutAnswer()
        if self.status == RATE_LIMITED:
            headers = {"retry-after": str(self.retry_after_seconds or 0)}
            message = (
                f"You've been rate limited for sending more than {_RATE_LIMIT_REQUESTS} requests "
                f"in {_RATE_LIMIT_WINDOW}."
            )
            return json_response(RATE_LIMITED, {"message": message}, headers=headers)
        message = _ERROR_MESSAGES.get(self.status, "An internal server error occurred.")
        return json_response(self.status, {"message": message, "detail": "fault injected by FakeCoder"})


@dataclass(frozen=True, slots=True)
class BuildFault:
    """The fate of the next build (of ``transition``, or any): fail with ``failure``, or never finish."""

    transition: str | None
    failure: BuildFailure | None = None
    stall: bool = False


class Faults:
    def __init__(self) -> None:
        self._responses: list[_ResponseFault] = []
        self._builds: list[BuildFault] = []

    def add_server_errors(self, count: int, status: int, route: str | None) -> None:
        if not _FIRST_SERVER_ERROR <= status <= _LAST_SERVER_ERROR:
            raise ValueError(f"a server error has a 5xx status, not {status}")
        self._add(_ResponseFault(status, count, route, None))

    def add_rate_limits(self, count: int, retry_after_seconds: int, route: str | None) -> None:
        if retry_after_seconds < 0:
            raise ValueError("Retry-After is a number of seconds >= 0")
        self._add(_ResponseFault(RATE_LIMITED, count, route, retry_after_seconds))

    def add_dropped_connections(self, count: int, route: str | None) -> None:
        self._add(_ResponseFault(DROPPED, count, route, None))

    def _add(self, fault: _ResponseFault) -> None:
        if fault.remaining < 1:
            raise ValueError("a burst has at least one response")
        self._responses.append(fault)

    def take_response(self, route: str) -> Response | None:
        """The injected response for a request to ``route``, consuming one, or None."""
        for fault in self._responses:
            if fault.matches(route):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._responses.remove(fault)
                return fault.response()
        return None

    def add_build_fault(self, fault: BuildFault) -> None:
        self._builds.append(fault)

    def take_build_fault(self, transition: str) -> BuildFault | None:
        for fault in self._builds:
            if fault.transition is None or fault.transition == transition:
                self._builds.remove(fault)
                return fault
        return None

    @property
    def pending(self) -> int:
        """Injected responses and build faults not consumed yet."""
        return sum(fault.remaining for fault in self._responses) + len(self._builds)

    def clear(self) -> None:
        self._responses.clear()
        self._builds.clear()
