"""``.mcp.json`` as Coder's workspace agent reads it: the format, the files, the precedence, the name rules.

The format is ``{"mcpServers": {"<name>": {...}}}``. An entry with ``command`` (and optional ``args`` and
``env``) is a stdio server; one with ``url`` (and optional ``headers``) an http server, or an sse server when
``type`` says ``"sse"``; ``type`` may also say ``"stdio"`` or ``"http"`` outright. ``env`` values expand
``${VAR}`` from the gateway's environment (a variable that is not set expands to nothing, as in Coder's
agent); ``url`` and ``headers`` are taken as written, as Coder's agent takes them.

A server name must not contain ``__`` (it separates server from tool in ``server__tool``) and must not start
or end with ``_``. Files are read in order and the first occurrence of a name wins; an invalid entry is
skipped with its reason kept, and the rest load.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIG_FILE_NAME = ".mcp.json"
_SERVERS_KEY = "mcpServers"
_SEPARATOR = "__"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"
    SSE = "sse"


class EntryError(Exception):
    """One entry of ``mcpServers`` cannot be used; the text says why, never quoting a value of it."""


class ConfigFileError(Exception):
    """A config file exists but cannot be used as a whole (unreadable, not JSON, not an object)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One server of a config file, checked. Equal entries run the same server: a change restarts it."""

    name: str
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    # Already expanded; kept out of the repr, since values are often tokens.
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    url: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class InvalidEntry:
    """An entry that was skipped, and why (no value of the entry in the reason: it may hold a token)."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """What the config files declare, merged: the servers to run and the entries skipped, in file order."""

    servers: tuple[ServerConfig, ...] = ()
    invalid: tuple[InvalidEntry, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every declared name, valid or not, in the order the files give them."""
        return tuple(server.name for server in self.servers) + tuple(entry.name for entry in self.invalid)


def default_config_paths(working_directory: Path | None = None, home: Path | None = None) -> tuple[Path, ...]:
    """The files Coder's agent reads, in its order of precedence: the working directory's ``.mcp.json``, then
    the home directory's (once, when they are the same directory)."""
    first = (working_directory or Path.cwd()) / CONFIG_FILE_NAME
    second = (home or Path.home()) / CONFIG_FILE_NAME
    return (first,) if first.resolve() == second.resolve() else (first, second)


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a server, or None when it can."""
    if not name:
        return "the server name is empty"
    if _SEPARATOR in name:
        return f"the server name must not contain {_SEPARATOR!r}"
    if name.startswith("_") or name.endswith("_"):
        return "the server name must not start or end with '_'"
    return None


def expand(value: str, environ: Mapping[str, str]) -> str:
    """``value`` with every ``${VAR}`` replaced by the variable's value (nothing when it is not set)."""
    return _VARIABLE.sub(lambda match: environ.get(match.group(1), ""), value)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise EntryError(f"{what} must be a list of strings")
    return tuple(value)


def _string_map(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise EntryError(f"{what} must be an object of strings")
    return tuple((str(key), item) for key, item in value.items())


def _transport_of(entry: Mapping[str, Any]) -> Transport:
    declared = entry.get("type")
    if declared is None:
        if "command" in entry:
            return Transport.STDIO
        if "url" in entry:
            return Transport.HTTP
        raise EntryError("the entry has neither 'command' nor 'url'")
    try:
        return Transport(declared)
    except ValueError:
        known = ", ".join(repr(kind.value) for kind in Transport)
        raise EntryError(f"unknown type (expected one of {known})") from None


def parse_entry(name: str, entry: Any, environ: Mapping[str, str]) -> ServerConfig:
    """One entry of ``mcpServers``, checked; `EntryError` saying what is wrong."""
    problem = check_name(name)
    if problem is not None:
        raise EntryError(problem)
    if not isinstance(entry, dict):
        raise EntryError("the entry must be an object")
    transport = _transport_of(entry)
    if transport is Transport.STDIO:
        command = entry.get("command")
        if not isinstance(command, str) or not command.strip():
            raise EntryError("a stdio server needs a non-empty 'command'")
        args = _strings(entry.get("args", []), "'args'")
        env = _string_map(entry.get("env", {}), "'env'")
        return ServerConfig(
            name, transport, command=command, args=args, env=tuple((key, expand(value, environ)) for key, value in env)
        )
    url = entry.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise EntryError(f"an {transport.value} server needs an http:// or https:// 'url'")
    return ServerConfig(name, transport, url=url, headers=_string_map(entry.get("headers", {}), "'headers'"))


def read_config_file(path: Path) -> Mapping[str, Any]:
    """The ``mcpServers`` object of one file; empty when the file does not exist (it may be created later).
    `ConfigFileError` when it exists but cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigFileError(f"cannot read {path}: {reason}") from None
    if not text.strip():
        return {}  # an empty file declares nothing, as an empty object would
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(document, dict):
        raise ConfigFileError(f"{path} must hold a JSON object")
    servers = document.get(_SERVERS_KEY, {})
    if not isinstance(servers, dict):
        raise ConfigFileError(f"{path}: {_SERVERS_KEY!r} must be an object")
    return servers


def merge(documents: Sequence[Mapping[str, Any]], environ: Mapping[str, str]) -> GatewayConfig:
    """The servers of ``documents`` (``mcpServers`` objects, in order of precedence): the first valid entry of
    a name wins; an invalid entry is kept, with its reason, only for a name no valid entry has."""
    servers: dict[str, ServerConfig] = {}
    invalid: dict[str, InvalidEntry] = {}
    for document in documents:
        for name, entry in document.items():
            if name in servers:
                continue
            try:
                servers[name] = parse_entry(name, entry, environ)
            except EntryError as exc:
                invalid.setdefault(name, InvalidEntry(name, str(exc)))
    return GatewayConfig(
        servers=tuple(servers.values()),
        invalid=tuple(entry for name, entry in invalid.items() if name not in servers),
    )


def load_config(paths: Sequence[Path], environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and merge ``paths`` in order of precedence; `ConfigFileError` when one exists but is unusable."""
    return merge([read_config_file(path) for path in paths], os.environ if environ is None else environ)
