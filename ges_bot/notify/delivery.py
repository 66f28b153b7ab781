"""The outbox worker: claim due rows → render (pure) → post to Slack → record the ``ts``.

This module owns *how* a routed alert reaches Slack: claiming, per-channel pacing, per-row
backoff with caps and jitter, threading of recoveries, and what happens on a permanent failure.
It decides nothing about *who* gets *what* (routing did that before the row was written) and it
never reads the job center.

Policy:
- Retryable failures (429 with ``Retry-After``, 5xx, Slack's ``internal_error`` & co, timeouts,
  connection errors) put the row back with ``next_attempt_at`` = exponential backoff
  (base × 2^(attempt−1), capped) with jitter, never sooner than ``Retry-After``; the channel is
  paused for that long too. After ``max_attempts`` the row goes ``dead`` and is logged and counted
  (shown by ``/gesjobs status`` and ``/healthz``).
- Each channel gets at most one message per ``channel_interval_s`` (Slack allows ~1/s/channel).
- Permanent failures for a *channel* (``channel_not_found``, ``not_in_channel``, ``is_archived`` …):
  the row goes dead, the channel's subscriptions are marked broken (routing skips them), and
  whoever created those subscriptions gets a direct message saying what is wrong and how to fix it.
  Config-file subscriptions have no creator: they are logged at ERROR and shown as broken in Slack.
- Permanent failures of the *installation* (``invalid_auth``, ``token_revoked`` …) pause all
  delivery; rows stay pending (nothing is lost) and the error is logged at CRITICAL every pause.
- A payload Slack refuses (``invalid_blocks``, ``msg_too_long``) is re-sent once as plain text.

Crash window: a message is posted and *then* marked sent. A crash (or lost database) between the
two makes the row due again once its claim lease expires, so that one message can be posted twice.
No other path duplicates a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ges_bot import metrics
from ges_bot.domain import Delivery, EventKind, JobEvent, ProjectInfo, Subscription
from ges_bot.errors import RetryableSlackError, SlackDeliveryError, StoreError
from ges_bot.notify import render
from ges_bot.notify.slack import FailureScope, SlackGateway, SlackPermanentError
from ges_bot.store.api import OutboxItem, PostedMessage, Store

log = logging.getLogger(__name__)

_FAILURE_KINDS = frozenset({EventKind.FAILED, EventKind.PARTIALLY_FAILED})


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Tunables of the outbox worker, with the defaults a production bot uses."""

    batch_size: int = 20
    claim_lease_s: float = 120.0
    channel_interval_s: float = 1.0
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 300.0
    max_attempts: int = 100
    idle_poll_s: float = 1.0
    installation_pause_s: float = 300.0
    thread_reply_attempts: int = 3


