"""The README's settings tables follow the settings: every field of each, in its own table, nothing else."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from chat_mcp_primer import ListingLimits, PrimerSettings, SessionSettings, ToolResultLimits
from chat_mcp_primer.redis import RedisCacheSettings

README = Path(__file__).resolve().parent.parent / "README.md"


def table_after(heading: str) -> list[str]:
    """The field names in the first table after the paragraph that starts with ``heading``."""
    text = README.read_text()
    start = text.index(f"\n{heading}")
    table = re.search(r"\n\| field \|.*?\n\n", text[start:], re.DOTALL)
    assert table is not None, heading
    return re.findall(r"^\| `([a-z_]+)` \|", table.group(0), re.MULTILINE)


@pytest.mark.parametrize(
    "settings", [PrimerSettings, SessionSettings, ListingLimits, ToolResultLimits, RedisCacheSettings]
)
def test_each_settings_table_lists_exactly_its_fields(settings: type) -> None:
    fields = [field.name for field in dataclasses.fields(settings)]
    assert sorted(table_after(f"`{settings.__name__}`")) == sorted(fields)
