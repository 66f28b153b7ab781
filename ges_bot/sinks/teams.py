"""An alert as a Microsoft Teams Adaptive Card in the Workflows webhook envelope (pure).

Owns: the card (a title in a container styled by severity, the job's facts as a ``FactSet``, the
fail reason and one block per problem file with its cause in monospace, a line with what is not
shown), the Workflows envelope (``{"type": "message", "attachments": [{… "content": card}]}``),
Teams' limits (:func:`check`: about 28 KB a card) and Teams' escaping (:class:`TeamsMarkup`, the one
place untrusted text becomes Adaptive Card markdown).

Escaping: Adaptive Card text knows no HTML and mentions exist only through ``msteams.entities``,
which we never send; a word joiner follows every markdown character (no emphasis, list or
``[link](…)``) and every ``@``, and ``://`` is defused (no auto-link).
Cannot: buttons that call back (the flow is one-way), edit, or thread a recovery; a Workflows
webhook answers 202 before the flow runs, so a card the flow later fails to post is not seen here.
"""

from __future__ import annotations

from typing import Any

from ges_bot.notify.document import AlertDocument
from ges_bot.sinks import compose
from ges_bot.sinks.common import body_bytes, defuse, joiners
from ges_bot.sinks.compose import Budget, Rendered, Severity, clip, fit, one_line
from ges_bot.words import Words

__all__ = ["CARD_SCHEMA", "MAX_BODY", "TeamsMarkup", "check", "envelope", "render", "render_notice"]

#: Teams refuses cards over about 28 KB.
MAX_BODY = 28 * 1024 - 200
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

STYLES: dict[Severity, str] = {
    Severity.DANGER: "attention",
    Severity.WARNING: "warning",
    Severity.GOOD: "good",
    Severity.INFO: "accent",
}

_MARKDOWN = "*_~`[]()#!|-+=<>\\"


class TeamsMarkup:
    """The one place untrusted text becomes Adaptive Card markdown."""

    def text(self, value: str, limit: int) -> str:
        return joiners(defuse(clip(one_line(value), limit)), _MARKDOWN)

    def code(self, value: str, limit: int) -> str:
        return self.text(value, limit)

    def block(self, value: str, limit: int) -> str:
        return joiners(defuse(clip(value.strip(), limit)), _MARKDOWN)

    def bold(self, trusted: str) -> str:
        return f"**{trusted}**"


MD = TeamsMarkup()


def _block(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


def _mono(text: str) -> dict[str, Any]:
    return _block(text, fontType="Monospace", size="Small")


def envelope(card_body: list[dict[str, Any]]) -> dict[str, Any]:
    """The Workflows "post to a channel when a webhook request is received" envelope."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "$schema": CARD_SCHEMA,
                    "msteams": {"width": "Full"},
                    "body": card_body,
                },
            }
        ],
    }


def _card(doc: AlertDocument, w: Words, budget: Budget) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": STYLES[compose.severity(doc)],
            "bleed": True,
            "items": [_block(compose.title(doc, w, MD), weight="Bolder", size="Medium")],
        }
    ]
    for item in compose.shown_items(doc, budget):
        if len(doc.items) > 1:
            body.append(_block(compose.item_headline(item, w, MD), separator=True))
        lead = compose.recovery_lead(doc, item, w, MD)
        if lead:
            body.append(_block(lead))
        if budget.facts:
            body.append(
                {
                    "type": "FactSet",
                    "facts": [{"title": label, "value": value} for label, value in compose.facts(item, w, MD)],
                }
            )
        why = compose.reason(item, w, MD, budget)
        if why:
            body.extend([_block(w("Reason"), weight="Bolder"), _mono(why)])
        for head, cause in compose.file_entries(item, w, MD, budget):
            body.append(_block(head, spacing="Medium"))
            if cause:
                body.append(_mono(cause))
        note = compose.tally_note(item, w, budget)
        if note:
            body.append(_block(note, isSubtle=True))
    more = compose.more_items(doc, w, budget)
    if more:
        body.append(_block(more, isSubtle=True))
    body.append(
        _block(w("GES · project {project}", project=MD.text(doc.project.alias, 60)), isSubtle=True, size="Small")
    )
    return envelope(body)


def check(body: dict[str, Any]) -> list[str]:
    """What Teams would refuse in ``body`` (empty: it fits)."""
    problems = []
    size = len(body_bytes(body))
    if size > MAX_BODY:
        problems.append(f"card is {size} bytes; Teams takes about {MAX_BODY}")
    for attachment in body.get("attachments") or []:
        if "msteams" in attachment.get("content", {}) and "entities" in attachment["content"]["msteams"]:
            problems.append("msteams.entities is set: an alert never mentions anyone")
    return problems


def render(doc: AlertDocument, w: Words, *, start: int = 0) -> Rendered:
    """The most detailed card from level ``start`` on that Teams accepts."""
    return fit(lambda budget: _card(doc, w, budget), check, start)


def render_notice(title: str, text: str) -> dict[str, Any]:
    """A card of trusted words (a test message, a notice)."""
    return envelope([_block(title, weight="Bolder", size="Medium"), _block(text)])
