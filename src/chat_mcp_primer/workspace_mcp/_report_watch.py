"""The feed that waits on a pending discovery report and publishes when it changes."""

from __future__ import annotations

from chat_mcp_primer.clock import Clock, tags
from chat_mcp_primer.events import EventName, Events
from chat_mcp_primer.workspace import McpEndpoint
from chat_mcp_primer.workspace_mcp._bus import Feed, Publish, Wake, WakeKind
from chat_mcp_primer.workspace_mcp._report import DiscoveryReport
from chat_mcp_primer.workspace_mcp._reports import ReportFound, ReportReader
from chat_mcp_primer.workspace_mcp._settings import PrimerSettings


def report_watch(
    endpoint: McpEndpoint, reader: ReportReader, clock: Clock, settings: PrimerSettings, events: Events
) -> Feed:
    """Publish a `WakeKind.REPORT_CHANGED` wake whenever ``endpoint``'s report changes.

    Demanded while a primer waits on a pending report. Each read but the first asks the gateway to hold
    its answer until the report differs from the one last seen (`ReportReader.read` with its ETag and
    ``report_wait``), so a change is heard within one request. After an answer with no change (a long poll
    that ran out, or a server that answers at once all the same), or none at all, it asks again after
    ``report_poll_interval``: a change meanwhile is answered at once by that next ask, so a long-polling
    server is heard with no delay, and one that does not hold is polled at that interval. A first read
    that is already complete is news to the demander, which saw it pending.
    """

    async def watch(publish: Publish) -> None:
        last: DiscoveryReport | None = None
        etag: str | None = None
        while True:
            read = await reader.read(endpoint, etag=etag, wait=settings.report_wait if last is not None else 0.0)
            if isinstance(read, ReportFound):
                report = read.report
                changed = report != last if last is not None else report.complete
                last, etag = report, read.etag
                if changed:
                    events.emit(EventName.DISCOVERY_REPORT_CHANGED, server=endpoint.server, phase=report.phase.value)
                    publish(Wake(WakeKind.REPORT_CHANGED, endpoint.server))
                    continue
            await clock.sleep(settings.report_poll_interval, *tags.MCP_REPORT_POLL)

    return watch
