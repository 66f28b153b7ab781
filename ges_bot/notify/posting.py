"""The *post* stage of delivery: one paced ``chat.postMessage``, recorded before its slot is freed.

This module owns the moment a message goes to Slack: wait for the channel's turn
(``notify.pacing``), take one of ``max_concurrent_posts`` posting slots, post, and run the caller's
``record`` (the mark-sent) before giving the slot up — so at most ``max_concurrent_posts`` messages
are ever posted and not yet recorded, which is all a crash can post twice. A payload Slack refuses
is re-sent once as plain text. A row whose claim could lapse before the post is recorded is not
posted: the answer is a :class:`~ges_bot.notify.pacing.Busy` value, like a turn too far away.
It does not decide what a failure means (the worker does) nor what to post (the callers render).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ges_bot import faultpoints, metrics
from ges_bot.notify import render
from ges_bot.notify.claims import Claimed
from ges_bot.notify.pacing import Busy, BusyReason, Pacer
from ges_bot.notify.policy import DeliveryPolicy
from ges_bot.notify.slack import FailureScope, PermanentSlackError, Posted, SlackGateway

__all__ = ["Poster", "Record", "Sent"]

# The delivery stages log as delivery: one logger name for operators to filter on, as before the split.
log = logging.getLogger("ges_bot.notify.delivery")

#: Records a message Slack accepted; returns the rows written with the sent mark.
Record = Callable[[Posted], Awaitable[tuple[Claimed, ...]]]


@dataclass(frozen=True, slots=True)
class Sent:
    """A message Slack took, and the rows its ``record`` wrote."""

    posted: Posted
    follow: tuple[Claimed, ...] = ()


class Poster:
    """Paced, slot-bounded posts to Slack (see the module docstring)."""

    def __init__(
        self, gateway: SlackGateway, pacer: Pacer, *, policy: DeliveryPolicy, clock: Callable[[], datetime]
    ) -> None:
        self.gateway = gateway
        self.pacer = pacer
        self.policy = policy
        self.clock = clock
        # Post→mark-sent sections in flight: bounds what a crash can post twice (notify.delivery).
        self._posting = asyncio.Semaphore(max(1, policy.max_concurrent_posts))

    def post_by(self, claim: Claimed) -> datetime:
        """The time by which a row must be posted: its claim (renewed if we claimed it again while
        it waited in its lane) minus the margin."""
        return claim.claimed_at + timedelta(seconds=self.policy.claim_lease_s - self.policy.lease_margin_s)

    async def post(
        self,
        channel: str,
        message: render.SlackMessage,
        *,
        thread_ts: str | None = None,
        record: Record | None = None,
        claim: Claimed | None = None,
    ) -> Sent | Busy:
        """One paced ``chat.postMessage``, recorded by ``record`` before its posting slot is given
        up; a payload Slack refuses is re-sent once as plain text. ``claim`` is the row's claim (none
        for a DM): the post is never made when it could outlive it. Raises ``SlackDeliveryError``s."""
        busy = await self._turn(channel, claim)
        if busy is not None:
            return busy
        try:
            return await self._post_once(channel, message.text, message.blocks, thread_ts, record, claim)
        except PermanentSlackError as exc:
            if exc.scope is not FailureScope.MESSAGE or not message.blocks:
                raise
            log.error("delivery: Slack refused a message to %s (%s); re-sending it as plain text", channel, exc.error)
            metrics.SLACK_FAILURES.labels(exc.category.value).inc()
        busy = await self._turn(channel, claim)
        if busy is not None:
            return busy
        return await self._post_once(channel, message.text, [], thread_ts, record, claim)

    async def _turn(self, channel: str, claim: Claimed | None) -> Busy | None:
        limit = self.policy.max_turn_wait_s
        if claim is not None:
            # Never wait past the point where the claim could lapse before the post is made.
            limit = min(limit, (self.post_by(claim) - self.clock()).total_seconds())
        return await self.pacer.turn(channel, limit)

    async def _post_once(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None,
        record: Record | None,
        claim: Claimed | None,
    ) -> Sent | Busy:
        # The slot is taken after the channel's turn (never held across pacing waits) and kept
        # until the message is recorded: at most max_concurrent_posts messages are ever posted and
        # not yet recorded, which is all a crash can post twice.
        async with self._posting:
            if claim is not None and self.clock() >= self.post_by(claim):
                # The wait for a slot ate the claim's margin: posting now could outlive the claim.
                return Busy(BusyReason.CLAIM, retry_after=0.0)
            await faultpoints.reached("delivery.claimed")
            posted = await self.gateway.post(channel, text, blocks, thread_ts=thread_ts)
            self.pacer.accepted(channel)
            await faultpoints.reached("delivery.posted")
            follow = await record(posted) if record is not None else ()
        return Sent(posted, follow)
