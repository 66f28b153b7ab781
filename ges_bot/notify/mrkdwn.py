"""Slack text for ges-bot: the ONE place untrusted text is escaped, plus date tokens and truncation.

Every renderer in the project — alerts (``notify.render``) and the ``/gesjobs`` answers and Home
tab (``slackapp.views``) — builds Slack text only through these helpers, never by formatting
untrusted strings into mrkdwn itself:

- :func:`escape` / :func:`fit` — untrusted text as mrkdwn (``&``, ``<``, ``>`` escaped, ``&`` first);
- :func:`code` / :func:`code_block` — untrusted text in a code span / block that stays inert
  (escaped, backticks neutralised, so it can neither format nor break out);
- :func:`plain` — untrusted text for ``plain_text`` objects (inert by nature, only trimmed);
- :func:`mention` / :func:`channel_link` — a user mention or channel link, only from a
  Slack-provided id that looks like one (``^[UW][A-Z0-9]+$`` / ``^[CGD][A-Z0-9]+$``);
- :func:`date_token` / :func:`duration` — times as Slack shows them in each reader's own zone;
- :func:`mrkdwn_text` / :func:`plain_text` — text objects (mrkdwn ones with ``verbatim: true`` so
  Slack never auto-links URLs or auto-parses ``@here`` / ``#channel`` found in untrusted text).

Untrusted means anything GES or a user sent: a job's ``fail_reason``, an import ``cause``, graph
names, file and log paths, job names, types and ids. Unescaped, ``<!channel>``, ``<@U…>`` and
``<https://x|text>`` are live in mrkdwn; escaped, they are shown as typed.

Results that are safe mrkdwn are :class:`Mrkdwn` instances (a ``str`` subclass), so that
:func:`join` can tell our own markup from untrusted text and escape only the latter. Anything
derived from a ``Mrkdwn`` by ordinary string operations is a plain ``str`` again and so is
treated as untrusted — the safe direction: at worst it is shown escaped twice, never live.

Lengths are counted as Slack may count them, in UTF-16 code units (:func:`slack_len`), which is
never less than Python's ``len``; every ``limit`` here is in those units.

This module is pure (no I/O, no clock) and knows nothing of jobs, events or Block Kit layout.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "NOTHING",
    "Mrkdwn",
    "channel_link",
    "code",
    "code_block",
    "date_token",
    "duration",
    "escape",
    "fit",
    "join",
    "mention",
    "mrkdwn_text",
    "plain",
    "plain_text",
    "slack_len",
    "truncate",
    "trusted",
]

#: Shown where a value is missing or empty.
NOTHING = "—"
#: Replaces backticks inside code spans and blocks: a backtick there would end the span early.
_BACKTICK_STANDIN = "ˋ"  # U+02CB MODIFIER LETTER GRAVE ACCENT: looks alike, formats nothing
_USER_ID = re.compile(r"[UW][A-Z0-9]{1,40}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{1,40}")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: Characters that would end or corrupt a ``<!date^…|…>`` token if they appeared in its format.
_DATE_FORMAT_FORBIDDEN = frozenset("<>|^")


class Mrkdwn(str):
    """Text that is safe to send as mrkdwn: built by this module, or a literal of ours."""

    __slots__ = ()


def trusted(text: str) -> Mrkdwn:
    """Mark a literal of our own (``"*Reason*"``) as safe mrkdwn. Never call it on untrusted text."""
    return Mrkdwn(text)


def slack_len(text: str) -> int:
    """Length in UTF-16 code units: what Slack's limits may count (≥ ``len`` for astral characters)."""
    if text.isascii():
        return len(text)
    # Encoded in C rather than a loop over characters: every answer measures every block's text,
    # and counting ord() per character was the largest single cost of a /gesjobs answer.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _unit_len(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def truncate(text: str, limit: int, suffix: str = "…") -> str:
    """``text`` cut so that ``slack_len(result) <= limit``, ending in ``suffix`` when it was cut."""
    if limit < 0:
        raise ValueError("limit must not be negative")
    if slack_len(text) <= limit:
        return text
    budget = limit - slack_len(suffix)
    if budget < 0:
        return _take(suffix, limit)
    return _take(text, budget) + suffix


def _take(text: str, units: int) -> str:
    """The longest prefix of ``text`` that fits in ``units`` UTF-16 code units."""
    used = 0
    for i, ch in enumerate(text):
        used += _unit_len(ch)
        if used > units:
            return text[:i]
    return text


