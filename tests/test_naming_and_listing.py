"""Exposed tool names (ToolNames, sanitize), listing checks (clean_listing) and the tool cache."""

from __future__ import annotations

import re
from typing import Any

import mcp_types
import pytest

from chat_mcp_primer.events import Event, Events
from chat_mcp_primer.testing import MockClock
from chat_mcp_primer.workspace_mcp import CacheKey, ListingLimits, MemoryToolCache, RemoteTool
from chat_mcp_primer.workspace_mcp._listing import clean_listing
from chat_mcp_primer.workspace_mcp._naming import ToolNames, sanitize

SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# -- ToolNames -------------------------------------------------------------------------------------


def test_exposed_name_is_server_double_underscore_tool() -> None:
    names = ToolNames()
    assert names.exposed("git", "status") == "git__status"
    assert names.exposed("fs", "read_file") == "fs__read_file"


def test_sanitize_replaces_every_character_outside_the_safe_set() -> None:
    assert sanitize("a b.c/d:é-ok_9") == "a_b_c_d__-ok_9"
    assert sanitize("Already-Safe_123") == "Already-Safe_123"


def test_exposed_name_replaces_unsafe_characters() -> None:
    names = ToolNames()
    exposed = names.exposed("my.server", "read file/v2")
    assert exposed == "my_server__read_file_v2"
    assert names.origin(exposed) == ("my.server", "read file/v2")


def test_long_names_get_a_stable_hash_suffix_and_fit_in_64_characters() -> None:
    server, tool = "s" * 40, "t" * 40
    exposed = ToolNames().exposed(server, tool)

    assert len(exposed) <= 64
    assert SAFE_NAME.match(exposed)
    assert exposed.startswith(("s" * 40 + "__" + "t" * 40)[:40])
    assert exposed == ToolNames().exposed(server, tool)  # same name in another registry: stable


def test_long_names_sharing_a_prefix_stay_distinct() -> None:
    names = ToolNames()
    first = names.exposed("s" * 40, "t" * 40 + "_alpha")
    second = names.exposed("s" * 40, "t" * 40 + "_beta")

    assert first != second
    assert len(first) <= 64
    assert len(second) <= 64
    assert names.origin(first) == ("s" * 40, "t" * 40 + "_alpha")
    assert names.origin(second) == ("s" * 40, "t" * 40 + "_beta")


def test_a_name_of_exactly_64_characters_is_kept_as_is() -> None:
    tool = "t" * (64 - len("srv__"))
    assert ToolNames().exposed("srv", tool) == f"srv__{tool}"


def test_a_reserved_name_given_at_construction_is_never_given_to_a_workspace_tool() -> None:
    names = ToolNames(reserved=["create_workspace", "git__status"])
    exposed = names.exposed("git", "status")

    assert exposed != "git__status"
    assert exposed.startswith("git__status_")
    assert SAFE_NAME.match(exposed)
    assert names.origin(exposed) == ("git", "status")
    assert names.origin("git__status") is None


def test_a_name_reserved_later_is_never_given_to_a_workspace_tool_assigned_after() -> None:
    names = ToolNames()
    names.reserve(["git__status"])
    exposed = names.exposed("git", "status")

    assert exposed != "git__status"
    assert names.origin("git__status") is None
    assert names.origin(exposed) == ("git", "status")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("my_server", "x"), ("my.server", "x")),
        (("a__b", "c"), ("a", "b__c")),
        (("fs", "read file"), ("fs", "read/file")),
    ],
)
def test_two_origins_that_sanitise_alike_get_different_names(first: tuple[str, str], second: tuple[str, str]) -> None:
    names = ToolNames()
    first_name = names.exposed(*first)
    second_name = names.exposed(*second)

    assert first_name != second_name
    assert SAFE_NAME.match(first_name)
    assert SAFE_NAME.match(second_name)
    assert names.origin(first_name) == first
    assert names.origin(second_name) == second


def test_assignments_are_sticky_and_map_back_to_their_origin() -> None:
    names = ToolNames()
    original = names.exposed("my_server", "x")
    clashing = names.exposed("my.server", "x")

    assert names.exposed("my_server", "x") == original
    assert names.exposed("my.server", "x") == clashing
    assert names.origin(original) == ("my_server", "x")
    assert names.origin(clashing) == ("my.server", "x")
    assert names.origin("never__assigned") is None


# -- clean_listing ---------------------------------------------------------------------------------


def tool(name: str, description: str | None = "does things", schema: dict[str, Any] | None = None) -> mcp_types.Tool:
    return mcp_types.Tool(
        name=name,
        description=description,
        input_schema=schema if schema is not None else {"type": "object", "properties": {}},
    )


