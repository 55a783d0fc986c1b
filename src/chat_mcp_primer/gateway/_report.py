"""The discovery report: what ``GET /discovery`` answers, and how a failure's reason is made fit to publish.

Exactly::

    {"run_id": "...", "phase": "pending" | "complete",
     "servers": {"<name>": {"status": "starting" | "ok" | "empty" | "failed", "tools": <count>,
                            "reason": "<sanitised text or null>"}}}

``phase`` is ``pending`` while any declared server has not been tried yet (``starting``), ``complete`` once
each has been tried at least once, whatever the outcome. ``run_id`` is drawn at random when the gateway
starts, so a client can tell a restarted gateway (whose tools may differ) from the one it listed before.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# Random bytes of a run id: 128 bits, as a UUID has, so two runs never share one.
_RUN_ID_BYTES = 16
# Values shorter than this are not hidden in reasons: "1" or "on" would blank out half a sentence, and
# cannot be secrets worth the name anyway.
_MIN_SECRET_CHARS = 4
_HIDDEN = "***"
_ELLIPSIS = "..."
_WHITESPACE = re.compile(r"\s+")
# What looks like a credential whatever the server's env says: a bearer token, ``token=...`` and the like,
# and the password of a URL.
_BEARER = re.compile(r"(?i)\b(bearer)\s+\S+")
_KEY_VALUE = re.compile(r"(?i)\b([\w-]*(?:token|secret|password|passwd|api[_-]?key)[\w-]*)([=:]\s*)\S+")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")


class Status(StrEnum):
    STARTING = "starting"  # declared, not tried yet
    OK = "ok"  # connected, and it lists tools
    EMPTY = "empty"  # connected, and it lists none
    FAILED = "failed"  # invalid entry, failed to start, or down (and restarting)


class Phase(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"


def new_run_id() -> str:
    return secrets.token_hex(_RUN_ID_BYTES)


@dataclass(frozen=True, slots=True)
class ServerOutcome:
    """One server's line of the report."""

    status: Status
    tools: int = 0
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "tools": self.tools, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    """The report at one instant: the run, and each declared server's outcome."""

    run_id: str
    servers: Mapping[str, ServerOutcome]

    @property
    def phase(self) -> Phase:
        if any(outcome.status is Status.STARTING for outcome in self.servers.values()):
            return Phase.PENDING
        return Phase.COMPLETE

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "phase": self.phase.value,
            "servers": {name: outcome.to_json() for name, outcome in self.servers.items()},
        }


def sanitise_reason(text: str, limit: int, hidden: Iterable[str] = ()) -> str:
    """``text`` as one short line fit for the report: every value of ``hidden`` (a server's env values and
    header values, which are often tokens) and whatever looks like a credential (``Bearer ...``,
    ``token=...``, a URL's password) replaced by ``***``, whitespace runs (newlines too) collapsed to one
    space, and cut to ``limit`` characters."""
    for value in sorted({value for value in hidden if len(value) >= _MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(value, _HIDDEN)
    text = _BEARER.sub(rf"\1 {_HIDDEN}", text)
    text = _KEY_VALUE.sub(rf"\1\2{_HIDDEN}", text)
    text = _URL_PASSWORD.sub(rf"\1:{_HIDDEN}@", text)
    line = _WHITESPACE.sub(" ", text).strip()
    if len(line) <= limit:
        return line
    return line[: max(0, limit - len(_ELLIPSIS))].rstrip() + _ELLIPSIS
