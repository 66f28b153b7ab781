"""The outbox worker: claim due rows → render (pure) → post to Slack → record the ``ts``.

This module owns *how* a routed alert reaches Slack: claiming, per-channel lanes and pacing,
per-row backoff with caps and jitter, threading of recoveries, and what happens on a permanent
failure. It decides nothing about *who* gets *what* (routing did that before the row was written),
never reads the job center, and never renders anything itself (``notify.render`` does).

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
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from ges_bot import faultpoints, metrics
from ges_bot.domain import FAILURE_KINDS, Delivery, EventKind, JobEvent, ProjectInfo, Subscription
from ges_bot.errors import RetryableSlackError, SlackDeliveryError, StoreError
from ges_bot.notify import render
from ges_bot.notify.slack import FailureScope, PermanentSlackError, Posted, SlackGateway
from ges_bot.store.api import MarkedSent, OutboxItem, OutboxStore, PostedMessage, ThreadReply

__all__ = ["NOTE_INSTALLATION", "DeliveryPolicy", "DeliveryWorker", "backoff_delay", "events_summary"]

log = logging.getLogger(__name__)

#: ``notes`` key of an installation-wide Slack problem; channel problems use ``slack:<channel>``.
NOTE_INSTALLATION = "slack"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Tunables of the outbox worker, with the defaults a production bot uses."""

    #: Rows in flight at once (all channels together); also the most one claim takes.
    batch_size: int = 50
    #: How long a claim keeps other workers off a row unless renewed. A running worker renews its
    #: claims (``heartbeat_s``), so this is how long the rows of a worker that died wait.
    claim_lease_s: float = 15.0
    #: A row is handed back instead of posted when its claim has less than this left (it must
    #: cover a whole Slack call and its recording: the runtime keeps it above the Slack timeout).
    lease_margin_s: float = 13.0
    #: Seconds between renewals of the worker's claims while it runs (``None``: derived from the
    #: lease and the margin, see :attr:`heartbeat_interval`).
    heartbeat_s: float | None = None
    #: At most one chat.postMessage per channel per this many seconds. A 429 doubles a channel's
    #: interval (up to ``max_channel_interval_s``); each post Slack takes brings it back by 10 %.
    channel_interval_s: float = 1.0
    max_channel_interval_s: float = 30.0
    #: Rows one channel's lane holds at once; the rest waits in the outbox, unclaimed, for its
    #: turn. One: a row is claimed at most one turn (``channel_interval_s``) before it is posted,
    #: so a worker that dies holds back one row per channel, for one lease at most.
    channel_queue: int = 1
    #: A lane waits this long at most for its channel's turn before handing the row back.
    max_turn_wait_s: float = 10.0
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 300.0
    max_attempts: int = 100
    #: How often the worker looks for due rows when nothing woke it.
    idle_poll_s: float = 1.0
    installation_pause_s: float = 300.0
    #: DMs (about a broken channel) are tried this often, waiting at most ``inline_retry_cap_s``.
    inline_attempts: int = 3
    inline_retry_cap_s: float = 5.0
    #: Tries to record a posted message (``mark_sent``) before leaving it to the claim's expiry.
    record_attempts: int = 6
    #: Post→mark-sent sections in flight at once (all lanes together): the most messages a crash
    #: of the worker can leave posted and not recorded, i.e. post twice.
    max_concurrent_posts: int = 4

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between claim renewals: often enough that a claim never drops below the margin
        between two renewals (half the room the lease leaves above it), and at least three
        renewals per lease, so one late renewal costs no claim."""
        if self.heartbeat_s is not None:
            return self.heartbeat_s
        room = self.claim_lease_s - self.lease_margin_s
        return max(0.1, min(self.claim_lease_s / 3, room / 2))


def backoff_delay(attempt: int, policy: DeliveryPolicy, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1``.

    When Slack says when to come back (``Retry-After`` of a 429), that is the delay, plus up to
    10 % (at most 1 s) so that workers do not all return at the same instant; ``attempt`` does not
    matter then (it also counts rows sent back for pacing, and Slack's word is exact). Otherwise
    ``base × 2^(attempt−1)`` capped at ``backoff_cap_s``, times a jitter factor in [0.5, 1.0].
    """
    if retry_after is not None:
        return retry_after + rng.random() * min(1.0, retry_after * 0.1)
    exponent = min(max(0, attempt - 1), 62)
    raw = min(policy.backoff_cap_s, policy.backoff_base_s * (2.0**exponent))
    return float(raw * (0.5 + rng.random() / 2))


