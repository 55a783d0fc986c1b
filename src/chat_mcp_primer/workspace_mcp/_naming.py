from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

# OpenAI-style function names: the strictest common rule among model providers.
MAX_TOOL_NAME_LENGTH = 64
# Tool names often contain single underscores, so server and tool are joined by a double one.
SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Eight hex digits of SHA-256: collisions among the tools of one chat are practically impossible, and
# the suffix leaves most of the 64 characters to the readable part.
_SUFFIX_HEX_DIGITS = 8


def sanitize(name: str) -> str:
    return _UNSAFE.sub("_", name)


class ToolNames:
    """Assigns each workspace tool the name the model sees, and maps it back for the call.

    The exposed name is ``server__tool`` with unsafe characters replaced by ``_``. When that is longer
    than 64 characters, or is taken (by a built-in tool or another workspace tool), a stable hash of
    the original (server, tool) pair is appended instead. Assignments stick: a tool keeps its name for
    the registry's life, and a built-in name is never given to a workspace tool.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(reserved)
        self._by_origin: dict[tuple[str, str], str] = {}
        self._by_exposed: dict[str, tuple[str, str]] = {}

    def reserve(self, names: Iterable[str]) -> None:
        """Keep these names (built-in tools) away from workspace tools assigned from now on."""
        self._taken.update(names)

    def exposed(self, server: str, tool: str) -> str:
        origin = (server, tool)
        name = self._by_origin.get(origin)
        if name is not None:
            return name
        name = sanitize(f"{server}{SEPARATOR}{tool}")
        digits = _SUFFIX_HEX_DIGITS
        while len(name) > MAX_TOOL_NAME_LENGTH or name in self._taken:
            digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:digits]
            base = sanitize(f"{server}{SEPARATOR}{tool}")[: MAX_TOOL_NAME_LENGTH - digits - 1]
            name = f"{base}_{digest}"
            digits += 1
        self._taken.add(name)
        self._by_origin[origin] = name
        self._by_exposed[name] = origin
        return name

    def origin(self, exposed: str) -> tuple[str, str] | None:
        """The (server, original tool name) behind an exposed name, or None for a name never assigned."""
        return self._by_exposed.get(exposed)
