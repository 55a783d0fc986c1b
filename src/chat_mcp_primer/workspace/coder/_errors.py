"""The errors a Coder client raises, as a small hierarchy users catch by kind. No secrets in any text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chat_mcp_primer._errors import ChatMcpPrimerError


@dataclass(frozen=True, slots=True)
class Validation:
    field: str
    detail: str


class CoderError(ChatMcpPrimerError):
    """Any failure talking to Coder. ``message``, ``detail`` and ``validations`` come from the error body."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        validations: Sequence[Validation] = (),
    ) -> None:
        text = message if not detail else f"{message} ({detail})"
        if validations:
            text += "; " + ", ".join(f"{v.field}: {v.detail}" for v in validations)
        super().__init__(text)
        self.message = message
        self.status = status
        self.detail = detail
        self.validations = tuple(validations)


class CoderTransportError(CoderError):
    """Coder could not be reached, or the connection broke; retried before it is raised."""


class CoderProtocolError(CoderError):
    """Coder answered with something that is not the documented shape."""


class CoderAuthError(CoderError):
    """401: the session token is missing, invalid, expired or revoked. Never retried."""


class CoderPermissionError(CoderError):
    """403: the token may read the resource but not act on it."""


class CoderNotFoundError(CoderError):
    """404: the resource does not exist, or the token may not read it (Coder does not say which)."""


class CoderWorkspaceDeletedError(CoderError):
    """410: the workspace was deleted."""


class CoderConflictError(CoderError):
    """409: a name is taken, or a build is already active."""


class BuildActiveError(CoderConflictError):
    """409: the workspace already has an active build; wait for it, then try again."""


class CoderValidationError(CoderError):
    """400: the request was refused (bad input; a template version that does not fit)."""


class TemplateVersionImportingError(CoderError):
    """406: the template version is still importing and cannot be built yet."""


class CoderServerError(CoderError):
    """5xx or 429 that persisted through the retries."""


class BuildError(CoderError):
    """A build did not end in success. Carries the build id so a UI can show its logs."""

    def __init__(self, message: str, *, build_id: str, job_error: str | None = None, error_code: str | None = None):
        super().__init__(message, detail=job_error)
        self.build_id = build_id
        self.job_error = job_error
        self.error_code = error_code


class BuildFailedError(BuildError):
    """The build's job failed (``job.error`` and ``job.error_code`` say why, e.g. INSUFFICIENT_QUOTA)."""


class BuildCanceledError(BuildError):
    """The build was canceled."""


class BuildTimeoutError(BuildError, TimeoutError):
    """The build did not finish within its budget."""


def error_from_body(status: int, body: Mapping[str, object] | None) -> CoderError:
    """The error a response stands for, by status code, carrying the body's message and details."""
    body = body or {}
    message = str(body.get("message") or f"Coder answered HTTP {status}")
    detail = body.get("detail")
    raw_validations = body.get("validations")
    validations = [
        Validation(field=str(item.get("field", "")), detail=str(item.get("detail", "")))
        for item in (raw_validations if isinstance(raw_validations, list) else [])
        if isinstance(item, dict)
    ]
    kind: type[CoderError]
    if status == 401:
        kind = CoderAuthError
    elif status == 403:
        kind = CoderPermissionError
    elif status == 404:
        kind = CoderNotFoundError
    elif status == 410:
        kind = CoderWorkspaceDeletedError
    elif status == 409:
        kind = BuildActiveError if "build is already active" in message else CoderConflictError
    elif status == 406:
        kind = TemplateVersionImportingError
    elif status == 400:
        kind = CoderValidationError
    elif status >= 500 or status == 429:
        kind = CoderServerError
    else:
        kind = CoderError
    return kind(message, status=status, detail=str(detail) if detail else None, validations=validations)
