"""The values the delivery stages pass along: a claimed row, and what became of it.

This module owns the small records the worker's stages hand each other — :class:`Claimed` (a row
this worker holds, and since when), :class:`Outcome` (what became of it, and what that means for
the rows behind it) — and :class:`ClaimLost`, raised when recording finds the row is no longer
ours. The claim is a value passed to each stage, never ambient state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from ges_bot.store.api import OutboxItem

__all__ = ["ClaimLost", "Claimed", "Outcome", "Result"]


class ClaimLost(Exception):
    """The row was posted but is no longer this worker's (its claim ran out and another worker
    took it, or it was settled meanwhile): the mark-sent did not apply."""


class Result(Enum):
    SENT = "sent"
    RETRY = "retry"  # this row went back to the outbox; rows behind it follow it
    SKIPPED = "skipped"  # this row went back for an internal reason; rows behind it carry on
    DEAD = "dead"
    BROKEN = "broken"  # the channel refuses us: rows behind it die too
    PAUSED = "paused"  # the installation is refused: everything pauses
    LOST = "lost"  # the row is no longer ours (fenced out): leave it alone; rows behind it carry on


@dataclass(slots=True)
class Claimed:
    """A row this worker holds; ``claimed_at`` moves forward with each renewal."""

    item: OutboxItem
    claimed_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a row, and until when the rows behind it wait (``RETRY``, ``PAUSED``)."""

    result: Result
    until: datetime | None = None
    error: str = ""
    #: Rows written with the sent mark, claimed by this worker: the rest of a recovery row (posted
    #: next) and an alert's thread replies (queued at the end of the lane).
    follow: tuple[Claimed, ...] = ()
