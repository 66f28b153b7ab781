"""The emulated clock: real UTC time plus an offset that tests move forward (or set).

Owns nothing else. Job times, token expiry and scenario progression read this clock; the AK/SK
clock-skew rule deliberately does not (clients sign with their own, real clock).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ges_bot.clock import Clock, utc_now

__all__ = ["EmulatedClock"]


class EmulatedClock:
    """``now()`` = real time + offset. ``advance`` only moves forward; ``set`` may go anywhere."""

    def __init__(self, real: Clock = utc_now) -> None:
        self._real = real
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return self._real() + self._offset

    def real_now(self) -> datetime:
        return self._real()

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("advance_s must not be negative; use {'now': ...} to go back in time")
        self._offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._offset = when - self._real()
        return self.now()

    @property
    def offset(self) -> timedelta:
        return self._offset
