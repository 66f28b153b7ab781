"""An alert as a WeCom (WeChat Work) group-robot markdown message (pure).

Owns: the message (a heading coloured by severity with ``<font color>``, the job's facts, the fail
reason and one paragraph per problem file with its cause quoted, a line with what is not shown),
WeCom's limits (:func:`check`: content ≤ 4,096 bytes of UTF-8 — the renderer steps down to less
detail until it fits) and WeCom's escaping (:class:`WeComMarkup`, the one place untrusted text
becomes WeCom markdown).

Escaping: ``& < >`` become entities (no ``<font>``, no ``<@userid>`` mention), a word joiner follows
every markdown character and every ``@``; ``mentioned_list`` is never sent.
Cannot: more than 4,096 bytes (a 300-file import shows its first problem files and a tally),
buttons that call back, edit, or thread a recovery.
"""

from __future__ import annotations

from typing import Any

from ges_bot.notify.document import AlertDocument
from ges_bot.sinks import compose
from ges_bot.sinks.common import QuotedMarkdown
from ges_bot.sinks.compose import Budget, Rendered, Severity, fit
from ges_bot.words import Words

__all__ = ["MAX_CONTENT", "WeComMarkup", "check", "render", "render_notice"]

#: WeCom refuses markdown content over 4,096 bytes (UTF-8).
MAX_CONTENT = 4096

COLOURS: dict[Severity, str] = {
    Severity.DANGER: "warning",
    Severity.WARNING: "warning",
    Severity.GOOD: "info",
    Severity.INFO: "comment",
}


class WeComMarkup(QuotedMarkdown):
    """The one place untrusted text becomes WeCom markdown (the same rules as DingTalk's)."""


MD = WeComMarkup()


def heading(severity: Severity, title: str) -> str:
    """A message's first line: ``title`` (already escaped) coloured by ``severity``."""
    return f'### <font color="{COLOURS[severity]}">{title}</font>'


def message(content: str) -> dict[str, Any]:
    """A markdown message of ``content`` (alerts, digests, ops notices)."""
    return {"msgtype": "markdown", "markdown": {"content": content}}


def _content(doc: AlertDocument, w: Words, budget: Budget) -> str:
    parts = [heading(compose.severity(doc), compose.title(doc, w, MD))]
    for item in compose.shown_items(doc, budget):
        if len(doc.items) > 1:
            parts.append(compose.item_headline(item, w, MD))
        lead = compose.recovery_lead(doc, item, w, MD)
        if lead:
            parts.append(lead)
        if budget.facts:
            parts.append(
                "\n".join(
                    f'{label}: <font color="comment">{value}</font>' for label, value in compose.facts(item, w, MD)
                )
            )
        why = compose.reason(item, w, MD, budget)
        if why:
            parts.append(f"**{w('Reason')}**\n{why}")
        for head, cause in compose.file_entries(item, w, MD, budget):
            parts.append(head + (f"\n{cause}" if cause else ""))
        note = compose.tally_note(item, w, budget)
        if note:
            parts.append(f'<font color="comment">{note}</font>')
    more = compose.more_items(doc, w, budget)
    if more:
        parts.append(more)
    parts.append(f'<font color="comment">{w("GES · project {project}", project=MD.text(doc.project.alias, 60))}</font>')
    return "\n\n".join(parts)


def check(body: dict[str, Any]) -> list[str]:
    """What WeCom would refuse in ``body`` (empty: it fits)."""
    problems = []
    content = str((body.get("markdown") or {}).get("content", ""))
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT:
        problems.append(f"markdown content is {size} bytes; WeCom takes {MAX_CONTENT}")
    if (body.get("markdown") or {}).get("mentioned_list"):
        problems.append("mentioned_list is set: an alert never mentions anyone")
    return problems


def render(doc: AlertDocument, w: Words, *, start: int = 0) -> Rendered:
    """The most detailed message from level ``start`` on that fits WeCom's 4,096 bytes."""
    return fit(lambda budget: message(_content(doc, w, budget)), check, start)


def render_notice(title: str, text: str) -> dict[str, Any]:
    """A markdown message of trusted words (a test message, a notice)."""
    return message(f"### {title}\n\n{text}")
