"""The *record* stage of delivery: every change of a claimed row's state, fenced by the claim.

This module owns what the worker writes about a row it holds: marked sent (with the rows that
continue it — the rest of a recovery row, an alert's thread replies — tried again over a database
blip with tenacity, since a message that is out and not recorded is posted twice), sent back to
the outbox (due at a time, and remembered so the channel's newer rows wait behind it), or given up.
Each write applies only while the row is pending and claimed by this worker; one that no longer
is is logged and left to its new holder. It keeps the worker's rows in hand (``in_flight``, shared
with the worker) and the order of its channels' rows sent back; it decides no outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ges_bot import metrics
from ges_bot.domain import Delivery
from ges_bot.errors import StoreError
from ges_bot.notify.claims import Claimed, ClaimLost
from ges_bot.notify.policy import DeliveryPolicy
from ges_bot.store.api import MarkedSent, OutboxItem, OutboxStore, PostedMessage, ThreadReply

__all__ = ["Recorder"]

# The delivery stages log as delivery: one logger name for operators to filter on, as before the split.
log = logging.getLogger("ges_bot.notify.delivery")


class Recorder:
    """Fenced writes of a worker's rows (see the module docstring)."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        worker_id: str,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
        in_flight: dict[int, Claimed],
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.policy = policy
        self.clock = clock
        # outbox id → the claim this worker holds on it (queued in a lane or being posted).
        self.in_flight = in_flight
        # channel → {outbox id: next_attempt_at} of rows this worker sent back, to keep order.
        self._due: dict[str, dict[int, datetime]] = {}

    def latest_sent_back(self, channel: str) -> datetime | None:
        """When the last row of ``channel`` this worker sent back is due."""
        return max(self._due.get(channel, {}).values(), default=None)

    def next_due(self, now: datetime) -> datetime | None:
        """The earliest time a row this worker sent back comes due after ``now``."""
        return min((when for rows in self._due.values() for when in rows.values() if when > now), default=None)

    async def sent(
        self,
        item: OutboxItem,
        ts: str,
        remembered: PostedMessage | None,
        *,
        replies: Sequence[ThreadReply] = (),
        rest: Delivery | None = None,
    ) -> tuple[Claimed, ...]:
        """``mark_sent`` (fenced, with the rows that continue this one), tried again over a database
        blip: the message is out, and failing to say so is the one way (besides a crash) it would
        be posted twice. Raises :class:`ClaimLost` when the row is no longer ours."""

        async def mark() -> tuple[MarkedSent, datetime]:
            now = self.clock()
            marked = await self.store.mark_sent(
                item.id,
                ts,
                now,
                remembered,
                worker=self.worker_id,
                replies=replies,
                rest=rest,
                lease_seconds=self.policy.claim_lease_s,
            )
            return marked, now

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.record_attempts),
            wait=wait_exponential(multiplier=0.2, max=self.policy.inline_retry_cap_s),
            retry=retry_if_exception_type(StoreError),
            sleep=asyncio.sleep,
            reraise=True,
        )
        try:
            result: tuple[MarkedSent, datetime] = await retrying(mark)
        except StoreError as exc:
            log.error(
                "delivery: outbox row %s was posted to %s (ts %s) but could not be recorded: %s; "
                "it will be posted again once its claim expires",
                item.id,
                item.delivery.channel,
                ts,
                exc,
            )
            raise
        marked, now = result
        if not marked.applied:
            log.warning(
                "delivery: outbox row %s was posted to %s (ts %s) but is no longer ours (our claim ran out "
                "and another worker took it, or it was settled meanwhile); it may show twice",
                item.id,
                item.delivery.channel,
                ts,
            )
            raise ClaimLost(item.id)
        return tuple(Claimed(row, now) for row in marked.rows)

    def hold(self, channel: str, outbox_id: int, now: datetime) -> datetime | None:
        """When an older row of the channel that this worker sent back is due, if it is not yet."""
        sent_back = self._due.get(channel)
        if not sent_back:
            return None
        sent_back.pop(outbox_id, None)
        for key in [k for k, due in sent_back.items() if due <= now]:
            # Due already and not among the rows claimed before this one: another worker has it.
            del sent_back[key]
        older = [due for key, due in sent_back.items() if key < outbox_id]
        return max(older) if older else None

    async def send_back(self, item: OutboxItem, until: datetime, reason: str, *, keep_order: bool = True) -> None:
        """Return a claimed row to the outbox, due at ``until``; with ``keep_order``, newer rows of
        its channel claimed before then wait behind it."""
        self.in_flight.pop(item.id, None)
        if not await self.store.mark_retry(item.id, reason, until, worker=self.worker_id):
            _claim_lost(item, "hand it back")
            return
        if keep_order:
            self._due.setdefault(item.delivery.channel, {})[item.id] = until

    async def give_up(self, item: OutboxItem, error: str) -> None:
        """``mark_dead``, fenced: a row another worker holds by now is left to it."""
        self.in_flight.pop(item.id, None)
        if await self.store.mark_dead(item.id, error, self.clock(), worker=self.worker_id):
            metrics.SLACK_SENDS.labels("dead").inc()
        else:
            _claim_lost(item, "give it up")


def _claim_lost(item: OutboxItem, action: str) -> None:
    log.warning(
        "delivery: outbox row %s to %s is no longer ours (our claim ran out and another worker took it, "
        "or it was settled meanwhile); did not %s",
        item.id,
        item.delivery.channel,
        action,
    )
