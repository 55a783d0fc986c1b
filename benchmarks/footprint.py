"""What one chat costs while it waits for its tools: objects and tasks per chat in a fan-out.

``CHATS`` chats over ``AGENTS`` agents provision at once through one shared runtime; their servers never
list a tool, so every chat ends up with a primer pausing between attempts and a step held for it. Once
they all are, the objects the garbage collector tracks and the tasks the event loop runs are counted,
less what was there before the first chat started, and divided by the chats.

Run: ``.venv/bin/python -m benchmarks.footprint``
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter

import anyio

from benchmarks._common import GUARD_S, WorkingModel
from chat_mcp_primer import Chat, ChatRuntime, Event, SystemClock, WorkspaceBinding, WorkspacesFrom
from chat_mcp_primer.testing import InMemoryWorkspaces, ProvisionTool, WorkspaceMCPServer, echo_tools

CHATS = 500
AGENTS = 50
SERVERS = 10


async def measure() -> tuple[float, float]:
    clock = SystemClock()
    workspaces = InMemoryWorkspaces()
    names: Counter[str] = Counter()
    all_held = anyio.Event()

    def count(event: Event) -> None:
        names[event.name] += 1
        if names["prepare.waiting_for_primer"] == CHATS and names["primer.attempt"] >= CHATS:
            all_held.set()

    servers = [
        WorkspaceMCPServer(echo_tools("never"), name=f"never-{n}", ready_at=float("inf")) for n in range(SERVERS)
    ]
    for server in servers:
        server.__enter__()
    try:
        bindings = {}
        for a in range(AGENTS):
            workspaces.set_agent(f"ws-{a}", f"agent-{a}", (servers[a % SERVERS].endpoint(),))
            for c in range(CHATS // AGENTS):
                bindings[f"chat-{a}-{c}"] = WorkspaceBinding(f"ws-{a}", build_id=f"b-{a}", agent_id=f"agent-{a}")
        runtime = ChatRuntime(
            WorkingModel("never__", step_seconds=0.5),
            workspaces=WorkspacesFrom(workspaces, tools=lambda turn: [ProvisionTool(turn, bindings[turn.chat_id])]),
            clock=clock,
            on_event=count,
        )
        async with runtime, anyio.create_task_group() as group:
            gc.collect()
            objects_before, tasks_before = len(gc.get_objects()), len(asyncio.all_tasks())
            for chat_id in bindings:
                group.start_soon(runtime.run_turn, Chat(id=chat_id, owner="bench"), "go")
            with anyio.fail_after(GUARD_S):
                await all_held.wait()
            gc.collect()
            objects = (len(gc.get_objects()) - objects_before) / CHATS
            tasks = (len(asyncio.all_tasks()) - tasks_before) / CHATS
            group.cancel_scope.cancel()
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    return objects, tasks


def main() -> None:
    objects, tasks = asyncio.run(measure())
    print(f"{CHATS} chats over {AGENTS} agents, every step held for its primer:")
    print(f"  objects tracked by the garbage collector, per chat: {objects:,.0f}")
    print(f"  tasks, per chat: {tasks:.2f}")


if __name__ == "__main__":
    main()
