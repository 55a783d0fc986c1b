"""The poll that stands in for held model steps: it looks for an agent's tools on a schedule of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chat_mcp_primer.clock import Clock, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace_mcp._bus import AgentKey, Feed, Publish, Wake, WakeKind
from chat_mcp_primer.workspace_mcp._discovery import DiscoveryResult
from chat_mcp_primer.workspace_mcp._failures import REFUSED
from chat_mcp_primer.workspace_mcp._probe import accepts_connections
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings

LookForTools = Callable[[], Awaitable[DiscoveryResult]]
"""One discovery attempt for an agent's tools; its outcome is OK when every one of its servers listed some."""


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


def tools_poll(agent: AgentKey, look: LookForTools, clock: Clock, settings: PrimerSettings, events: Events) -> Feed:
    """``look`` for the tools of ``agent`` on the `PollSchedule`; publish once they are all listed.

    A held step stands in for the model steps it holds back, each of which would have listed once. Run
    as a feed of the agent's bus, one poll serves every step held on the agent: a thousand chats held
    on a hundred agents make a hundred looks per interval, not a thousand wake-ups. The first demander's
    ``look`` is the one used (every chat of an agent looks the same way), and the schedule is the
    agent's, however late a chat joins it.
    """

    async def poll(publish: Publish) -> None:
        schedule = PollSchedule(
            interval=settings.prepare_poll_interval,
            patience=settings.prepare_poll_patience,
            longest=settings.prepare_poll_max_interval,
        )
        next_look = schedule.first
        while True:
            await clock.sleep(next_look.pause, *tags.PREPARE_POLL)
            if next_look.knock_first and not await _any_accepts(next_look.knock_first, clock, settings.probe_interval):
                continue  # still refused: no dial, no listing
            result = await look()
            if result.complete:
                publish(Wake(WakeKind.TOOLS_LISTED, "every server listed or has no tools"))
                return
            was_backing_off = schedule.backing_off
            next_look = schedule.after(result, clock.now())
            if schedule.backing_off and not was_backing_off:
                workspace_id, agent_id = agent
                events.emit(
                    EventName.PREPARE_POLL_BACKING_OFF,
                    workspace_id=workspace_id,
                    agent_id=agent_id,
                    outcome=result.outcome.value,
                )

    return poll


async def _any_accepts(urls: tuple[str, ...], clock: Clock, within: float) -> bool:
    for url in urls:
        if await accepts_connections(url, clock, within):
            return True
    return False
