"""The soak's world: a FakeCoder deployment on loopback, one template and one upstream MCP server per chat,
and the faults a turn can meet, injected before the turn and undone after it.

Every chat has a workspace of its own whose agent serves one MCP server (``mcp``) through Coder's app proxy;
behind the proxy is a real `WorkspaceMCPServer` on its own loopback port, whose knobs inject the MCP faults.
Template versions other than ``ok`` boot agents that fail in each of the ways Coder reports.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from chat_mcp_primer import Chat, WorkspaceBinding
from chat_mcp_primer.testing import (
    FakeAgent,
    FakeCoder,
    FakeMcpServer,
    FakeTemplate,
    FakeVersion,
    Flood,
    MockClock,
    ServedFakeCoder,
    WorkspaceMCPServer,
    echo_tools,
    serve_fake_coder,
)
from chat_mcp_primer.workspace.coder import BuildActiveError, CoderClient, Transition

SLUG = "mcp"
SEARCH = f"{SLUG}__search"  # the workspace tool the model calls once it is offered
OK_VERSION = "ok"
# The agent faults Coder reports, one template version each: startup scripts fail; they time out (and the
# agent never becomes ready); the agent never connects, so Coder marks it "timeout".
BAD_VERSIONS = {
    "agent_start_error": FakeAgent(startup_outcome="start_error"),
    "agent_start_timeout": FakeAgent(startup_outcome="start_timeout"),
    # Coder's 120 s default connection timeout would only make the readiness wait poll longer in fake time.
    "agent_timeout": FakeAgent(never_connects=True, connection_timeout_seconds=30),
}
VERSION_OF = {kind: kind.replace("_", "-") for kind in BAD_VERSIONS}

# Bursts of 5xx answers from Coder: up to one more than the client's five tries, so some bursts are ridden
# out by its retries and some reach the model as an error.
MAX_5XX_BURST = 6
SERVER_ERRORS = (500, 502, 503, 504)
# 429 bursts: the client honours Retry-After up to 60 s, so every one of these is ridden out.
MAX_429_BURST = 3
MAX_RETRY_AFTER_S = 5
# An MCP server that is up but lists no tools for a while: spread across the primer's 30 s budget and past it.
MAX_NOT_READY_S = 40.0
# Someone else's build that blocks the chat's builds (409 "build already active") until they cancel it,
# this long later: past the chat's first build poll, well inside its build timeout.
OTHER_BUILD_CANCELED_AFTER_S = 20.0
# A canceled build: the build the chat's tool started is canceled (by a person in the UI) this long after.
CANCELED_AFTER_S = 3.0
# How often the harness looks at the fake deployment while it waits for a build (fake time, free).
WATCH_S = 0.5
# A server that floods its listings, as in the issue that bounded responses: the client reads 8 MiB of each
# and stops, so these cost a turn a few hundred megabytes of loopback traffic, never memory.
FLOODS = {
    "mcp_300_mb_listing": Flood.body(300_000_000),
    "mcp_2_million_tools": Flood.tools(2_000_000),
}

FAULT_KINDS = (
    "none",
    "coder_5xx_burst",
    "coder_429",
    "build_failed",
    "build_canceled",
    "build_stalled",
    "build_active_409",
    *BAD_VERSIONS,
    "token_revoked",
    "workspace_deleted",
    "mcp_not_ready",
    "mcp_hang_listing",
    "mcp_fail_listing",
    "mcp_cursor_loop",
    "mcp_server_stopped",
    *FLOODS,
)


@dataclass(slots=True)
class SoakChat:
    """A chat of the soak and what the harness knows of its workspace."""

    index: int
    chat: Chat
    server: WorkspaceMCPServer
    port: int
    template: str

    @property
    def workspace_name(self) -> str:
        return f"soak-{self.index}"


@dataclass(slots=True)
class Injection:
    """One turn's fault: what the model does first, and what to run during the turn (a background task)."""

    kind: str
    first_call: str
    arguments: dict[str, Any] = field(default_factory=dict)
    during: Callable[[], Awaitable[None]] | None = None
    revoke: str | None = None  # a token revoked once the turn has started (the turn uses it)


