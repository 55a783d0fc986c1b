"""Model adapters over the providers' official SDKs, each behind its extra:

- `OpenAIChatModel` (Chat Completions, and OpenAI-compatible servers) and `OpenAIResponsesModel` (the
  Responses API): ``pip install 'chat-mcp-primer[openai]'``;
- `AnthropicModel` (Messages): ``pip install 'chat-mcp-primer[anthropic]'``.

Each is built from the user's own SDK client, so keys, base URLs, retries and proxies stay the SDK's.
`ModelSpec` opens one from a string such as ``openai:gpt-4.1-mini`` and the SDK's environment variables,
for configuration kept in the environment or on a command line. Importing this package needs
neither SDK: a class is imported when first used, and a missing SDK says in one line which extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from chat_mcp_primer._extras import is_missing_extra, missing_extra_message
from chat_mcp_primer.models._spec import MODEL_PROVIDERS, ModelSpec, ModelSpecError

if TYPE_CHECKING:
    from chat_mcp_primer.models._anthropic import AnthropicModel
    from chat_mcp_primer.models._openai_chat import OpenAIChatModel
    from chat_mcp_primer.models._openai_responses import OpenAIResponsesModel

# Each public name: the module that defines it, and the extra that installs its SDK.
_HOME_OF = {
    "OpenAIChatModel": ("chat_mcp_primer.models._openai_chat", "openai"),
    "OpenAIResponsesModel": ("chat_mcp_primer.models._openai_responses", "openai"),
    "AnthropicModel": ("chat_mcp_primer.models._anthropic", "anthropic"),
}

__all__ = [
    "MODEL_PROVIDERS",
    "AnthropicModel",
    "ModelSpec",
    "ModelSpecError",
    "OpenAIChatModel",
    "OpenAIResponsesModel",
]


def __getattr__(name: str) -> object:
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, extra = _HOME_OF[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        if not is_missing_extra(missing):
            raise
        raise ModuleNotFoundError(
            missing_extra_message(f"chat_mcp_primer.models.{name}", extra, missing), name=missing.name
        ) from None
    found: object = getattr(module, name)
    globals()[name] = found  # later lookups skip this function
    return found
