"""An alert as a DingTalk robot markdown message (pure).

Owns: the message (a heading with the severity's emoji, the job's facts, the fail reason and one
paragraph per problem file with its cause quoted, a line with what is not shown), DingTalk's limits
(:func:`check`, the one place they are checked) and DingTalk's escaping (:class:`DingTalkMarkup`,
the one place untrusted text becomes DingTalk markdown).

Escaping: ``& < >`` become entities (no ``<font>`` or other HTML), a word joiner follows every
markdown character (no emphasis, heading, quote or ``[link](…)`` can form) and every ``@`` (no
``@all`` or ``@<mobile>``); ``at.isAtAll`` is always false and no ``atMobiles`` are sent.
Cannot: colour a header (DingTalk markdown has none: the emoji carries the severity), buttons that
call back, edit, or thread a recovery.
"""

from __future__ import annotations

from typing import Any

from ges_bot.notify.document import AlertDocument
from ges_bot.sinks import compose
from ges_bot.sinks.common import PlainText, QuotedMarkdown, body_bytes
from ges_bot.sinks.compose import Budget, Rendered, clip, fit
from ges_bot.words import Words

__all__ = ["MAX_BODY", "MAX_TITLE", "DingTalkMarkup", "check", "render", "render_notice"]

#: DingTalk refuses bodies over 20,000 bytes; the signature travels in the query, not here.
MAX_BODY = 20_000 - 100
MAX_TITLE = 64


class DingTalkMarkup(QuotedMarkdown):
    """The one place untrusted text becomes DingTalk markdown (the same rules as WeCom's)."""


MD = DingTalkMarkup()


def _text(doc: AlertDocument, w: Words, budget: Budget) -> str:
    parts = [f"#### {compose.title(doc, w, MD)}"]
    for item in compose.shown_items(doc, budget):
        if len(doc.items) > 1:
            parts.append(f"#### {compose.item_headline(item, w, MD)}")
        lead = compose.recovery_lead(doc, item, w, MD)
        if lead:
            parts.append(lead)
        if budget.facts:
            parts.append("\n".join(f"- **{label}**: {value}" for label, value in compose.facts(item, w, MD)))
        why = compose.reason(item, w, MD, budget)
        if why:
            parts.append(f"**{w('Reason')}**\n\n{why}")
        for head, cause in compose.file_entries(item, w, MD, budget):
            parts.append(head + (f"\n\n{cause}" if cause else ""))
        note = compose.tally_note(item, w, budget)
        if note:
            parts.append(note)
    more = compose.more_items(doc, w, budget)
    if more:
        parts.append(more)
    parts.append(w("GES · project {project}", project=MD.text(doc.project.alias, 60)))
    return "\n\n".join(parts)


def message(title: str, text: str) -> dict[str, Any]:
    """A markdown message (alerts, digests, ops notices): ``title`` is what a notification shows
    (plain, clipped), ``text`` the markdown; it never mentions everyone."""
    return {
        "msgtype": "markdown",
        "markdown": {"title": clip(title, MAX_TITLE), "text": text},
        "at": {"isAtAll": False},
    }


def _body(doc: AlertDocument, w: Words, budget: Budget) -> dict[str, Any]:
    return message(compose.title(doc, w, PlainText()), _text(doc, w, budget))


def check(body: dict[str, Any]) -> list[str]:
    """What DingTalk would refuse in ``body`` (empty: it fits)."""
    problems = []
    size = len(body_bytes(body))
    if size > MAX_BODY:
        problems.append(f"body is {size} bytes; DingTalk takes {MAX_BODY}")
    title = (body.get("markdown") or {}).get("title", "")
    if len(title) > MAX_TITLE:
        problems.append(f"title of {len(title)} characters; at most {MAX_TITLE}")
    if (body.get("at") or {}).get("isAtAll"):
        problems.append("isAtAll is set: an alert never mentions everyone")
    return problems


def render(doc: AlertDocument, w: Words, *, start: int = 0) -> Rendered:
    """The most detailed message from level ``start`` on that DingTalk accepts."""
    return fit(lambda budget: _body(doc, w, budget), check, start)


def render_notice(title: str, text: str) -> dict[str, Any]:
    """A markdown message of trusted words (a test message, a notice)."""
    return message(title, f"#### {title}\n\n{text}")