class World:
    """The deployment, its chats and their servers; `inject` and `undo` a fault around each turn."""

    def __init__(self, clock: MockClock, chats: int) -> None:
        self.clock = clock
        self._stack = ExitStack()
        self.servers = [
            WorkspaceMCPServer(echo_tools("search"), name=f"upstream-{i}", clock=clock) for i in range(chats)
        ]
        self.fake = FakeCoder(clock)
        self.coder: ServedFakeCoder | None = None
        self.chats: list[SoakChat] = []
        self.harness: CoderClient | None = None  # the operator's own client: cancels builds, plays "someone else"

    @contextmanager
    def running(self) -> Iterator[World]:
        with self._stack:
            for server in self.servers:
                self._stack.enter_context(server)
            for index, server in enumerate(self.servers):
                template = f"soak-{index}"
                upstream = server.url.removesuffix("/mcp")
                self.fake.add_template(FakeTemplate(template, _versions(upstream), active_version=OK_VERSION))
                workspace_id = self.fake.create_workspace(f"soak-{index}", template, state="running")
                chat = Chat(id=f"chat-{index}", owner="alice", workspace=WorkspaceBinding(workspace_id))
                port = urlsplit(server.url).port or 0
                self.chats.append(SoakChat(index, chat, server, port, template))
            self.coder = self._stack.enter_context(serve_fake_coder(self.fake))
            yield self

    async def __aenter__(self) -> World:
        assert self.coder is not None
        self.harness = await CoderClient(self.coder.url, self.fake.token, clock=self.clock).__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.harness is not None:
            await self.harness.aclose()

    # -- faults ------------------------------------------------------------------------------------

    def inject(self, kind: str, chat: SoakChat, rng: random.Random) -> Injection:
        """Arm ``kind`` against ``chat``'s workspace and say how the turn starts."""
        fake, server = self.fake, chat.server
        workspace = chat.chat.workspace_id
        assert workspace is not None
        op = self._usual_first_call(chat, rng)
        if kind == "coder_5xx_burst":
            fake.fail_requests(rng.randint(1, MAX_5XX_BURST), status=rng.choice(SERVER_ERRORS))
        elif kind == "coder_429":
            fake.rate_limit(rng.randint(1, MAX_429_BURST), retry_after_seconds=rng.randint(1, MAX_RETRY_AFTER_S))
        elif kind == "build_failed":
            fake.fail_next_build(transition="start")
            op = "restart_workspace"
        elif kind == "build_canceled":
            fake.stall_next_build(transition="start")
            return Injection(kind, "restart_workspace", during=lambda: self._cancel_stalled(workspace))
        elif kind == "build_stalled":
            fake.stall_next_build(transition="start")
            op = "restart_workspace"
        elif kind == "build_active_409":
            return Injection(kind, op, during=lambda: self._other_build(workspace))
        elif kind in BAD_VERSIONS:
            version = fake.version_id(chat.template, VERSION_OF[kind])
            return Injection(kind, "update_workspace", {"template_version_id": version})
        elif kind == "token_revoked":
            return Injection(kind, op, revoke=fake.issue_token())
        elif kind == "workspace_deleted":
            fake.delete_workspace(workspace)
            op = "start_workspace"
        elif kind == "mcp_not_ready":
            server.ready_at = self.clock.now() + rng.uniform(0.0, MAX_NOT_READY_S)
        elif kind == "mcp_hang_listing":
            server.hang_listing = True
        elif kind == "mcp_fail_listing":
            server.fail_listing = True
        elif kind == "mcp_cursor_loop":
            server.cursor_loop = True
        elif kind == "mcp_server_stopped":
            server.stop()
        elif kind in FLOODS:
            server.flood = FLOODS[kind]
        elif kind != "none":
            raise ValueError(f"unknown fault kind {kind!r}")
        return Injection(kind, op)

    def undo(self, chat: SoakChat) -> None:
        """Put the server and the deployment back to healthy; a build left running is canceled (below)."""
        self.fake.clear_faults()
        server = chat.server
        server.ready_at = None
        server.hang_listing = server.fail_listing = server.cursor_loop = False
        server.flood = None
        if server.open_connections == 0 and not _serving(server):
            server.port = chat.port  # back where the proxy forwards to
            server.start()

    async def cancel_active_build(self, chat: SoakChat) -> bool:
        """Cancel the chat's build if one is still in progress (a stalled build the tools gave up on), as the
        operator on call would; the library leaves it running. True when there was one."""
        workspace = chat.chat.workspace_id
        assert workspace is not None
        assert self.harness is not None
        build = self.fake.workspace(workspace)["latest_build"]
        if build["job"]["status"] not in ("pending", "running"):
            return False
        await self.harness.cancel_build(build["id"])
        return True

    def _active_build(self, workspace_id: str) -> str | None:
        build = self.fake.workspace(workspace_id)["latest_build"]
        return str(build["id"]) if build["job"]["status"] in ("pending", "running", "canceling") else None

    def _usual_first_call(self, chat: SoakChat, rng: random.Random) -> str:
        """Start or restart the workspace, or update it back onto the good version when it needs mending."""
        workspace = self.fake.workspace(chat.chat.workspace_id or "")
        build = workspace["latest_build"]
        healthy = (
            not workspace.get("deleted", False)
            and build["template_version_name"] == OK_VERSION
            and build["transition"] == "start"
            and build["job"]["status"] == "succeeded"
        )
        if not healthy:
            return "update_workspace"
        return rng.choice(("start_workspace", "restart_workspace"))

    async def _cancel_stalled(self, workspace_id: str) -> None:
        """Cancel the build the turn's tool starts, once it is running."""
        assert self.harness is not None
        builds_before = len(self.fake.builds(workspace_id))
        while True:
            builds = self.fake.builds(workspace_id)
            if len(builds) > builds_before and builds[-1]["transition"] == "start":
                break
            await self.clock.sleep(WATCH_S, "soak", "watch")
        await self.clock.sleep(CANCELED_AFTER_S, "soak", "cancel")
        await self.harness.cancel_build(builds[-1]["id"])

    async def _other_build(self, workspace_id: str) -> None:
        """Someone else stops the workspace with a build that hangs, so a new build gets 409 until they
        cancel theirs."""
        assert self.harness is not None
        while self._active_build(workspace_id) is not None:  # e.g. a build canceled after the last turn
            await self.clock.sleep(WATCH_S, "soak", "watch")
        self.fake.stall_next_build(transition="stop")
        build = await self.harness.create_build(workspace_id, Transition.STOP)
        try:
            await self.harness.create_build(workspace_id, Transition.START)
        except BuildActiveError:
            pass  # the fault is live: Coder answers 409 while that build runs
        else:
            raise AssertionError("Coder accepted a second build while one was active")
        await self.clock.sleep(OTHER_BUILD_CANCELED_AFTER_S, "soak", "cancel")
        await self.harness.cancel_build(build.id)

    def first_call_arguments(self, chat: SoakChat) -> str:
        return json.dumps({"template_id": self.fake.template_id(chat.template), "name": chat.workspace_name})


def _serving(server: WorkspaceMCPServer) -> bool:
    try:
        server.url  # noqa: B018 - raises when the server is stopped
    except RuntimeError:
        return False
    return True


def _versions(upstream: str) -> list[FakeVersion]:
    mcp = FakeMcpServer(slug=SLUG, upstream=upstream)
    ok = FakeVersion(OK_VERSION, agents=[FakeAgent(mcp_servers=[mcp])])
    bad = [
        FakeVersion(VERSION_OF[kind], agents=[replace(agent, mcp_servers=(mcp,))])
        for kind, agent in BAD_VERSIONS.items()
    ]
    return [*bad, ok]
