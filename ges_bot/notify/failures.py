"""What a row that was not delivered becomes: back to the outbox, dead, or a pause of everything.

This module owns the delivery worker's failure handling, by the error's kind
(``FailureCategory`` and ``FailureScope``, both set once by ``notify.slack.classify``):

- a busy channel (a :class:`~ges_bot.notify.pacing.Busy` value, not an error): back to the outbox
  at the channel's next turn (at once when the worker stops);
- retryable: back with capped, jittered backoff (Slack's ``Retry-After`` for a 429, which also
  slows the channel down); dead after ``max_attempts`` claims;
- permanent for the message: dead, logged; for the channel: dead, and the channel is broken
  (``notify.channels``); for the installation: back to the outbox and everything pauses.

Each answer is an :class:`~ges_bot.notify.claims.Outcome`, which the worker's lane applies to the
rows queued behind the row; every failure is counted by its category.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from ges_bot import metrics
from ges_bot.domain import JobEvent
from ges_bot.errors import FailureCategory, FailureScope, PermanentSlackError, SlackDeliveryError
from ges_bot.notify.channels import ChannelHealth
from ges_bot.notify.claims import Outcome, Result
from ges_bot.notify.pacing import Busy, BusyReason, Pacer
from ges_bot.notify.policy import DeliveryPolicy, backoff_delay
from ges_bot.notify.recording import Recorder
from ges_bot.store.api import OutboxItem

__all__ = ["Failures", "events_summary"]

# The delivery stages log as delivery: one logger name for operators to filter on, as before the split.
log = logging.getLogger("ges_bot.notify.delivery")


class Failures:
    """Turns a row's failure into its :class:`Outcome` (see the module docstring)."""

    def __init__(
        self,
        recorder: Recorder,
        pacer: Pacer,
        health: ChannelHealth,
        *,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
        rng: random.Random,
    ) -> None:
        self.recorder = recorder
        self.pacer = pacer
        self.health = health
        self.policy = policy
        self.clock = clock
        self.rng = rng

    async def busy(self, item: OutboxItem, busy: Busy) -> Outcome:
        """The row was not posted (its channel's turn, or a posting slot, is too far away for its
        claim; or the worker stops): back to the outbox, the rows behind it following."""
        now = self.clock()
        until = now + timedelta(seconds=busy.retry_after or self.pacer.interval(item.delivery.channel))
        reason = "waiting for this channel's rate limit"
        if busy.reason is BusyReason.CLAIM:
            reason = "claim about to expire"
        elif busy.reason is BusyReason.STOPPING:
            until, reason = now, "worker stopping"
        await self.recorder.send_back(item, until, reason)
        return Outcome(Result.RETRY, until=until)

    async def retry(self, item: OutboxItem, exc: SlackDeliveryError, *, keep_order: bool = True) -> Outcome:
        now = self.clock()
        channel = item.delivery.channel
        metrics.SLACK_FAILURES.labels(exc.category.value).inc()
        if item.attempts >= self.policy.max_attempts:
            log.error(
                "delivery: giving up on outbox row %s to %s after %d attempts (last error %s): %s",
                item.id,
                channel,
                item.attempts,
                exc.error,
                events_summary(item.delivery.events),
            )
            await self.recorder.give_up(item, f"gave up after {item.attempts} attempts: {exc.error}")
            return Outcome(Result.DEAD)
        delay = backoff_delay(item.attempts, self.policy, exc.retry_after, self.rng)
        if exc.category is FailureCategory.RATELIMITED:
            self.pacer.rate_limited(channel, delay)
        log.warning(
            "delivery: outbox row %s to %s failed (%s), attempt %d; next try in %.1fs",
            item.id,
            channel,
            exc.error,
            item.attempts,
            delay,
        )
        metrics.SLACK_SENDS.labels("retry").inc()
        until = now + timedelta(seconds=delay)
        await self.recorder.send_back(item, until, exc.error, keep_order=keep_order)
        return Outcome(Result.RETRY, until=until)

    async def permanent(self, item: OutboxItem, exc: PermanentSlackError) -> Outcome:
        channel = item.delivery.channel
        metrics.SLACK_FAILURES.labels(exc.category.value).inc()
        if exc.scope is FailureScope.INSTALLATION:
            # Nothing can be posted anywhere: keep the row (nothing lost) and pause everything.
            until = self.health.installation_refused(exc.error)
            await self.recorder.send_back(item, until, exc.error)
            return Outcome(Result.PAUSED, until=until)
        await self.recorder.give_up(item, exc.error)
        if exc.scope is FailureScope.MESSAGE:
            log.error(
                "delivery: Slack refused outbox row %s to %s even as plain text (%s): %s",
                item.id,
                channel,
                exc.error,
                events_summary(item.delivery.events),
            )
            return Outcome(Result.DEAD)
        await self.health.channel_broken(item.delivery, exc.error)
        return Outcome(Result.BROKEN, error=exc.error)


def events_summary(events: Sequence[JobEvent]) -> str:
    """A one-line description of events, for logs."""
    return ", ".join(f"{e.kind.value}:{e.job.job_id}" for e in events)
