"""Block Kit for charts: the ``/gesjobs stats`` answer, its text summary and the chart's image block.

Owns the words around a chart — the summary that makes sense without the picture (totals,
failure rate and its change against the previous period, the graph that failed most, the
slowest import), the chart's title and its ``alt_text`` (the numbers, for screen readers and
for anyone whose client does not load images). Digests and the Home tab reuse these pieces.

Pure: :class:`ges_bot.stats.Stats` in, Block Kit dicts out. Untrusted text (graph names, job ids,
patterns) goes through :mod:`ges_bot.notify.mrkdwn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ges_bot.notify import limits
from ges_bot.notify.mrkdwn import code, date_token, duration, escape, fit, mrkdwn_text, plain, plain_text, truncate
from ges_bot.notify.render import SlackMessage, duration_words
from ges_bot.schedule import DigestSchedule
from ges_bot.slackapp.commands import ChartKind
from ges_bot.stats import OUTCOMES, Stats, day_of
from ges_bot.words import Words, words_for

__all__ = [
    "ChartScope",
    "alt_text",
    "chart_title",
    "digest_off_message",
    "digest_set_message",
    "digest_show_message",
    "home_chart_blocks",
    "image_block",
    "period_text",
    "stats_message",
    "summary_lines",
]

_EMOJI = {"success": "🟢", "partial": "🟠", "failed": "🔴", "running": "🔵"}
_WORDS = {"success": "succeeded", "partial": "partially failed", "failed": "failed", "running": "still running"}
_CHART_NAMES: dict[ChartKind, str] = {
    "daily": "Jobs per day",
    "graphs": "Failure rate per graph",
    "durations": "Duration per job type",
}
_NAME = 120
#: The summary's words are the catalogue's message ids (English needs no catalogue).
_EN = words_for("en")


@dataclass(frozen=True, slots=True)
class ChartScope:
    """Which graphs a chart covers, as the user should read it: the patterns (``None`` for all
    graphs) and whether they are the channel's subscriptions."""

    patterns: tuple[str, ...] | None = None
    subscribed: bool = False
    project: str | None = None
    #: Whose subscriptions they are, in words ("this channel", "your channels").
    whose: str = "this channel"

    def text(self, w: Words | None = None) -> str:
        """mrkdwn: "all graphs", "graph `x`", "graphs this channel subscribes to (`a`, `b`)" — in
        ``w``'s language (a digest's), English by default."""
        w = w or _EN
        if self.patterns is None:
            words = w("all graphs")
        else:
            shown = w(", ").join(code(p, 80) for p in self.patterns[:5])
            if len(self.patterns) > 5:
                shown += w(" and {n} more", n=len(self.patterns) - 5)
            if not self.subscribed:
                words = w("graph {shown}", shown=shown)
            elif self.whose == "this channel":
                words = w("graphs this channel subscribes to ({shown})", shown=shown)
            else:
                words = f"graphs {self.whose} subscribe to ({shown})"
        if self.project is not None:
            words += w(" in project {project}", project=fit(self.project, 60))
        return words


def period_text(stats: Stats) -> str:
    """``Mon 23 Nov – Sun 29 Nov`` (or one day): the local days the stats cover."""
    zone = ZoneInfo(stats.zone)
    first = day_of(stats.start, zone)
    last = day_of(stats.end - timedelta(microseconds=1), zone)
    if first == last:
        return f"{first:%a} {first.day} {first:%b %Y}"
    return f"{first:%a} {first.day} {first:%b} – {last:%a} {last.day} {last:%b %Y}"


def chart_title(stats: Stats, chart: ChartKind, scope: ChartScope) -> str:
    """The title drawn on the chart (plain text; matplotlib does not interpret it)."""
    return truncate(f"{_CHART_NAMES[chart]} · {period_text(stats)}", 70)


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def _rate_line(stats: Stats, w: Words = _EN) -> str | None:
    rate = stats.failure_rate
    if rate is None:
        return None
    line = w(
        "Failure rate *{rate}* ({failures} of {finished} finished jobs failed or partially failed)",
        rate=_percent(rate),
        failures=w.number(stats.failures),
        finished=w.number(stats.finished),
    )
    previous = stats.previous_failure_rate
    if previous is None:
        return line + w("; nothing finished in the period before to compare with")
    change = (rate - previous) * 100
    if abs(change) < 0.05:
        trend = w("the same as the period before ({rate})", rate=_percent(previous))
    else:
        arrow = "↗️" if change > 0 else "↘️"
        said = (
            "{arrow} up {change} points from {rate} the period before"
            if change > 0
            else ("{arrow} down {change} points from {rate} the period before")
        )
        trend = w(said, arrow=arrow, change=f"{abs(change):.1f}", rate=_percent(previous))
    return w("{line}, {trend}", line=line, trend=trend)


