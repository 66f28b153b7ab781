"""An alert as a Slack incoming-webhook message (pure): the house Block Kit of ``notify.render``.

A ``type = "slack"`` sink is an incoming webhook (a channel of another workspace, say). It gets
the same blocks a subscribed channel gets, minus the buttons (an incoming webhook's message cannot
call back into this bot) and minus the thread replies (a webhook cannot thread): what overflowed
is summed up by the alert's own "…and N more" lines. In the sink's ``locale``, as a subscribed
channel's alert is in its subscription's.
"""

from __future__ import annotations

from typing import Any

from ges_bot.notify.document import AlertDocument
from ges_bot.notify.render import render_document
from ges_bot.sinks.compose import Rendered

__all__ = ["render", "render_notice"]


def render(doc: AlertDocument, *, start: int = 0, locale: str = "en") -> Rendered:
    message = render_document(doc, locale=locale).message
    blocks = [b for b in message.blocks if b.get("type") != "actions"]
    return Rendered({"text": message.text, "blocks": blocks}, level=start)


def render_notice(title: str, text: str) -> dict[str, Any]:
    return {
        "text": f"{title}: {text}",
        "blocks": [{"type": "section", "text": {"type": "plain_text", "text": f"{title}\n{text}"}}],
    }
