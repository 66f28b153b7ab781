"""How fast each Slack channel may be posted to: turns, intervals and 429 slow-downs.

This module owns the delivery worker's *pace* stage. Slack allows about one message per second per
channel, so each channel has a next free moment (on the event loop's monotonic clock: this is about
Slack's real time, not the outbox clock tests compress) and an interval between posts. A 429 pauses
the channel for its ``Retry-After`` and doubles its interval (up to a cap); each post Slack takes
brings the interval back by 10 %. A turn that is too far away to wait for is answered with a
:class:`Busy` value (the caller hands the row back to the outbox), never an exception. It knows
nothing of rows, claims or the store.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from ges_bot import faultpoints

__all__ = ["Busy", "BusyReason", "Pacer"]


class BusyReason(StrEnum):
    """Why a row in hand is not posted now; the value is the reason the outbox records."""

    CHANNEL = "channel_busy"  # the channel's next turn is too far away
    CLAIM = "claim_running_out"  # the wait (for a turn or a posting slot) ate the claim's margin
    STOPPING = "worker_stopping"  # the worker stops: hand the row back, due at once


@dataclass(frozen=True, slots=True)
class Busy:
    """The row in hand cannot be posted now: hand it back, due in ``retry_after`` seconds (``None``:
    one channel interval)."""

    reason: BusyReason
    retry_after: float | None = None


class Pacer:
    """Per-channel turns: at most one post per channel interval; 429s slow a channel down.

    ``halt`` is set when the worker stops: a wait for a turn ends at once with
    :attr:`BusyReason.STOPPING` rather than post after the wait.
    """

    def __init__(self, *, interval_s: float, max_interval_s: float, halt: asyncio.Event) -> None:
        self.interval_s = interval_s
        self.max_interval_s = max_interval_s
        self._halt = halt
        # channel → loop time before which no chat.postMessage may go to it, and its interval.
        self._free_at: dict[str, float] = {}
        self._interval: dict[str, float] = {}

    def interval(self, channel: str) -> float:
        """Seconds between posts to ``channel`` now (the policy's, or more after 429s)."""
        return self._interval.get(channel, self.interval_s)

    def free_in(self, channel: str) -> float:
        """Seconds until the channel's next turn (negative or zero: free now)."""
        return self._free_at.get(channel, 0.0) - _loop_time()

    async def turn(self, channel: str, limit: float) -> Busy | None:
        """Wait for the channel's next posting slot and take it; :class:`Busy` instead when that is
        further away than ``limit`` seconds, or when the worker stops meanwhile."""
        wait = self.free_in(channel)
        if wait > limit:
            return Busy(BusyReason.CHANNEL, retry_after=wait)
        if wait > 0:
            await faultpoints.reached("delivery.pacing")
            try:
                # A worker that stops hands the row back at once rather than post it after the wait.
                await asyncio.wait_for(self._halt.wait(), timeout=wait)
            except TimeoutError:
                pass
            else:
                return Busy(BusyReason.STOPPING)
        self._free_at[channel] = _loop_time() + self.interval(channel)
        return None

    def rate_limited(self, channel: str, retry_after: float) -> None:
        """Slack said 429: nothing to the channel for ``retry_after`` seconds, and slower after."""
        until = _loop_time() + retry_after
        self._free_at[channel] = max(self._free_at.get(channel, 0.0), until)
        slower = min(self.max_interval_s, self.interval(channel) * 2)
        self._interval[channel] = max(slower, self.interval_s)

    def accepted(self, channel: str) -> None:
        """Slack took a post: the channel's interval recovers by 10 % (down to the policy's)."""
        current = self._interval.get(channel)
        if current is not None:
            faster = current * 0.9
            if faster <= self.interval_s:
                del self._interval[channel]
            else:
                self._interval[channel] = faster


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
