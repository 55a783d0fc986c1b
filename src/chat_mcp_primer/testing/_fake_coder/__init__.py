"""A faithful fake of Coder's v2 REST API, for tests of code that talks to Coder over HTTP.

Configure templates with the frozen ``Fake*`` dataclasses, drive time with a `MockClock`, and serve::

    clock = MockClock()
    fake = FakeCoder(clock, templates=[FakeTemplate("docker", [FakeVersion("v1", agents=[FakeAgent(
        mcp_servers=[FakeMcpServer(tools=echo_tools("search"))])])])])
    with serve_fake_coder(fake) as coder:
        ...  # httpx against coder.url + "/api/v2", token coder.token; MCP at coder.mcp_url("dev")

Modules: ``_config`` (what tests configure), ``_records``/``_state`` (what the fake remembers),
``_lifecycle`` (state as a function of the clock), ``_render_catalog``/``_render`` (Coder's JSON),
``_operations``/``_params``/``_body``/``_query`` (the API's rules), ``_routes``/``_auth`` (HTTP),
``_watch`` (SSE), ``_proxy``/``_mcp_host`` (the app proxy and workspace MCP servers), ``_faults`` (fault
injection), ``_fake``/``_serve`` (the public face).
"""

from chat_mcp_primer.testing._fake_coder._config import (
    FakeAgent,
    FakeApp,
    FakeMcpServer,
    FakeParameter,
    FakePreset,
    FakeTemplate,
    FakeVersion,
)
from chat_mcp_primer.testing._fake_coder._fake import FakeCoder, FakeUser, WorkspaceState
from chat_mcp_primer.testing._fake_coder._serve import ServedFakeCoder, serve_fake_coder

__all__ = [
    "FakeAgent",
    "FakeApp",
    "FakeCoder",
    "FakeMcpServer",
    "FakeParameter",
    "FakePreset",
    "FakeTemplate",
    "FakeUser",
    "FakeVersion",
    "ServedFakeCoder",
    "WorkspaceState",
    "serve_fake_coder",
]