#: ``_ChannelBusy.error`` of a row handed back because the worker stops (due at once).
_STOPPING = "worker_stopping"


class _ChannelBusy(RetryableSlackError):
    """Internal: the channel's next turn (or a free posting slot) is too far away to wait for
    while holding the claim."""


class _ClaimLost(Exception):
    """Internal: the row was posted but is no longer this worker's (its claim ran out and another
    worker took it, or it was settled meanwhile): the mark-sent did not apply."""


class _Result(Enum):
    SENT = "sent"
    RETRY = "retry"  # this row went back to the outbox; rows behind it follow it
    SKIPPED = "skipped"  # this row went back for an internal reason; rows behind it carry on
    DEAD = "dead"
    BROKEN = "broken"  # the channel refuses us: rows behind it die too
    PAUSED = "paused"  # the installation is refused: everything pauses
    LOST = "lost"  # the row is no longer ours (fenced out): leave it alone; rows behind it carry on


@dataclass(slots=True)
class _Claimed:
    item: OutboxItem
    claimed_at: datetime


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: _Result
    until: datetime | None = None
    error: str = ""
    #: Rows written with the sent mark, claimed by this worker: the rest of a recovery row (posted
    #: next) and an alert's thread replies (queued at the end of the lane).
    follow: tuple[_Claimed, ...] = ()


@dataclass(slots=True)
class _Lane:
    channel: str
    queue: deque[_Claimed] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


