"""A replica of a chat backend as a process of its own, for the multi-process tests of the shared tool cache.

    python -m tests._replica_process --redis-url URL --scope SCOPE   # its hub on a RedisToolCache
    python -m tests._replica_process --no-redis                      # on a MemoryToolCache: on its own

It runs one `WorkspaceMcpHub` (what ``async with ChatRuntime(...)`` shares between its chats) on the real
clock, and is driven over stdin and stdout, one JSON object per line each way. It says ``{"ready": true}``
once its cache and hub are up, then answers each command in turn with ``{"ok": true, ...}``, or
``{"ok": false, "error": ...}`` when the command could not be done:

- ``{"op": "offer", "server": "code", "chats": [[chat_id, workspace_id, agent_id, mcp_url], ...]}``: one
  ``prepare_tools`` per chat, all at once, each in a fresh `TurnWorkspace` bound to its workspace (whose
  one MCP server, ``server``, is at ``mcp_url``); answers ``tools`` (the names offered, per chat) and
  ``seconds`` (per chat, from the command's arrival to its tools). ``"keep": true`` keeps the turns open:
  a later offer for the same chat is then that turn's next step, until ``{"op": "close"}``;
- ``{"op": "call", "server": ..., "chat": [...], "tool": name, "arguments": {...}}``: call a workspace tool
  in a turn of that chat, answering its ``text`` (to make a server change its tools);
- ``{"op": "wait_event", "name": ..., "count": 1, "fields": {...}}``: once that many events of that name
  (whose fields include ``fields``) were emitted;
- ``{"op": "events"}``: the events emitted so far, counted by name (with ``"name"``: also the fields of each
  event of that name); ``{"op": "reset"}`` forgets them;
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import redis.asyncio
from tests._turns import new_hub, shared_turn

from chat_mcp_primer import InMemoryWorkspaces, McpEndpoint, SystemClock, TurnWorkspace, WorkspaceBinding
from chat_mcp_primer.redis import RedisCacheSettings, RedisToolCache
from chat_mcp_primer.testing import EventRecorder
from chat_mcp_primer.workspace_mcp import MemoryToolCache, ToolCache
from chat_mcp_primer.workspace_mcp._hub import WorkspaceMcpHub

Answer = dict[str, Any]
# The longest a `wait_event` waits before it answers that the event never came: under the driver's own
# guard, so the driver hears why instead of giving up on a silent replica.
EVENT_WAIT_S = 20.0


@dataclass(slots=True)
class KeptTurn:
    """A turn held open between commands, and the tools its last step was offered."""

    turn: TurnWorkspace
    offered: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Replica:
    hub: WorkspaceMcpHub
    recorder: EventRecorder
    workspaces: InMemoryWorkspaces = field(default_factory=InMemoryWorkspaces)
    kept: dict[str, KeptTurn] = field(default_factory=dict)
    kept_open: AsyncExitStack = field(default_factory=AsyncExitStack)

    def bind(self, server: str, chat: Sequence[str]) -> tuple[str, WorkspaceBinding]:
        chat_id, workspace_id, agent_id, url = chat
        self.workspaces.set_agent(workspace_id, agent_id, (McpEndpoint(server=server, url=url),))
        return chat_id, WorkspaceBinding(workspace_id, agent_id=agent_id)

    async def offer(self, command: dict[str, Any]) -> Answer:
        arrived = time.monotonic()
        keep = bool(command.get("keep"))
        tools: dict[str, list[str]] = {}
        seconds: dict[str, float] = {}
        async with AsyncExitStack() as fresh:
            steps: list[tuple[str, KeptTurn]] = []
            for chat in command["chats"]:
                chat_id, binding = self.bind(command["server"], chat)
                kept = self.kept.get(chat_id)
                if kept is None:
                    opened = shared_turn(self.hub, self.workspaces, chat_id, binding)
                    kept = KeptTurn(await (self.kept_open if keep else fresh).enter_async_context(opened))
                    if keep:
                        self.kept[chat_id] = kept
                steps.append((chat_id, kept))

            async def step(chat_id: str, kept: KeptTurn) -> None:
                offered = await kept.turn.prepare_tools([])
                if offered is not None:  # None: the workspace tools did not change since the last step
                    kept.offered = [tool.spec.name for tool in offered]
                tools[chat_id] = kept.offered
                seconds[chat_id] = time.monotonic() - arrived

            # Entered and left here, in the command's own task; only the steps run side by side.
            async with anyio.create_task_group() as group:
                for chat_id, kept in steps:
                    group.start_soon(step, chat_id, kept)
        return {"tools": tools, "seconds": seconds}

    async def close(self, command: dict[str, Any]) -> Answer:
        self.kept.clear()
        await self.kept_open.aclose()
        self.kept_open = AsyncExitStack()
        return {}

    async def call(self, command: dict[str, Any]) -> Answer:
        chat_id, binding = self.bind(command["server"], command["chat"])
        async with shared_turn(self.hub, self.workspaces, chat_id, binding) as turn:
            offered = {tool.spec.name: tool for tool in await turn.prepare_tools([]) or ()}
            tool = offered.get(command["tool"])
            if tool is None:
                return {"ok": False, "error": f"{command['tool']} is not offered (offered: {sorted(offered)})"}
            return {"text": (await tool.call(command.get("arguments", {}))).text}

    async def wait_event(self, command: dict[str, Any]) -> Answer:
        name, wanted, count = command["name"], command.get("fields", {}), int(command.get("count", 1))

        def matching() -> int:
            named = self.recorder.named(name)
            return sum(all(event.fields.get(k) == v for k, v in wanted.items()) for event in named)

        with anyio.fail_after(EVENT_WAIT_S):
            while matching() < count:
                await self.recorder.wait_for(name, len(self.recorder.named(name)) + 1, within=None)
        return {}

    async def events(self, command: dict[str, Any]) -> Answer:
        answer: Answer = {"events": dict(Counter(self.recorder.names))}
        if "name" in command:  # and what those of one name said
            answer["fields"] = [dict(event.fields) for event in self.recorder.named(command["name"])]
        return answer

    async def reset(self, command: dict[str, Any]) -> Answer:
        self.recorder.events.clear()
        return {}

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Answer]]]:
        return {
            "offer": self.offer,
            "close": self.close,
            "call": self.call,
            "wait_event": self.wait_event,
            "events": self.events,
            "reset": self.reset,
        }


def say(answer: Answer) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


@asynccontextmanager
async def cache_of(arguments: argparse.Namespace, clock: SystemClock) -> AsyncIterator[ToolCache]:
    if arguments.no_redis:
        yield MemoryToolCache()
        return
    settings = RedisCacheSettings(**json.loads(arguments.cache_settings))
    connection = redis.asyncio.Redis.from_url(arguments.redis_url)
    try:
        async with RedisToolCache(connection, scope=arguments.scope, clock=clock, settings=settings) as cache:
            yield cache
    finally:
        await connection.aclose()


async def serve(arguments: argparse.Namespace) -> None:
    clock = SystemClock()
    recorder = EventRecorder()
    commands = anyio.wrap_file(sys.stdin)
    async with cache_of(arguments, clock) as cache, new_hub(cache, clock, recorder) as hub:
        replica = Replica(hub, recorder)
        handlers = replica.handlers()
        say({"ready": True})
        try:
            async for line in commands:
                command = json.loads(line)
                if command["op"] == "quit":
                    break
                try:
                    answer = {"ok": True, **await handlers[command["op"]](command)}
                except Exception as exc:  # the driver hears why, and the replica keeps serving
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                say(answer)
        finally:
            await replica.close({})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests._replica_process", description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="the Redis the replicas share")
    parser.add_argument("--scope", default="replicas", help="the RedisToolCache scope")
    parser.add_argument("--cache-settings", default="{}", help="RedisCacheSettings fields, as a JSON object")
    parser.add_argument("--no-redis", action="store_true", help="a MemoryToolCache: the replica on its own")
    arguments = parser.parse_args(argv)
    if not arguments.no_redis and not arguments.redis_url:
        parser.error("give --redis-url, or --no-redis")
    # The SDK and httpx log connection teardown at warning level; the answers are what the driver reads.
    logging.basicConfig(level=logging.ERROR)
    anyio.run(serve, arguments, backend="asyncio")  # redis's asyncio client


if __name__ == "__main__":
    main()
