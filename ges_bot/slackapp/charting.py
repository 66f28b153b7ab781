"""Charts end to end: jobs from the store → :mod:`ges_bot.stats` → PNG → a private Slack file.

Owns the I/O around a chart, shared by ``/gesjobs stats``, digests and the Home tab: which
snapshots to read (the graphs a channel subscribes to, or a pattern, or all; the period and the
one before it, for the comparison), rendering off the event loop (``asyncio.to_thread``) and
uploading the PNG with ``files_upload_v2`` — ``files.getUploadURLExternal`` → upload →
``files.completeUploadExternal`` with no channel, so the file stays private to the bot and
appears only where an ``image`` block names it (``slack_file: {"id": F…}``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.web.async_client import AsyncWebClient

from ges_bot import charts
from ges_bot.domain import Subscription
from ges_bot.slackapp.commands import ChartKind
from ges_bot.slackapp.statsview import ChartScope, alt_text, chart_title
from ges_bot.stats import Stats, StatsRow, day_of
from ges_bot.store.api import JobQuery, Store

__all__ = ["MAX_JOBS", "RenderedChart", "gather", "render_chart", "scope_for", "upload_png"]

log = logging.getLogger(__name__)

#: Most snapshots one chart reads (a year of 500 jobs a day); beyond, the newest are counted.
MAX_JOBS = 200_000


def scope_for(
    graph: str | None, project: str | None, subscriptions: Iterable[Subscription], *, whose: str = "this channel"
) -> ChartScope:
    """A chart's graphs: the asked pattern; else the channel's subscriptions; else all graphs."""
    if graph is not None:
        return ChartScope((graph,), subscribed=False, project=project)
    patterns = tuple(
        dict.fromkeys(s.graph_pattern for s in subscriptions if project is None or s.project in (None, project))
    )
    if not patterns or "*" in patterns:
        return ChartScope(None, project=project)
    return ChartScope(patterns, subscribed=True, project=project, whose=whose)


async def gather(store: Store, scope: ChartScope, since: datetime, until: datetime) -> tuple[list[StatsRow], bool]:
    """Snapshots that began in ``[since, until)`` for the scope's graphs, each once; and whether
    :data:`MAX_JOBS` cut the answer short."""
    patterns: tuple[str | None, ...] = scope.patterns if scope.patterns is not None else (None,)
    seen: dict[tuple[str, str], StatsRow] = {}
    truncated = False
    for pattern in patterns:
        snapshots = await store.query_jobs(
            JobQuery(project=scope.project, graph_pattern=pattern, since=since, until=until, limit=MAX_JOBS)
        )
        truncated = truncated or len(snapshots) >= MAX_JOBS
        for snap in snapshots:
            seen.setdefault((snap.project, snap.job.job_id), StatsRow(snap.project, snap.job))
    return list(seen.values()), truncated


@dataclass(frozen=True, slots=True)
class RenderedChart:
    png: bytes
    title: str
    alt_text: str
    filename: str


async def render_chart(stats: Stats, chart: ChartKind, scope: ChartScope) -> RenderedChart:
    """The PNG, drawn in a worker thread (matplotlib is CPU-bound; the loop keeps serving)."""
    title = chart_title(stats, chart, scope)
    png = await asyncio.to_thread(charts.render, stats, chart, title)
    filename = f"ges-{chart}-{day_of(stats.start, ZoneInfo(stats.zone)).isoformat()}.png"
    return RenderedChart(png, title, alt_text(stats, chart), filename)


async def upload_png(client: AsyncWebClient, chart: RenderedChart) -> str:
    """Upload privately (no channel) and return the file id for an image block. Raises on failure."""
    response: Any = await client.files_upload_v2(
        file=chart.png, filename=chart.filename, title=chart.title, alt_txt=chart.alt_text
    )
    file = response.get("file") or {}
    file_id = file.get("id") if isinstance(file, dict) else None
    if not isinstance(file_id, str) or not file_id:
        raise RuntimeError("files.completeUploadExternal answered without a file id")
    return file_id
