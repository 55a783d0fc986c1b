"""A Coder deployment's base URL, checked once: the one parser the client and every command share."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The TCP port range; 0 means "any port" to bind and reaches nothing when dialled.
MIN_PORT = 1
MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class CoderUrl:
    """A checked base URL: ``url`` without a trailing slash; ``authority`` is ``host:port`` for messages
    (the default port filled in, IPv6 hosts in brackets), never carrying credentials."""

    url: str
    authority: str

    @classmethod
    def parse(cls, text: str) -> CoderUrl:
        """``text`` as the base URL of a Coder deployment, or `ValueError` saying what is wrong with it.

        Accepted: ``http`` or ``https``, a host, an optional port in 1-65535, an optional path (a deployment
        served under a prefix). Refused: anything else, a query or fragment (they would corrupt every API
        path) and credentials in the URL (the session token is the credential). The message never repeats
        the URL, which may carry a secret.
        """
        text = text.strip()
        try:
            parts = urlsplit(text)
        except ValueError as exc:  # "Invalid IPv6 URL"
            raise ValueError(f"is not a valid URL ({_lower_first(str(exc))})") from None
        try:
            port = parts.port
        except ValueError:  # not a number, or beyond 65535
            port = -1
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            shown = f"'{parts.scheme}'" if parts.scheme else "none"
            raise ValueError(f"must be an http:// or https:// URL (scheme: {shown})")
        if not parts.hostname:
            raise ValueError("has no host (expected http[s]://HOST[:PORT])")
        if port is not None and not MIN_PORT <= port <= MAX_PORT:
            raise ValueError(f"port must be a number from {MIN_PORT} to {MAX_PORT}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials (the session token is given on its own)")
        if parts.query or parts.fragment or text.endswith(("?", "#")):
            raise ValueError("must not have a query or fragment")
        try:
            httpx.URL(text)  # what the client will dial: catch what urlsplit lets through (spaces, bad IDNA)
        except httpx.InvalidURL as exc:
            raise ValueError(f"is not a valid URL ({_lower_first(str(exc))})") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return cls(url=text.rstrip("/"), authority=f"{host}:{port or _DEFAULT_PORTS[scheme]}")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
