"""Replicas of a chat backend, each a process of its own (`tests._replica_process`), driven from a test.

``async with replica_processes(3, redis_url=url) as replicas`` starts them side by side and kills every one
when the block ends, however it ends. Each `ReplicaProcess` sends a command and reads its answer (one JSON
line each way); every read is bounded by a guard, which is never an assertion about time.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

# Where `python -m tests._replica_process` is found.
REPOSITORY = Path(__file__).resolve().parent.parent
# A replica is a fresh Python importing the library and the SDK (a few seconds on a loaded machine), and an
# offer of a hundred chats lists thirty servers: both fit this many times over. A guard against a hang.
GUARD_S = 60.0
# How long a replica told to quit is given to close its cache and hub before it is killed.
QUIT_S = 10.0
# The longest answer line: three hundred chats' tool names and times are a few tens of KiB.
MAX_ANSWER_BYTES = 16 * 1024 * 1024

Chat = tuple[str, str, str, str]  # chat id, workspace id, agent id, the MCP server's URL


class ReplicaError(Exception):
    """A replica answered that it could not do what it was told, or did not answer at all."""


class ReplicaProcess:
    """One replica process: `send` a command, read its `answer`; `ask` does both."""

    def __init__(self, number: int, process: Process) -> None:
        self.number = number
        self._process = process
        assert process.stdout is not None
        self._answers = BufferedByteReceiveStream(process.stdout)

    async def send(self, op: str, **fields: Any) -> None:
        assert self._process.stdin is not None
        await self._process.stdin.send((json.dumps({"op": op, **fields}) + "\n").encode())

    async def answer(self) -> dict[str, Any]:
        try:
            with anyio.fail_after(GUARD_S):
                line = await self._answers.receive_until(b"\n", MAX_ANSWER_BYTES)
        except (TimeoutError, anyio.EndOfStream, anyio.IncompleteRead) as exc:
            raise ReplicaError(f"replica {self.number} did not answer ({type(exc).__name__})") from exc
        answer: dict[str, Any] = json.loads(line)
        if answer.get("ok") is False:
            raise ReplicaError(f"replica {self.number}: {answer.get('error')}")
        return answer

    async def ask(self, op: str, **fields: Any) -> dict[str, Any]:
        await self.send(op, **fields)
        return await self.answer()

    async def offer(self, chats: Sequence[Chat], server: str = "code", *, keep: bool = False) -> dict[str, list[str]]:
        """The tools each chat is offered at its step (a fresh turn's first, or a kept turn's next)."""
        answer = await self.ask("offer", server=server, chats=[list(chat) for chat in chats], keep=keep)
        tools: dict[str, list[str]] = answer["tools"]
        return tools

    async def events(self) -> Mapping[str, int]:
        counts: dict[str, int] = (await self.ask("events"))["events"]
        return counts

    async def wait_event(self, name: str, count: int = 1, **fields: Any) -> None:
        """Once ``count`` events called ``name`` (whose fields include ``fields``) were emitted there."""
        await self.ask("wait_event", name=name, count=count, fields=fields)

    async def quit(self) -> None:
        with contextlib.suppress(Exception):  # it may be gone already: it is killed next in any case
            await self.send("quit")
        with anyio.move_on_after(QUIT_S):
            await self._process.wait()

    async def kill(self) -> None:
        """Kill it if it is still running, and reap it."""
        if self._process.returncode is None:
            self._process.kill()
        await self._process.aclose()


def command(redis_url: str | None, scope: str, cache_settings: Mapping[str, float]) -> list[str]:
    arguments = [sys.executable, "-m", "tests._replica_process"]
    if redis_url is None:
        return [*arguments, "--no-redis"]
    return [*arguments, "--redis-url", redis_url, "--scope", scope, "--cache-settings", json.dumps(cache_settings)]


@contextlib.asynccontextmanager
async def replica_processes(
    count: int, *, redis_url: str | None, scope: str = "replicas", cache_settings: Mapping[str, float] | None = None
) -> AsyncIterator[list[ReplicaProcess]]:
    """``count`` replicas on the Redis at ``redis_url`` (None: each on a MemoryToolCache of its own), ready
    for commands; every one is killed when the block ends."""
    started: list[ReplicaProcess] = []
    argv = command(redis_url, scope, cache_settings or {})
    try:
        for number in range(count):
            # stderr is the test's: a replica's traceback shows in the failure's captured output.
            process = await anyio.open_process(argv, cwd=REPOSITORY, stderr=None)
            started.append(ReplicaProcess(number, process))
        for replica in started:  # they start side by side; each says when it is ready
            if "ready" not in await replica.answer():
                raise ReplicaError(f"replica {replica.number} did not say it was ready")
        yield started
    finally:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for replica in started:
                    group.start_soon(replica.quit)
            for replica in started:
                await replica.kill()
