"""``.mcp.json`` as the gateway reads it: Coder's agent's format, files, precedence, name rules and ``${VAR}``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chat_mcp_primer.gateway import (
    ConfigFileError,
    InvalidEntry,
    ServerConfig,
    Transport,
    default_config_paths,
    load_config,
)


def write(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def test_entries_are_stdio_http_or_sse_as_coder_reads_them(tmp_path: Path) -> None:
    config = load_config(
        [
            write(
                tmp_path / ".mcp.json",
                {
                    "files": {"command": "mcp-files", "args": ["--root", "."], "env": {"LEVEL": "debug"}},
                    "web": {"url": "https://mcp.example.com/mcp", "headers": {"X-Team": "blue"}},
                    "events": {"type": "sse", "url": "http://127.0.0.1:9000/sse"},
                    "typed": {"type": "stdio", "command": "mcp-typed"},
                    "plain": {"type": "http", "url": "http://127.0.0.1:9001/mcp"},
                },
            )
        ],
        environ={},
    )
    assert config.invalid == ()
    assert config.servers == (
        ServerConfig("files", Transport.STDIO, command="mcp-files", args=("--root", "."), env=(("LEVEL", "debug"),)),
        ServerConfig("web", Transport.HTTP, url="https://mcp.example.com/mcp", headers=(("X-Team", "blue"),)),
        ServerConfig("events", Transport.SSE, url="http://127.0.0.1:9000/sse"),
        ServerConfig("typed", Transport.STDIO, command="mcp-typed"),
        ServerConfig("plain", Transport.HTTP, url="http://127.0.0.1:9001/mcp"),
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("git__hub", "the server name must not contain '__'"),
        ("_private", "the server name must not start or end with '_'"),
        ("trailing_", "the server name must not start or end with '_'"),
        ("", "the server name is empty"),
    ],
)
def test_a_server_name_coder_refuses_is_skipped_with_its_reason(tmp_path: Path, name: str, reason: str) -> None:
    config = load_config([write(tmp_path / ".mcp.json", {name: {"command": "x"}, "good_name": {"command": "y"}})])
    assert [server.name for server in config.servers] == ["good_name"]
    assert config.invalid == (InvalidEntry(name, reason),)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({}, "the entry has neither 'command' nor 'url'"),
        ("mcp-files", "the entry must be an object"),
        ({"command": "  "}, "a stdio server needs a non-empty 'command'"),
        ({"command": "x", "args": "--all"}, "'args' must be a list of strings"),
        ({"command": "x", "env": {"N": 1}}, "'env' must be an object of strings"),
        ({"url": "mcp.example.com"}, "an http server needs an http:// or https:// 'url'"),
        ({"type": "sse", "url": "ftp://x/y"}, "an sse server needs an http:// or https:// 'url'"),
        ({"type": "websocket", "url": "ws://x"}, "unknown type (expected one of 'stdio', 'http', 'sse')"),
        ({"url": "http://x/mcp", "headers": ["Authorization"]}, "'headers' must be an object of strings"),
    ],
)
def test_an_invalid_entry_is_skipped_with_its_reason_and_the_rest_load(tmp_path: Path, entry: Any, reason: str) -> None:
    config = load_config([write(tmp_path / ".mcp.json", {"broken": entry, "fine": {"command": "mcp-fine"}})])
    assert [server.name for server in config.servers] == ["fine"]
    assert config.invalid == (InvalidEntry("broken", reason),)


def test_a_reason_never_quotes_the_entry(tmp_path: Path) -> None:
    secret = "ghp_secretvalue123"
    config = load_config([write(tmp_path / ".mcp.json", {"gh": {"url": secret, "headers": {"A": secret}}})])
    assert secret not in config.invalid[0].reason


def test_the_first_file_that_names_a_server_wins(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    first = write(tmp_path / "work" / ".mcp.json", {"files": {"command": "from-work"}, "bad__one": {"command": "x"}})
    second = write(
        tmp_path / "home" / ".mcp.json",
        {"files": {"command": "from-home"}, "web": {"url": "http://127.0.0.1:1/mcp"}, "bad__one": {"command": "y"}},
    )
    config = load_config([first, second])
    assert [(server.name, server.command or server.url) for server in config.servers] == [
        ("files", "from-work"),
        ("web", "http://127.0.0.1:1/mcp"),
    ]
    assert [entry.name for entry in config.invalid] == ["bad__one"]


def test_an_invalid_first_entry_leaves_the_name_to_a_valid_later_one(tmp_path: Path) -> None:
    first = write(tmp_path / "a.json", {"files": {"command": ""}})
    second = write(tmp_path / "b.json", {"files": {"command": "from-home"}})
    config = load_config([first, second])
    assert [server.command for server in config.servers] == ["from-home"]
    assert config.invalid == ()


def test_the_default_files_are_the_working_directory_then_home(tmp_path: Path) -> None:
    work, home = tmp_path / "project", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    assert default_config_paths(work, home) == (work / ".mcp.json", home / ".mcp.json")
    assert default_config_paths(home, home) == (home / ".mcp.json",)


def test_env_values_expand_variables_and_nothing_else_does(tmp_path: Path) -> None:
    config = load_config(
        [
            write(
                tmp_path / ".mcp.json",
                {
                    "gh": {
                        "command": "mcp-github",
                        "args": ["${HOME_DIR}"],
                        "env": {
                            "TOKEN": "${GH_TOKEN}",
                            "MIXED": "a-${LEVEL}-b",
                            "MISSING": "[${NOT_SET}]",
                            "RAW": "$LEVEL",
                        },
                    },
                    "web": {"url": "http://${HOST}/mcp", "headers": {"Authorization": "Bearer ${GH_TOKEN}"}},
                },
            )
        ],
        environ={"GH_TOKEN": "t0ken", "LEVEL": "debug", "HOST": "example.com", "HOME_DIR": "/h"},
    )
    gh, web = config.servers
    assert dict(gh.env) == {"TOKEN": "t0ken", "MIXED": "a-debug-b", "MISSING": "[]", "RAW": "$LEVEL"}
    assert gh.args == ("${HOME_DIR}",)
    assert web.url == "http://${HOST}/mcp"
    assert dict(web.headers) == {"Authorization": "Bearer ${GH_TOKEN}"}
    assert "t0ken" not in repr(gh)


def test_a_missing_or_empty_file_declares_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    no_servers = tmp_path / "none.json"
    no_servers.write_text("{}")
    config = load_config([tmp_path / "absent.json", empty, no_servers, write(tmp_path / "zero.json", {})])
    assert config.servers == ()
    assert config.invalid == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON (line 1, column 2)"),
        ("[]", "must hold a JSON object"),
        ('{"mcpServers": []}', "'mcpServers' must be an object"),
    ],
)
def test_a_file_that_cannot_be_used_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / ".mcp.json"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=re.escape(message)) as raised:
        load_config([path])
    assert "\n" not in str(raised.value)


def test_a_config_path_that_is_not_a_file_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / ".mcp.json"
    folder.mkdir()
    with pytest.raises(ConfigFileError, match=r"cannot read .*: Is a directory"):
        load_config([folder])
