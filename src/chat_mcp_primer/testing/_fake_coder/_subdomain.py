"""Subdomain apps as coderd names them: ``{slug}--{agent}--{workspace}--{username}`` in place of the
``*`` of the deployment's wildcard access URL (``*.apps.coder.test``, or ``*--apps.coder.test``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR = "--"
_PARTS = 4
# One DNS label; the ``*`` of a wildcard stands for exactly one (coderd's `CompileHostnamePattern`).
_LABEL = re.compile(r"^[a-z0-9-]+$")
_WILDCARD = "*"


def subdomain_app_name(slug: str, agent: str, workspace: str, username: str) -> str:
    return _SEPARATOR.join((slug, agent, workspace, username))


@dataclass(frozen=True, slots=True)
class SubdomainApp:
    """The app a subdomain names (coderd's `appurl.ApplicationURL`)."""

    slug: str
    agent: str
    workspace: str
    username: str

    @classmethod
    def parse(cls, label: str) -> SubdomainApp:
        parts = label.split(_SEPARATOR)
        if len(parts) != _PARTS or not all(parts):
            raise ValueError(f"invalid application url format: {label!r}")
        slug, agent, workspace, username = parts
        return cls(slug, agent, workspace, username)


@dataclass(frozen=True, slots=True)
class WildcardPattern:
    """A wildcard access URL's host (no port): which request hosts it serves, and the app each names."""

    suffix: str

    @classmethod
    def parse(cls, pattern: str) -> WildcardPattern:
        host = pattern.lower()
        if not host.startswith(_WILDCARD) or _WILDCARD in host[1:] or ":" in host or "/" in host:
            raise ValueError(
                f"wildcard_access_url {pattern!r} must be a host starting with '*', like '*.apps.coder.test' "
                "(no scheme, no port: the access URL's port is added)"
            )
        return cls(suffix=host[1:])

    def label_of(self, host: str) -> str | None:
        """The label the ``*`` matched in ``host`` (its port left out), or None when ``host`` is not one."""
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        name = name.lower()
        if not name.endswith(self.suffix):
            return None
        label = name[: len(name) - len(self.suffix)]
        return label if _LABEL.match(label) else None
