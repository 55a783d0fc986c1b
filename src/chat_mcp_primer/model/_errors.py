"""What a model adapter raises when its provider refuses or fails a request: one small family, whatever
the provider, with the provider's own message kept (never a key). The adapters raise these after the
provider SDK's own retries are spent; they do not retry on top."""

from __future__ import annotations

from chat_mcp_primer._errors import ChatMcpPrimerError


class ModelError(ChatMcpPrimerError):
    """The provider refused or failed the request. ``provider`` names it ("openai", "anthropic"),
    ``status`` is the HTTP status when there was one, ``provider_message`` what the provider said."""

    def __init__(self, provider: str, provider_message: str, *, status: int | None = None) -> None:
        shown = f" ({status})" if status is not None else ""
        super().__init__(f"{provider}{shown}: {provider_message}")
        self.provider = provider
        self.provider_message = provider_message
        self.status = status


class ModelAuthenticationError(ModelError):
    """The provider rejected the key, or the key may not use that model."""


class ModelRateLimitedError(ModelError):
    """Too many requests or tokens for now; ``retry_after`` is the provider's hint in seconds, if it gave one."""

    def __init__(
        self, provider: str, provider_message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(provider, provider_message, status=status)
        self.retry_after = retry_after


class ModelContextTooLongError(ModelError):
    """The conversation, with its tools, is longer than the model's context window."""


class ModelUnavailableError(ModelError):
    """The provider could not be reached, timed out, or failed on its side (5xx, overloaded)."""


class ModelRequestError(ModelError):
    """The provider refused the request for any other reason (a bad request, an unknown model)."""
