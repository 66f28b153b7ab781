"""The outbox worker for group-bot sinks: claim sink rows → render → pace → sign and post → record.

Owns: delivery of outbox rows whose target is a sink (``Delivery.channel`` = ``"sink:<name>"``;
the Slack worker never claims them), through the same outbox and its fenced claims
(:class:`~ges_bot.store.api.SinkOutboxStore`):

- **pacing per webhook**: each platform's documented limit (:data:`LIMITS`: DingTalk and WeCom 20
  a minute, Lark 5 a second and 100 a minute …) is booked ahead in a sliding window, so a row
  whose turn is later is handed back due at its own slot — not slept on, not refused;
- **answers** (``sinks.sender.classify``): rate limited → the webhook waits out the window and
  the row is due after it; broken (signature, keyword, IP, invalid webhook) → the sink is marked
  broken (logged once by name, shown by :meth:`SinkWorker.broken` in ``/healthz``), its rows wait
  and are retried every ``broken_recheck_s``; oversized or refused → the next, shorter rendering
  at once, and at the shortest the row is given up; anything else → capped, jittered backoff;
- **ops notices** (``[ops] sinks``): a row whose ``notice`` is set tells of an ops incident's start
  or end (``sinks.notice``) and is paced, posted and recorded like an alert;
- **digests** (:meth:`SinkWorker.post`): a body drawn outside the outbox rows takes its turn in the
  same pacer and is classified the same way; the digest outbox records it (``ges_bot.digests``);
- **nothing lost**: a row is marked sent only after the platform took it; a row is given up only
  when it is older than ``give_up_after_s`` (or no rendering is accepted) and then stays in the
  outbox as dead, counted by ``/healthz``.

At-least-once, like Slack delivery: a crash between the platform's answer and ``mark_sent`` posts
that row again after the claim expires (these webhooks have no idempotency key). Pacing is per
process: two replicas may each post 20 a minute to one DingTalk robot; the platform then refuses
and both wait out its window — late, not lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ges_bot.clock import Clock, utc_now
from ges_bot.config import SinkSettings
from ges_bot.domain import ProjectInfo
from ges_bot.errors import StoreError
from ges_bot.notify.document import alert_document
from ges_bot.sinks.compose import LEVELS, Rendered
from ges_bot.sinks.notice import render_ops_notice
from ges_bot.sinks.render import render_alert
from ges_bot.sinks.sender import Answer, Outcome, SinkSender
from ges_bot.sinks.targets import sink_name_of
from ges_bot.store.api import OutboxItem, SinkOutboxStore

__all__ = ["LIMITS", "Pacer", "SinkPolicy", "SinkWorker"]

log = logging.getLogger(__name__)

#: Per platform: (messages, per seconds) windows a webhook must stay within.
LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "lark": ((5, 1.0), (100, 60.0)),
    "dingtalk": ((20, 60.0),),
    "wecom": ((20, 60.0),),
    "teams": ((4, 1.0),),
    "slack": ((1, 1.0),),
}


@dataclass(frozen=True, slots=True)
class SinkPolicy:
    batch_size: int = 50
    claim_lease_s: float = 120.0
    #: A row is handed back instead of posted when its claim has less than this left (it must
    #: cover one post's timeout and the recording), so no other replica posts it meanwhile.
    lease_margin_s: float = 30.0
    #: Added to each minute-long window: our clock and the platform's never agree exactly.
    window_margin_s: float = 1.0
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 300.0
    broken_recheck_s: float = 600.0
    give_up_after_s: float = 24 * 3600.0
    idle_poll_s: float = 1.0
    #: A body posted from outside the outbox rows (a digest) waits this long for its turn at most.
    max_wait_s: float = 10.0


@dataclass
class _Webhook:
    #: Booked send times (seconds on the worker's clock), in booking order.
    stamps: deque[float] = field(default_factory=deque)
    #: Outbox rows handed back until their booked slot: row id → the slot.
    held: dict[int, float] = field(default_factory=dict)
    blocked_until: float = 0.0


class Pacer:
    """Books each webhook's sends inside its platform's windows (:data:`LIMITS`), one slot per row."""

    def __init__(self, margin_s: float) -> None:
        self.margin_s = margin_s
        self._hooks: dict[str, _Webhook] = defaultdict(_Webhook)

    def slot(self, sink: str, platform: str, row: int, now: float) -> float:
        """When row ``row`` may be posted to ``sink``: its slot booked earlier, else a new one
        (the earliest from ``now`` inside every window)."""
        hook = self._hooks[sink]
        if row in hook.held:
            return hook.held.pop(row)
        windows = LIMITS.get(platform, ((1, 1.0),))
        spans = [(count, window + (self.margin_s if window >= 60 else 0.0)) for count, window in windows]
        longest = max(span for _, span in spans)
        while hook.stamps and hook.stamps[0] <= now - longest:
            hook.stamps.popleft()
        # Slots of rows another replica sent meanwhile are never claimed here: forget them.
        for stale in [r for r, at in hook.held.items() if at <= now - longest]:
            del hook.held[stale]
        at = max(now, hook.blocked_until, hook.stamps[-1] if hook.stamps else now)
        for count, span in spans:
            if len(hook.stamps) >= count:
                at = max(at, hook.stamps[-count] + span)
        hook.stamps.append(at)
        return at

    def hold(self, sink: str, row: int, at: float) -> None:
        """Row ``row`` goes back to the outbox until its slot ``at``, which stays booked for it."""
        self._hooks[sink].held[row] = at

    def block(self, sink: str, until: float) -> None:
        """The platform refused for rate: no post to this sink before ``until``; every slot is off."""
        hook = self._hooks[sink]
        hook.blocked_until = max(hook.blocked_until, until)
        hook.stamps.clear()
        hook.held.clear()


class SinkWorker:
    """Delivers sink rows of the outbox; see the module docstring."""

    def __init__(
        self,
        store: SinkOutboxStore,
        sinks: Sequence[SinkSettings],
        projects: Mapping[str, ProjectInfo],
        sender: SinkSender,
        *,
        worker_id: str,
        clock: Clock = utc_now,
        policy: SinkPolicy | None = None,
        rng: random.Random | None = None,
        zone: str = "UTC",
    ) -> None:
        self.store = store
        self.sinks = {s.name: s for s in sinks}
        self.projects = projects
        self.sender = sender
        self.worker_id = worker_id
        self.clock = clock
        self.policy = policy or SinkPolicy()
        self.rng = rng or random.Random()
        self.pacer = Pacer(self.policy.window_margin_s)
        #: The zone alerts write instants in (``GES_BOT_TIMEZONE``).
        self.zone = zone
        self._broken: dict[str, str] = {}
        #: When a broken sink is next tried (by one row; the others wait without posting).
        self._next_probe: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._post_by = self.clock()

    # -- what /healthz and `ges-bot check` show ---------------------------------------------------

    def broken(self) -> dict[str, str]:
        """Broken sinks by name: why (never the URL or secret)."""
        return dict(self._broken)

    def wake(self) -> None:
        self._wake.set()

    # -- loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.deliver_due()
            except StoreError as exc:
                log.warning("sink delivery: database unavailable (%s); retrying", exc)
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waiters, timeout=self.policy.idle_poll_s, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def deliver_due(self) -> int:
        """Claim the due sink rows once and handle each; the number claimed."""
        now = self.clock()
        items = await self.store.claim_sink_outbox(
            self.worker_id, now, self.policy.batch_size, self.policy.claim_lease_s
        )
        # Never less than half the lease to post in, however short the lease is configured.
        margin = min(self.policy.lease_margin_s, self.policy.claim_lease_s / 2)
        self._post_by = now + timedelta(seconds=self.policy.claim_lease_s - margin)
        by_sink: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_sink[sink_name_of(item.delivery.channel)].append(item)
        # One sink's rows in order; sinks side by side (a slow webhook holds up only itself).
        await asyncio.gather(*(self._sink_rows(name, rows) for name, rows in by_sink.items()))
        return len(items)

    async def _sink_rows(self, name: str, rows: list[OutboxItem]) -> None:
        for item in rows:
            await self._one(name, item)

    # -- one row -------------------------------------------------------------------------------

    def _later(self, seconds: float) -> datetime:
        return self.clock() + timedelta(seconds=seconds)

    async def _one(self, name: str, item: OutboxItem) -> None:
        sink = self.sinks.get(name)
        now = self.clock()
        if sink is None:
            await self.store.mark_dead(item.id, f"sink {name!r} is not configured", now, worker=self.worker_id)
            log.warning("outbox row %d: sink %r is not configured; given up", item.id, name)
            return
        if not item.delivery.events and item.notice is None:
            await self.store.mark_dead(item.id, "nothing to deliver", now, worker=self.worker_id)
            return
        if now > self._post_by:
            # The claim is running out (a slow webhook ahead of this row): hand it back rather
            # than post it while another replica may claim it.
            await self.store.mark_retry(item.id, "claim running out", now, worker=self.worker_id)
            return
        probe = self._next_probe.get(name)
        if name in self._broken and probe is not None and now < probe:
            # One row at a time finds out whether a broken sink was fixed; the rest wait, unsent.
            await self.store.mark_retry(
                item.id, f"{Outcome.BROKEN}: {self._broken[name]}", probe, worker=self.worker_id
            )
            return
        at = self.pacer.slot(name, sink.type, item.id, now.timestamp())
        if at > now.timestamp():
            # Not yet: back to the outbox, due at its slot (not slept on while holding the claim);
            # the slot stays booked for it, so the rows after it queue behind.
            self.pacer.hold(name, item.id, at)
            await self.store.mark_retry(item.id, "paced", datetime.fromtimestamp(at, now.tzinfo), worker=self.worker_id)
            return
        if item.notice is not None:
            # An ops incident's start or end ([ops] sinks): a few lines, far below every limit.
            body = render_ops_notice(sink.type, item.notice, sink.locale, zone=self.zone)
            await self._record(name, sink, item, await self.sender.send(sink, body))
            return
        project = self.projects.get(item.delivery.project) or ProjectInfo(alias=item.delivery.project, project_id="")
        doc = alert_document(item.delivery, project, now)
        level = 0
        while True:
            rendered = render_alert(sink.type, doc, sink.locale, start=level, zone=self.zone)
            answer = await self.sender.send(sink, rendered.body)
            if (
                answer.outcome in (Outcome.OVERSIZED, Outcome.REFUSED)
                and rendered.level < len(LEVELS) - 1
                and sink.type != "slack"
            ):
                level = rendered.level + 1
                log.info("sink %s: %s; sending a shorter rendering (level %d)", name, answer.detail, level)
                continue
            break
        await self._record(name, sink, item, answer)

    # -- a body from outside the outbox rows (a digest) ------------------------------------------

    async def post(self, name: str, build: Callable[[int], Rendered], *, key: int, levels: int) -> Answer:
        """Post a body ``build(level)`` draws to sink ``name`` as its rows are posted: in its turn
        (the same :class:`Pacer`: a turn within ``max_wait_s`` is waited for, a later one is
        answered ``RATE`` with the wait), signed, a shorter rendering (the next level, up to
        ``levels``) when the platform finds it too large, the sink noted broken or rate limited
        from the answer. ``key`` names the body in the pacer (negative: never an outbox row id).
        The caller records the answer (``ges_bot.digests`` does, in the digest outbox)."""
        sink = self.sinks.get(name)
        if sink is None:
            return Answer(Outcome.REFUSED, f"sink {name!r} is not configured")
        now = self.clock()
        probe = self._next_probe.get(name)
        if name in self._broken and probe is not None and now < probe:
            return Answer(Outcome.BROKEN, self._broken[name], (probe - now).total_seconds())
        at = self.pacer.slot(name, sink.type, key, now.timestamp())
        wait = at - now.timestamp()
        if wait > self.policy.max_wait_s:
            self.pacer.hold(name, key, at)
            return Answer(Outcome.RATE, "paced", wait)
        if wait > 0:
            await asyncio.sleep(wait)
        level = 0
        while True:
            rendered = build(level)
            answer = await self.sender.send(sink, rendered.body)
            if answer.outcome in (Outcome.OVERSIZED, Outcome.REFUSED) and rendered.level < levels - 1:
                level = rendered.level + 1
                log.info("sink %s: %s; sending a shorter rendering (level %d)", name, answer.detail, level)
                continue
            break
        recheck = self._learn(name, answer, self.clock())
        return answer if recheck is None else Answer(answer.outcome, answer.detail, recheck)

    def _learn(self, name: str, answer: Answer, now: datetime) -> float | None:
        """What ``answer`` says of sink ``name``'s webhook, for every body sent to it: it works
        again, it is rate limited (the pacer waits out the window), or it is broken (logged once
        per reason; probed again after a jittered recheck, whose delay is returned)."""
        match answer.outcome:
            case Outcome.SENT:
                if self._broken.pop(name, None) is not None:
                    log.info("sink %s works again", name)
            case Outcome.RATE:
                self.pacer.block(name, now.timestamp() + (answer.retry_after or 60.0))
            case Outcome.BROKEN:
                if self._broken.get(name) != answer.detail:
                    log.error("sink %s is broken: %s", name, answer.detail)
                self._broken[name] = answer.detail
                delay = self.policy.broken_recheck_s * (0.9 + self.rng.random() * 0.2)
                self._next_probe[name] = now + timedelta(seconds=delay)
                return delay
        return None

    def _old(self, item: OutboxItem, now: datetime) -> bool:
        return (now - item.created_at).total_seconds() > self.policy.give_up_after_s

    async def _record(self, name: str, sink: SinkSettings, item: OutboxItem, answer: Answer) -> None:
        now = self.clock()
        w = self.worker_id
        recheck = self._learn(name, answer, now)
        match answer.outcome:
            case Outcome.SENT:
                await self.store.mark_sent(item.id, "sink", now, None, worker=w)
                return
            case Outcome.OVERSIZED | Outcome.REFUSED:
                await self.store.mark_dead(item.id, f"{answer.outcome}: {answer.detail}", now, worker=w)
                log.error("sink %s refused outbox row %d even at its shortest: %s", name, item.id, answer.detail)
                return
            case Outcome.RATE:
                wait = answer.retry_after or 60.0
                delay = wait + self.rng.random() * min(5.0, wait * 0.1)
                log.warning("sink %s: %s; waiting %.0fs", name, answer.detail, wait)
            case Outcome.BROKEN:
                assert recheck is not None  # _learn schedules the probe of a broken sink
                delay = recheck
            case _:
                exponent = min(max(0, item.attempts - 1), 30)
                raw = min(self.policy.backoff_cap_s, self.policy.backoff_base_s * 2.0**exponent)
                delay = raw * (0.5 + self.rng.random() / 2)
                log.warning("sink %s: %s; retrying in %.0fs", name, answer.detail, delay)
        if self._old(item, now):
            await self.store.mark_dead(item.id, f"{answer.outcome}: {answer.detail}", now, worker=w)
            log.error(
                "sink %s: outbox row %d given up after %.0fh: %s",
                name,
                item.id,
                self.policy.give_up_after_s / 3600,
                answer.detail,
            )
            return
        await self.store.mark_retry(item.id, f"{answer.outcome}: {answer.detail}", self._later(delay), worker=w)