def backoff_delay(attempt: int, policy: DeliveryPolicy, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1``: capped exponential with jitter in [50 %, 100 %],
    never less than Slack's ``Retry-After``."""
    raw = min(policy.backoff_cap_s, policy.backoff_base_s * (2 ** max(0, attempt - 1)))
    delay = raw * (0.5 + rng.random() / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


class DeliveryWorker:
    """Delivers outbox rows to Slack. Run one per process; several processes share the outbox."""

    def __init__(
        self,
        store: Store,
        gateway: SlackGateway,
        projects: Mapping[str, ProjectInfo],
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        policy: DeliveryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.projects = dict(projects)
        self.worker_id = worker_id
        self.clock = clock
        self.policy = policy or DeliveryPolicy()
        self.rng = rng or random.Random()
        self._channel_free_at: dict[str, float] = {}
        self._paused_until: datetime | None = None
        self._wake = asyncio.Event()
        self.last_installation_error: str | None = None

    # --- running -------------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows were written in this process: look now rather than at the next idle poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set. Store outages are logged and retried; nothing escapes."""
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except StoreError as exc:
                log.warning("delivery: database unavailable, retrying: %s", exc)
                handled = 0
            except Exception:
                log.exception("delivery: unexpected error; the worker carries on")
                handled = 0
            if handled:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.idle_poll_s):
                    stop_task = asyncio.ensure_future(stop.wait())
                    wake_task = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait({stop_task, wake_task}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stop_task.cancel()
                        wake_task.cancel()

    async def run_once(self) -> int:
        """Claim one batch of due rows and deliver them; returns how many rows were handled."""
        now = self.clock()
        if self._paused_until is not None and now < self._paused_until:
            return 0
        items = await self.store.claim_outbox(self.worker_id, now, self.policy.batch_size, self.policy.claim_lease_s)
        if not items:
            return 0
        by_channel: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_channel[item.delivery.channel].append(item)
        await asyncio.gather(*(self._deliver_channel(ch, rows) for ch, rows in by_channel.items()))
        return len(items)

    # --- one channel ---------------------------------------------------------------------------

    async def _deliver_channel(self, channel: str, items: Sequence[OutboxItem]) -> None:
        for index, item in enumerate(items):
            if self._paused_until is not None and self.clock() < self._paused_until:
                await self._postpone(items[index:], self._paused_until, "delivery paused")
                return
            waited = await self._wait_for_channel(channel)
            if not waited:
                free_at = self.clock() + timedelta(seconds=self._channel_wait(channel))
                await self._postpone(items[index:], free_at, "channel rate limited")
                return
            try:
                await self._deliver(item)
            except StoreError:
                raise
            except Exception:
                # A bug in rendering or bookkeeping must not lose the row: retry it later.
                log.exception("delivery: unexpected error delivering outbox row %s", item.id)
                await self._retry(item, RetryableSlackError("internal"), self.clock())

    def _channel_wait(self, channel: str) -> float:
        loop = asyncio.get_running_loop()
        return max(0.0, self._channel_free_at.get(channel, 0.0) - loop.time())

    async def _wait_for_channel(self, channel: str) -> bool:
        """Wait for the channel's next free slot; False when that is too far to hold the claim."""
        wait = self._channel_wait(channel)
        if wait > min(10.0, self.policy.claim_lease_s / 4):
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        self._channel_free_at[channel] = asyncio.get_running_loop().time() + self.policy.channel_interval_s
        return True

    def _pause_channel(self, channel: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._channel_free_at[channel] = max(self._channel_free_at.get(channel, 0.0), loop.time() + seconds)

    async def _postpone(self, items: Sequence[OutboxItem], until: datetime, reason: str) -> None:
        for item in items:
            await self.store.mark_retry(item.id, reason, until)

    # --- one row -------------------------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> None:
        delivery = item.delivery
        project = self.projects.get(delivery.project) or ProjectInfo(alias=delivery.project, project_id="")
        now = self.clock()
        try:
            if delivery.events and all(e.kind is EventKind.RECOVERED for e in delivery.events):
                ts = await self._deliver_recovery(item, project, now)
                await self.store.mark_sent(item.id, ts, self.clock(), None)
            else:
                await self._deliver_alert(item, project, now)
        except SlackPermanentError as exc:
            await self._permanent(item, exc)
        except SlackDeliveryError as exc:
            await self._retry(item, exc, self.clock())
        else:
            metrics.SLACK_SENDS.labels("sent").inc()
            self.last_installation_error = None
            observed = min((e.at for e in delivery.events), default=item.created_at)
            metrics.DELIVERY_LATENCY.observe(max(0.0, (self.clock() - observed).total_seconds()))

    async def _deliver_alert(self, item: OutboxItem, project: ProjectInfo, now: datetime) -> None:
        delivery = item.delivery
        rendered = render.render_alert(delivery, project, now)
        try:
            posted = await self.gateway.post(delivery.channel, rendered.message.text, rendered.message.blocks)
        except SlackPermanentError as exc:
            if exc.scope is not FailureScope.MESSAGE:
                raise
            log.error("delivery: Slack refused outbox row %s (%s); re-sending as plain text", item.id, exc.error)
            posted = await self.gateway.post(delivery.channel, rendered.message.text, [])
        job_names = tuple(sorted({e.job.job_name or "" for e in delivery.events if e.kind in _FAILURE_KINDS}))
        record = None
        if job_names:
            record = PostedMessage(
                channel=posted.channel,
                ts=posted.ts,
                project=delivery.project,
                graph=delivery.graph,
                job_names=job_names,
                outbox_id=item.id,
                posted_at=self.clock(),
            )
        await self.store.mark_sent(item.id, posted.ts, self.clock(), record)
        for reply in rendered.thread_replies:
            await self._post_reply(delivery.channel, posted.ts, reply)

    async def _post_reply(self, channel: str, thread_ts: str, message: render.SlackMessage) -> None:
        """Overflow of a large alert, in its thread. The main message already says how much more
        there is and offers Details, so a reply that still fails after a few tries is logged, not retried forever."""
        for attempt in range(1, self.policy.thread_reply_attempts + 1):
            await self._wait_for_channel_blocking(channel)
            try:
                await self.gateway.post(channel, message.text, message.blocks, thread_ts=thread_ts)
                return
            except SlackPermanentError as exc:
                log.error("delivery: thread reply refused in %s: %s", channel, exc.error)
                return
            except SlackDeliveryError as exc:
                delay = backoff_delay(attempt, self.policy, exc.retry_after, self.rng)
                self._pause_channel(channel, delay)
                log.warning("delivery: thread reply failed (%s), attempt %d", exc.error, attempt)
        metrics.SLACK_FAILURES.labels("thread_reply").inc()

    async def _wait_for_channel_blocking(self, channel: str) -> None:
        wait = self._channel_wait(channel)
        if wait > 0:
            await asyncio.sleep(min(wait, 30.0))
        self._channel_free_at[channel] = asyncio.get_running_loop().time() + self.policy.channel_interval_s

    async def _deliver_recovery(self, item: OutboxItem, project: ProjectInfo, now: datetime) -> str:
        """Post each recovery in the thread of the graph's last failure message and mark that
        message recovered; with no such message, post the recovery on its own."""
        delivery = item.delivery
        first_ts: str | None = None
        for event in delivery.events:
            original = await self.store.last_failure_message(
                delivery.channel, delivery.project, delivery.graph, event.job.job_name or ""
            )
            if original is None:
                single = replace(delivery, events=(event,))
                rendered = render.render_alert(single, project, now)
                posted = await self.gateway.post(delivery.channel, rendered.message.text, rendered.message.blocks)
                first_ts = first_ts or posted.ts
                continue
            reply = render.render_recovery_reply(event, project, now)
            posted = await self.gateway.post(delivery.channel, reply.text, reply.blocks, thread_ts=original.ts)
            first_ts = first_ts or posted.ts
            source = await self.store.outbox_item(original.outbox_id)
            if source is not None:
                updated = render.render_recovered_original(source.delivery, event, project, now)
                try:
                    await self.gateway.update(original.channel, original.ts, updated.text, updated.blocks)
                except SlackDeliveryError as exc:
                    # The thread reply already carries the news; a stale original is cosmetic.
                    log.warning("delivery: could not mark message %s recovered: %s", original.ts, exc.error)
            await self.store.mark_message_recovered(original.channel, original.ts)
        assert first_ts is not None
        return first_ts

    # --- failures ------------------------------------------------------------------------------

    async def _retry(self, item: OutboxItem, exc: SlackDeliveryError, now: datetime) -> None:
        category = _category(exc)
        metrics.SLACK_FAILURES.labels(category).inc()
        if item.attempts >= self.policy.max_attempts:
            log.error(
                "delivery: giving up on outbox row %s to %s after %d attempts (last error %s)",
                item.id,
                item.delivery.channel,
                item.attempts,
                exc.error,
            )
            metrics.SLACK_SENDS.labels("dead").inc()
            await self.store.mark_dead(item.id, f"gave up after {item.attempts} attempts: {exc.error}", now)
            return
        delay = backoff_delay(item.attempts, self.policy, exc.retry_after, self.rng)
        if exc.retry_after is not None:
            self._pause_channel(item.delivery.channel, exc.retry_after)
        log.warning(
            "delivery: outbox row %s to %s failed (%s), attempt %d; next try in %.1fs",
            item.id,
            item.delivery.channel,
            exc.error,
            item.attempts,
            delay,
        )
        metrics.SLACK_SENDS.labels("retry").inc()
        await self.store.mark_retry(item.id, exc.error, now + timedelta(seconds=delay))

    async def _permanent(self, item: OutboxItem, exc: SlackPermanentError) -> None:
        now = self.clock()
        metrics.SLACK_FAILURES.labels(exc.scope.value).inc()
        if exc.scope is FailureScope.INSTALLATION:
            # Nothing can be posted anywhere: keep the row (nothing lost) and pause everything.
            self._paused_until = now + timedelta(seconds=self.policy.installation_pause_s)
            self.last_installation_error = exc.error
            log.critical(
                "delivery: Slack rejects the bot token (%s); check SLACK_BOT_TOKEN and the app's scopes. "
                "Alerts are kept and delivery resumes automatically; pausing %.0fs",
                exc.error,
                self.policy.installation_pause_s,
            )
            await self.store.mark_retry(item.id, exc.error, self._paused_until)
            return
        metrics.SLACK_SENDS.labels("dead").inc()
        await self.store.mark_dead(item.id, exc.error, now)
        if exc.scope is FailureScope.MESSAGE:
            log.error("delivery: Slack refused outbox row %s even as plain text: %s", item.id, exc.error)
            return
        broken = await self.store.mark_channel_broken(item.delivery.channel, exc.error)
        log.error(
            "delivery: cannot post to channel %s (%s); its %d subscription(s) are marked broken",
            item.delivery.channel,
            exc.error,
            len(broken),
        )
        await self._tell_subscribers(item.delivery, exc.error, broken)

    async def _tell_subscribers(self, delivery: Delivery, error: str, subs: Sequence[Subscription]) -> None:
        people = sorted({s.created_by for s in subs if s.created_by and s.created_by[:1] in ("U", "W")})
        if not people:
            log.error(
                "delivery: no one to tell about channel %s (%s): fix the channel or the [[subscriptions]] in GES_BOT_CONFIG",
                delivery.channel,
                error,
            )
            return
        notice = render.render_broken_channel_notice(delivery.channel, error, [s.graph_pattern for s in subs])
        for user in people:
            try:
                dm = await self.gateway.open_dm(user)
                await self.gateway.post(dm, notice.text, notice.blocks)
            except SlackDeliveryError as exc:
                log.error("delivery: could not DM %s about channel %s: %s", user, delivery.channel, exc.error)


def _category(exc: SlackDeliveryError) -> str:
    if exc.error == "ratelimited":
        return "ratelimited"
    if exc.error.startswith("connection_error") or exc.error == "timeout":
        return "connection"
    return "server"


def events_summary(events: Sequence[JobEvent]) -> str:
    """A one-line description of events, for logs."""
    return ", ".join(f"{e.kind.value}:{e.job.job_id}" for e in events)
