"""An alert as a Lark / Feishu interactive card (pure).

Owns: the card (header coloured by severity through ``template``, the job's facts as short fields,
the fail reason and one section per problem file with its cause in a code block, a note with what
is not shown), Lark's limits (:func:`check`, the one place they are checked) and Lark's escaping
(:class:`LarkMarkup`, the one place untrusted text becomes ``lark_md``).

Escaping: ``lark_md`` reads HTML entities, so ``& < >`` and the markdown characters become entities
(no ``<at user_id="all">``, no ``<font>``, no ``[link](…)``, no emphasis); ``@`` and ``://`` are
defused (``sinks.common``). The header title is ``plain_text``: never parsed.
Cannot: buttons that call back (mute, acknowledge), edit the message, or thread a recovery.
"""

from __future__ import annotations

from typing import Any

from ges_bot.notify.document import AlertDocument
from ges_bot.sinks import compose
from ges_bot.sinks.common import PlainText, body_bytes, defuse, entities, joiners
from ges_bot.sinks.compose import Budget, Rendered, Severity, clip, fit, one_line
from ges_bot.words import Words

__all__ = ["MAX_BODY", "MAX_ELEMENTS", "LarkMarkup", "check", "render", "render_notice"]

#: Lark refuses request bodies over about 20 KB; keep room for ``timestamp`` and ``sign``.
MAX_BODY = 20 * 1024 - 200
#: Elements in one card (Lark documents a cap; we stay far below it).
MAX_ELEMENTS = 50
MAX_TITLE = 100

TEMPLATES: dict[Severity, str] = {
    Severity.DANGER: "red",
    Severity.WARNING: "orange",
    Severity.GOOD: "green",
    Severity.INFO: "blue",
}

_MARKDOWN = "*_~`[]()#|"


class LarkMarkup:
    """The one place untrusted text becomes Lark ``lark_md``."""

    def text(self, value: str, limit: int) -> str:
        return entities(defuse(clip(one_line(value), limit)), _MARKDOWN)

    def code(self, value: str, limit: int) -> str:
        # Entities are not read inside a code span, so identifiers are shown as escaped words.
        return self.text(value, limit)

    def block(self, value: str, limit: int) -> str:
        # Markup inside a fence is inert; the joiners keep it so should a client render it anyway.
        body = joiners(entities(defuse(clip(value.strip(), limit)), "`"), "[]*_~")
        return f"```\n{body}\n```"

    def bold(self, trusted: str) -> str:
        return f"**{trusted}**"


MD = LarkMarkup()
PLAIN = PlainText()


def _md(content: str) -> dict[str, Any]:
    return {"tag": "div", "text": {"tag": "lark_md", "content": content}}


def _card(doc: AlertDocument, w: Words, budget: Budget) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    items = compose.shown_items(doc, budget)
    for index, item in enumerate(items):
        if index:
            elements.append({"tag": "hr"})
        if len(doc.items) > 1:
            elements.append(_md(compose.item_headline(item, w, MD)))
        lead = compose.recovery_lead(doc, item, w, MD)
        if lead:
            elements.append(_md(lead))
        if budget.facts:
            fields = [
                {"is_short": True, "text": {"tag": "lark_md", "content": f"**{label}**\n{value}"}}
                for label, value in compose.facts(item, w, MD)
            ]
            elements.append({"tag": "div", "fields": fields})
        why = compose.reason(item, w, MD, budget)
        if why:
            elements.append(_md(f"**{w('Reason')}**\n{why}"))
        for head, cause in compose.file_entries(item, w, MD, budget):
            elements.append(_md(head + (f"\n{cause}" if cause else "")))
        note = compose.tally_note(item, w, budget)
        if note:
            elements.append({"tag": "note", "elements": [{"tag": "plain_text", "content": note}]})
    more = compose.more_items(doc, w, budget)
    if more:
        elements.append({"tag": "note", "elements": [{"tag": "plain_text", "content": more}]})
    elements.append(
        {
            "tag": "note",
            "elements": [
                {
                    "tag": "plain_text",
                    "content": w("GES · project {project}", project=PLAIN.text(doc.project.alias, 60)),
                }
            ],
        }
    )
    return card(compose.severity(doc), compose.title(doc, w, PLAIN), elements)


def card(severity: Severity, title: str, elements: list[dict[str, Any]]) -> dict[str, Any]:
    """An interactive card: a header coloured by ``severity`` over ``elements`` (alerts, digests,
    ops notices); ``title`` is plain text, clipped to Lark's limit."""
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "template": TEMPLATES[severity],
                "title": {"tag": "plain_text", "content": clip(title, MAX_TITLE)},
            },
            "elements": elements,
        },
    }


def check(body: dict[str, Any]) -> list[str]:
    """What Lark would refuse in ``body`` (empty: it fits)."""
    problems = []
    size = len(body_bytes(body))
    if size > MAX_BODY:
        problems.append(f"body is {size} bytes; Lark takes about {MAX_BODY}")
    card = body.get("card") or {}
    if len(card.get("elements", ())) > MAX_ELEMENTS:
        problems.append(f"{len(card['elements'])} elements; at most {MAX_ELEMENTS}")
    title = ((card.get("header") or {}).get("title") or {}).get("content", "")
    if len(title) > MAX_TITLE:
        problems.append(f"title of {len(title)} characters; at most {MAX_TITLE}")
    return problems


def render(doc: AlertDocument, w: Words, *, start: int = 0) -> Rendered:
    """The most detailed card from level ``start`` on that Lark accepts."""
    return fit(lambda budget: _card(doc, w, budget), check, start)


def render_notice(title: str, text: str) -> dict[str, Any]:
    """A plain card of trusted words (a test message, a notice)."""
    return {
        "msg_type": "interactive",
        "card": {
            "header": {"template": "blue", "title": {"tag": "plain_text", "content": clip(title, MAX_TITLE)}},
            "elements": [{"tag": "div", "text": {"tag": "plain_text", "content": text}}],
        },
    }