def listing_events(clock: MockClock) -> tuple[Events, list[Event]]:
    seen: list[Event] = []
    return Events(clock.now, seen.append), seen


def skipped(seen: list[Event]) -> list[tuple[str, str]]:
    return [(event.fields["tool"], event.fields["reason"]) for event in seen if event.name == "discovery.tool_skipped"]


SETTINGS = ListingLimits(max_description_chars=20, max_schema_bytes=200)


def test_clean_listing_keeps_good_tools_in_order_with_their_details(clock: MockClock) -> None:
    events, seen = listing_events(clock)
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    listed = [tool("read", "reads a file", schema), tool("write"), tool("list")]

    kept = clean_listing("fs", listed, SETTINGS, events)

    assert kept == (
        RemoteTool(server="fs", name="read", description="reads a file", input_schema=schema),
        RemoteTool(server="fs", name="write", description="does things", input_schema=listed[1].input_schema),
        RemoteTool(server="fs", name="list", description="does things", input_schema=listed[2].input_schema),
    )
    assert seen == []


@pytest.mark.parametrize("name", ["", "   "])
def test_clean_listing_skips_a_tool_without_a_name(clock: MockClock, name: str) -> None:
    events, seen = listing_events(clock)
    kept = clean_listing("fs", [tool("read"), tool(name), tool("write")], SETTINGS, events)

    assert [remote.name for remote in kept] == ["read", "write"]
    assert skipped(seen) == [(name, "no name")]


def test_clean_listing_skips_a_duplicate_name_and_keeps_the_first(clock: MockClock) -> None:
    events, seen = listing_events(clock)
    kept = clean_listing("fs", [tool("read", "first"), tool("read", "second"), tool("write")], SETTINGS, events)

    assert [(remote.name, remote.description) for remote in kept] == [("read", "first"), ("write", "does things")]
    assert skipped(seen) == [("read", "duplicate name")]


@pytest.mark.parametrize(
    ("schema", "reason_part"),
    [
        ({"type": "array", "items": {}}, "not of type object"),
        ({"properties": {}}, "not of type object"),
        ({"type": "object", "properties": 5}, "invalid"),
        ({"type": "object", "properties": {"x": {"type": "no-such-type"}}}, "invalid"),
        ({"type": "object", "properties": {"x": {"description": "y" * 300}}}, "byte limit"),
    ],
)
def test_clean_listing_skips_a_tool_with_an_unusable_input_schema(
    clock: MockClock, schema: dict[str, Any], reason_part: str
) -> None:
    events, seen = listing_events(clock)
    kept = clean_listing("fs", [tool("before"), tool("bad", schema=schema), tool("after")], SETTINGS, events)

    assert [remote.name for remote in kept] == ["before", "after"]
    [(name, reason)] = skipped(seen)
    assert name == "bad"
    assert reason_part in reason


def test_clean_listing_accepts_a_schema_of_exactly_the_byte_limit(clock: MockClock) -> None:
    events, seen = listing_events(clock)
    base = '{"type": "object", "description": ""}'
    schema = {"type": "object", "description": "d" * (SETTINGS.max_schema_bytes - len(base))}

    kept = clean_listing("fs", [tool("exact", schema=schema)], SETTINGS, events)

    assert [remote.name for remote in kept] == ["exact"]
    assert seen == []


def test_clean_listing_truncates_a_long_description_and_says_so(clock: MockClock) -> None:
    events, seen = listing_events(clock)
    long = "x" * 25
    exact = "y" * 20

    kept = clean_listing("fs", [tool("long", long), tool("exact", exact)], SETTINGS, events)

    assert [(remote.name, remote.description) for remote in kept] == [("long", "x" * 20), ("exact", exact)]
    truncated = [event for event in seen if event.name == "discovery.description_truncated"]
    assert [(event.fields["server"], event.fields["tool"], event.fields["length"]) for event in truncated] == [
        ("fs", "long", 25)
    ]


def test_clean_listing_falls_back_to_the_title_for_a_missing_description(clock: MockClock) -> None:
    events, _ = listing_events(clock)
    listed = [mcp_types.Tool(name="read", title="Read a file", input_schema={"type": "object"}), tool("bare", None)]

    kept = clean_listing("fs", listed, SETTINGS, events)

    assert [remote.description for remote in kept] == ["Read a file", ""]


