"""`loopback_hosts`: host names resolved to 127.0.0.1 in this process, as a wildcard DNS record would.

A deployment's subdomain apps live at hosts under its wildcard access URL (``*.apps.example.com``), which
a test on loopback has no DNS for. Inside ``with loopback_hosts("*.apps.coder.test"):`` every lookup of a
matching name, by any client in the process (``httpx``, ``httpx2`` under the MCP SDK, asyncio or trio),
answers 127.0.0.1; every other name resolves as before. The client dials, sends the ``Host`` header and
checks TLS names exactly as it would against real DNS: only the answer of the lookup is ours.

It works at the one seam every client shares, `socket.getaddrinfo`, which asyncio, trio and the
blocking clients all look up when they resolve. Patterns are counted, so blocks may nest and overlap
across threads; the original resolver is back once the last one ends.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOOPBACK = "127.0.0.1"
_WILDCARD = "*"

_lock = threading.Lock()
_patterns: Counter[str] = Counter()
_system_getaddrinfo = socket.getaddrinfo


def _host_pattern(pattern: str) -> str:
    """``pattern`` without a port (an applications host carries one), lower-cased; `ValueError` when it
    is not a host name or a ``*`` followed by the rest of one."""
    host, _, port = pattern.strip().lower().partition(":")
    if port and not port.isdigit():
        host = pattern  # not a port: refused below with the rest
    body = host.removeprefix(_WILDCARD)
    if not body or _WILDCARD in body or any(not (c.isalnum() or c in ".-") for c in body):
        raise ValueError(f"{pattern!r} is not a host name or a wildcard host like '*.apps.coder.test'")
    return host


def _matches(pattern: str, host: str) -> bool:
    if not pattern.startswith(_WILDCARD):
        return host == pattern
    suffix = pattern.removeprefix(_WILDCARD)
    label = host[: len(host) - len(suffix)]
    # As in Coder's wildcard: the ``*`` stands for one whole label, never for dots.
    return host.endswith(suffix) and bool(label) and "." not in label


def _resolves_to_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", errors="replace")
    if not isinstance(host, str):
        return False
    name = host.lower().rstrip(".")
    with _lock:
        return any(_matches(pattern, name) for pattern in _patterns)


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if _resolves_to_loopback(host):
        host = LOOPBACK
    return _system_getaddrinfo(host, port, *args, **kwargs)


@contextmanager
def loopback_hosts(*patterns: str) -> Iterator[None]:
    """Resolve host names matching ``patterns`` (``"*.apps.coder.test"``, ``"coder.test"``; a port is
    ignored) to 127.0.0.1 in this process while the block runs. `ValueError` for a pattern that is not a
    host name."""
    hosts = [_host_pattern(pattern) for pattern in patterns]
    with _lock:
        _patterns.update(hosts)
        socket.getaddrinfo = _getaddrinfo
    try:
        yield
    finally:
        with _lock:
            _patterns.subtract(hosts)
            for host in [host for host, count in _patterns.items() if count <= 0]:
                del _patterns[host]
            # Another library's resolver installed after ours is left alone.
            if not _patterns and socket.getaddrinfo is _getaddrinfo:
                socket.getaddrinfo = _system_getaddrinfo
