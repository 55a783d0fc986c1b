"""`loopback_hosts`: wildcard host names answered with 127.0.0.1 in this process, for every client, on
both event loops, and only while the block runs."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from chat_mcp_primer.testing import LoopbackServer, loopback_hosts

WILDCARD = "*.apps.coder.test"


def numeric_lookup(host: str) -> str:
    """The address ``host`` resolves to without asking any DNS server (``AI_NUMERICHOST``): only a name
    the hook answers, or an address, resolves; any other name fails at once."""
    [(_, _, _, _, (address, _))] = socket.getaddrinfo(
        host, 80, socket.AF_INET, socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
    )
    return str(address)


def test_names_under_the_wildcard_resolve_to_loopback_only_inside_the_block() -> None:
    system = socket.getaddrinfo
    with loopback_hosts(WILDCARD):
        assert numeric_lookup("mcp--main--dev--alice.apps.coder.test") == "127.0.0.1"
        assert numeric_lookup("MCP--Main--dev--alice.Apps.Coder.Test.") == "127.0.0.1"  # as DNS: any case, rooted
        assert numeric_lookup("10.1.2.3") == "10.1.2.3"  # everything else resolves as before
        for other in ("apps.coder.test", "a.b.apps.coder.test", "x.apps.coder.test.evil.example", "x-apps.coder.test"):
            with pytest.raises(socket.gaierror):
                numeric_lookup(other)  # the * is one whole label, as in Coder's wildcard
    assert socket.getaddrinfo is system
    with pytest.raises(socket.gaierror):
        numeric_lookup("mcp--main--dev--alice.apps.coder.test")


def test_blocks_nest_and_the_resolver_is_restored_after_the_last() -> None:
    system = socket.getaddrinfo
    with loopback_hosts(WILDCARD, "coder.test"):
        with loopback_hosts(f"{WILDCARD}:8443"):  # an applications host names its port: it is ignored
            assert numeric_lookup("a.apps.coder.test") == "127.0.0.1"
        assert numeric_lookup("a.apps.coder.test") == "127.0.0.1"
        assert numeric_lookup("coder.test") == "127.0.0.1"
    assert socket.getaddrinfo is system


@pytest.mark.parametrize("pattern", ["", "*", "*.apps.coder.test/path", "http://*.coder.test", "*.a*.test"])
def test_a_pattern_that_is_not_a_host_is_refused(pattern: str) -> None:
    system = socket.getaddrinfo
    with pytest.raises(ValueError, match="is not a host name or a wildcard host"), loopback_hosts(pattern):
        pass
    assert socket.getaddrinfo is system


def host_echo() -> Starlette:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.headers["host"])

    return Starlette(routes=[Route("/", echo)])


@pytest.mark.anyio
async def test_a_real_client_dials_a_wildcard_host_on_loopback_and_names_it_in_its_request() -> None:
    with LoopbackServer(host_echo) as server, loopback_hosts(WILDCARD):
        host = f"mcp--main--dev--alice.apps.coder.test:{server.port}"
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://{host}/")
    assert response.status_code == 200
    assert response.text == host
