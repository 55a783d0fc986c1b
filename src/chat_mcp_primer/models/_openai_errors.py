"""OpenAI's failures as the `ModelError` family, for both OpenAI adapters.

The SDK has already retried what it retries (``max_retries`` on the client) when one of its errors reaches
us; we translate once and never retry on top.
"""

from __future__ import annotations

import openai

from chat_mcp_primer.model import (
    ModelAuthenticationError,
    ModelContextTooLongError,
    ModelError,
    ModelRateLimitedError,
    ModelRequestError,
    ModelUnavailableError,
)

PROVIDER = "openai"
# The error codes OpenAI (and the compatible servers that copy it) give a conversation longer than the
# model's window; some servers give no code, only a message naming the context length.
_CONTEXT_TOO_LONG_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_TOO_LONG_WORDS = ("context length", "context window", "maximum context")
_RATE_LIMITED_CODE = "rate_limit_exceeded"
# The codes of a failed response that blame the request (the Responses API reference, `error.code`).
_REQUEST_ERROR_CODES = frozenset({"invalid_prompt", "invalid_image", "invalid_image_format", "image_too_large"})
# From here up (any 5xx, and the 529 "overloaded" some proxies answer) the provider's side failed, not the request.
_SERVER_FAILURE_STATUS = 500


def provider_message(error: openai.APIError) -> str:
    """What the provider said: the ``message`` of its error body, else the SDK's own text."""
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return error.message


def _retry_after(error: openai.APIStatusError) -> float | None:
    """The server's hint in seconds: ``retry-after-ms`` (OpenAI's, finer) or ``retry-after`` in seconds."""
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) / scale
            except ValueError:  # an HTTP date: too rare from these providers to parse
                continue
    return None


def _is_context_too_long(code: str | None, message: str) -> bool:
    return (code is not None and code in _CONTEXT_TOO_LONG_CODES) or any(
        words in message.lower() for words in _CONTEXT_TOO_LONG_WORDS
    )


def model_error(error: openai.APIError) -> ModelError:
    """The family member for an SDK error: authentication, rate limited, context too long, unavailable, or
    any other refused request, with the provider's message and status kept (the SDK never puts the key in
    either)."""
    message = provider_message(error)
    if isinstance(error, openai.APIConnectionError):  # the timeout error is one of these too
        return ModelUnavailableError(PROVIDER, message)
    if not isinstance(error, openai.APIStatusError):  # an error event inside a stream
        return failure_error(error.code, message)
    status = error.status_code
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return ModelAuthenticationError(PROVIDER, message, status=status)
    if isinstance(error, openai.RateLimitError):
        return ModelRateLimitedError(PROVIDER, message, status=status, retry_after=_retry_after(error))
    if status >= _SERVER_FAILURE_STATUS:
        return ModelUnavailableError(PROVIDER, message, status=status)
    if _is_context_too_long(error.code, message):
        return ModelContextTooLongError(PROVIDER, message, status=status)
    return ModelRequestError(PROVIDER, message, status=status)


def failure_error(code: str | None, message: str) -> ModelError:
    """The family member for a failure the provider reports inside a response or a stream (no HTTP status):
    its ``code`` says which, and a failure that names no cause is the provider's own."""
    if _is_context_too_long(code, message):
        return ModelContextTooLongError(PROVIDER, message)
    if code == _RATE_LIMITED_CODE:
        return ModelRateLimitedError(PROVIDER, message)
    if code in _REQUEST_ERROR_CODES:
        return ModelRequestError(PROVIDER, message)
    return ModelUnavailableError(PROVIDER, message)
