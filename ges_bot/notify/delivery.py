"""The outbox worker: claim due rows → lane → render (pure) → pace → post to Slack → record the ``ts``.

This module owns *how* a routed alert reaches Slack, as a pipeline of stages it wires together
and runs: it claims (only what the lanes have room for), renews its claims while it lives, and
stops gracefully; each stage is a module of its own — ``notify.lanes`` (per-channel order),
``notify.sending`` (what a row posts; threading of recoveries), ``notify.pacing`` (turns, 429
intervals), ``notify.posting`` (the post and its slot), ``notify.recording`` (fenced state changes),
``notify.failures`` (what a failure becomes) and ``notify.channels`` (broken channels, the
installation pause). The stages pass values: the claim (``notify.claims.Claimed``), the outcome,
and ``pacing.Busy`` for "not now". This docstring describes the behaviour of the whole. It decides
nothing about *who* gets *what* (routing did that before the row was written), never reads the job
center, and never renders anything itself (``notify.render`` does).

Lanes and pacing
----------------
Claimed rows go to one *lane* per channel. A lane posts its rows one at a time, in outbox order,
at most one ``chat.postMessage`` per ``channel_interval_s`` (Slack allows about one message per
second per channel); lanes of different channels run side by side. A lane holds at most
``channel_queue`` rows (one by default: the row it posts next), and the worker claims only what its
lanes have room for — the oldest due rows of each channel, none of a channel whose lane is full or
in which another worker holds a live claim (that worker paces the channel) — so a channel's
backlog stays unclaimed in the outbox, free for whoever has room, and one busy channel never fills
the worker. A lane that settles a row wakes the worker to claim the channel's next one, which then
waits in the lane for its turn. (A row that does not fit all the same goes back to the outbox
with ``next_attempt_at`` at its expected turn.) Rows of a channel never overtake each other in one worker: a row newer than a row of
the same channel that went back to the outbox waits behind it (so a recovery is never posted
before the failure it threads under). The one exception is a row that hit a bug of ours (an
unexpected exception): it is retried with backoff while the rows behind it go on.

Failures
--------
- Retryable (429 with ``Retry-After``, 5xx, Slack's ``internal_error`` & co, timeouts,
  connection errors): the row goes back with ``next_attempt_at`` = now + a delay
  (:func:`backoff_delay`): Slack's ``Retry-After`` with a little jitter for a 429, else capped
  exponential backoff with jitter. The rows queued behind it in its lane go back to the same
  time (so an outage costs one try per channel per backoff step, not one per row). A 429 also
  pauses the channel for ``Retry-After`` in real time and doubles its pacing interval, which
  then recovers by 10 % per accepted post. A row claimed ``max_attempts`` times that fails again
  goes ``dead``: logged at ERROR, counted, shown by ``/gesjobs status`` and ``/healthz``.
  (``attempts`` counts claims, so a row sent back for pacing or behind another counts one more.)
- Permanent for a *channel* (``channel_not_found``, ``not_in_channel``, ``is_archived`` …): the
  row goes dead, and so do the rows queued behind it for that channel; the channel's database
  subscriptions are marked broken (routing skips them; ``/gesjobs status`` lists them) and each
  person who created one of them gets a direct message saying what is wrong and how to fix it
  (once, when the subscription becomes broken). Config-file subscriptions have no creator and are
  not stored: the failure is logged at ERROR and put in ``notes`` (``Services.notes``, shown as a
  problem by ``/gesjobs status`` and the Home tab) until a post to that channel succeeds again.
- Permanent for the *installation* (``invalid_auth``, ``token_revoked``, ``missing_scope`` …):
  delivery pauses for ``installation_pause_s``; rows stay pending (nothing is lost) and the error
  is logged at CRITICAL and put in ``notes``; delivery resumes by itself once Slack accepts the
  token again.
- A payload Slack refuses (``invalid_blocks``, ``msg_too_long`` …) is re-sent once as plain text
  (the rendered fallback ``text``); if that is refused too, the row goes dead with an ERROR log.

Threading
---------
An alert with failures is remembered (``PostedMessage``: channel, ts, graph, job names and the
ids of the failed jobs it reported). A ``recovered`` event is posted as a reply in the thread of
the message that reported the very job it recovers (``JobEvent.recovers_job_id``, looked up with
``Store.message_for_failure``), and that message is updated (``chat.update``) with a
"✅ Recovered" banner and no buttons; when no message reported that job (it failed before the bot
watched, was muted, or went to other channels), the recovery is posted on its own and no other
message is touched. The update goes first, so a retry repeats only an idempotent update, never a
reply (a message that reported several failures shows the banner of its latest recovery). A
recovery row posts one recovery at a time: the row is marked sent with the first one Slack takes,
and its later events move to a new row written in the same transaction (claimed by this worker
and posted next), so a recovery that was recorded is never posted again.

An alert's overflow (``thread_replies``) is durable: when the alert is marked sent, its replies
are written in the same transaction as outbox rows of their own (``ThreadReply``: the alert's
row, the reply's part number, the alert's ``ts``, the reply as rendered), claimed by this worker
and queued at the end of the channel's lane, so they go out in order after the alerts already
waiting there. They are retried like any row; a worker that dies leaves them claimed and another
worker posts them once the claim expires.

Live claims
-----------
A claim lasts ``claim_lease_s`` (15 s in production) unless renewed; while the worker runs, a
heartbeat renews the claims it holds (``Store.renew_claims``, every ``heartbeat_interval``), so a
row waiting for its turn or being posted stays claimed however slow the channel, and the rows of a
worker that died (which releases nothing) are free again one lease after its last heartbeat. A
renewal is fenced like every other change: a worker that stalled past its lease cannot renew a
claim another worker has taken. A worker that stops finishes the posts in flight and hands every
other row back due at once — a row waiting for its channel's turn included (``_halt``).

Duplicates: the crash window
----------------------------
A message is posted and *then* its row is marked sent. Each such post→mark-sent section holds one
of the worker's ``max_concurrent_posts`` slots (taken after the wait for the channel's turn, just
before the Slack call — never across a pacing wait — and released once the row is marked sent),
and every outbox row is one message (an overflow reply or a further recovery is a row of its
own). So **a crash of the worker (kill -9, power loss) can re-post at most
``max_concurrent_posts`` messages, each at most once**: a row whose post Slack accepted and whose
mark did not happen stays claimed, and once its claim lease (``claim_lease_s``) expires it is due
again and posted a second time; rows queued behind it are delayed, not doubled. A database that
stays unreachable through ``record_attempts`` tries (about 6 s) after a post has the same effect
on that one message. Likewise a post that reached Slack although we saw a timeout, a dropped
connection or a 5xx is posted again on retry. No other path duplicates a message: a row is
claimed by one worker at a time; a worker never queues a row it already holds; rows are re-sent
only after a failure; a row whose claim has less than ``lease_margin_s`` left (checked before its
turn, and again once a posting slot is free) is handed back instead of posted — the runtime keeps
that margin above the Slack timeout plus a few seconds, so a post that starts is recorded before
the claim ends (the heartbeat keeps a live worker's claims above the margin). Should a post outlive its claim all the same, the fencing catches it: every state
change of a row (``mark_sent``, ``mark_retry``, ``mark_dead``) applies only while the row is
pending and claimed by this worker, so a worker whose claim ran out never records over the row's
new holder nor sets a row that was sent since back to pending — it logs the lost claim and
leaves the row alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime

from ges_bot import metrics
from ges_bot.domain import EventKind, ProjectInfo
from ges_bot.errors import RetryableSlackError, SlackDeliveryError, StoreError
from ges_bot.notify import render
from ges_bot.notify.channels import NOTE_INSTALLATION, ChannelHealth
from ges_bot.notify.claims import Claimed, ClaimLost, Outcome, Result
from ges_bot.notify.failures import Failures, events_summary
from ges_bot.notify.lanes import Lanes
from ges_bot.notify.pacing import Busy, Pacer
from ges_bot.notify.policy import DeliveryPolicy, backoff_delay
from ges_bot.notify.posting import Poster
from ges_bot.notify.recording import Recorder
from ges_bot.notify.sending import Sender
from ges_bot.notify.slack import FailureCategory, PermanentSlackError, Posted, SlackGateway
from ges_bot.store.api import OutboxStore

__all__ = ["NOTE_INSTALLATION", "DeliveryPolicy", "DeliveryWorker", "backoff_delay", "events_summary"]

log = logging.getLogger(__name__)


class DeliveryWorker:
    """Delivers outbox rows to Slack. Run one per process; several processes share the outbox.

    ``clock`` gives the time used for the outbox (claims, ``next_attempt_at``, pauses); tests pass
    a compressed clock. Pacing and ``Retry-After`` pauses of a channel are *also* kept on the event
    loop's monotonic clock, because they are about Slack's real time. ``notes`` (e.g.
    ``Services.notes``) receives problems a person must see in ``/gesjobs status``.
    """

    def __init__(
        self,
        store: OutboxStore,
        gateway: SlackGateway,
        projects: Mapping[str, ProjectInfo],
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        policy: DeliveryPolicy | None = None,
        rng: random.Random | None = None,
        notes: MutableMapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self.projects = dict(projects)
        self.worker_id = worker_id
        self.clock = clock
        self.policy = policy or DeliveryPolicy()
        self.rng = rng or random.Random()
        self.notes: MutableMapping[str, str] = notes if notes is not None else {}
        # outbox id → the claim this worker holds on it (queued in a lane or being posted).
        self._in_flight: dict[int, Claimed] = {}
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        # Set when the worker stops: a lane waiting for its channel's turn hands its row back.
        self._halt = asyncio.Event()
        self.pacer = Pacer(
            interval_s=self.policy.channel_interval_s,
            max_interval_s=self.policy.max_channel_interval_s,
            halt=self._halt,
        )
        self.health = ChannelHealth(
            store,
            gateway,
            self.pacer,
            post=self._post_dm,
            policy=self.policy,
            clock=clock,
            rng=self.rng,
            notes=self.notes,
        )
        self.poster = Poster(gateway, self.pacer, policy=self.policy, clock=clock)
        self.recorder = Recorder(store, worker_id=worker_id, policy=self.policy, clock=clock, in_flight=self._in_flight)
        self.lanes = Lanes(
            self.recorder,
            self.poster,
            self.pacer,
            self.health,
            deliver=self._deliver,
            policy=self.policy,
            clock=clock,
            in_flight=self._in_flight,
            progress=self._progress,
            wake=self._wake,
        )
        self.sender = Sender(store, gateway, self.poster, self.recorder, clock=clock)
        self.failures = Failures(self.recorder, self.pacer, self.health, policy=self.policy, clock=clock, rng=self.rng)

    @property
    def store(self) -> OutboxStore:
        return self._store

    @store.setter
    def store(self, store: OutboxStore) -> None:
        # The stages write through the worker's store, whichever it is now (tests swap one in).
        self._store = self.health.store = self.recorder.store = self.sender.store = store

    @property
    def gateway(self) -> SlackGateway:
        return self._gateway

    @gateway.setter
    def gateway(self, gateway: SlackGateway) -> None:
        # Likewise the Slack gateway the stages post, update and open DMs through.
        self._gateway = self.health.gateway = self.poster.gateway = self.sender.gateway = gateway

    # --- running -------------------------------------------------------------------------------

    @property
    def paused_until(self) -> datetime | None:
        """Until when delivery is paused by an installation error (``None``: not paused)."""
        return self.health.paused_until

    @property
    def last_installation_error(self) -> str | None:
        """The Slack error that paused all delivery, until a post succeeds again."""
        return self.health.last_installation_error

    @property
    def broken_config_channels(self) -> dict[str, str]:
        """Channels of config-file subscriptions that Slack refuses (channel → error)."""
        return self.health.broken_config_channels

    @property
    def in_flight(self) -> int:
        """Rows claimed by this worker and not yet settled."""
        return len(self._in_flight)

    @property
    def idle(self) -> bool:
        """Nothing claimed and nothing queued in a lane."""
        return not self._in_flight and not self.lanes.queued

    def wake(self) -> None:
        """New rows were written in this process: look now rather than at the next idle poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then hand back what is still queued. Store outages are
        logged and retried; nothing escapes."""
        self.lanes.stopping = False
        self._halt.clear()
        failures = 0
        heartbeat = asyncio.create_task(self._heartbeat(), name="delivery:heartbeat")
        try:
            while not stop.is_set():
                room = self.policy.batch_size - len(self._in_flight)
                claimed = 0
                try:
                    if room > 0 and self.paused_until is None:
                        claimed = await self._claim_and_dispatch(room)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    if isinstance(exc, StoreError):
                        log.warning("delivery: database unavailable (try %d), retrying: %s", failures, exc)
                    else:
                        log.exception("delivery: unexpected error (try %d); the worker carries on", failures)
                    # Back off (capped) so that a long database outage is not a busy loop of errors.
                    await self._wait(stop, self._wake, min(30.0, self.policy.idle_poll_s * 2.0 ** min(failures, 10)))
                    continue
                if claimed >= room:
                    # There may be more due right now, but there is no room for it: wait for a lane.
                    await self._wait(stop, self._progress, self.policy.idle_poll_s)
                else:
                    # Look again when the next row this worker sent back for its turn is due, so
                    # that a paced backlog goes out at its pace rather than at the idle poll's.
                    await self._wait(stop, self._wake, self._until_next_turn())
        finally:
            try:
                await self._shutdown()
            finally:
                # Only now: the rows in hand stay renewed until their lanes have settled them.
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)

    async def _heartbeat(self) -> None:
        """Renew the claims of the rows in hand while the worker lives, so that a claim can be short
        (a dead worker's rows wait one lease at most) and still outlast a slow channel."""
        interval = self.policy.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            await self.renew()

    async def renew(self) -> int:
        """One heartbeat: renew the claims this worker holds; returns how many were renewed. A
        claim that is no longer ours (we stalled past the lease and another worker took the row)
        is not renewed, and the row is posted by no one but its new holder (``Poster.post_by``)."""
        held = dict(self._in_flight)
        if not held:
            return 0
        now = self.clock()
        try:
            renewed = await self.store.renew_claims(self.worker_id, list(held), now, self.policy.claim_lease_s)
        except StoreError as exc:
            log.warning("delivery: could not renew %d claim(s): %s", len(held), exc)
            return 0
        for outbox_id in renewed:
            claimed = held.get(outbox_id)
            if claimed is not None and claimed.claimed_at < now:
                claimed.claimed_at = now
        return len(renewed)

    def _until_next_turn(self) -> float:
        now = self.clock()
        due = self.recorder.next_due(now)
        if due is None:
            return self.policy.idle_poll_s
        return max(0.01, min(self.policy.idle_poll_s, (due - now).total_seconds()))

    async def _wait(self, stop: asyncio.Event, event: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
        event.clear()
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(event.wait())}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _shutdown(self) -> None:
        # Lanes finish a post in progress and hand every other row back (due at once), a row
        # waiting for its channel's turn included, so a restart need not wait for any lease.
        self.lanes.stopping = True
        self._halt.set()
        await self.lanes.close(timeout=self.policy.max_turn_wait_s + 15.0)
        self._in_flight.clear()

    async def run_once(self) -> int:
        """Claim one batch of due rows and deliver them (waiting until every lane is idle);
        returns how many rows were claimed. Tests and benchmarks step the worker with this."""
        if self.paused_until is not None:
            return 0
        claimed = await self._claim_and_dispatch(self.policy.batch_size)
        await self.drain()
        return claimed

    async def deliver_due(self, max_rounds: int = 1000) -> int:
        """:meth:`run_once` until nothing is due at ``clock()``; returns the rows claimed."""
        total = 0
        for _ in range(max_rounds):
            claimed = await self.run_once()
            if not claimed:
                break
            total += claimed
        return total

    async def drain(self) -> None:
        """Wait until every lane has settled its rows."""
        await self.lanes.drain()

    # --- claiming and dispatching ---------------------------------------------------------------

    async def _claim_and_dispatch(self, limit: int) -> int:
        now = self.clock()
        # Only what the lanes have room for: a row is claimed when its channel can take it next.
        busy = self.lanes.full()
        items = await self.store.claim_outbox(
            self.worker_id,
            now,
            limit,
            self.policy.claim_lease_s,
            per_channel=self.policy.channel_queue,
            busy=busy,
        )
        for item in items:  # oldest first: the order lanes keep
            await self.lanes.add(Claimed(item, now), now)
        return len(items)

    def channel_interval(self, channel: str) -> float:
        """Seconds between posts to ``channel`` now (the policy's, or more after 429s)."""
        return self.pacer.interval(channel)

    # --- one row --------------------------------------------------------------------------------

    def _project(self, alias: str) -> ProjectInfo:
        return self.projects.get(alias) or ProjectInfo(alias=alias, project_id="")

    async def _deliver(self, claim: Claimed) -> Outcome:
        item = claim.item
        delivery = item.delivery
        project = self._project(delivery.project)
        now = self.clock()
        try:
            if item.reply is not None:
                sent = await self.sender.reply(claim, item.reply)
            elif not delivery.events:
                await self.recorder.give_up(item, "nothing to deliver")
                return Outcome(Result.DEAD)
            elif all(e.kind is EventKind.RECOVERED for e in delivery.events):
                sent = await self.sender.recovery(claim, project, now)
            else:
                sent = await self.sender.alert(claim, project, now)
            if isinstance(sent, Busy):
                return await self.failures.busy(item, sent)
        except ClaimLost:
            return Outcome(Result.LOST)
        except PermanentSlackError as exc:
            return await self.failures.permanent(item, exc)
        except SlackDeliveryError as exc:
            return await self.failures.retry(item, exc)
        except StoreError:
            raise
        except Exception as exc:
            # A bug in rendering or bookkeeping must not lose the row (nor block its channel).
            log.exception("delivery: unexpected error delivering outbox row %s", item.id)
            outcome = await self.failures.retry(
                item,
                RetryableSlackError(f"internal: {type(exc).__name__}", category=FailureCategory.INTERNAL),
                keep_order=False,
            )
            return Outcome(Result.SKIPPED) if outcome.result is Result.RETRY else outcome
        metrics.SLACK_SENDS.labels("sent").inc()
        if item.reply is None:
            observed = min((e.at for e in delivery.events), default=item.created_at)
            metrics.DELIVERY_LATENCY.observe(max(0.0, (self.clock() - observed).total_seconds()))
        self.health.healthy(delivery.channel)
        return Outcome(Result.SENT, follow=sent.follow)

    async def _post_dm(self, channel: str, message: render.SlackMessage) -> Posted | Busy:
        sent = await self.poster.post(channel, message)
        return sent if isinstance(sent, Busy) else sent.posted
