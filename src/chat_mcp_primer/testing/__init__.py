"""Test helpers that ship with the library: a fake clock, a scripted model, real loopback MCP servers.

Use them to drive whole turns of your own backend deterministically::

    clock = MockClock()
    model = ScriptedModel([...])
    with WorkspaceMCPServer(echo_tools("search"), clock=clock, ready_at=5.0) as server:
        ...
"""

from chat_mcp_primer.testing._events import EventRecorder
from chat_mcp_primer.testing._fake_coder import (
    FakeAgent,
    FakeApp,
    FakeCoder,
    FakeMcpServer,
    FakeParameter,
    FakePreset,
    FakeTemplate,
    FakeUser,
    FakeVersion,
    ServedFakeCoder,
    WorkspaceState,
    serve_fake_coder,
)
from chat_mcp_primer.testing._floods import Flood
from chat_mcp_primer.testing._mcp_server import ToolDef, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.testing._mock_clock import MockClock, MockClockError, Trap, TrappedCall
from chat_mcp_primer.testing._scripted_model import ScriptedModel, ScriptExhaustedError, ScriptStep, call
from chat_mcp_primer.testing._serving import LoopbackServer, free_port
from chat_mcp_primer.workspace import InMemoryWorkspaces

__all__ = [
    "EventRecorder",
    "FakeAgent",
    "FakeApp",
    "FakeCoder",
    "FakeMcpServer",
    "FakeParameter",
    "FakePreset",
    "FakeTemplate",
    "FakeUser",
    "FakeVersion",
    "Flood",
    "InMemoryWorkspaces",
    "LoopbackServer",
    "MockClock",
    "MockClockError",
    "ScriptExhaustedError",
    "ScriptStep",
    "ScriptedModel",
    "ServedFakeCoder",
    "ToolDef",
    "Trap",
    "TrappedCall",
    "WorkspaceMCPServer",
    "WorkspaceState",
    "call",
    "echo_tools",
    "free_port",
    "serve_fake_coder",
]