def test_clean_listing_drops_every_bad_tool_and_keeps_the_rest_in_order(clock: MockClock) -> None:
    events, seen = listing_events(clock)
    listed = [
        tool("a"),
        tool(""),
        tool("a"),
        tool("b", schema={"type": "string"}),
        tool("c", schema={"type": "object", "properties": 5}),
        tool("d", schema={"type": "object", "description": "z" * 500}),
        tool("e", "e" * 50),
        tool("f"),
    ]

    kept = clean_listing("srv", listed, SETTINGS, events)

    assert [remote.name for remote in kept] == ["a", "e", "f"]
    assert [name for name, _ in skipped(seen)] == ["", "a", "b", "c", "d"]
    assert all(event.fields["server"] == "srv" for event in seen)
    assert [event.fields["tool"] for event in seen if event.name == "discovery.description_truncated"] == ["e"]


# -- MemoryToolCache -------------------------------------------------------------------------------

KEY = CacheKey("ws-1", "agent-1", "git")
TOOLS = (RemoteTool(server="git", name="status", description="", input_schema={"type": "object"}),)


@pytest.mark.anyio
async def test_cache_stores_and_returns_a_listing_at_the_current_generation() -> None:
    cache = MemoryToolCache()
    assert await cache.get(KEY) is None
    generation = await cache.generation(KEY)

    assert await cache.put(KEY, TOOLS, generation) is True
    assert await cache.get(KEY) == TOOLS
    assert len(cache) == 1


@pytest.mark.anyio
async def test_cache_never_stores_an_empty_listing() -> None:
    cache = MemoryToolCache()
    generation = await cache.generation(KEY)

    assert await cache.put(KEY, (), generation) is False
    assert await cache.get(KEY) is None
    assert len(cache) == 0


@pytest.mark.anyio
async def test_cache_refuses_a_put_with_a_generation_read_before_invalidate() -> None:
    cache = MemoryToolCache()
    stale = await cache.generation(KEY)
    await cache.invalidate(KEY)

    assert await cache.put(KEY, TOOLS, stale) is False
    assert await cache.get(KEY) is None

    fresh = await cache.generation(KEY)
    assert fresh != stale
    assert await cache.put(KEY, TOOLS, fresh) is True
    assert await cache.get(KEY) == TOOLS


@pytest.mark.anyio
async def test_cache_invalidate_drops_the_stored_listing() -> None:
    cache = MemoryToolCache()
    assert await cache.put(KEY, TOOLS, await cache.generation(KEY))
    await cache.invalidate(KEY)

    assert await cache.get(KEY) is None
    assert len(cache) == 0


@pytest.mark.anyio
async def test_cache_invalidate_workspace_bumps_every_key_of_that_workspace_only() -> None:
    cache = MemoryToolCache()
    same_agent = CacheKey("ws-1", "agent-1", "fs")
    other_agent = CacheKey("ws-1", "agent-2", "git")
    other_workspace = CacheKey("ws-2", "agent-1", "git")
    keys = [KEY, same_agent, other_agent, other_workspace]
    before = {key: await cache.generation(key) for key in keys}
    for key in keys:
        assert await cache.put(key, TOOLS, before[key])

    await cache.invalidate_workspace("ws-1")

    for key in (KEY, same_agent, other_agent):
        assert await cache.get(key) is None
        assert await cache.generation(key) != before[key]
        assert await cache.put(key, TOOLS, before[key]) is False
    assert await cache.get(other_workspace) == TOOLS
    assert await cache.generation(other_workspace) == before[other_workspace]


@pytest.mark.anyio
async def test_cache_invalidate_workspace_drops_a_listing_stored_without_reading_the_generation_first() -> None:
    # put() accepts generation 0 for a key whose generation was never read; invalidate_workspace must
    # still drop that entry, or get() keeps serving a listing of a workspace that was invalidated.
    cache = MemoryToolCache()
    assert await cache.put(KEY, TOOLS, 0) is True

    await cache.invalidate_workspace("ws-1")

    assert await cache.get(KEY) is None


@pytest.mark.anyio
async def test_cache_forgets_a_workspaces_other_agents_and_refuses_their_late_listings() -> None:
    cache = MemoryToolCache()
    old, new, other = CacheKey("ws-1", "agent-1", "s"), CacheKey("ws-1", "agent-2", "s"), CacheKey("ws-2", "a", "s")
    for key in (old, new, other):
        assert await cache.put(key, TOOLS, await cache.generation(key))
    in_flight = await cache.generation(old)
    await cache.forget_agents("ws-1", keep_agent_id="agent-2")
    assert await cache.get(old) is None
    assert await cache.get(new) == TOOLS
    assert await cache.get(other) == TOOLS
    assert await cache.put(old, TOOLS, in_flight) is False  # a listing of the rebuilt-away agent, too late
    assert len(cache) == 2
