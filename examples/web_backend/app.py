"""A small chat backend on chat-mcp-primer: one `ChatRuntime` for the life of the service, one streamed
turn per user message, chats kept in SQLite between turns.

    POST /chats/{chat_id}/messages   {"text": "..."}   ->   text/event-stream of the turn's events

Each event is one Server-Sent Event: ``event:`` is its kind (``text``, ``tool_started``, ``tool_finished``,
``workspace``, ``held``, ``resumed``, ``tools_added``, ``done``, ``error``), ``data:`` a JSON object. A
client that disconnects cancels its turn; the chat is saved once the turn has finished.

Run it with uvicorn (``uvicorn examples.web_backend.app:app_from_environment --factory``); it reads
``CODER_URL`` and ``CODER_SESSION_TOKEN`` (the deployment the chats' workspaces live on), ``CHAT_DB`` (the
SQLite file, default ``chats.sqlite3``) and ``CHAT_MODEL`` (`ModelSpec`: ``openai:<model>``,
``openai-responses:<model>`` or ``anthropic:<model>``, with the SDK's ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL``, or ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chat_mcp_primer import (
    Chat,
    ChatMcpPrimerError,
    ChatRuntime,
    CoderBackend,
    CoderClient,
    CoderWorkspaces,
    Model,
    ReadinessSettings,
    StepHeld,
    StepResumed,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFinished,
    TurnTextDelta,
    WorkspaceProgress,
    WorkspaceToolsAdded,
)
from chat_mcp_primer.models import ModelSpec, ModelSpecError

DEFAULT_DB = "chats.sqlite3"
# What a user message may hold: a chat message, not an upload.
MAX_TEXT_CHARS = 20_000
# The kind of each event on the wire, by type.
_KINDS: dict[type, str] = {
    TurnTextDelta: "text",
    ToolCallStarted: "tool_started",
    ToolCallFinished: "tool_finished",
    WorkspaceProgress: "workspace",
    StepHeld: "held",
    StepResumed: "resumed",
    WorkspaceToolsAdded: "tools_added",
}


class ChatStore:
    """Chats as JSON (`Chat.to_dict`) in one SQLite table; every call runs in a worker thread."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        with sqlite3.connect(self._path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS chats (id TEXT PRIMARY KEY, body TEXT NOT NULL)")

    async def load(self, chat_id: str, owner: str) -> Chat:
        def load() -> Chat:
            with sqlite3.connect(self._path) as db:
                row = db.execute("SELECT body FROM chats WHERE id = ?", (chat_id,)).fetchone()
            return Chat.from_dict(json.loads(row[0])) if row else Chat(id=chat_id, owner=owner)

        return await anyio.to_thread.run_sync(load)

    async def save(self, chat: Chat) -> None:
        def save() -> None:
            with sqlite3.connect(self._path) as db:
                db.execute(
                    "INSERT INTO chats (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                    (chat.id, json.dumps(chat.to_dict())),
                )

        await anyio.to_thread.run_sync(save)


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def wire(event: TurnEvent) -> bytes:
    if isinstance(event, TurnFinished):
        return sse("done", {"text": event.result.text, "steps": event.result.steps})
    return sse(_KINDS[type(event)], dataclasses.asdict(event))


def create_app(
    model: Model | ModelSpec,
    coder_url: str,
    coder_token: str,
    db_path: str | Path = DEFAULT_DB,
    *,
    readiness: ReadinessSettings | None = None,
) -> Starlette:
    """The service: ``model`` answers (a `ModelSpec` is opened for the service's life, and its SDK client
    closed at shutdown), chats' workspaces live on the Coder deployment at ``coder_url`` (``readiness``: how
    the workspace tools wait for builds and agents; Coder's chat's by default)."""
    store = ChatStore(db_path)
    runtime: ChatRuntime | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal runtime
        async with AsyncExitStack() as stack:
            answering = await stack.enter_async_context(model.open()) if isinstance(model, ModelSpec) else model
            client = await stack.enter_async_context(CoderClient(coder_url, coder_token))
            backend = CoderBackend(client, readiness=readiness or ReadinessSettings())
            shared = await stack.enter_async_context(ChatRuntime(answering, workspaces=CoderWorkspaces(backend)))
            runtime = app.state.runtime = shared
            yield
            runtime = None

    async def post_message(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": 'the body must be JSON: {"text": "..."}'}, status_code=400)
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
            return JSONResponse({"error": f"text must be 1 to {MAX_TEXT_CHARS} characters"}, status_code=400)
        assert runtime is not None
        chat = await store.load(request.path_params["chat_id"], owner=request.headers.get("x-user", "anonymous"))
        return EventStream(turn_stream(runtime, store, chat, text))

    return Starlette(routes=[Route("/chats/{chat_id}/messages", post_message, methods=["POST"])], lifespan=lifespan)


class EventStream(Response):
    """A text/event-stream response that stops the moment its client goes away. Starlette's own
    `StreamingResponse` notices a disconnect only when it next sends, and a turn may send nothing for
    minutes while a workspace builds: this one listens for it, and cancels the stream (and so the turn)."""

    def __init__(self, chunks: AsyncGenerator[bytes]) -> None:
        super().__init__()
        # No Content-Length: the body is as long as the turn.
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store")]
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async with anyio.create_task_group() as group, aclosing(self._chunks) as chunks:

            async def stop_when_the_client_leaves() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stop_when_the_client_leaves)
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()


async def turn_stream(runtime: ChatRuntime, store: ChatStore, chat: Chat, text: str) -> AsyncGenerator[bytes]:
    """The turn's events as SSE; the chat is saved when the turn has finished. A client that goes away ends
    this generator, which leaves `stream_turn` early and so cancels the turn."""
    try:
        async with runtime.stream_turn(chat, text) as events:
            async for event in events:
                if isinstance(event, TurnFinished):
                    await store.save(event.result.chat)
                yield wire(event)
    except* ChatMcpPrimerError as failed:
        yield sse("error", {"message": str(failed.exceptions[0])})


def app_from_environment(env: Mapping[str, str] = os.environ) -> Starlette:
    """The service as configured by ``env`` (see the module's docstring); a setting that is missing or
    unusable stops it at start-up with one line saying which."""
    try:
        model = ModelSpec.parse(env.get("CHAT_MODEL", ""), env=env)
    except ModelSpecError as unusable:
        raise SystemExit(f"CHAT_MODEL: {unusable}") from None
    try:
        coder_url, token = env["CODER_URL"], env["CODER_SESSION_TOKEN"]
    except KeyError as missing:
        raise SystemExit(f"{missing.args[0]} is not set") from None
    return create_app(model, coder_url, token, env.get("CHAT_DB", DEFAULT_DB))
