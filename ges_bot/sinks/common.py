"""Primitives the per-platform escapers are built from, and the bytes a webhook body is sent as (pure).

Each platform module composes these into its own :class:`~ges_bot.sinks.compose.Markup` — the one
place that platform's untrusted text is escaped. The primitives:

- :func:`defuse_mentions` puts a word joiner (U+2060, invisible) after every ``@``, so no
  ``@all`` / ``@everyone`` / ``@13800000000`` in a fail reason can ever be read as a mention;
- :func:`defuse_links` does the same inside ``://`` and ``www.``, so no client auto-links a URL
  from GES text (a link in an alert is one we chose to put there);
- :func:`entities` and :func:`backslashes` neutralise markup characters.

Two escapers are the same on several platforms and live here once: :class:`QuotedMarkdown`
(DingTalk's and WeCom's markdown: the same markup characters, causes quoted line by line) and
:class:`PlainText` (a notification's preview or a card's plain-text header: no markup at all, and
still no mention or link).
"""

from __future__ import annotations

import json
from typing import Any

from ges_bot.sinks.compose import clip, one_line

__all__ = [
    "WJ",
    "PlainText",
    "QuotedMarkdown",
    "backslashes",
    "body_bytes",
    "defuse",
    "defuse_links",
    "defuse_mentions",
    "entities",
    "joiners",
]

#: WORD JOINER: invisible, not a space, breaks the tokens clients look for.
WJ = "\u2060"


def defuse_mentions(text: str) -> str:
    # Also the full-width at sign, which some clients fold to '@'.
    return text.replace("@", "@" + WJ).replace("＠", "＠" + WJ)


def defuse_links(text: str) -> str:
    out = text.replace("://", ":" + WJ + "//")
    return out.replace("www.", "www" + WJ + ".").replace("WWW.", "WWW" + WJ + ".")


def defuse(text: str) -> str:
    return defuse_links(defuse_mentions(text))


def entities(text: str, extra: str = "") -> str:
    """``&``, ``<``, ``>`` (and each character of ``extra``) as HTML entities."""
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in extra:
        out = out.replace(ch, f"&#{ord(ch)};")
    return out


def backslashes(text: str, chars: str) -> str:
    """Each of ``chars`` (and the backslash itself) preceded by a backslash."""
    out = text.replace("\\", "\\\\")
    for ch in chars:
        out = out.replace(ch, "\\" + ch)
    return out


def body_bytes(body: dict[str, Any]) -> bytes:
    """The body as sent (UTF-8 JSON, no ASCII escapes): what the platforms' size limits count."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def joiners(text: str, chars: str) -> str:
    """A word joiner after each of ``chars``: ``**`` is no longer emphasis, ``](`` no longer a link,
    and nothing visible changes."""
    out = text
    for ch in chars:
        out = out.replace(ch, ch + WJ)
    return out


#: What DingTalk's and WeCom's markdown read as markup.
_MARKDOWN = "*_~`[]()#!|-+=\\"
#: What a client might still read in plain text: a tag, a link, emphasis.
_PLAIN = "<[]*"


class QuotedMarkdown:
    """The markdown of DingTalk and WeCom group bots: entities and joiners for text, a quote per
    line for a cause (neither has a code block a fail reason could not break out of)."""

    def text(self, value: str, limit: int) -> str:
        return joiners(entities(defuse(clip(one_line(value), limit))), _MARKDOWN)

    def code(self, value: str, limit: int) -> str:
        return self.text(value, limit)

    def block(self, value: str, limit: int) -> str:
        lines = clip(value.strip(), limit).splitlines() or [""]
        return "\n".join("> " + joiners(entities(defuse(line)), _MARKDOWN) for line in lines)

    def bold(self, trusted: str) -> str:
        return f"**{trusted}**"


class PlainText:
    """Text no client parses (a preview, a plain-text header); still, no ``<at …>``, ``@all`` or
    link is ever sent in it, so a client or proxy that did read it would find nothing to act on."""

    def text(self, value: str, limit: int) -> str:
        return joiners(defuse(clip(one_line(value), limit)), _PLAIN)

    code = text

    def block(self, value: str, limit: int) -> str:
        return joiners(defuse(clip(value, limit)), _PLAIN)

    def bold(self, trusted: str) -> str:
        return trusted