def summary_lines(stats: Stats, w: Words = _EN) -> list[str]:
    """The summary as mrkdwn bullet lines, each meaningful without the chart (in ``w``'s language:
    digests speak their schedule's)."""
    if stats.total == 0:
        return [w("No jobs ran in this period.")]
    parts = [
        f"{_EMOJI[o]} {w.number(stats.totals.get(o, 0))} {w(_WORDS[o])}" for o in OUTCOMES if stats.totals.get(o, 0)
    ]
    if stats.other:
        parts.append(w("❔ {n} other", n=w.number(stats.other)))
    jobs = w("{n} job", n=w.number(stats.total)) if stats.total == 1 else w("{n} jobs", n=w.number(stats.total))
    lines = [w("*{jobs}*: {parts}", jobs=jobs, parts=" · ".join(parts))]
    rate = _rate_line(stats, w)
    if rate:
        lines.append(rate)
    worst = stats.most_failed
    if worst is not None:
        lines.append(
            w(
                "Failed most: {graph} — {failures} of {finished} runs ({rate})",
                graph=code(worst.graph, _NAME),
                failures=w.number(worst.failures),
                finished=w.number(worst.finished),
                rate=_percent(worst.rate),
            )
        )
    slow = stats.slowest_import
    if slow is not None:
        span = timedelta(seconds=slow.seconds)
        lines.append(
            w(
                "Slowest import: {graph}, {span} (job {id})",
                graph=code(slow.graph, _NAME),
                # The alert's own duration words ("1h 04m", "1小时04分").
                span=duration_words(w, span),
                id=code(slow.job_id, 80),
            )
        )
    return [f"• {line}" for line in lines]


def alt_text(stats: Stats, chart: ChartKind) -> str:
    """The chart's numbers in words, ≤ 2000 characters (Slack's ``alt_text`` limit)."""
    head = f"{_CHART_NAMES[chart]}, {period_text(stats)} ({stats.zone})."
    if chart == "graphs":
        body = "; ".join(f"{g.graph}: {g.failures} of {g.finished} failed" for g in stats.graphs if g.finished)
    elif chart == "durations":
        body = "; ".join(
            f"{d.name}: p50 {duration(timedelta(seconds=d.p50_s))}, p95 {duration(timedelta(seconds=d.p95_s))}"
            for d in stats.durations
        )
    else:
        body = "; ".join(
            f"{d.day:%a %d %b}: " + ", ".join(f"{d.get(o)} {_WORDS[o]}" for o in OUTCOMES if d.get(o))
            if d.total
            else f"{d.day:%a %d %b}: none"
            for d in stats.days
        )
    return plain(f"{head} {body or 'No jobs.'}", limits.MAX_ALT_TEXT)


def image_block(file_id: str, stats: Stats, chart: ChartKind, scope: ChartScope) -> dict[str, Any]:
    """An image block showing an uploaded (private) Slack file by id."""
    return {
        "type": "image",
        "slack_file": {"id": file_id},
        "alt_text": alt_text(stats, chart),
        "title": plain_text(chart_title(stats, chart, scope), 200),
    }


