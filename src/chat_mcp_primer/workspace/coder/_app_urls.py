"""Where Coder serves a workspace app: under the access URL's path, or at a host of its own.

Path-based apps live at ``{access_url}/@{owner}/{workspace}.{agent}/apps/{slug}/``. Subdomain apps
(``subdomain = true`` on the ``coder_app``) live at ``{scheme}://{subdomain}{suffix}/``, where the
deployment's wildcard access URL (``GET /api/v2/applications/host``: ``*.apps.example.com``, or
``*--apps.example.com``, with the access URL's port when it names one) has its ``*`` replaced by the app's
``subdomain_name``, ``{slug}--{agent}--{workspace}--{owner}``. Coder's proxy serves every app at its path too, subdomain
apps included. Every piece comes from coderd, but ends up in a URL that carries the session token, so
each is checked to be what a host name may hold: a name that could smuggle in another host
(``evil.example/#``) is refused, never dialled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chat_mcp_primer.workspace.coder._client import path_segment
from chat_mcp_primer.workspace.coder._errors import CoderProtocolError

# The one wildcard coderd substitutes, at the start of the first label.
_WILDCARD = "*"
# What may follow the wildcard: the rest of a host name, and an optional port.
_WILDCARD_SUFFIX = re.compile(r"^[A-Za-z0-9.-]*(?::[0-9]{1,5})?$")
# One DNS label: letters, digits and hyphens. Coder joins the app's parts with ``--``.
_SUBDOMAIN = re.compile(r"^[A-Za-z0-9-]+$")
# Coder's separator between the parts of a subdomain app's name (`appurl.ApplicationURL`).
_PARTS_SEPARATOR = "--"


class AppUrlError(CoderProtocolError):
    """A piece of a workspace app's URL that coderd sent is not what a URL may hold."""


@dataclass(frozen=True, slots=True)
class WildcardHost:
    """The deployment's wildcard app host, as ``GET /api/v2/applications/host`` gives it."""

    pattern: str

    @classmethod
    def parse(cls, text: str) -> WildcardHost | None:
        """``text`` as a wildcard host; None for ``""`` (the deployment serves no subdomain apps).

        Raises `AppUrlError` for anything but one leading ``*`` followed by host-name characters and an
        optional port."""
        if not text:
            return None
        if not text.startswith(_WILDCARD) or not _WILDCARD_SUFFIX.match(text.removeprefix(_WILDCARD)):
            raise AppUrlError("the deployment's wildcard access URL is not a host pattern like '*.apps.example.com'")
        return cls(text)

    def app_origin(self, scheme: str, subdomain: str) -> str:
        """``scheme://`` and the host serving the app named ``subdomain``."""
        if not _SUBDOMAIN.match(subdomain):
            raise AppUrlError("the app's subdomain name is not a host label")
        return f"{scheme}://{self.pattern.replace(_WILDCARD, subdomain, 1)}"


def subdomain_name(slug: str, agent: str, workspace: str, owner: str) -> str:
    """The app's host label as coderd computes it, for releases that do not send ``subdomain_name``."""
    return _PARTS_SEPARATOR.join((slug, agent, workspace, owner))


def path_app_root(access_url: str, owner: str, workspace: str, agent: str, slug: str) -> str:
    """The path-based URL of an app, without a trailing slash; every part escaped as one path segment."""
    owner, workspace, agent, slug = (path_segment(part) for part in (owner, workspace, agent, slug))
    return f"{access_url}/@{owner}/{workspace}.{agent}/apps/{slug}"
