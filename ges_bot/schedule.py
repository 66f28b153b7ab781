"""Digest schedules: "daily 09:00" or "weekly mon 09:00" in a zone, and when each digest is due.

Owns the arithmetic of digest times: the most recent due instant at ``now`` (DST-aware: 09:00 is
09:00 on the wall clock, whatever the offset that day), the previous one (where a digest's
period begins), the key that names a period (unique per channel in the store, so a digest is sent
once across replicas and restarts) and the text form used by ``/gesjobs digest`` and the
``[[digests]]`` config table. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WEEKDAYS", "DigestSchedule", "parse_schedule"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SCHEDULE_RE = re.compile(
    r"\s*(daily|weekly\s+(mon|tue|wed|thu|fri|sat|sun)[a-z]*)\s+([01]?[0-9]|2[0-3]):([0-5][0-9])\s*(always)?\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """A channel's digest: every day (``weekday`` ``None``) or every week on ``weekday`` (0 =
    Monday), at ``at`` on the wall clock of ``tz``. ``always``: post even when nothing ran.
    ``source`` is ``"db"`` (set from Slack) or ``"config"`` (``[[digests]]``, read-only in Slack).
    ``locale``: the language it is written in (``en`` or ``zh-CN``)."""

    channel: str
    at: time
    tz: str
    weekday: int | None = None
    always: bool = False
    team: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    source: str = "db"
    locale: str = "en"

    def __post_init__(self) -> None:
        if self.weekday is not None and not 0 <= self.weekday <= 6:
            raise ValueError("weekday must be 0 (Monday) … 6 (Sunday)")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.tz!r}; use an IANA name such as Asia/Shanghai") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def kind(self) -> str:
        return "daily" if self.weekday is None else "weekly"

    @property
    def text(self) -> str:
        """``daily 09:00`` / ``weekly mon 09:00`` (``parse_schedule`` reads it back)."""
        clock = f"{self.at.hour:02d}:{self.at.minute:02d}"
        words = f"daily {clock}" if self.weekday is None else f"weekly {WEEKDAYS[self.weekday]} {clock}"
        return words + (" always" if self.always else "")

    @property
    def period(self) -> timedelta:
        """The nominal length of a period (a DST day is an hour shorter or longer)."""
        return timedelta(days=1 if self.weekday is None else 7)

    def _at(self, day: datetime) -> datetime:
        # The wall-clock time on that local day; zoneinfo picks that day's offset.
        return datetime.combine(day.date(), self.at, tzinfo=self.zone).astimezone(UTC)

    def latest_due(self, now: datetime) -> datetime:
        """The most recent instant ≤ ``now`` at which a digest was due (aware UTC)."""
        local = now.astimezone(self.zone)
        for back in range(0, 9):
            day = local - timedelta(days=back)
            if self.weekday is not None and day.weekday() != self.weekday:
                continue
            due = self._at(day)
            if due <= now:
                return due
        raise AssertionError("a due time within 8 days always exists")

    def previous_due(self, due: datetime) -> datetime:
        """The due instant one period before ``due`` (same wall-clock time, a day or a week back)."""
        local = due.astimezone(self.zone)
        return self._at(local - self.period)

    def next_due(self, now: datetime) -> datetime:
        """The first due instant after ``now``."""
        local = now.astimezone(self.zone)
        for ahead in range(0, 9):
            day = local + timedelta(days=ahead)
            if self.weekday is not None and day.weekday() != self.weekday:
                continue
            due = self._at(day)
            if due > now:
                return due
        raise AssertionError("a due time within 8 days always exists")

    def period_key(self, due: datetime) -> str:
        """Names the period ending at ``due`` for this channel: ``daily 2026-11-30T09:00+08:00``."""
        return f"{self.kind} {due.astimezone(self.zone).isoformat(timespec='minutes')}"


def parse_schedule(text: str) -> tuple[time, int | None, bool]:
    """``daily 09:00`` / ``weekly mon 09:00`` [``always``] → (time, weekday, always). Raises ``ValueError``."""
    m = _SCHEDULE_RE.fullmatch(text)
    if not m:
        raise ValueError(f"schedule {text!r}: write `daily 09:00` or `weekly mon 09:00` (24-hour), optionally `always`")
    weekday = WEEKDAYS.index(m.group(2).lower()) if m.group(2) else None
    return time(int(m.group(3)), int(m.group(4))), weekday, bool(m.group(5))
