"""Block Kit for a channel's digest: what needs attention since the last digest, the totals and
success rate against the period before, flaky graphs, the slowest import, and the chart.

Owns how a digest reads and when it stays quiet (nothing ran and nothing needs attention, unless
the schedule says ``always``). Pure: records in, a :class:`SlackMessage` (or ``None``) out.
Untrusted text (graph names, job ids, reasons) goes through :mod:`ges_bot.notify.mrkdwn`; links to
alert threads are Slack permalinks the bot got from Slack itself.

A digest speaks its schedule's language (``DigestSchedule.locale``: ``/gesjobs digest daily 09:00
lang zh-CN``, ``[[digests]] locale``) through the catalogue of :mod:`ges_bot.words`; English
sentences are the message ids. The chart's picture and ``alt_text`` stay English.
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
from ges_bot.words import Words, words_for

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


def _date(w: Words, at: datetime) -> str:
    """A Slack date token (each reader's zone); its fallback written for the locale."""
    return date_token(at) if w.locale == "en" else date_token(at, fallback=w.when(at))


def _attention_line(item: Attention, w: Words) -> str:
    event = item.event
    job = event.job
    name = w.job(job.job_name or job.job_type or "job")
    kind = _WORDS.get(event.kind)
    what = f"{_EMOJI.get(event.kind, '•')} {code(event.graph, 120)} {fit(name, 80)} {w(kind) if kind else event.kind.value}"
    when = _date(w, event.at)
    link = ""
    if item.permalink and _PERMALINK.fullmatch(item.permalink):
        link = f" · <{item.permalink}|{w('alert thread')}>"
    return w("{what} · {when} · job {id}{link}", what=what, when=when, id=code(job.job_id, 80), link=link)


def _due_words(w: Words, schedule: DigestSchedule, due_at: datetime) -> str:
    local_due = due_at.astimezone(schedule.zone)
    if w.locale == "en":
        when = f"{local_due:%a} {local_due.day} {local_due:%b %H:%M}"
    else:
        # Imported here: Babel (~1 MiB) is not loaded at start, and English digests need none.
        from babel.dates import format_skeleton

        # The locale's own month-day-weekday order ("11月30日周一"), then the 24-hour clock.
        when = f"{format_skeleton('MMMEd', local_due, locale=w.locale.replace('-', '_'))} {local_due:%H:%M}"
    said = "Daily digest · {when} ({tz})" if schedule.weekday is None else "Weekly digest · {when} ({tz})"
    return w(said, when=when, tz=schedule.tz)


def digest_message(content: DigestContent, now: datetime) -> SlackMessage | None:
    """The digest, or ``None`` when it should stay quiet."""
    period = content.period
    if period.total == 0 and not content.attention and not content.schedule.always:
        return None
    schedule = content.schedule
    # Fallbacks of date tokens in the schedule's zone: the subscriber's, as the header's time.
    w = words_for(schedule.locale, schedule.tz)
    title = _due_words(w, schedule, content.due_at)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": plain_text(title, limits.MAX_HEADER_TEXT)}]
    # The scope names the channel's patterns; its words stay English (shared with /gesjobs stats).
    context = [w("Since {when} · {scope}", when=_date(w, content.since), scope=content.scope.text(w))]
    if now - content.due_at > LATE_AFTER:
        context.insert(
            0,
            w(
                "⏰ *Late*: this digest was due {when}; the bot was not running then.",
                when=_date(w, content.due_at),
            ),
        )
    blocks.append({"type": "context", "elements": [mrkdwn_text(truncate(c, 2900)) for c in context]})
    blocks.append({"type": "section", "text": mrkdwn_text(truncate("\n".join(summary_lines(period, w)), 2900))})
    if content.attention:
        shown = [_attention_line(a, w) for a in content.attention[:_MAX_LISTED]]
        more = len(content.attention) - len(shown)
        text = f"*{w('Needs attention')}*\n" + "\n".join(shown)
        if more > 0:
            text += "\n" + w("…and {n} more (`/gesjobs failed last 24h`)", n=more)
        blocks.append({"type": "section", "text": mrkdwn_text(_fit_lines(text, limits.MAX_SECTION_TEXT))})
    if content.flaky:
        lines = [
            w(
                "{graph} failed {failures} of its last {runs} runs",
                graph=code(f.graph, 120),
                failures=f.failures,
                runs=f.runs,
            )
            for f in content.flaky[:10]
        ]
        blocks.append({"type": "section", "text": mrkdwn_text(f"*{w('Flaky graphs')}*\n" + "\n".join(lines))})
    if content.chart_file_id is not None and content.chart_stats is not None:
        blocks.append(image_block(content.chart_file_id, content.chart_stats, "daily", content.scope))
    elif content.chart_problem:
        blocks.append({"type": "context", "elements": [mrkdwn_text(f"⚠️ {fit(content.chart_problem, 500)}")]})
    blocks.append(
        {
            "type": "context",
            "elements": [
                mrkdwn_text(w("Digest {schedule} · `/gesjobs digest off` stops it", schedule=escape(schedule.text)))
            ],
        }
    )
    rate = "" if period.failure_rate is None else w(", {rate} % failed", rate=f"{period.failure_rate * 100:.1f}")
    fallback = w(
        "{title}: {n} jobs{rate}, {attention} need attention",
        title=title,
        n=period.total,
        rate=rate,
        attention=len(content.attention),
    )
    return SlackMessage(text=escape(truncate(fallback, 1000)), blocks=blocks)


def _fit_lines(text: str, limit: int) -> str:
    # Whole lines only: a cut link or date token would show as raw markup.
    lines = text.split("\n")
    while len(lines) > 1 and len("\n".join(lines)) > limit - 2:
        lines.pop()
    return "\n".join(lines)
