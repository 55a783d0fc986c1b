"""When the poll that stands in for held model steps looks next for an agent's tools."""

from __future__ import annotations

from dataclasses import dataclass

from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult
from chat_mcp_primer.workspace_mcp._failures import REFUSED


@dataclass(frozen=True, slots=True)
class NextLook:
    """The pause before the next look; ``knock_first``: the endpoints (URLs) that refused connections, to
    knock on (a bare TCP connect) instead, looking only once one of them accepts."""

    pause: float
    knock_first: tuple[str, ...] = ()


class PollSchedule:
    """The held-step poll's pauses for one agent, fed each look's result and when it ended: ``interval``,
    ``patience`` and ``longest`` are `PrimerSettings`' ``prepare_poll_interval``, ``prepare_poll_patience``
    and ``prepare_poll_max_interval``.

    Each look is paid for by what it can still find, by what its servers did:

    - A server that answers without tools (empty, or an error it sent) is looked at every
      ``prepare_poll_interval`` for its first ``prepare_poll_patience`` of doing so, then each pause is
      twice the last, up to ``prepare_poll_max_interval``. A server that lists tools at all mostly does
      so soon after it first answers; one that has answered empty that long more likely has nothing to
      list, and the primer's own attempts still look every ``retry_interval``.
    - A server that refuses connections is not answering anything: every ``prepare_poll_interval``
      the poll knocks on it (a bare TCP connect, as the primer's probe does between its attempts, far
      cheaper than dialling an MCP session) and looks the moment it accepts. The two knocks' phases are
      independent, so a server that starts listening is found sooner than by either alone. Its patience
      starts when it first answers.

    A look in which every server that did not list refused counts as no answer at all.
    """

    __slots__ = ("_answering_since", "_interval", "_longest", "_patience", "_pause")

    def __init__(self, *, interval: float, patience: float, longest: float) -> None:
        self._interval = interval
        self._patience = patience
        self._longest = max(interval, longest)
        self._answering_since: float | None = None
        self._pause = self._interval

    @property
    def first(self) -> NextLook:
        return NextLook(self._interval)

    @property
    def backing_off(self) -> bool:
        """True once the pauses have grown past ``prepare_poll_interval``."""
        return self._pause > self._interval

    def after(self, result: DiscoveryResult, now: float) -> NextLook:
        """The next look after one that ended at ``now`` with ``result`` (not every server listed)."""
        agent = result.agent
        listed = {tool.server for tool in result.tools}
        unlisted = [e for e in agent.endpoints if e.server not in listed] if agent is not None else []
        refused = tuple(e.url for e in unlisted if result.failures.get(e.server) == REFUSED)
        if unlisted and len(refused) == len(unlisted):
            self._answering_since = None
            self._pause = self._interval
            return NextLook(self._interval, refused)
        if self._answering_since is None:
            self._answering_since = now
        if now - self._answering_since >= self._patience:
            self._pause = min(self._longest, self._pause * 2)
        return NextLook(self._pause)
