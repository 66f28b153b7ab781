"""A digest as the body a group-bot sink's platform takes, in the sink's words (pure).

Owns what a digest says in a group chat — the title (daily/weekly, due time in the schedule's
zone), the late line, the period and graphs it covers, the totals and failure rate against the
period before, what needs attention since the last digest, flaky graphs, the last 7 days in words
(the chart's numbers: a group bot cannot show a picture without a public URL, WeCom's ``image``
message aside) — and its layout per platform: a Lark interactive card, DingTalk markdown, WeCom
markdown (≤ 4,096 bytes), a Teams Adaptive Card in the Workflows envelope, and for a Slack incoming
webhook the Slack digest's own Block Kit (``notify.digest``) without what a webhook cannot show.

The data is the Slack digest's (:class:`~ges_bot.notify.digest.DigestContent`, built by
``ges_bot.digests``). Untrusted text (graph names, job names and ids) goes through the platform's
:class:`~ges_bot.sinks.compose.Markup`; each platform's ``check`` is the one place its limits are
checked, and :func:`render_digest` steps down through :data:`DIGEST_LEVELS` until it holds (the
last level always fits), as ``sinks.compose.fit`` does for alerts.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ges_bot.domain import EventKind
from ges_bot.notify.digest import LATE_AFTER, Attention, DigestContent, digest_message
from ges_bot.sinks import dingtalk, lark, teams, wecom
from ges_bot.sinks.compose import EMOJI, Markup, Rendered, Severity, one_line
from ges_bot.stats import OUTCOMES, Stats
from ges_bot.words import Words, words_for

__all__ = ["DIGEST_LEVELS", "DigestBudget", "DigestParts", "digest_parts", "render_digest", "wecom_chart"]


@dataclass(frozen=True, slots=True)
class DigestBudget:
    """How much of a digest one rendering shows."""

    attention: int
    flaky: int
    days: bool = True
    name: int = 120


#: Most detail first; the last always fits (WeCom's 4,096 bytes included).
DIGEST_LEVELS: tuple[DigestBudget, ...] = (
    DigestBudget(attention=15, flaky=10),
    DigestBudget(attention=8, flaky=5, name=80),
    DigestBudget(attention=4, flaky=3, name=60),
    DigestBudget(attention=2, flaky=1, name=40),
    DigestBudget(attention=0, flaky=0, days=False, name=30),
)

_OUTCOME_WORDS = {"success": "succeeded", "partial": "partially failed", "failed": "failed", "running": "still running"}
_OUTCOME_EMOJI = {"success": "🟢", "partial": "🟠", "failed": "🔴", "running": "🔵"}


@dataclass(frozen=True, slots=True)
class DigestParts:
    """What one rendering of a digest says, escaped for one platform."""

    title: str
    severity: Severity
    #: Lines above the numbers: late, the period and graphs covered.
    context: tuple[str, ...]
    summary: tuple[str, ...]
    attention_head: str | None
    attention: tuple[str, ...]
    flaky_head: str | None
    flaky: tuple[str, ...]
    #: The last 7 days in words (the chart's numbers), or ``None``.
    days: str | None
    #: What the chart is (a picture that follows, or where it is not).
    chart: str | None
    footer: str


def _scope(content: DigestContent, w: Words, m: Markup, budget: DigestBudget) -> str:
    scope = content.scope
    if scope.patterns is None:
        words = w("all graphs")
    else:
        shown = w(", ").join(m.code(p, budget.name) for p in scope.patterns[:5])
        if len(scope.patterns) > 5:
            shown += " " + w("and {n} more", n=w.number(len(scope.patterns) - 5))
        words = w("graphs this group subscribes to ({patterns})", patterns=shown)
    if scope.project is not None:
        words += " · " + w("project {project}", project=m.text(scope.project, 60))
    return words


def _summary(period: Stats, w: Words, m: Markup, budget: DigestBudget) -> list[str]:
    if period.total == 0:
        return [w("No jobs ran in this period.")]
    parts = [
        f"{_OUTCOME_EMOJI[o]} {w.number(period.totals.get(o, 0))} {w(_OUTCOME_WORDS[o])}"
        for o in OUTCOMES
        if period.totals.get(o, 0)
    ]
    if period.other:
        parts.append(f"❔ {w.number(period.other)} {w('other')}")
    jobs = w("{n} job", n=w.number(period.total)) if period.total == 1 else w("{n} jobs", n=w.number(period.total))
    lines = [f"{m.bold(jobs)}: " + " · ".join(parts)]
    rate = period.failure_rate
    if rate is not None:
        line = w(
            "Failure rate {rate} ({failures} of {finished} finished jobs failed or partially failed)",
            rate=m.bold(w.percent(rate)),
            failures=w.number(period.failures),
            finished=w.number(period.finished),
        )
        previous = period.previous_failure_rate
        if previous is None:
            trend = w("nothing finished in the period before to compare with")
        elif abs(rate - previous) < 0.0005:
            trend = w("the same as the period before ({previous})", previous=w.percent(previous))
        elif rate > previous:
            trend = "↗️ " + w(
                "up {points} points from {previous} the period before",
                points=w.percent(rate - previous).rstrip("%"),
                previous=w.percent(previous),
            )
        else:
            trend = "↘️ " + w(
                "down {points} points from {previous} the period before",
                points=w.percent(previous - rate).rstrip("%"),
                previous=w.percent(previous),
            )
        lines.append(f"{line}{w(', ')}{trend}")
    worst = period.most_failed
    if worst is not None:
        lines.append(
            w(
                "Failed most: {graph} — {failures} of {finished} runs ({rate})",
                graph=m.code(worst.graph, budget.name),
                failures=w.number(worst.failures),
                finished=w.number(worst.finished),
                rate=w.percent(worst.rate),
            )
        )
    slow = period.slowest_import
    if slow is not None:
        lines.append(
            w(
                "Slowest import: {graph}, {duration} (job {job})",
                graph=m.code(slow.graph, budget.name),
                duration=w.span(timedelta(seconds=slow.seconds)),
                job=m.code(slow.job_id, 80),
            )
        )
    return lines


def _attention_line(item: Attention, w: Words, m: Markup, budget: DigestBudget) -> str:
    event = item.event
    job = event.job
    label = w.job(one_line(job.job_name) or one_line(job.job_type)) or w("Job")
    what = w(
        "{job} {verb} on graph {graph}",
        job=m.text(label, 60),
        verb=w.kind(event.kind),
        graph=m.code(event.graph, budget.name),
    )
    return f"{EMOJI.get(event.kind, '•')} {what} · {w.when(event.at)} · {w('job {id}', id=m.code(job.job_id, 80))}"


def _days(content: DigestContent, w: Words) -> str | None:
    chart = content.chart_stats
    if chart is None or not chart.days:
        return None
    shown = []
    for day in chart.days:
        failures = day.get("failed") + day.get("partial")
        text = f"{w.day(day.day)} {w.number(day.total)}"
        if failures:
            text += " (" + w("{n} failed", n=w.number(failures)) + ")"
        shown.append(text)
    return w("Jobs per day, last 7 days: {days}", days=" · ".join(shown))


def digest_parts(
    content: DigestContent, now: datetime, w: Words, m: Markup, budget: DigestBudget, *, picture: bool = False
) -> DigestParts:
    """The digest's words for one platform (``m``) at one level of detail (``budget``); ``picture``:
    the chart follows as an image (WeCom)."""
    schedule = content.schedule
    zoned = replace(w, zone=schedule.tz)
    kind = w("Daily digest") if schedule.weekday is None else w("Weekly digest")
    title = f"📊 {kind} · {zoned.due(content.due_at)} ({schedule.tz})"
    context = []
    if now - content.due_at > LATE_AFTER:
        context.append(
            "⏰ "
            + w("Late: this digest was due {when}; the bot was not running then.", when=zoned.when(content.due_at))
        )
    context.append(w("Since {when} · {scope}", when=zoned.when(content.since), scope=_scope(content, w, m, budget)))
    attention = content.attention
    shown = [_attention_line(a, zoned, m, budget) for a in attention[: budget.attention]]
    if len(attention) > len(shown):
        shown.append(w("…and {n} more", n=w.number(len(attention) - len(shown))))
    flaky = [
        w(
            "{graph} failed {failures} of its last {runs} runs",
            graph=m.code(f.graph, budget.name),
            failures=w.number(f.failures),
            runs=w.number(f.runs),
        )
        for f in content.flaky[: budget.flaky]
    ]
    if len(content.flaky) > len(flaky):
        flaky.append(w("…and {n} more", n=w.number(len(content.flaky) - len(flaky))))
    if picture:
        chart = w("The chart of the last 7 days follows as a picture.")
    elif content.chart_stats is not None:
        chart = w("The chart is not shown here: this chat's bot cannot post pictures; the numbers are above.")
    else:
        chart = None
    danger = any(a.event.kind is EventKind.FAILED for a in attention)
    severity = Severity.DANGER if danger else Severity.WARNING if attention else Severity.GOOD
    return DigestParts(
        title=title,
        severity=severity,
        context=tuple(context),
        summary=tuple(_summary(content.period, w, m, budget)),
        attention_head=w("Needs attention") if attention else None,
        attention=tuple(shown),
        flaky_head=w("Flaky graphs") if content.flaky and budget.flaky else None,
        flaky=tuple(flaky) if budget.flaky else (),
        days=_days(content, zoned) if budget.days else None,
        chart=chart if budget.days else None,
        footer=w("GES digest · {schedule}", schedule=m.text(schedule.text, 60)),
    )


# --- layouts ---------------------------------------------------------------------------------


def _lark(p: DigestParts) -> dict[str, Any]:
    def md(content: str) -> dict[str, Any]:
        return {"tag": "div", "text": {"tag": "lark_md", "content": content}}

    elements: list[dict[str, Any]] = [md("\n".join(p.context)), md("\n".join(p.summary))]
    if p.attention_head:
        elements += [{"tag": "hr"}, md(f"**{p.attention_head}**\n" + "\n".join(p.attention))]
    if p.flaky_head:
        elements += [{"tag": "hr"}, md(f"**{p.flaky_head}**\n" + "\n".join(p.flaky))]
    notes = [x for x in (p.days, p.chart) if x]
    if notes:
        elements.append(md("\n".join(notes)))
    elements.append({"tag": "note", "elements": [{"tag": "lark_md", "content": p.footer}]})
    return lark.card(p.severity, p.title, elements)


def _markdown(p: DigestParts, *, heading: str) -> str:
    parts = [heading, *p.context, "\n".join(f"- {line}" for line in p.summary)]
    if p.attention_head:
        parts.append(f"**{p.attention_head}**\n\n" + "\n".join(f"- {line}" for line in p.attention))
    if p.flaky_head:
        parts.append(f"**{p.flaky_head}**\n\n" + "\n".join(f"- {line}" for line in p.flaky))
    parts += [x for x in (p.days, p.chart) if x]
    parts.append(p.footer)
    return "\n\n".join(parts)


def _dingtalk(p: DigestParts) -> dict[str, Any]:
    return dingtalk.message(p.title, _markdown(p, heading=f"#### {p.title}"))


def _wecom(p: DigestParts) -> dict[str, Any]:
    return wecom.message(_markdown(p, heading=wecom.heading(p.severity, p.title)))


def _teams(p: DigestParts) -> dict[str, Any]:
    def block(text: str, **extra: Any) -> dict[str, Any]:
        return {"type": "TextBlock", "text": text, "wrap": True, **extra}

    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": teams.STYLES[p.severity],
            "bleed": True,
            "items": [block(p.title, weight="Bolder", size="Medium")],
        },
        *(block(line, isSubtle=True) for line in p.context),
        block("\n\n".join(p.summary)),
    ]
    if p.attention_head:
        body += [block(p.attention_head, weight="Bolder", separator=True), block("\n\n".join(p.attention))]
    if p.flaky_head:
        body += [block(p.flaky_head, weight="Bolder", separator=True), block("\n\n".join(p.flaky))]
    body += [block(x, isSubtle=True) for x in (p.days, p.chart) if x]
    body.append(block(p.footer, isSubtle=True, size="Small"))
    return teams.envelope(body)


_LAYOUTS: dict[str, tuple[Markup, Callable[[DigestParts], dict[str, Any]], Callable[[dict[str, Any]], list[str]]]] = {
    "lark": (lark.MD, _lark, lark.check),
    "dingtalk": (dingtalk.MD, _dingtalk, dingtalk.check),
    "wecom": (wecom.MD, _wecom, wecom.check),
    "teams": (teams.MD, _teams, teams.check),
}


def _slack(content: DigestContent, now: datetime) -> dict[str, Any]:
    """The Slack digest's Block Kit for an incoming webhook: no uploaded chart (a webhook cannot
    show a private file), so the summary that reads without it stands alone."""
    message = digest_message(replace(content, chart_file_id=None, chart_problem=None), now)
    if message is None:  # only when quiet, which the caller has decided against
        return {"text": "GES digest", "blocks": []}
    # A webhook's channel may be in another workspace: no `/gesjobs` hint there.
    blocks = [b for b in message.blocks if "/gesjobs digest off" not in str(b)]
    return {"text": message.text, "blocks": blocks}


def render_digest(
    platform: str,
    content: DigestContent,
    locale: str,
    now: datetime,
    *,
    start: int = 0,
    zone: str = "UTC",
    picture: bool = False,
) -> Rendered:
    """``content`` for ``platform`` in ``locale``, at the most detail from ``start`` on that fits;
    ``Rendered.level`` indexes :data:`DIGEST_LEVELS`."""
    if platform == "slack":
        return Rendered(_slack(content, now), len(DIGEST_LEVELS) - 1)
    if platform not in _LAYOUTS:
        raise ValueError(f"unknown sink type {platform!r}")
    markup, layout, check = _LAYOUTS[platform]
    w = words_for(locale, zone)
    level = min(max(start, 0), len(DIGEST_LEVELS) - 1)
    while True:
        body = layout(digest_parts(content, now, w, markup, DIGEST_LEVELS[level], picture=picture))
        if level == len(DIGEST_LEVELS) - 1 or not check(body):
            return Rendered(body, level)
        level += 1


def wecom_chart(png: bytes) -> dict[str, Any] | None:
    """The chart as a WeCom ``image`` message (base64 and MD5 of the PNG), or ``None`` past its
    2 MB."""
    if len(png) > 2 * 1024 * 1024:
        return None
    return {
        "msgtype": "image",
        "image": {
            "base64": base64.b64encode(png).decode("ascii"),
            "md5": hashlib.md5(png, usedforsecurity=False).hexdigest(),
        },
    }
