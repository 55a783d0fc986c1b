"""What a workspace server may send, counted by `ResponseGuard` as the SDK's own client reads it: bodies as a
whole, event streams event by event, whatever the chunking and line ends, and nothing compressed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

import httpx2
import pytest

from chat_mcp_primer.workspace_mcp._bounds import ResponseGuard, ResponseRefused, describe_size

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024


class Body(httpx2.AsyncByteStream):
    """A response body sent in the given chunks, as a server streams it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def client(
    chunks: Callable[[], Iterable[bytes]], content_type: str, refused: list[str], **headers: str
) -> httpx2.AsyncClient:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type, **headers}, stream=Body(chunks()))

    guard = ResponseGuard(LIMIT, refused.append)
    return httpx2.AsyncClient(transport=httpx2.MockTransport(answer), event_hooks={"response": [guard.guard]})


async def events(http: httpx2.AsyncClient) -> list[str]:
    async with http, http.stream("POST", "http://workspace/mcp") as response:
        return [event.data async for event in httpx2.EventSource(response, max_event_size=None)]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
async def test_an_event_stream_larger_than_the_bound_passes_when_every_event_is_within_it(end: str) -> None:
    event = f"event: message{end}data: {'x' * 1000}{end}{end}".encode()
    stream = event * (4 * LIMIT // len(event))
    # Chunks that split events anywhere, blank lines included.
    refused: list[str] = []
    got = await events(
        client(lambda: [stream[i : i + 777] for i in range(0, len(stream), 777)], "text/event-stream", refused)
    )
    assert len(got) == 4 * LIMIT // len(event)
    assert refused == []


async def test_one_event_larger_than_the_bound_is_cut_off_before_it_is_parsed() -> None:
    sent: list[int] = []

    def endless() -> Iterable[bytes]:
        yield b"event: message\n"
        while True:
            sent.append(1)
            yield b"data: " + b"x" * 1000 + b"\n"

    refused: list[str] = []
    with pytest.raises(ResponseRefused, match="response larger than 64 KiB"):
        await events(client(endless, "text/event-stream", refused))
    assert refused == ["response larger than 64 KiB"]
    assert len(sent) * 1006 <= LIMIT + 1006  # read no further than the chunk that crossed the bound


async def test_a_body_larger_than_the_bound_is_cut_off() -> None:
    refused: list[str] = []
    http = client(lambda: [b"x" * 1000] * 100, "application/json", refused)
    async with http, http.stream("POST", "http://workspace/mcp") as response:
        with pytest.raises(ResponseRefused):
            await response.aread()
    assert refused == ["response larger than 64 KiB"]


async def test_a_body_within_the_bound_is_read_whole() -> None:
    refused: list[str] = []
    http = client(lambda: [b"x" * 1000] * 64, "application/json", refused)
    async with http, http.stream("POST", "http://workspace/mcp") as response:
        assert len(await response.aread()) == 64_000
    assert refused == []


async def test_a_compressed_body_is_refused_unread() -> None:
    refused: list[str] = []
    http = client(lambda: [b"\x1f\x8b"], "application/json", refused, **{"content-encoding": "gzip"})
    async with http, http.stream("POST", "http://workspace/mcp") as response:
        with pytest.raises(ResponseRefused):
            await response.aread()
    assert refused == ["response compressed (gzip) though none was asked for"]


def test_sizes_read_as_an_operator_would_write_them() -> None:
    assert [describe_size(n) for n in (8 * 1024 * 1024, 65_536, 1_000)] == ["8 MiB", "64 KiB", "1000 bytes"]
