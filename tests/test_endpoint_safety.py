"""Workspace MCP endpoints never take the deployment's credentials elsewhere, and TLS is verified.

An endpoint bound to a deployment's origin is refused, never dialled, when its URL is anywhere else; a
server that redirects a session to another origin is not followed; a certificate that does not verify
is refused unless verification was explicitly turned off. Real servers on loopback, real clients.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from chat_mcp_primer.model import WorkspaceBinding
from chat_mcp_primer.testing import EventRecorder, InMemoryWorkspaces, LoopbackServer, WorkspaceMCPServer, echo_tools
from chat_mcp_primer.workspace import McpEndpoint, origin_of
from chat_mcp_primer.workspace_mcp import TurnWorkspace

pytestmark = pytest.mark.anyio

READY = WorkspaceBinding("ws-1", build_id="build-1", agent_id="agent-1")
TOKEN = "secret-session-token"
CREDENTIALS = {"Coder-Session-Token": TOKEN}


async def discover(make_turn: Callable[..., TurnWorkspace]) -> list[str]:
    """One discovery through a turn, as the chat loop does before a step: the workspace tool names offered."""
    async with make_turn(READY) as turn:
        tools = await turn.prepare_tools([])
    return [tool.spec.name for tool in tools or []]


def failure_reasons(events: EventRecorder) -> list[str]:
    return [str(event.fields["reason"]) for event in events.named("discovery.server_failed")]


# -- origin ------------------------------------------------------------------------------------------


def test_origins_compare_by_scheme_host_and_port_only() -> None:
    assert (
        origin_of("HTTPS://Coder.Example/api") == origin_of("https://coder.example:443") == "https://coder.example:443"
    )
    assert origin_of("https://user:pw@coder.example/x?y=1") == "https://coder.example:443"
    assert origin_of("http://coder.example") != origin_of("https://coder.example")
    assert origin_of("https://coder.example.evil.test") != origin_of("https://coder.example")


@pytest.mark.parametrize("same_origin", [True, False], ids=["on-origin", "off-origin"])
async def test_an_endpoint_off_its_deployments_origin_is_refused_without_being_dialled(
    make_turn: Callable[..., TurnWorkspace],
    workspaces: InMemoryWorkspaces,
    event_log: EventRecorder,
    same_origin: bool,
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs") as server:
        deployment = server.url if same_origin else "https://coder.example"
        endpoint = McpEndpoint("docs", server.url, headers=CREDENTIALS, origin=origin_of(deployment))
        workspaces.set_agent("ws-1", "agent-1", (endpoint,))
        offered = await discover(make_turn)
        list_calls = server.list_calls

    if same_origin:  # the control: the same set-up on the right origin lists the tools
        assert offered == ["docs__search"]
        assert not event_log.named("session.refused")
        return
    assert offered == []
    assert list_calls == 0
    assert not event_log.named("session.dialing")  # refused before any connection was made
    [refused] = event_log.named("session.refused")
    assert refused.fields["server"] == "docs"
    assert failure_reasons(event_log) == ["endpoint is not on the deployment's origin; not dialled"]
    assert all(TOKEN not in repr(event) for event in event_log.events)


# -- redirects ---------------------------------------------------------------------------------------


class Elsewhere:
    """A server on another origin that records every request reaching it, and the headers it carried."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        async def record(request: Request) -> Response:
            with self._lock:
                self.requests.append(dict(request.headers))
            return PlainTextResponse("not an MCP server")

        return Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST", "DELETE"])])


def redirecting_to(target: str) -> Callable[[], Starlette]:
    def app() -> Starlette:
        async def redirect(request: Request) -> Response:
            return RedirectResponse(target, status_code=307)

        return Starlette(routes=[Route("/mcp", redirect, methods=["GET", "POST", "DELETE"])])

    return app


@pytest.fixture
def elsewhere() -> Iterator[tuple[Elsewhere, LoopbackServer]]:
    recorder = Elsewhere()
    with LoopbackServer(recorder.app) as server:
        yield recorder, server


async def test_a_session_redirected_to_another_origin_is_not_followed(
    make_turn: Callable[..., TurnWorkspace],
    workspaces: InMemoryWorkspaces,
    event_log: EventRecorder,
    elsewhere: tuple[Elsewhere, LoopbackServer],
) -> None:
    recorder, other = elsewhere
    with LoopbackServer(redirecting_to(f"{other.base_url}/mcp")) as proxy:
        endpoint = McpEndpoint("docs", f"{proxy.base_url}/mcp", headers=CREDENTIALS, origin=proxy.base_url)
        workspaces.set_agent("ws-1", "agent-1", (endpoint,))
        offered = await discover(make_turn)

    assert offered == []
    assert recorder.requests == []  # neither the token nor anything else went to the other origin
    assert failure_reasons(event_log) == [f"redirected to another origin ({origin_of(other.base_url)}); not followed"]


# -- TLS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by itself, as a deployment with its own CA would present."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


@pytest.mark.parametrize("verify_tls", [True, False], ids=["verified", "explicitly-unverified"])
async def test_tls_is_verified_unless_explicitly_turned_off(
    make_turn: Callable[..., TurnWorkspace],
    workspaces: InMemoryWorkspaces,
    event_log: EventRecorder,
    self_signed: tuple[str, str],
    verify_tls: bool,
) -> None:
    with WorkspaceMCPServer(echo_tools("search"), name="docs", tls_files=self_signed) as server:
        assert server.url.startswith("https://")
        endpoint = McpEndpoint("docs", server.url, headers=CREDENTIALS, verify_tls=verify_tls, origin=server.url)
        workspaces.set_agent("ws-1", "agent-1", (endpoint,))
        offered = await discover(make_turn)
        list_calls = server.list_calls

    if verify_tls:
        assert offered == []
        assert list_calls == 0
        # Said plainly, not as "refused": a bad certificate is not a server that is still starting.
        assert failure_reasons(event_log) == ["TLS certificate verification failed"]
    else:
        assert offered == ["docs__search"]
        assert list_calls == 1
