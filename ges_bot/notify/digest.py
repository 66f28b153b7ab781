"""Block Kit for a channel's digest: what needs attention since the last digest, the totals and
success rate against the period before, flaky graphs, the slowest import, and the chart.

Owns how a digest reads and when it stays quiet (nothing ran and nothing needs attention, unless
the schedule says ``always``). Pure: records in, a :class:`SlackMessage` (or ``None``) out.
Untrusted text (graph names, job ids, reasons) goes through :mod:`ges_bot.notify.mrkdwn`; links to
alert threads are Slack permalinks the bot got from Slack itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ges_bot.domain import EventKind, JobEvent
from ges_bot.notify import limits
from ges_bot.notify.mrkdwn import code, date_token, escape, fit, mrkdwn_text, plain_text, truncate
from ges_bot.notify.render import SlackMessage
from ges_bot.schedule import DigestSchedule
from ges_bot.slackapp.statsview import ChartScope, image_block, summary_lines
from ges_bot.stats import Flaky, Stats

__all__ = ["ATTENTION_KINDS", "LATE_AFTER", "Attention", "DigestContent", "digest_message"]

#: What a digest lists one by one.
ATTENTION_KINDS = frozenset({EventKind.FAILED, EventKind.PARTIALLY_FAILED, EventKind.STUCK})
#: A digest sent this long after its due time says it is late.
LATE_AFTER = timedelta(minutes=15)
_MAX_LISTED = 15
_EMOJI = {EventKind.FAILED: "🔴", EventKind.PARTIALLY_FAILED: "🟠", EventKind.STUCK: "⏳"}
_WORDS = {EventKind.FAILED: "failed", EventKind.PARTIALLY_FAILED: "partially failed", EventKind.STUCK: "stuck"}
_PERMALINK = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]+)?/[A-Za-z0-9/_.?=&-]*")


@dataclass(frozen=True, slots=True)
class Attention:
    """A failure, partial failure or stuck job since the last digest, with the permalink of the
    alert that reported it (``None`` when no alert was posted to this channel)."""

    event: JobEvent
    permalink: str | None = None


@dataclass(frozen=True, slots=True)
class DigestContent:
    schedule: DigestSchedule
    due_at: datetime
    since: datetime
    #: The period ``[since, due_at)`` and the one before it.
    period: Stats
    attention: Sequence[Attention]
    flaky: Sequence[Flaky]
    scope: ChartScope
    #: The uploaded chart (last 7 days, or the week) and the stats it shows.
    chart_file_id: str | None = None
    chart_stats: Stats | None = None
    chart_problem: str | None = None


def _attention_line(item: Attention) -> str:
    event = item.event
    job = event.job
    what = f"{_EMOJI.get(event.kind, '•')} {code(event.graph, 120)} {fit(job.job_name or job.job_type or 'job', 80)} {_WORDS.get(event.kind, event.kind.value)}"
    when = date_token(event.at, "{date_short_pretty} {time}")
    link = ""
    if item.permalink and _PERMALINK.fullmatch(item.permalink):
        link = f" · <{item.permalink}|alert thread>"
    return f"{what} · {when} · job {code(job.job_id, 80)}{link}"


def digest_message(content: DigestContent, now: datetime) -> SlackMessage | None:
    """The digest, or ``None`` when it should stay quiet."""
    period = content.period
    if period.total == 0 and not content.attention and not content.schedule.always:
        return None
    schedule = content.schedule
    local_due = content.due_at.astimezone(schedule.zone)
    title = f"{'Daily' if schedule.weekday is None else 'Weekly'} digest · {local_due:%a} {local_due.day} {local_due:%b %H:%M} ({schedule.tz})"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": plain_text(title, limits.MAX_HEADER_TEXT)}]
    context = [f"Since {date_token(content.since)} · {content.scope.text()}"]
    if now - content.due_at > LATE_AFTER:
        context.insert(
            0,
            f"⏰ *Late*: this digest was due {date_token(content.due_at)}; the bot was not running then.",
        )
    blocks.append({"type": "context", "elements": [mrkdwn_text(truncate(c, 2900)) for c in context]})
    blocks.append({"type": "section", "text": mrkdwn_text(truncate("\n".join(summary_lines(period)), 2900))})
    if content.attention:
        shown = [_attention_line(a) for a in content.attention[:_MAX_LISTED]]
        more = len(content.attention) - len(shown)
        text = "*Needs attention*\n" + "\n".join(shown)
        if more > 0:
            text += f"\n…and {more} more (`/gesjobs failed last 24h`)"
        blocks.append({"type": "section", "text": mrkdwn_text(_fit_lines(text, limits.MAX_SECTION_TEXT))})
    if content.flaky:
        lines = [f"{code(f.graph, 120)} failed {f.failures} of its last {f.runs} runs" for f in content.flaky[:10]]
        blocks.append({"type": "section", "text": mrkdwn_text("*Flaky graphs*\n" + "\n".join(lines))})
    if content.chart_file_id is not None and content.chart_stats is not None:
        blocks.append(image_block(content.chart_file_id, content.chart_stats, "daily", content.scope))
    elif content.chart_problem:
        blocks.append({"type": "context", "elements": [mrkdwn_text(f"⚠️ {fit(content.chart_problem, 500)}")]})
    blocks.append(
        {
            "type": "context",
            "elements": [mrkdwn_text(f"Digest {escape(schedule.text)} · `/gesjobs digest off` stops it")],
        }
    )
    rate = "" if period.failure_rate is None else f", {period.failure_rate * 100:.1f} % failed"
    fallback = f"{title}: {period.total} jobs{rate}, {len(content.attention)} need attention"
    return SlackMessage(text=escape(truncate(fallback, 1000)), blocks=blocks)


def _fit_lines(text: str, limit: int) -> str:
    # Whole lines only: a cut link or date token would show as raw markup.
    lines = text.split("\n")
    while len(lines) > 1 and len("\n".join(lines)) > limit - 2:
        lines.pop()
    return "\n".join(lines)
