"""An ops incident's start or end as the body a group-bot sink's platform takes (pure).

Owns what ``[ops] sinks`` hear: when a problem of the bot's own opens (the problem in a title, what
is wrong, how to fix it, since when) and, as a follow-up naming it — these webhooks cannot edit a
message or reply in a thread — when it ends, with what the catch-up found. The frame is in the
sink's words (``words``), and so are the cause, fix and resolution: the incident keeps them
said in every language (``OpsNotice.said``; the English ones where it kept none). They quote GES
and platform errors, so they are untrusted text, escaped by the platform's
:class:`~ges_bot.sinks.compose.Markup` like an alert's fail reason. A Slack incoming webhook gets
the same words as Block Kit escaped by ``notify.mrkdwn``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ges_bot.notify.mrkdwn import code, fit, mrkdwn_text, truncate
from ges_bot.sinks import dingtalk, lark, teams, wecom
from ges_bot.sinks.compose import Markup, Severity
from ges_bot.store.api import OpsNotice, said_in
from ges_bot.words import Words, words_for

__all__ = ["render_ops_notice"]

#: Each sentence's share of a message: far below every platform's limit (WeCom's 4,096 bytes).
_SENTENCE = 900

_TITLES = {
    "blind": "ges-bot: project {subject} is blind",
    "channel": "ges-bot: alerts cannot reach {subject}",
    "slack": "ges-bot: Slack refuses the bot",
    "backlog": "ges-bot: alerts are not going out",
    "dead": "ges-bot: alerts were given up",
    "sink": "ges-bot: alerts cannot reach sink {subject}",
}


@dataclass(frozen=True, slots=True)
class _Parts:
    title: str
    severity: Severity
    #: (bold label or ``None``, escaped text)
    lines: tuple[tuple[str | None, str], ...]


def _title(notice: OpsNotice, w: Words, m: Markup) -> str:
    msgid = _TITLES.get(notice.kind)
    subject = m.code(notice.subject, 100)
    if msgid is None:
        return f"ges-bot: {m.text(notice.kind, 40)} {subject}"
    return w(msgid, subject=subject)


def _parts(notice: OpsNotice, w: Words, m: Markup) -> _Parts:
    title = _title(notice, w, m)
    if notice.phase != "resolved":
        return _Parts(
            title=f"🚨 {title}",
            severity=Severity.DANGER,
            lines=(
                (w("What"), m.text(said_in(notice.said, "cause", w.locale) or notice.cause, _SENTENCE)),
                (w("Fix"), m.text(said_in(notice.said, "fix", w.locale) or notice.fix, _SENTENCE)),
                (w("Since"), w.when(notice.since)),
                (None, w("GES · ges-bot's own health")),
            ),
        )
    end = notice.resolved_at or notice.since
    return _Parts(
        title="✅ " + w("Resolved: {title}", title=title),
        severity=Severity.GOOD,
        lines=(
            (None, w("Follow-up: the incident that began {since} has ended.", since=w.when(notice.since))),
            (w("Was"), m.text(said_in(notice.said, "cause", w.locale) or notice.cause, _SENTENCE)),
            (
                None,
                w(
                    "From {start} to {end} ({duration}).",
                    start=w.when(notice.since),
                    end=w.when(end),
                    duration=w.span(end - notice.since),
                ),
            ),
            (
                w("Now"),
                m.text(said_in(notice.said, "resolution", w.locale) or notice.resolution or w("recovered"), _SENTENCE),
            ),
            (None, w("GES · ges-bot's own health")),
        ),
    )


def _line(label: str | None, text: str, bold: Callable[[str], str]) -> str:
    return f"{bold(label)}: {text}" if label else text


def _lark(p: _Parts) -> dict[str, Any]:
    return lark.card(
        p.severity,
        p.title,
        [
            {"tag": "div", "text": {"tag": "lark_md", "content": _line(label, text, lark.MD.bold)}}
            for label, text in p.lines
        ],
    )


def _dingtalk(p: _Parts) -> dict[str, Any]:
    lines = "\n\n".join(_line(label, text, dingtalk.MD.bold) for label, text in p.lines)
    return dingtalk.message(p.title, f"#### {p.title}\n\n{lines}")


def _wecom(p: _Parts) -> dict[str, Any]:
    lines = "\n\n".join(_line(label, text, wecom.MD.bold) for label, text in p.lines)
    return wecom.message(f"{wecom.heading(p.severity, p.title)}\n\n{lines}")


def _teams(p: _Parts) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": teams.STYLES[p.severity],
            "bleed": True,
            "items": [{"type": "TextBlock", "text": p.title, "wrap": True, "weight": "Bolder", "size": "Medium"}],
        },
        *({"type": "TextBlock", "text": _line(label, text, teams.MD.bold), "wrap": True} for label, text in p.lines),
    ]
    return teams.envelope(body)


_LAYOUTS: dict[str, tuple[Markup, Callable[[_Parts], dict[str, Any]]]] = {
    "lark": (lark.MD, _lark),
    "dingtalk": (dingtalk.MD, _dingtalk),
    "wecom": (wecom.MD, _wecom),
    "teams": (teams.MD, _teams),
}


def _slack(notice: OpsNotice, w: Words) -> dict[str, Any]:
    """The ops channel's words as Block Kit (escaped by ``notify.mrkdwn``)."""
    p = _parts(notice, w, _SlackMarkup())
    lines = [f"*{p.title}*", *(_line(label, text, lambda t: f"*{t}*") for label, text in p.lines)]
    return {
        "text": truncate(p.title, 300),
        "blocks": [{"type": "section", "text": mrkdwn_text(truncate("\n".join(lines), 2900))}],
    }


class _SlackMarkup:
    """Slack mrkdwn through ``notify.mrkdwn`` (the one place untrusted text becomes Slack text)."""

    def text(self, value: str, limit: int) -> str:
        return fit(value, limit)

    def code(self, value: str, limit: int) -> str:
        return code(value, limit)

    def block(self, value: str, limit: int) -> str:
        return fit(value, limit)

    def bold(self, trusted: str) -> str:
        return f"*{trusted}*"


def render_ops_notice(platform: str, notice: OpsNotice, locale: str, *, zone: str = "UTC") -> dict[str, Any]:
    """``notice`` for ``platform`` in ``locale`` (instants in ``zone``)."""
    if platform == "slack":
        return _slack(notice, words_for(locale, zone))
    if platform not in _LAYOUTS:
        raise ValueError(f"unknown sink type {platform!r}")
    markup, layout = _LAYOUTS[platform]
    return layout(_parts(notice, words_for(locale, zone), markup))
