"""`ModelSpec`: a model named by one string, ``provider:model`` (``openai:gpt-4.1-mini``), opened over its
provider's SDK client with the key and base URL from the environment, for services and commands whose
configuration is environment variables and flags (the web backend example's ``CHAT_MODEL``, ``demo --model``).

Importing this module needs no SDK: a provider's SDK is imported when a spec names it, and a missing one
is a `ModelSpecError` naming the extra to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from chat_mcp_primer._errors import ChatMcpPrimerError
from chat_mcp_primer._extras import is_missing_extra, missing_extra_message
from chat_mcp_primer.model import Model

SPEC_EXAMPLE = "openai:gpt-4.1-mini"


class ModelSpecError(ChatMcpPrimerError, ValueError):
    """A model spec that names no model this installation can build: malformed, an unknown provider, its
    key not set, or its SDK not installed. The text is one line that says what to do (never a key)."""


@dataclass(frozen=True, slots=True)
class _Provider:
    """How one provider's models are built: the extra that installs its SDK, the variables its SDK reads
    for the key and the base URL, the client class, and the adapter over such a client."""

    extra: str
    key_variable: str
    base_url_variable: str
    client_class: str
    # (client, model name) -> the adapter
    adapter: Callable[[Any, str], Model]


def _openai_chat(client: Any, name: str) -> Model:
    from chat_mcp_primer.models._openai_chat import OpenAIChatModel

    return OpenAIChatModel(client, name)


def _openai_responses(client: Any, name: str) -> Model:
    from chat_mcp_primer.models._openai_responses import OpenAIResponsesModel

    return OpenAIResponsesModel(client, name)


def _anthropic(client: Any, name: str) -> Model:
    from chat_mcp_primer.models._anthropic import AnthropicModel

    return AnthropicModel(client, name)


# The variable names are the SDKs' own, so a shell set up for the SDK is set up for this.
_PROVIDERS = {
    "openai": _Provider("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AsyncOpenAI", _openai_chat),
    "openai-responses": _Provider("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AsyncOpenAI", _openai_responses),
    "anthropic": _Provider("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "AsyncAnthropic", _anthropic),
}
MODEL_PROVIDERS = tuple(_PROVIDERS)
"""The providers a spec may name: ``openai`` (Chat Completions, and OpenAI-compatible servers through
``OPENAI_BASE_URL``), ``openai-responses`` (the Responses API), ``anthropic`` (Messages)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model named by ``provider:model``, checked and ready to open: `parse` it (no I/O), then
    ``async with spec.open() as model`` for as long as the model is used; the SDK client is closed with
    the block. ``api_key`` is never shown in a repr."""

    provider: str
    model: str
    api_key: str = field(repr=False)
    # None: the SDK's default endpoint.
    base_url: str | None = None

    @classmethod
    def parse(cls, spec: str, *, env: Mapping[str, str] = os.environ) -> ModelSpec:
        """The spec ``openai:<model>`` (`OpenAIChatModel`), ``openai-responses:<model>``
        (`OpenAIResponsesModel`) or ``anthropic:<model>`` (`AnthropicModel`), with the key from
        ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` and, when set, the base URL from ``OPENAI_BASE_URL`` /
        ``ANTHROPIC_BASE_URL``, read from ``env``.

        Raises `ModelSpecError` for a malformed spec, an unknown provider, a key that is not set, or an
        SDK that is not installed. Nothing is dialled: a wrong key shows at the first request, as a
        `ModelAuthenticationError`.
        """
        provider_name, colon, name = spec.strip().partition(":")
        if not colon or not provider_name or not name.strip():
            raise ModelSpecError(f"a model is given as provider:model, e.g. {SPEC_EXAMPLE} (got {spec!r})")
        provider_name = provider_name.lower()
        provider = _PROVIDERS.get(provider_name)
        if provider is None:
            choices = ", ".join(_PROVIDERS)
            raise ModelSpecError(f"unknown model provider {provider_name!r} in {spec!r}: use one of {choices}")
        key = env.get(provider.key_variable, "")
        if not key:
            raise ModelSpecError(f"{spec} needs an API key: set {provider.key_variable}")
        _sdk(provider, spec)  # a missing SDK is told now, not when the model is opened
        return cls(provider_name, name.strip(), key, env.get(provider.base_url_variable) or None)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Model]:
        """The adapter over a new SDK client of this key and base URL (retries, timeouts: the SDK's
        defaults; build the client yourself to choose otherwise), closed when the block ends."""
        provider = _PROVIDERS[self.provider]
        client_class = getattr(_sdk(provider, f"{self.provider}:{self.model}"), provider.client_class)
        async with client_class(api_key=self.api_key, base_url=self.base_url) as client:
            yield provider.adapter(client, self.model)


def _sdk(provider: _Provider, spec: str) -> Any:
    try:
        return importlib.import_module(provider.extra)
    except ModuleNotFoundError as missing:
        if not is_missing_extra(missing):
            raise
        raise ModelSpecError(missing_extra_message(f"the model {spec}", provider.extra, missing)) from None
