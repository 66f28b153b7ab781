"""What a claimed row posts: an alert (and its thread replies), a thread reply, or a recovery.

This module owns the step between a claimed row and the *post* stage: it renders the row
(``notify.render``), hands the message to :class:`~ges_bot.notify.posting.Poster` with the
``record`` that marks it sent (``notify.recording``), and threads recoveries:

- an alert with failures is remembered (``PostedMessage``) when it is marked sent, and its
  overflow (``thread_replies``) is written in the same transaction as rows of their own;
- a recovery is posted as a reply under the message that reported the very job it recovers, after
  that message is updated with a "✅ Recovered" banner (the update first, so a retry repeats only an
  idempotent update); with no such message it is posted on its own. A recovery row posts one
  recovery at a time: the row is marked sent with the first Slack takes, and its later events move
  to a new row written in the same transaction.

Each answer is :class:`~ges_bot.notify.posting.Sent` or a :class:`~ges_bot.notify.pacing.Busy`
value; Slack's refusals are raised as ``SlackDeliveryError``s for the worker to classify.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from ges_bot.domain import FAILURE_KINDS, Delivery, JobEvent, ProjectInfo
from ges_bot.notify import render
from ges_bot.notify.claims import Claimed
from ges_bot.notify.pacing import Busy
from ges_bot.notify.posting import Poster, Sent
from ges_bot.notify.recording import Recorder
from ges_bot.notify.slack import FailureScope, PermanentSlackError, Posted, SlackGateway
from ges_bot.store.api import OutboxStore, PostedMessage, ThreadReply

__all__ = ["Sender"]

# The delivery stages log as delivery: one logger name for operators to filter on, as before the split.
log = logging.getLogger("ges_bot.notify.delivery")


class Sender:
    """Renders a claimed row and posts it through the post stage (see the module docstring)."""

    def __init__(
        self,
        store: OutboxStore,
        gateway: SlackGateway,
        poster: Poster,
        recorder: Recorder,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.poster = poster
        self.recorder = recorder
        self.clock = clock

    async def alert(self, claim: Claimed, project: ProjectInfo, now: datetime) -> Sent | Busy:
        """An alert row: rendered, posted, and marked sent with what recoveries look it up by (when it
        reports failures) and its overflow as reply rows of their own."""
        item = claim.item
        delivery = item.delivery
        rendered = render.render_alert(delivery, project, now)
        failures = [e for e in delivery.events if e.kind in FAILURE_KINDS]

        async def record(posted: Posted) -> tuple[Claimed, ...]:
            remembered = None
            if failures:
                # Keyed by the channel as routed (what recoveries look it up by), with Slack's ts.
                remembered = PostedMessage(
                    channel=delivery.channel,
                    ts=posted.ts,
                    project=delivery.project,
                    graph=delivery.graph,
                    job_names=tuple(sorted({e.job.job_name or "" for e in failures})),
                    outbox_id=item.id,
                    posted_at=self.clock(),
                    job_ids=tuple(dict.fromkeys(e.job.job_id for e in failures)),
                )
            replies = [
                ThreadReply(parent_id=item.id, part=n, thread_ts=posted.ts, text=reply.text, blocks=tuple(reply.blocks))
                for n, reply in enumerate(rendered.thread_replies, start=1)
            ]
            return await self.recorder.sent(item, posted.ts, remembered, replies=replies)

        return await self.poster.post(delivery.channel, rendered.message, record=record, claim=claim)

    async def reply(self, claim: Claimed, reply: ThreadReply) -> Sent | Busy:
        """A thread reply row: the message as rendered with its alert, in the alert's thread."""
        message = render.SlackMessage(text=reply.text, blocks=list(reply.blocks))

        async def record(posted: Posted) -> tuple[Claimed, ...]:
            return await self.recorder.sent(item, posted.ts, None)

        item = claim.item
        return await self.poster.post(
            item.delivery.channel, message, thread_ts=reply.thread_ts, record=record, claim=claim
        )

    async def recovery(self, claim: Claimed, project: ProjectInfo, now: datetime) -> Sent | Busy:
        """The row's first recovery that Slack takes, as a reply under the message that reported the
        job it recovers (updating that message), or on its own when there is none; the row is
        marked sent with it and its later events move to a new row (posted next). A recovery that
        Slack refuses even as plain text is logged and skipped."""
        delivery = claim.item.delivery
        refused: PermanentSlackError | None = None
        for i, event in enumerate(delivery.events):
            rest = replace(delivery, events=delivery.events[i + 1 :]) if i + 1 < len(delivery.events) else None
            try:
                return await self._one_recovery(claim, event, rest, project, now)
            except PermanentSlackError as exc:
                if exc.scope is not FailureScope.MESSAGE:
                    raise
                log.error("delivery: recovery of job %s refused by Slack: %s", event.job.job_id, exc.error)
                refused = exc
        raise refused or PermanentSlackError("no_recovery_posted", FailureScope.MESSAGE)

    async def _one_recovery(
        self, claim: Claimed, event: JobEvent, rest: Delivery | None, project: ProjectInfo, now: datetime
    ) -> Sent | Busy:
        item = claim.item
        delivery = item.delivery
        original = None
        if event.recovers_job_id:
            original = await self.store.message_for_failure(delivery.channel, delivery.project, event.recovers_job_id)

        async def record(posted: Posted) -> tuple[Claimed, ...]:
            return await self.recorder.sent(item, posted.ts, None, rest=rest)

        if original is None:
            # Nobody here saw that failure (or it went elsewhere): say it on its own, touch nothing.
            rendered = render.render_alert(replace(delivery, events=(event,)), project, now)
            return await self.poster.post(delivery.channel, rendered.message, record=record, claim=claim)
        await self._update_original(original, event, project, now)
        reply = render.render_recovery_reply(event, project, now, locale=delivery.locale)
        sent = await self.poster.post(delivery.channel, reply, thread_ts=original.ts, record=record, claim=claim)
        if isinstance(sent, Sent) and not original.recovered:
            await self.store.mark_message_recovered(original.channel, original.ts)
        return sent

    async def _update_original(
        self, original: PostedMessage, event: JobEvent, project: ProjectInfo, now: datetime
    ) -> None:
        source = await self.store.outbox_item(original.outbox_id)
        if source is None:
            return
        message = render.render_recovered_original(source.delivery, event, project, now)
        try:
            await self.gateway.update(original.channel, original.ts, message.text, message.blocks)
        except PermanentSlackError as exc:
            if exc.scope is FailureScope.INSTALLATION:
                raise
            # Deleted, or too old to edit: the reply in the thread still carries the news.
            log.warning(
                "delivery: could not mark message %s in %s recovered: %s", original.ts, original.channel, exc.error
            )
