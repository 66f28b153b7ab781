"""The bot's words in each language it speaks — Slack's alerts, digests and ops messages and the
group-bot sinks' alike (pure: no clock, network or database).

Owns: the languages (:data:`Locale`), message catalogues (gettext ``.po`` files in
``ges_bot/locale``, read with Babel —
English is the source language and needs none), and how numbers, instants and durations are
written for a locale (Babel's ``format_decimal``, ``format_datetime``, ``format_timedelta``). The
Chinese words are the ones GES's own Chinese console uses (导入图 for ImportGraph, 失败, 部分失败,
成功, 运行中 …).

Renderers call a :class:`Words` with an English message id and *already escaped* values::

    words("{job} failed on graph {graph}", job=esc(label), graph=esc(graph))

so a translation can move the values around but never un-escape them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal, get_args
from zoneinfo import ZoneInfo

from ges_bot.domain import EventKind, FileStatus
from ges_bot.notify.document import FieldKey

# Babel is imported where it is first used (a number, an instant, a duration or a catalogue to
# read), not at start: ~1 MiB resident, and English words alone need none of it.
if TYPE_CHECKING:
    from babel import Locale as BabelLocale
    from babel.messages.catalog import Catalog

__all__ = ["LOCALES", "Locale", "Words", "words_for"]

#: The languages the bot speaks: English (the catalogue's source) and Simplified Chinese.
Locale = Literal["en", "zh-CN"]
LOCALES: tuple[str, ...] = get_args(Locale)

#: Kinds as a headline says them ("ImportGraph failed"); msgids of the catalogue.
KIND_WORDS: dict[EventKind, str] = {
    EventKind.FAILED: "failed",
    EventKind.PARTIALLY_FAILED: "partially failed",
    EventKind.UNKNOWN_OUTCOME: "ended in an unknown status",
    EventKind.STUCK: "stuck",
    EventKind.RECOVERED: "recovered",
    EventKind.SUCCEEDED: "succeeded",
    EventKind.STATUS_CHANGED: "changed status",
}

FILE_STATUS_WORDS: dict[str, str] = {
    FileStatus.FAILED: "failed",
    FileStatus.PART_FAILED: "partially failed",
    FileStatus.SUCCESS: "imported",
}

#: GES statuses as the console names them (the raw status is shown as is when not listed).
JOB_STATUS_WORDS: dict[str, str] = {
    "success": "success",
    "failed": "failed",
    "partiallyfailed": "partially failed",
    "running": "running",
    "pending": "waiting",
}

#: Job types and names the console translates.
JOB_WORDS: frozenset[str] = frozenset({"ImportGraph", "ExportGraph", "ImportSchema", "BackupGraph", "RestoreGraph"})


@cache
def _catalog(locale: str) -> Catalog | None:
    """The catalogue of ``locale`` ("zh-CN" → ``locale/zh_CN/LC_MESSAGES/ges_bot.po``), read once."""
    folder = locale.replace("-", "_")
    po = resources.files("ges_bot").joinpath("locale", folder, "LC_MESSAGES", "ges_bot.po")
    if not po.is_file():
        return None
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        return read_po(fh, locale=folder)


@dataclass(frozen=True, slots=True)
class Words:
    """Translation and formatting for one locale ("en" or "zh-CN"); instants in ``zone`` (the
    bot's ``GES_BOT_TIMEZONE``: a group chat has no per-reader zone as Slack's date tokens do)."""

    locale: str
    zone: str = "UTC"

    @property
    def _babel(self) -> BabelLocale:
        from babel import Locale as BabelLocale

        return BabelLocale.parse(self.locale.replace("-", "_"))

    def __call__(self, msgid: str, /, **values: object) -> str:
        """``msgid`` translated (itself when untranslated), with ``values`` put in."""
        catalog = _catalog(self.locale) if self.locale != "en" else None
        message = catalog.get(msgid) if catalog is not None else None
        text = message.string if message is not None and isinstance(message.string, str) and message.string else msgid
        return text.format(**values) if values else text

    def kind(self, kind: EventKind) -> str:
        return self(KIND_WORDS.get(kind, KIND_WORDS[EventKind.STATUS_CHANGED]))

    def label(self, key: FieldKey) -> str:
        return self(key.label)

    def file_status(self, status: str | None) -> str | None:
        """A file's status in words, ``None`` when it is not one ges-bot knows (show it raw)."""
        word = FILE_STATUS_WORDS.get(status or "")
        return self(word) if word else None

    def job_status(self, status: str) -> str | None:
        word = JOB_STATUS_WORDS.get(status.strip().lower())
        return self(word) if word else None

    def job(self, name: str) -> str:
        """A job's name or type: the console's word for the known ones (导入图 for ImportGraph)."""
        return self(name) if name in JOB_WORDS else name

    def number(self, n: int) -> str:
        from babel.numbers import format_decimal

        return format_decimal(n, locale=self._babel)

    def when(self, at: datetime | None) -> str:
        """An instant in the zone, written the locale's way, with its offset named ("UTC", "UTC+8")."""
        if at is None:
            return "—"
        zone = ZoneInfo(self.zone)
        local = at.astimezone(zone)
        from babel.dates import format_datetime

        written = format_datetime(local, "medium", tzinfo=zone, locale=self._babel)
        offset = local.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        if not minutes:
            return f"{written} UTC"
        sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
        hours = f"{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
        return f"{written} UTC{sign}{hours}"

    def due(self, at: datetime) -> str:
        """A digest's due time in the zone: "Mon, Nov 30, 2026 09:00" / "2026年11月30日周一 09:00"."""
        from babel.dates import format_skeleton

        local = at.astimezone(ZoneInfo(self.zone))
        return (
            f"{format_skeleton('yMMMEd', local, locale=self._babel)} {format_skeleton('Hm', local, locale=self._babel)}"
        )

    def day(self, day: date) -> str:
        """A local day, short: "Mon, 11/30" / "11/30周一"."""
        from babel.dates import format_skeleton

        return format_skeleton("MEd", day, locale=self._babel)

    def percent(self, rate: float) -> str:
        """A share as a percentage with one decimal ("12.5%")."""
        from babel.numbers import format_percent

        return format_percent(rate, "#,##0.0%", locale=self._babel)

    def span(self, span: timedelta | None) -> str:
        """A duration the locale's way, to the unit that matters ("75 minutes", "75分钟")."""
        if span is None:
            return "—"
        from babel.dates import format_timedelta

        return format_timedelta(max(span, timedelta(0)), threshold=2, locale=self._babel)


def words_for(locale: str, zone: str = "UTC") -> Words:
    return Words(locale if locale in ("en", "zh-CN") else "en", zone)