def stats_message(
    stats: Stats,
    chart: ChartKind,
    scope: ChartScope,
    *,
    file_id: str | None,
    chart_problem: str | None = None,
    notes: Sequence[str] = (),
) -> SlackMessage:
    """The ``/gesjobs stats`` answer: a header line, the summary, the chart (or why it is missing)."""
    head = f"📊 *{_CHART_NAMES[chart]}* · {escape(period_text(stats))} ({escape(stats.zone)}) · {scope.text()}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": mrkdwn_text(truncate(head, limits.MAX_SECTION_TEXT))},
        {"type": "section", "text": mrkdwn_text(truncate("\n".join(summary_lines(stats)), limits.MAX_SECTION_TEXT))},
    ]
    if file_id is not None:
        blocks.append(image_block(file_id, stats, chart, scope))
    context = [
        "Counted from the bot's store (every job since it began watching), by the day each job began in your time zone."
    ]
    if chart_problem:
        context.insert(0, f"⚠️ {fit(chart_problem, 500)}")
    context.extend(notes)
    blocks.append({"type": "context", "elements": [mrkdwn_text(c) for c in context[: limits.MAX_CONTEXT_ELEMENTS]]})
    fallback_rate = "" if stats.failure_rate is None else f", failure rate {_percent(stats.failure_rate)}"
    fallback = f"{_CHART_NAMES[chart]}, {period_text(stats)}: {stats.total} jobs{fallback_rate}"
    return SlackMessage(text=escape(truncate(fallback, 1000)), blocks=blocks)


# -- /gesjobs digest answers -----------------------------------------------------------------


def _schedule_words(schedule: DigestSchedule) -> str:
    language = f" in Chinese (`{schedule.locale}`)" if schedule.locale == "zh-CN" else ""
    return f"{code(schedule.text, 60)} ({escape(schedule.tz)}){language}"


def digest_set_message(schedule: DigestSchedule, scope: ChartScope, now: datetime, *, config: bool) -> SlackMessage:
    next_due = schedule.next_due(now)
    lines = [
        f"📬 This channel gets a digest {_schedule_words(schedule)}, first {date_token(next_due)}: "
        f"failures, partial failures and stuck jobs since the last one, totals and the success rate, flaky graphs "
        f"and the 7-day chart for {scope.text()}.",
        "Quiet when nothing ran" + ("." if not schedule.always else " — except that `always` posts it anyway."),
    ]
    if config:
        lines.append("It replaces this channel's digest from the config file while it is set.")
    lines.append("`/gesjobs digest off` stops it.")
    return SlackMessage(
        text=escape(f"Digest {schedule.text} ({schedule.tz}) set"),
        blocks=[{"type": "section", "text": mrkdwn_text("\n".join(lines))}],
    )


def digest_off_message(removed: int, config: DigestSchedule | None) -> SlackMessage:
    text = "🔕 This channel's digest is off." if removed else "This channel had no digest set from Slack."
    if config is not None:
        text += (
            f" The config file still sends one {_schedule_words(config)}; remove its `[[digests]]` entry to stop it."
        )
    return SlackMessage(text=escape(text), blocks=[{"type": "section", "text": mrkdwn_text(text)}])


def digest_show_message(schedules: Sequence[DigestSchedule], now: datetime) -> SlackMessage:
    if not schedules:
        text = "This channel gets no digest. `/gesjobs digest daily 09:00` sets one (in your time zone)."
    else:
        entries = [
            f"📬 {_schedule_words(s)}{' · from the config file' if s.source == 'config' else ''} · next "
            f"{date_token(s.next_due(now))}"
            for s in schedules
        ]
        text = "*Digest in this channel*\n" + "\n".join(entries)
    return SlackMessage(text=escape("Digest settings"), blocks=[{"type": "section", "text": mrkdwn_text(text)}])


# -- the Home tab's chart --------------------------------------------------------------------


def home_chart_blocks(
    stats: Stats | None, scope: ChartScope | None, *, file_id: str | None, problem: str | None = None
) -> list[dict[str, Any]]:
    """The Home tab's "last 7 days" part: a title, the summary and the chart (or why not)."""
    if stats is None or scope is None:
        text = (
            "*Last 7 days*\nNone of your channels subscribes to a graph yet; "
            "`/gesjobs subscribe prod-*` in one of them, and its chart shows here."
        )
        return [{"type": "section", "text": mrkdwn_text(text)}, {"type": "divider"}]
    head = f"*Last 7 days* · {escape(period_text(stats))} ({escape(stats.zone)}) · {scope.text()}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": mrkdwn_text(truncate(head + "\n" + "\n".join(summary_lines(stats)), limits.MAX_SECTION_TEXT)),
        }
    ]
    if file_id is not None:
        blocks.append(image_block(file_id, stats, "daily", scope))
    elif problem:
        blocks.append({"type": "context", "elements": [mrkdwn_text(f"⚠️ {fit(problem, 500)}")]})
    blocks.append({"type": "divider"})
    return blocks