#: Records a message Slack accepted; returns the rows written with the sent mark.
_Recorder = Callable[[Posted], Awaitable[tuple[_Claimed, ...]]]


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
        self.store = store
        self.gateway = gateway
        self.projects = dict(projects)
        self.worker_id = worker_id
        self.clock = clock
        self.policy = policy or DeliveryPolicy()
        self.rng = rng or random.Random()
        self.notes: MutableMapping[str, str] = notes if notes is not None else {}
        #: The Slack error that paused all delivery, until a post succeeds again.
        self.last_installation_error: str | None = None
        #: Channels of config-file subscriptions that Slack refuses (channel → error).
        self.broken_config_channels: dict[str, str] = {}
        self._paused_until: datetime | None = None
        self._lanes: dict[str, _Lane] = {}
        # outbox id → the claim this worker holds on it (queued in a lane or being posted).
        self._in_flight: dict[int, _Claimed] = {}
        # channel → {outbox id: next_attempt_at} of rows this worker sent back, to keep order.
        self._sent_back: dict[str, dict[int, datetime]] = {}
        # channel → loop time before which no chat.postMessage may go to it, and its interval.
        self._free_at: dict[str, float] = {}
        self._interval: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stopping = False
        # Set when the worker stops: a lane waiting for its channel's turn hands its row back.
        self._halt = asyncio.Event()
        # Post→mark-sent sections in flight: bounds what a crash can post twice (module docstring).
        self._posting = asyncio.Semaphore(max(1, self.policy.max_concurrent_posts))

    # --- running -------------------------------------------------------------------------------

    @property
    def paused_until(self) -> datetime | None:
        """Until when delivery is paused by an installation error (``None``: not paused)."""
        if self._paused_until is not None and self.clock() >= self._paused_until:
            return None
        return self._paused_until

    @property
    def in_flight(self) -> int:
        """Rows claimed by this worker and not yet settled."""
        return len(self._in_flight)

    @property
    def idle(self) -> bool:
        """Nothing claimed and nothing queued in a lane."""
        return not self._in_flight and not any(lane.queue for lane in self._lanes.values())

    def wake(self) -> None:
        """New rows were written in this process: look now rather than at the next idle poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then hand back what is still queued. Store outages are
        logged and retried; nothing escapes."""
        self._stopping = False
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
        is not renewed, and the row is posted by no one but its new holder (``_post_by``)."""
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
        due = [when for rows in self._sent_back.values() for when in rows.values() if when > now]
        if not due:
            return self.policy.idle_poll_s
        return max(0.01, min(self.policy.idle_poll_s, (min(due) - now).total_seconds()))

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
        self._stopping = True
        self._halt.set()
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.policy.max_turn_wait_s + 15.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()
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
        while True:
            tasks = [lane.task for lane in self._lanes.values() if lane.task is not None and not lane.task.done()]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- claiming and dispatching ---------------------------------------------------------------

    async def _claim_and_dispatch(self, limit: int) -> int:
        now = self.clock()
        # Only what the lanes have room for: a row is claimed when its channel can take it next.
        busy = [channel for channel, lane in self._lanes.items() if len(lane.queue) >= self.policy.channel_queue]
        items = await self.store.claim_outbox(
            self.worker_id,
            now,
            limit,
            self.policy.claim_lease_s,
            per_channel=self.policy.channel_queue,
            busy=busy,
        )
        for item in items:  # oldest first: the order lanes keep
            await self._dispatch(_Claimed(item, now), now)
        return len(items)

    async def _dispatch(self, claimed: _Claimed, now: datetime) -> None:
        item = claimed.item
        held = self._in_flight.get(item.id)
        if held is not None:
            # Our own claim ran out while the row waited in its lane (a slow Slack, a clock that
            # jumped) and we claimed it again: it is still queued once; the claim is just fresher.
            held.claimed_at = now
            return
        channel = item.delivery.channel
        lane = self._lanes.get(channel)
        if lane is None:
            lane = self._lanes[channel] = _Lane(channel)
        hold = self._hold(channel, item.id, now)
        if hold is not None:
            await self._send_back(item, hold, "waiting behind an earlier message to this channel")
            return
        if len(lane.queue) >= self.policy.channel_queue:
            await self._send_back(item, self._next_slot(channel, lane, now), "waiting for this channel's turn")
            return
        lane.queue.append(claimed)
        self._in_flight[item.id] = claimed
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._run_lane(lane), name=f"delivery:{channel}")

    def _hold(self, channel: str, outbox_id: int, now: datetime) -> datetime | None:
        """When an older row of the channel that this worker sent back is due, if it is not yet."""
        sent_back = self._sent_back.get(channel)
        if not sent_back:
            return None
        sent_back.pop(outbox_id, None)
        for key in [k for k, due in sent_back.items() if due <= now]:
            # Due already and not among the rows claimed before this one: another worker has it.
            del sent_back[key]
        older = [due for key, due in sent_back.items() if key < outbox_id]
        return max(older) if older else None

    def _next_slot(self, channel: str, lane: _Lane, now: datetime) -> datetime:
        """When a row that does not fit in its lane is due again: after the channel's next free
        turn and the rows queued before it, or after the last row of the channel sent back."""
        interval = timedelta(seconds=self.channel_interval(channel))
        free_in = max(0.0, self._free_at.get(channel, 0.0) - self._loop_time())
        slot = now + timedelta(seconds=free_in) + interval * max(1, len(lane.queue))
        latest = max(self._sent_back.get(channel, {}).values(), default=None)
        if latest is not None and latest + interval > slot:
            slot = latest + interval
        return slot

    async def _send_back(self, item: OutboxItem, until: datetime, reason: str, *, keep_order: bool = True) -> None:
        """Return a claimed row to the outbox, due at ``until``; with ``keep_order``, newer rows of
        its channel claimed before then wait behind it."""
        self._in_flight.pop(item.id, None)
        if not await self.store.mark_retry(item.id, reason, until, worker=self.worker_id):
            self._claim_lost(item, "hand it back")
            return
        if keep_order:
            self._sent_back.setdefault(item.delivery.channel, {})[item.id] = until

    async def _give_up(self, item: OutboxItem, error: str) -> None:
        """``mark_dead``, fenced: a row another worker holds by now is left to it."""
        self._in_flight.pop(item.id, None)
        if await self.store.mark_dead(item.id, error, self.clock(), worker=self.worker_id):
            metrics.SLACK_SENDS.labels("dead").inc()
        else:
            self._claim_lost(item, "give it up")

    def _claim_lost(self, item: OutboxItem, action: str) -> None:
        log.warning(
            "delivery: outbox row %s to %s is no longer ours (our claim ran out and another worker took it, "
            "or it was settled meanwhile); did not %s",
            item.id,
            item.delivery.channel,
            action,
        )

    # --- one channel ----------------------------------------------------------------------------

    async def _run_lane(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                claimed = lane.queue[0]
                outcome = await self._next_in_lane(claimed)
                lane.queue.popleft()
                self._in_flight.pop(claimed.item.id, None)
                self._progress.set()
                # Room in this lane: claim the channel's next row now (it waits here for its turn).
                self._wake.set()
                for follow in outcome.follow:
                    self._in_flight[follow.item.id] = follow
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
                self._in_flight.pop(claimed.item.id, None)
            lane.queue.clear()
            self._progress.set()
            if self._lanes.get(lane.channel) is lane:
                del self._lanes[lane.channel]

    async def _next_in_lane(self, claimed: _Claimed) -> _Outcome:
        item = claimed.item
        now = self.clock()
        paused = self.paused_until
        if paused is not None:
            await self._send_back(item, paused, "delivery paused: Slack refuses the bot token")
            return _Outcome(_Result.PAUSED, until=paused)
        if self._stopping:
            await self._send_back(item, now, "worker stopping")
            return _Outcome(_Result.SKIPPED)
        if now >= self._post_by(claimed):
            # Posting now could outlive the claim and let another worker post it too.
            await self._send_back(item, now, "claim about to expire")
            return _Outcome(_Result.RETRY, until=now)
        return await self._deliver(claimed)

    def _post_by(self, claimed: _Claimed) -> datetime:
        """The time by which a row must be posted: its claim (renewed if we claimed it again while
        it waited in its lane) minus the margin."""
        return claimed.claimed_at + timedelta(seconds=self.policy.claim_lease_s - self.policy.lease_margin_s)

    async def _after(self, lane: _Lane, outcome: _Outcome) -> None:
        """What a row's outcome means for the rows queued behind it in the lane."""
        if outcome.result in (_Result.RETRY, _Result.PAUSED) and outcome.until is not None:
            reason = "waiting behind an earlier message to this channel"
            if outcome.result is _Result.PAUSED:
                reason = "delivery paused: Slack refuses the bot token"
            while lane.queue:
                claimed = lane.queue.popleft()
                await self._send_back(claimed.item, outcome.until, reason)
        elif outcome.result is _Result.BROKEN:
            while lane.queue:
                claimed = lane.queue.popleft()
                await self._give_up(claimed.item, outcome.error)

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    async def _turn(self, channel: str, claim: _Claimed | None) -> None:
        """Wait for the channel's next posting slot and take it; raise :class:`_ChannelBusy` when
        that is further away than ``max_turn_wait_s`` or than the claim of the row in hand allows."""
        wait = self._free_at.get(channel, 0.0) - self._loop_time()
        limit = self.policy.max_turn_wait_s
        if claim is not None:
            # Never wait past the point where the claim could lapse before the post is made.
            limit = min(limit, (self._post_by(claim) - self.clock()).total_seconds())
        if wait > limit:
            raise _ChannelBusy("channel_busy", retry_after=wait)
        if wait > 0:
            await faultpoints.reached("delivery.pacing")
            try:
                # A worker that stops hands the row back at once rather than post it after the wait.
                await asyncio.wait_for(self._halt.wait(), timeout=wait)
            except TimeoutError:
                pass
            else:
                raise _ChannelBusy(_STOPPING)
        self._free_at[channel] = self._loop_time() + self.channel_interval(channel)

    def channel_interval(self, channel: str) -> float:
        """Seconds between posts to ``channel`` now (the policy's, or more after 429s)."""
        return self._interval.get(channel, self.policy.channel_interval_s)

    def _rate_limited(self, channel: str, retry_after: float) -> None:
        """Slack said 429: nothing to the channel for ``retry_after`` seconds, and slower after."""
        until = self._loop_time() + retry_after
        self._free_at[channel] = max(self._free_at.get(channel, 0.0), until)
        slower = min(self.policy.max_channel_interval_s, self.channel_interval(channel) * 2)
        self._interval[channel] = max(slower, self.policy.channel_interval_s)

    def _accepted(self, channel: str) -> None:
        current = self._interval.get(channel)
        if current is not None:
            faster = current * 0.9
            if faster <= self.policy.channel_interval_s:
                del self._interval[channel]
            else:
                self._interval[channel] = faster

    # --- one row --------------------------------------------------------------------------------

    def _project(self, alias: str) -> ProjectInfo:
        return self.projects.get(alias) or ProjectInfo(alias=alias, project_id="")

    async def _deliver(self, claim: _Claimed) -> _Outcome:
        item = claim.item
        delivery = item.delivery
        project = self._project(delivery.project)
        now = self.clock()
        try:
            if item.reply is not None:
                follow = await self._deliver_reply(claim, item.reply)
            elif not delivery.events:
                await self._give_up(item, "nothing to deliver")
                return _Outcome(_Result.DEAD)
            elif all(e.kind is EventKind.RECOVERED for e in delivery.events):
                follow = await self._deliver_recovery(claim, project, now)
            else:
                follow = await self._deliver_alert(claim, project, now)
        except _ClaimLost:
            return _Outcome(_Result.LOST)
        except PermanentSlackError as exc:
            return await self._permanent(item, exc)
        except SlackDeliveryError as exc:
            return await self._retry(item, exc)
        except StoreError:
            raise
        except Exception as exc:
            # A bug in rendering or bookkeeping must not lose the row (nor block its channel).
            log.exception("delivery: unexpected error delivering outbox row %s", item.id)
            outcome = await self._retry(item, RetryableSlackError(f"internal: {type(exc).__name__}"), keep_order=False)
            return _Outcome(_Result.SKIPPED) if outcome.result is _Result.RETRY else outcome
        metrics.SLACK_SENDS.labels("sent").inc()
        if item.reply is None:
            observed = min((e.at for e in delivery.events), default=item.created_at)
            metrics.DELIVERY_LATENCY.observe(max(0.0, (self.clock() - observed).total_seconds()))
        self._healthy(delivery.channel)
        return _Outcome(_Result.SENT, follow=follow)

    def _healthy(self, channel: str) -> None:
        """Slack took a message: forget installation and channel problems it disproves."""
        if self.last_installation_error is not None:
            log.warning("delivery: Slack accepts the bot token again; delivery resumed")
            self.last_installation_error = None
            self.notes.pop(NOTE_INSTALLATION, None)
        if self.broken_config_channels.pop(channel, None) is not None:
            log.warning("delivery: channel %s accepts alerts again", channel)
            self.notes.pop(f"{NOTE_INSTALLATION}:{channel}", None)

    async def _post(
        self,
        channel: str,
        message: render.SlackMessage,
        *,
        thread_ts: str | None = None,
        record: _Recorder | None = None,
        claim: _Claimed | None = None,
    ) -> tuple[Posted, tuple[_Claimed, ...]]:
        """One paced ``chat.postMessage``, recorded by ``record`` before its posting slot is given
        up; a payload Slack refuses is re-sent once as plain text. ``claim`` is the row's claim (none
        for a DM): the post is never made when it could outlive it. Returns what Slack said and the
        rows ``record`` wrote."""
        await self._turn(channel, claim)
        try:
            return await self._post_once(channel, message.text, message.blocks, thread_ts, record, claim)
        except PermanentSlackError as exc:
            if exc.scope is not FailureScope.MESSAGE or not message.blocks:
                raise
            log.error("delivery: Slack refused a message to %s (%s); re-sending it as plain text", channel, exc.error)
            metrics.SLACK_FAILURES.labels("message").inc()
        await self._turn(channel, claim)
        return await self._post_once(channel, message.text, [], thread_ts, record, claim)

    async def _post_once(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None,
        record: _Recorder | None,
        claim: _Claimed | None,
    ) -> tuple[Posted, tuple[_Claimed, ...]]:
        # The slot is taken after the channel's turn (never held across pacing waits) and kept
        # until the message is recorded: at most max_concurrent_posts messages are ever posted and
        # not yet recorded, which is all a crash can post twice.
        async with self._posting:
            if claim is not None and self.clock() >= self._post_by(claim):
                # The wait for a slot ate the claim's margin: posting now could outlive the claim.
                raise _ChannelBusy("claim_running_out", retry_after=0.0)
            await faultpoints.reached("delivery.claimed")
            posted = await self.gateway.post(channel, text, blocks, thread_ts=thread_ts)
            self._accepted(channel)
            await faultpoints.reached("delivery.posted")
            follow = await record(posted) if record is not None else ()
        return posted, follow

    async def _deliver_alert(self, claim: _Claimed, project: ProjectInfo, now: datetime) -> tuple[_Claimed, ...]:
        item = claim.item
        delivery = item.delivery
        rendered = render.render_alert(delivery, project, now)
        failures = [e for e in delivery.events if e.kind in FAILURE_KINDS]

        async def record(posted: Posted) -> tuple[_Claimed, ...]:
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
            return await self._record_sent(item, posted.ts, remembered, replies=replies)

        _, follow = await self._post(delivery.channel, rendered.message, record=record, claim=claim)
        return follow

    async def _deliver_reply(self, claim: _Claimed, reply: ThreadReply) -> tuple[_Claimed, ...]:
        """A thread reply row: the message as rendered with its alert, in the alert's thread."""
        message = render.SlackMessage(text=reply.text, blocks=list(reply.blocks))

        async def record(posted: Posted) -> tuple[_Claimed, ...]:
            return await self._record_sent(item, posted.ts, None)

        item = claim.item
        _, follow = await self._post(
            item.delivery.channel, message, thread_ts=reply.thread_ts, record=record, claim=claim
        )
        return follow

    async def _record_sent(
        self,
        item: OutboxItem,
        ts: str,
        remembered: PostedMessage | None,
        *,
        replies: Sequence[ThreadReply] = (),
        rest: Delivery | None = None,
    ) -> tuple[_Claimed, ...]:
        """``mark_sent`` (fenced, with the rows that continue this one), tried again over a database
        blip: the message is out, and failing to say so is the one way (besides a crash) it would
        be posted twice. Raises :class:`_ClaimLost` when the row is no longer ours."""
        for attempt in range(1, self.policy.record_attempts + 1):
            now = self.clock()
            try:
                marked: MarkedSent = await self.store.mark_sent(
                    item.id,
                    ts,
                    now,
                    remembered,
                    worker=self.worker_id,
                    replies=replies,
                    rest=rest,
                    lease_seconds=self.policy.claim_lease_s,
                )
            except StoreError as exc:
                if attempt == self.policy.record_attempts:
                    log.error(
                        "delivery: outbox row %s was posted to %s (ts %s) but could not be recorded: %s; "
                        "it will be posted again once its claim expires",
                        item.id,
                        item.delivery.channel,
                        ts,
                        exc,
                    )
                    raise
                await asyncio.sleep(min(self.policy.inline_retry_cap_s, 0.2 * 2.0 ** (attempt - 1)))
                continue
            if not marked.applied:
                log.warning(
                    "delivery: outbox row %s was posted to %s (ts %s) but is no longer ours (our claim ran out "
                    "and another worker took it, or it was settled meanwhile); it may show twice",
                    item.id,
                    item.delivery.channel,
                    ts,
                )
                raise _ClaimLost(item.id)
            return tuple(_Claimed(row, now) for row in marked.rows)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_inline(
        self, channel: str, message: render.SlackMessage, *, thread_ts: str | None = None, what: str
    ) -> Posted | None:
        """A best-effort post (a DM): a few tries with short capped waits, then a log line."""
        for attempt in range(1, self.policy.inline_attempts + 1):
            try:
                posted, _ = await self._post(channel, message, thread_ts=thread_ts)
                return posted
            except PermanentSlackError as exc:
                log.error("delivery: Slack refused the %s in %s: %s", what, channel, exc.error)
                break
            except SlackDeliveryError as exc:
                if attempt == self.policy.inline_attempts:
                    log.error("delivery: gave up on the %s in %s: %s", what, channel, exc.error)
                    break
                delay = min(self.policy.inline_retry_cap_s, backoff_delay(attempt, self.policy, None, self.rng))
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.policy.max_turn_wait_s))
                if exc.error == "ratelimited":
                    self._rate_limited(channel, exc.retry_after if exc.retry_after is not None else delay)
                log.warning("delivery: the %s in %s failed (%s), attempt %d", what, channel, exc.error, attempt)
                await asyncio.sleep(delay)
        metrics.SLACK_FAILURES.labels("inline").inc()
        return None

    # --- recoveries -----------------------------------------------------------------------------

    async def _deliver_recovery(self, claim: _Claimed, project: ProjectInfo, now: datetime) -> tuple[_Claimed, ...]:
        """The row's first recovery that Slack takes, as a reply under the message that reported the
        job it recovers (updating that message), or on its own when there is none; the row is
        marked sent with it and its later events move to a new row (posted next). A recovery that
        Slack refuses even as plain text is logged and skipped."""
        delivery = claim.item.delivery
        refused: PermanentSlackError | None = None
        for i, event in enumerate(delivery.events):
            rest = replace(delivery, events=delivery.events[i + 1 :]) if i + 1 < len(delivery.events) else None
            try:
                return await self._recover_one(claim, event, rest, project, now)
            except PermanentSlackError as exc:
                if exc.scope is not FailureScope.MESSAGE:
                    raise
                log.error("delivery: recovery of job %s refused by Slack: %s", event.job.job_id, exc.error)
                refused = exc
        raise refused or PermanentSlackError("no_recovery_posted", FailureScope.MESSAGE)

    async def _recover_one(
        self, claim: _Claimed, event: JobEvent, rest: Delivery | None, project: ProjectInfo, now: datetime
    ) -> tuple[_Claimed, ...]:
        item = claim.item
        delivery = item.delivery
        original = None
        if event.recovers_job_id:
            original = await self.store.message_for_failure(delivery.channel, delivery.project, event.recovers_job_id)

        async def record(posted: Posted) -> tuple[_Claimed, ...]:
            return await self._record_sent(item, posted.ts, None, rest=rest)

        if original is None:
            # Nobody here saw that failure (or it went elsewhere): say it on its own, touch nothing.
            rendered = render.render_alert(replace(delivery, events=(event,)), project, now)
            _, follow = await self._post(delivery.channel, rendered.message, record=record, claim=claim)
            return follow
        await self._update_original(original, event, project, now)
        reply = render.render_recovery_reply(event, project, now)
        _, follow = await self._post(delivery.channel, reply, thread_ts=original.ts, record=record, claim=claim)
        if not original.recovered:
            await self.store.mark_message_recovered(original.channel, original.ts)
        return follow

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

    # --- failures -------------------------------------------------------------------------------

    async def _retry(self, item: OutboxItem, exc: SlackDeliveryError, *, keep_order: bool = True) -> _Outcome:
        now = self.clock()
        channel = item.delivery.channel
        if isinstance(exc, _ChannelBusy):
            until = now + timedelta(seconds=exc.retry_after or self.channel_interval(channel))
            reason = "waiting for this channel's rate limit"
            if exc.error == "claim_running_out":
                reason = "claim about to expire"
            elif exc.error == _STOPPING:
                until, reason = now, "worker stopping"
            await self._send_back(item, until, reason)
            return _Outcome(_Result.RETRY, until=until)
        metrics.SLACK_FAILURES.labels(_category(exc)).inc()
        if item.attempts >= self.policy.max_attempts:
            log.error(
                "delivery: giving up on outbox row %s to %s after %d attempts (last error %s): %s",
                item.id,
                channel,
                item.attempts,
                exc.error,
                events_summary(item.delivery.events),
            )
            await self._give_up(item, f"gave up after {item.attempts} attempts: {exc.error}")
            return _Outcome(_Result.DEAD)
        delay = backoff_delay(item.attempts, self.policy, exc.retry_after, self.rng)
        if exc.error == "ratelimited":
            self._rate_limited(channel, delay)
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
        await self._send_back(item, until, exc.error, keep_order=keep_order)
        return _Outcome(_Result.RETRY, until=until)

    async def _permanent(self, item: OutboxItem, exc: PermanentSlackError) -> _Outcome:
        now = self.clock()
        channel = item.delivery.channel
        metrics.SLACK_FAILURES.labels(exc.scope.value).inc()
        if exc.scope is FailureScope.INSTALLATION:
            # Nothing can be posted anywhere: keep the row (nothing lost) and pause everything.
            until = now + timedelta(seconds=self.policy.installation_pause_s)
            self._paused_until = until
            self.last_installation_error = exc.error
            self.notes[NOTE_INSTALLATION] = (
                f"Slack refuses the bot token ({exc.error}): no alert can be posted. Check SLACK_BOT_TOKEN, "
                "SLACK_API_URL and the app's scopes; alerts are kept and go out once Slack accepts the token."
            )
            log.critical(
                "delivery: Slack refuses the bot token (%s); check SLACK_BOT_TOKEN, SLACK_API_URL and the app's "
                "scopes. Alerts are kept and delivery resumes by itself; pausing %.0fs",
                exc.error,
                self.policy.installation_pause_s,
            )
            await self._send_back(item, until, exc.error)
            return _Outcome(_Result.PAUSED, until=until)
        await self._give_up(item, exc.error)
        if exc.scope is FailureScope.MESSAGE:
            log.error(
                "delivery: Slack refused outbox row %s to %s even as plain text (%s): %s",
                item.id,
                channel,
                exc.error,
                events_summary(item.delivery.events),
            )
            return _Outcome(_Result.DEAD)
        await self._channel_broken(item.delivery, exc.error)
        return _Outcome(_Result.BROKEN, error=exc.error)

    async def _channel_broken(self, delivery: Delivery, error: str) -> None:
        channel = delivery.channel
        before = {s.id: s.broken for s in await self.store.subscriptions(channel)}
        broken = await self.store.mark_channel_broken(channel, error, self.clock())
        newly = [s for s in broken if before.get(s.id) is None]
        log.error(
            "delivery: cannot post to channel %s (%s); its %d subscription(s) are marked broken",
            channel,
            error,
            len(broken),
        )
        if any(i < 0 for i in delivery.subscription_ids):
            self.broken_config_channels[channel] = error
            self.notes[f"{NOTE_INSTALLATION}:{channel}"] = (
                f"Alerts for channel {channel} (a [[subscriptions]] entry of GES_BOT_CONFIG) cannot be posted: "
                f"Slack answered {error}. Fix the channel (invite the bot, unarchive it) or the config file."
            )
            log.error(
                "delivery: channel %s comes from [[subscriptions]] in GES_BOT_CONFIG and Slack answers %s: "
                "invite the bot to it, unarchive it, or change the config file",
                channel,
                error,
            )
        if newly:
            await self._tell_subscribers(channel, error, newly)

    async def _tell_subscribers(self, channel: str, error: str, subs: Sequence[Subscription]) -> None:
        people = sorted({s.created_by for s in subs if s.created_by and s.created_by[:1] in ("U", "W")})
        if not people:
            log.error("delivery: no one to tell that channel %s is broken (%s)", channel, error)
            return
        notice = render.render_broken_channel_notice(channel, error, [s.graph_pattern for s in subs])
        for user in people:
            try:
                dm = await self._open_dm(user)
            except SlackDeliveryError as exc:
                log.error("delivery: could not open a DM with %s about channel %s: %s", user, channel, exc.error)
                continue
            if await self._post_inline(dm, notice, what=f"notice to {user}") is not None:
                log.info("delivery: told %s that channel %s is broken (%s)", user, channel, error)

    async def _open_dm(self, user: str) -> str:
        for attempt in range(1, self.policy.inline_attempts + 1):
            try:
                return await self.gateway.open_dm(user)
            except PermanentSlackError:
                raise
            except SlackDeliveryError:
                if attempt == self.policy.inline_attempts:
                    raise
                await asyncio.sleep(
                    min(self.policy.inline_retry_cap_s, backoff_delay(attempt, self.policy, None, self.rng))
                )
        raise AssertionError("unreachable")  # pragma: no cover


def _category(exc: SlackDeliveryError) -> str:
    if exc.error == "ratelimited":
        return "ratelimited"
    if exc.error.startswith("connection_error") or exc.error == "timeout":
        return "connection"
    if exc.error.startswith("internal:"):
        return "internal"
    return "server"


def events_summary(events: Sequence[JobEvent]) -> str:
    """A one-line description of events, for logs."""
    return ", ".join(f"{e.kind.value}:{e.job.job_id}" for e in events)
