"""The optional parts of the package, and the one line that names the extra a missing package belongs to.

A plain ``pip install chat-mcp-primer`` is the library a chat backend embeds; the command line and the test
kit need packages of their own, installed by the ``cli`` and ``testing`` extras (see pyproject.toml). A part
used without its extra says which one to install instead of ending in a bare import traceback.
"""

from __future__ import annotations


def is_missing_extra(missing: ModuleNotFoundError) -> bool:
    """Whether ``missing`` is a package from outside (an extra's), not a module of this package gone astray."""
    return missing.name is not None and missing.name.partition(".")[0] != "chat_mcp_primer"


def missing_extra_message(part: str, extra: str, missing: ModuleNotFoundError) -> str:
    """One line naming the extra and the command that installs it, e.g. ``chat_mcp_primer.testing needs the
    'testing' extra (sniffio is not installed): pip install 'chat-mcp-primer[testing]'``."""
    return f"{part} needs the {extra!r} extra ({missing.name} is not installed): pip install 'chat-mcp-primer[{extra}]'"
