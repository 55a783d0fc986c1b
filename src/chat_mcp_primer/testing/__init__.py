"""Test helpers that ship with the library: a fake clock, a scripted model, real loopback MCP servers.

Use them to drive whole turns of your own backend deterministically::

    clock = MockClock()
    model = ScriptedModel([...], clock=clock)
    with WorkspaceMCPServer(echo_tools("search"), clock=clock, ready_at=5.0) as server:
        ...

The servers need the ``testing`` extra (``pip install 'chat-mcp-primer[testing]'``); without it, importing
this package fails with one line naming it. pytest users get these helpers as fixtures (``mock_clock``,
``event_recorder``, ``fake_coder``, ``workspace_mcp_server``) from the plugin `chat_mcp_primer.pytest_plugin`.
"""

from chat_mcp_primer._extras import is_missing_extra, missing_extra_message

try:
    from chat_mcp_primer.testing._events import (
        DEFAULT_EVENT_WAIT_S,
        EventNotRecordedError,
        EventRecorder,
    )
    from chat_mcp_primer.testing._fake_anthropic import (
        FakeAnthropic,
        FakeAnthropicError,
        FakeAnthropicEvents,
        FakeAnthropicMessage,
        anthropic_text_block,
        anthropic_tool_use_block,
    )
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
    from chat_mcp_primer.testing._fake_openai import FakeOpenAI, FakeOpenAIReply, SeenOpenAIRequest
    from chat_mcp_primer.testing._fake_openai_wire import (
        FakeOpenAIAnswer,
        FakeOpenAIBrokenStream,
        FakeOpenAIFailedResponse,
        FakeOpenAIFailure,
    )
    from chat_mcp_primer.testing._floods import Flood
    from chat_mcp_primer.testing._loopback_hosts import loopback_hosts
    from chat_mcp_primer.testing._mcp_server import SeenRequest, ToolDef, WorkspaceMCPServer, echo_tools
    from chat_mcp_primer.testing._mock_clock import MockClock, MockClockError, Trap, TrappedCall
    from chat_mcp_primer.testing._provision import ProvisionTool
    from chat_mcp_primer.testing._redis_server import RedisServer, RedisServerError
    from chat_mcp_primer.testing._scripted_model import ScriptedModel, ScriptExhaustedError, ScriptStep, call
    from chat_mcp_primer.testing._serving import LoopbackServer, free_port
    from chat_mcp_primer.workspace import InMemoryWorkspaces
except ModuleNotFoundError as missing:  # the testing extra is not installed: say so in one line
    if not is_missing_extra(missing):
        raise
    raise ModuleNotFoundError(
        missing_extra_message("chat_mcp_primer.testing", "testing", missing), name=missing.name
    ) from None

__all__ = [
    "DEFAULT_EVENT_WAIT_S",
    "EventNotRecordedError",
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
    "ProvisionTool",
    "ScriptExhaustedError",
    "ScriptStep",
    "ScriptedModel",
    "SeenRequest",
    "ServedFakeCoder",
    "ToolDef",
    "Trap",
    "TrappedCall",
    "WorkspaceMCPServer",
    "WorkspaceState",
    "call",
    "echo_tools",
    "free_port",
    "loopback_hosts",
    "serve_fake_coder",
]

# OpenAI's and Anthropic's APIs on loopback, and what scripts them.
__all__ += [
    "FakeAnthropic",
    "FakeAnthropicError",
    "FakeAnthropicEvents",
    "FakeAnthropicMessage",
    "FakeOpenAI",
    "FakeOpenAIAnswer",
    "FakeOpenAIBrokenStream",
    "FakeOpenAIFailedResponse",
    "FakeOpenAIFailure",
    "FakeOpenAIReply",
    "SeenOpenAIRequest",
    "anthropic_text_block",
    "anthropic_tool_use_block",
]

# A real redis-server on loopback, for tests of the shared tool cache.
__all__ += ["RedisServer", "RedisServerError"]
