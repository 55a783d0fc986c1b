"""Checks the commands share for their options: each bad value is a usage error (exit 2) with one line
saying what is wrong, raised while the command line is parsed, before anything is dialled or built."""

from __future__ import annotations

import math

import typer

from chat_mcp_primer.workspace.coder import CoderUrl

CODER_URL_HELP = "The Coder deployment's base URL (http:// or https://)."


def parse_coder_url(value: str | None) -> str | None:
    """The ``--coder-url`` callback of every command: `CoderUrl.parse`'s refusal as a usage error."""
    if value is None or value == "":
        return None  # absent: the command decides whether it needs one
    try:
        return CoderUrl.parse(value).url
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def positive_seconds(value: float) -> float:
    """A budget or an interval: a finite number of seconds above zero."""
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive, finite number of seconds, got {value:g}")
    return value


def non_negative_seconds(value: float) -> float:
    """A duration that may be zero: a finite number of seconds, zero or more."""
    if not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"must be a finite number of seconds, zero or more, got {value:g}")
    return value
