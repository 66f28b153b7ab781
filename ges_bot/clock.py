"""The bot's one reading of the wall clock.

Everything inside takes ``now`` (an aware UTC ``datetime``) or a :data:`Clock` it can be given;
:func:`utc_now` is the default the shell hands in, and tests hand in another.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now"]

#: A source of "now": aware UTC datetimes.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
