"""An alert document as the body a sink's platform takes (pure): one entry point over the
per-platform renderers (``sinks.lark``, ``sinks.dingtalk``, ``sinks.wecom``, ``sinks.teams``,
``sinks.slackhook``), and the plain notices (``ges-bot check --send-test``)."""

from __future__ import annotations

from typing import Any

from ges_bot.notify.document import AlertDocument
from ges_bot.sinks import dingtalk, lark, slackhook, teams, wecom
from ges_bot.sinks.compose import LEVELS, Rendered
from ges_bot.words import words_for

__all__ = ["LEVELS", "Rendered", "render_alert", "render_notice"]


def render_alert(platform: str, doc: AlertDocument, locale: str, *, start: int = 0, zone: str = "UTC") -> Rendered:
    """``doc`` for ``platform`` in ``locale`` (instants in ``zone``), at the most detail from
    level ``start`` that fits."""
    w = words_for(locale, zone)
    match platform:
        case "lark":
            return lark.render(doc, w, start=start)
        case "dingtalk":
            return dingtalk.render(doc, w, start=start)
        case "wecom":
            return wecom.render(doc, w, start=start)
        case "teams":
            return teams.render(doc, w, start=start)
        case "slack":
            return slackhook.render(doc, start=start, locale=w.locale)
    raise ValueError(f"unknown sink type {platform!r}")


def render_notice(platform: str, title: str, text: str) -> dict[str, Any]:
    """A message of trusted words for ``platform``."""
    match platform:
        case "lark":
            return lark.render_notice(title, text)
        case "dingtalk":
            return dingtalk.render_notice(title, text)
        case "wecom":
            return wecom.render_notice(title, text)
        case "teams":
            return teams.render_notice(title, text)
        case "slack":
            return slackhook.render_notice(title, text)
    raise ValueError(f"unknown sink type {platform!r}")
