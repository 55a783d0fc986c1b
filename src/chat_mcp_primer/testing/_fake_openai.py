"""`FakeOpenAI`: OpenAI's HTTP API on loopback, for testing code that uses the official SDK.

It serves ``POST /v1/chat/completions`` and ``POST /v1/responses`` in OpenAI's wire format, JSON or (with
``"stream": true``) Server-Sent Events, answering each request with the next scripted reply, whichever
endpoint it reaches, and records every request it received::

    with FakeOpenAI([FakeOpenAIAnswer(text="Hello!")]) as fake:
        client = openai.AsyncOpenAI(api_key="test", base_url=fake.base_url, max_retries=0)
        ...
        assert fake.requests[0].body["model"] == "gpt-test"
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chat_mcp_primer.testing._fake_openai_wire import (
    FakeOpenAIAnswer,
    FakeOpenAIBrokenStream,
    FakeOpenAIFailedResponse,
    FakeOpenAIFailure,
    broken_chat_chunks,
    chat_chunks,
    chat_completion,
    failed_response_events,
    failed_response_object,
    response_events,
    response_object,
)
from chat_mcp_primer.testing._serving import LoopbackServer

FakeOpenAIReply = FakeOpenAIAnswer | FakeOpenAIFailure | FakeOpenAIFailedResponse | FakeOpenAIBrokenStream
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
# What a request finds when nothing is scripted for it: a 400, which the SDK does not retry, so a test
# that scripted too few replies fails at once, naming why.
_UNSCRIPTED = FakeOpenAIFailure(400, "FakeOpenAI has no reply scripted for this request")


@dataclass(frozen=True, slots=True)
class SeenOpenAIRequest:
    """A request the fake received: its path (``/v1/chat/completions``, ``/v1/responses``), JSON body, and
    whether it carried a bearer key (the key itself is not kept)."""

    path: str
    body: dict[str, Any]
    had_key: bool


class FakeOpenAI:
    """OpenAI's API served on 127.0.0.1 for a ``with`` block; ``base_url`` (ending in ``/v1``) goes to
    ``openai.AsyncOpenAI(base_url=...)``. ``reply`` scripts more answers at any time; ``requests`` is what
    it received, in order."""

    def __init__(self, replies: Iterable[FakeOpenAIReply] = ()) -> None:
        self._replies: deque[FakeOpenAIReply] = deque(replies)
        self._lock = threading.Lock()  # the test's thread scripts, the server's thread answers
        self._seen: list[SeenOpenAIRequest] = []
        self._server = LoopbackServer(self._app)

    def reply(self, *replies: FakeOpenAIReply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[SeenOpenAIRequest]:
        with self._lock:
            return list(self._seen)

    @property
    def base_url(self) -> str:
        return f"{self._server.base_url}/v1"

    def _next(self, seen: SeenOpenAIRequest) -> FakeOpenAIReply:
        with self._lock:
            self._seen.append(seen)
            return self._replies.popleft() if self._replies else _UNSCRIPTED

    def _app(self) -> Starlette:
        async def chat_completions(request: Request) -> Response:
            body, reply = await self._take(request)
            if isinstance(reply, FakeOpenAIFailedResponse):
                reply = FakeOpenAIFailure(400, f"{CHAT_COMPLETIONS_PATH} has no failed responses: {reply.message}")
            if isinstance(reply, FakeOpenAIBrokenStream) and not body.get("stream"):
                reply = FakeOpenAIFailure(400, "a broken stream was scripted for a request that does not stream")
            if isinstance(reply, FakeOpenAIFailure):
                return _failure(reply)
            number, model = len(self.requests), str(body.get("model", ""))
            if isinstance(reply, FakeOpenAIBrokenStream):
                return _stream(broken_chat_chunks(reply, model, number))
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return _stream(chat_chunks(reply, model, number, include_usage=include_usage))
            return JSONResponse(chat_completion(reply, model, number))

        async def responses(request: Request) -> Response:
            body, reply = await self._take(request)
            if isinstance(reply, FakeOpenAIBrokenStream):
                reply = FakeOpenAIFailure(400, f"{RESPONSES_PATH} has no broken streams, only {CHAT_COMPLETIONS_PATH}")
            if isinstance(reply, FakeOpenAIFailure):
                return _failure(reply)
            number, model = len(self.requests), str(body.get("model", ""))
            if isinstance(reply, FakeOpenAIFailedResponse):
                if body.get("stream"):
                    return _stream(failed_response_events(reply, model, number))
                return JSONResponse(failed_response_object(reply, model, number))
            if body.get("stream"):
                return _stream(response_events(reply, model, number))
            return JSONResponse(response_object(reply, model, number))

        return Starlette(
            routes=[
                Route(CHAT_COMPLETIONS_PATH, chat_completions, methods=["POST"]),
                Route(RESPONSES_PATH, responses, methods=["POST"]),
            ]
        )

    async def _take(self, request: Request) -> tuple[dict[str, Any], FakeOpenAIReply]:
        body = json.loads(await request.body())
        had_key = request.headers.get("authorization", "").startswith("Bearer ")
        return body, self._next(SeenOpenAIRequest(path=request.url.path, body=body, had_key=had_key))

    def __enter__(self) -> FakeOpenAI:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.stop()


def _failure(failure: FakeOpenAIFailure) -> Response:
    return JSONResponse(failure.body(), status_code=failure.status, headers=dict(failure.headers))


def _stream(events: Iterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream")
