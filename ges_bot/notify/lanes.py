"""One lane per channel: the rows a worker holds for a channel, posted one at a time, in order.

This module owns the order of a channel's rows in one worker. A lane holds at most
``channel_queue`` rows and runs them through the worker's ``deliver`` (the pace → post → record
stages) one after the other; lanes of different channels run side by side. A row's
:class:`~ges_bot.notify.claims.Outcome` decides the fate of the rows behind it: a row sent back
(retry, pause) takes them back with it, at the same time; a broken channel kills them; rows
written with a sent mark (the rest of a recovery row, an alert's thread replies) join the lane.
A row is handed back instead of delivered when delivery is paused, the worker stops, or its
claim could lapse before the post is recorded. A lane that settles a row sets ``progress`` and
``wake`` so the worker claims the channel's next row at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ges_bot.errors import StoreError
from ges_bot.notify.channels import ChannelHealth
from ges_bot.notify.claims import Claimed, Outcome, Result
from ges_bot.notify.pacing import Pacer
from ges_bot.notify.policy import DeliveryPolicy
from ges_bot.notify.posting import Poster
from ges_bot.notify.recording import Recorder

__all__ = ["Lanes"]

# The delivery stages log as delivery: one logger name for operators to filter on, as before the split.
log = logging.getLogger("ges_bot.notify.delivery")


@dataclass(slots=True)
class _Lane:
    channel: str
    queue: deque[Claimed] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Lanes:
    """The worker's lanes, by channel (see the module docstring)."""

    def __init__(
        self,
        recorder: Recorder,
        poster: Poster,
        pacer: Pacer,
        health: ChannelHealth,
        *,
        deliver: Callable[[Claimed], Awaitable[Outcome]],
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
        in_flight: dict[int, Claimed],
        progress: asyncio.Event,
        wake: asyncio.Event,
    ) -> None:
        self.recorder = recorder
        self.poster = poster
        self.pacer = pacer
        self.health = health
        self.deliver = deliver
        self.policy = policy
        self.clock = clock
        self.in_flight = in_flight
        self.progress = progress
        self.wake = wake
        #: Set while the worker stops: a lane hands its rows back instead of delivering them.
        self.stopping = False
        self._lanes: dict[str, _Lane] = {}

    def full(self) -> list[str]:
        """Channels whose lane has no room: the worker claims none of their rows."""
        return [channel for channel, lane in self._lanes.items() if len(lane.queue) >= self.policy.channel_queue]

    @property
    def queued(self) -> bool:
        """Some lane holds a row."""
        return any(lane.queue for lane in self._lanes.values())

    async def drain(self) -> None:
        """Wait until every lane has settled its rows."""
        while True:
            tasks = [lane.task for lane in self._lanes.values() if lane.task is not None and not lane.task.done()]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        """Let each lane finish a post in progress and hand its other rows back (``stopping``
        must be set); cancel what is still running after ``timeout`` seconds."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()

    async def add(self, claimed: Claimed, now: datetime) -> None:
        """Queue a row just claimed in its channel's lane (starting the lane), or hand it back when
        an older row of the channel waits in the outbox or the lane is full."""
        item = claimed.item
        held = self.in_flight.get(item.id)
        if held is not None:
            # Our own claim ran out while the row waited in its lane (a slow Slack, a clock that
            # jumped) and we claimed it again: it is still queued once; the claim is just fresher.
            held.claimed_at = now
            return
        channel = item.delivery.channel
        lane = self._lanes.get(channel)
        if lane is None:
            lane = self._lanes[channel] = _Lane(channel)
        hold = self.recorder.hold(channel, item.id, now)
        if hold is not None:
            await self.recorder.send_back(item, hold, "waiting behind an earlier message to this channel")
            return
        if len(lane.queue) >= self.policy.channel_queue:
            await self.recorder.send_back(item, self._next_slot(channel, lane, now), "waiting for this channel's turn")
            return
        lane.queue.append(claimed)
        self.in_flight[item.id] = claimed
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._run_lane(lane), name=f"delivery:{channel}")

    def _next_slot(self, channel: str, lane: _Lane, now: datetime) -> datetime:
        """When a row that does not fit in its lane is due again: after the channel's next free
        turn and the rows queued before it, or after the last row of the channel sent back."""
        interval = timedelta(seconds=self.pacer.interval(channel))
        free_in = max(0.0, self.pacer.free_in(channel))
        slot = now + timedelta(seconds=free_in) + interval * max(1, len(lane.queue))
        latest = self.recorder.latest_sent_back(channel)
        if latest is not None and latest + interval > slot:
            slot = latest + interval
        return slot

    async def _run_lane(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                claimed = lane.queue[0]
                outcome = await self._next_in_lane(claimed)
                lane.queue.popleft()
                self.in_flight.pop(claimed.item.id, None)
                self.progress.set()
                # Room in this lane: claim the channel's next row now (it waits here for its turn).
                self.wake.set()
                for follow in outcome.follow:
                    self.in_flight[follow.item.id] = follow
                    if follow.item.reply is None:
                        # The rest of a recovery row: its recoveries go out one after the other.
                        lane.queue.appendleft(follow)
                    else:
                        # Thread replies: after the alerts already waiting in the lane.
                        lane.queue.append(follow)
                await self._after(lane, outcome)
        except StoreError as exc:
            # The rows still queued stay claimed; their leases expire and they are retried then.
            log.warning("delivery: database unavailable while delivering to %s: %s", lane.channel, exc)
        except Exception:
            log.exception("delivery: unexpected error in the lane of %s", lane.channel)
        finally:
            for claimed in lane.queue:
                self.in_flight.pop(claimed.item.id, None)
            lane.queue.clear()
            self.progress.set()
            if self._lanes.get(lane.channel) is lane:
                del self._lanes[lane.channel]

    async def _next_in_lane(self, claimed: Claimed) -> Outcome:
        item = claimed.item
        now = self.clock()
        paused = self.health.paused_until
        if paused is not None:
            await self.recorder.send_back(item, paused, "delivery paused: Slack refuses the bot token")
            return Outcome(Result.PAUSED, until=paused)
        if self.stopping:
            await self.recorder.send_back(item, now, "worker stopping")
            return Outcome(Result.SKIPPED)
        if now >= self.poster.post_by(claimed):
            # Posting now could outlive the claim and let another worker post it too.
            await self.recorder.send_back(item, now, "claim about to expire")
            return Outcome(Result.RETRY, until=now)
        return await self.deliver(claimed)

    async def _after(self, lane: _Lane, outcome: Outcome) -> None:
        """What a row's outcome means for the rows queued behind it in the lane."""
        if outcome.result in (Result.RETRY, Result.PAUSED) and outcome.until is not None:
            reason = "waiting behind an earlier message to this channel"
            if outcome.result is Result.PAUSED:
                reason = "delivery paused: Slack refuses the bot token"
            while lane.queue:
                claimed = lane.queue.popleft()
                await self.recorder.send_back(claimed.item, outcome.until, reason)
        elif outcome.result is Result.BROKEN:
            while lane.queue:
                claimed = lane.queue.popleft()
                await self.recorder.give_up(claimed.item, outcome.error)
