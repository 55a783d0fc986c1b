"""Coder's wire conventions: JSON bodies as Go writes them, RFC 3339 timestamps, Go's UUID and bool parsing,
and the error body every failure carries."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response

from chat_mcp_primer.clock import Clock

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# The wall-clock instant the fake's clock reading at construction maps to. Fixed, so timestamps in a test
# are the same on every run.
DEFAULT_ANCHOR = datetime(2025, 6, 2, 9, 0, 0, tzinfo=UTC)

RESOURCE_NOT_FOUND = "Resource not found or you do not have access to this resource"

# Go's `json.Encoder` with `SetEscapeHTML(true)`, as coderd's `httpapi.Write` uses it.
_GO_HTML_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_UUID_DASHES = (8, 13, 18, 23)
_UUID_TEXT_LENGTH = 36
_UUID_URN_PREFIX = "urn:uuid:"
_UUID_HEX_LENGTH = 32
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
NIL_UUID = "00000000-0000-0000-0000-000000000000"


class ApiError(Exception):
    """A response Coder would give instead of the happy path: a status and a `codersdk.Response` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        detail: str | None = None,
        validations: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.detail = detail
        self.validations = tuple(validations)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.detail:
            body["detail"] = self.detail
        if self.validations:
            body["validations"] = [{"field": name, "detail": detail} for name, detail in self.validations]
        return body

    def response(self) -> Response:
        return json_response(self.status, self.body(), headers=self.headers)


def not_found() -> ApiError:
    """Coder's deliberately vague 404, the same whether a thing is missing or not readable."""
    return ApiError(404, RESOURCE_NOT_FOUND)


def encode_json(value: Any) -> bytes:
    """JSON as Go's encoder writes it: compact, HTML characters escaped, a trailing newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _GO_HTML_ESCAPES:
        text = text.replace(raw, escaped)
    return (text + "\n").encode()


def json_response(status: int, value: Any, *, headers: Mapping[str, str] | None = None) -> Response:
    all_headers = {"content-type": JSON_CONTENT_TYPE, **(headers or {})}
    return Response(content=encode_json(value), status_code=status, headers=all_headers)


def go_quote(text: str) -> str:
    """Go's ``%q`` for the strings Coder quotes in messages."""
    return json.dumps(text, ensure_ascii=False)


def parse_uuid(text: str) -> str:
    """Parse a UUID the way Go's ``uuid.Parse`` does, returning its canonical form.

    Raises `ValueError` with Go's message (``invalid UUID length: 1``, ``invalid UUID format``).
    """
    if len(text) == _UUID_HEX_LENGTH:
        if not set(text) <= _HEX_DIGITS:
            raise ValueError("invalid UUID format")
        body = text
    else:
        if len(text) == _UUID_TEXT_LENGTH + len(_UUID_URN_PREFIX):
            if text[: len(_UUID_URN_PREFIX)].lower() != _UUID_URN_PREFIX:
                raise ValueError(f"invalid urn prefix: {go_quote(text[: len(_UUID_URN_PREFIX)])}")
            text = text[len(_UUID_URN_PREFIX) :]
        elif len(text) == _UUID_TEXT_LENGTH + 2:
            text = text[1:-1]
        elif len(text) != _UUID_TEXT_LENGTH:
            raise ValueError(f"invalid UUID length: {len(text)}")
        if any(text[i] != "-" for i in _UUID_DASHES):
            raise ValueError("invalid UUID format")
        body = text.replace("-", "")
        if len(body) != _UUID_HEX_LENGTH or not set(body) <= _HEX_DIGITS:
            raise ValueError("invalid UUID format")
    body = body.lower()
    return f"{body[:8]}-{body[8:12]}-{body[12:16]}-{body[16:20]}-{body[20:]}"


def path_uuid(text: str) -> str:
    """A UUID path parameter, or Coder's 400 for one that does not parse."""
    try:
        return parse_uuid(text)
    except ValueError as exc:
        raise ApiError(400, f"Invalid UUID {go_quote(text)}.", detail=str(exc)) from None


def parse_go_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``; raises `ValueError` for anything else."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ValueError(text)


class Timeline:
    """Maps the fake's clock to wall-clock timestamps: the reading at construction is ``anchor``."""

    def __init__(self, clock: Clock, anchor: datetime = DEFAULT_ANCHOR) -> None:
        if anchor.tzinfo is None:
            raise ValueError("the anchor must be timezone-aware")
        self.clock = clock
        self._origin = clock.now()
        self._anchor = anchor.astimezone(UTC)

    def now(self) -> float:
        return self.clock.now()

    def stamp(self, moment: float) -> str:
        """RFC 3339 with microseconds and the UTC offset, as Go marshals a `time.Time` in UTC."""
        if not math.isfinite(moment):
            raise ValueError("a moment that never comes has no timestamp")
        wall = self._anchor + timedelta(seconds=moment - self._origin)
        return wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def maybe(self, moment: float | None) -> str | None:
        return None if moment is None else self.stamp(moment)