def escape(text: str) -> Mrkdwn:
    """Untrusted text as inert mrkdwn: ``&`` → ``&amp;`` (first), ``<`` → ``&lt;``, ``>`` → ``&gt;``."""
    return Mrkdwn(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def fit(text: str, limit: int, suffix: str = "…") -> Mrkdwn:
    """``escape(text)`` cut to at most ``limit`` units *after* escaping, never inside an entity.

    Escaping can make text five times longer (``&`` → ``&amp;``), so cutting the raw text to
    ``limit`` is not enough, and cutting the escaped text could leave half an ``&amp;``.
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    full = escape(text)
    if slack_len(full) <= limit:
        return full
    tail = escape(suffix)
    budget = limit - slack_len(tail)
    if budget < 0:
        return Mrkdwn("")
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _ESCAPES.get(ch, ch)
        size = slack_len(piece)
        if used + size > budget:
            break
        out.append(piece)
        used += size
    return Mrkdwn("".join(out) + tail)


def _neutralise_backticks(text: str) -> str:
    return text.replace("`", _BACKTICK_STANDIN)


def code(text: str | None, limit: int = 500) -> Mrkdwn:
    """Untrusted text as an inline code span that stays inert, at most ``limit`` units long.

    Escaped, backticks replaced by a look-alike (a backtick would close the span), line breaks
    and surrounding white space flattened (a span cannot cross lines). Empty or missing text
    gives :data:`NOTHING` rather than an empty span, which Slack would show as two backticks.
    """
    flat = " ".join((text or "").split())
    if not flat:
        return Mrkdwn(NOTHING)
    return Mrkdwn("`" + fit(_neutralise_backticks(flat), max(limit - 2, 1)) + "`")


def code_block(text: str | None, limit: int = 2900) -> Mrkdwn:
    """Untrusted multi-line text as a code block (```` ``` ````), at most ``limit`` units long.

    Backticks inside are replaced by a look-alike so that the text cannot close the block.
    Empty or missing text gives :data:`NOTHING`.
    """
    body = (text or "").strip("\n\r")
    if not body.strip():
        return Mrkdwn(NOTHING)
    return Mrkdwn("```" + fit(_neutralise_backticks(body), max(limit - 6, 1)) + "```")


def plain(text: str | None, limit: int = 3000) -> str:
    """Untrusted text for a ``plain_text`` object: shown as typed, so only trimmed to ``limit``.

    ``plain_text`` must not be empty, so missing or blank text gives :data:`NOTHING`.
    """
    value = (text or "").strip()
    if not value:
        return NOTHING
    return truncate(value, limit)


def mention(user_id: str | None) -> Mrkdwn | None:
    """``<@U…>`` for a Slack user id that looks like one (``^[UW][A-Z0-9]+$``), else ``None``.

    The id comes from Slack's own payload, but it is still checked: a mention is live markup.
    """
    if user_id is None or not _USER_ID.fullmatch(user_id):
        return None
    return Mrkdwn(f"<@{user_id}>")


def channel_link(channel_id: str | None) -> Mrkdwn | None:
    """``<#C…>`` for a Slack channel id that looks like one (``^[CGD][A-Z0-9]+$``), else ``None``."""
    if channel_id is None or not _CHANNEL_ID.fullmatch(channel_id):
        return None
    return Mrkdwn(f"<#{channel_id}>")


def _as_utc(dt: datetime) -> datetime:
    # Inside ges-bot every time is aware UTC; a naive one can only mean UTC.
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def date_token(dt: datetime, fmt: str = "{date_short_pretty} {time}", *, fallback: str | None = None) -> Mrkdwn:
    """A Slack date token: ``<!date^{epoch}^{fmt}|{UTC fallback}>``, shown in each reader's zone.

    ``fmt`` is ours (Slack's ``{date_short_pretty}``, ``{time}``… tokens), never user text; the
    fallback (for clients that cannot render tokens) is ``2024-01-02 03:04 UTC``, or ``fallback``
    (the instant written for a locale, e.g. ``2024年1月2日 03:04:00 UTC``; the token's own
    delimiters are dropped from it and the rest escaped).
    """
    if any(ch in _DATE_FORMAT_FORBIDDEN for ch in fmt):
        raise ValueError(f"date format {fmt!r} must not contain any of < > | ^")
    utc = _as_utc(dt)
    epoch = int(utc.timestamp())
    if fallback is None:
        return Mrkdwn(f"<!date^{epoch}^{fmt}|{utc:%Y-%m-%d %H:%M} UTC>")
    shown = escape("".join(ch for ch in " ".join(fallback.split()) if ch not in _DATE_FORMAT_FORBIDDEN))
    return Mrkdwn(f"<!date^{epoch}^{fmt}|{shown}>")


def duration(delta: timedelta) -> str:
    """A short human duration: ``42s``, ``4m 05s``, ``1h 04m``, ``3d 2h``. Negative counts as 0."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def join(*parts: str, sep: str = "") -> Mrkdwn:
    """Concatenate mrkdwn: :class:`Mrkdwn` parts pass through, every other ``str`` is escaped."""
    return Mrkdwn(escape(sep).join(p if isinstance(p, Mrkdwn) else escape(p) for p in parts))


def mrkdwn_text(text: str) -> dict[str, Any]:
    """A mrkdwn text object. ``verbatim`` stops Slack auto-linking URLs and auto-parsing mentions.

    ``text`` must already be safe (built with this module); it is not escaped again here.
    """
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def plain_text(text: str | None, limit: int = 3000) -> dict[str, Any]:
    """A ``plain_text`` object for any text (see :func:`plain`)."""
    return {"type": "plain_text", "text": plain(text, limit), "emoji": True}
