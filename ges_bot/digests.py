"""Sending digests: which are due, building each from the store, posting it once.

Owns the digest loop's I/O: every schedule (set from Slack, or ``[[digests]]`` in the config
file; Slack's wins for a channel) whose latest due time has passed gets a row in the digest
outbox — unique by channel and period, so replicas and restarts agree on one — and every pending
row is claimed, built (the period's stats, the failures since the last digest with links to their
alert threads, flaky graphs, the 7-day chart) and posted. A bot that was down at the due time
finds the row missing when it comes back, adds it, and sends it once, saying it is late. Only the
latest period is ever caught up: three missed days give one late digest, not three.

A ``[[digests]]`` table naming a ``sink`` has the target ``sink:<name>`` in the same outbox (so
the same once-per-period key): its digest is built from the same data, filtered by the sink's
subscriptions, drawn for the sink's platform and locale (``sinks.digest``) and posted through the
sink worker (:meth:`~ges_bot.sinks.worker.SinkWorker.post`: its signing, pacing, answers and
shorter renderings); a rate limit, a broken sink or a failure to reach it puts the row back due
later (capped, jittered; a broken sink at its recheck), and it is given up only after a day. A
WeCom sink also gets the chart, as an ``image`` message after the digest.

The runtime calls :meth:`DigestRunner.run` every minute; ``ges-bot digest --now`` calls it once.
Posting is at-least-once like the alert outbox: a crash between Slack's answer and the "sent"
mark may repeat one digest after the claim lease.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from ges_bot import stats
from ges_bot.config import Config, SinkSettings
from ges_bot.domain import Subscription, graph_matches
from ges_bot.notify.digest import ATTENTION_KINDS, Attention, DigestContent, digest_message
from ges_bot.schedule import DigestSchedule
from ges_bot.sinks.compose import Rendered
from ges_bot.sinks.digest import DIGEST_LEVELS, render_digest, wecom_chart
from ges_bot.sinks.sender import Answer, Outcome
from ges_bot.sinks.targets import is_sink_target, sink_name_of
from ges_bot.sinks.worker import SinkWorker
from ges_bot.slackapp import charting
from ges_bot.slackapp.statsview import ChartScope
from ges_bot.store.api import DigestItem, DigestState, Store

__all__ = ["DigestRunner", "RunReport", "build_digest_runner"]

log = logging.getLogger(__name__)

#: Slack errors after which retrying the same digest cannot help.
_PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
        "restricted_action",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
    }
)
#: How far back "failed at least 2 of their last 5 runs" looks.
_FLAKY_WINDOW = timedelta(days=30)
_MAX_ATTENTION = 500


@dataclass(frozen=True, slots=True)
class RunReport:
    enqueued: int = 0
    sent: int = 0
    quiet: int = 0
    failed: int = 0


class DigestRunner:
    """Enqueues due digests and sends pending ones. Safe to run in every replica at once."""

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient | None,
        *,
        config_schedules: Sequence[DigestSchedule] = (),
        config_subscriptions: Sequence[Subscription] = (),
        worker: str,
        clock: Callable[[], datetime],
        lease_s: float = 300.0,
        retry_after_s: float = 60.0,
        max_attempts: int = 30,
        sinks: Sequence[SinkSettings] = (),
        sink_worker: SinkWorker | None = None,
        sink_give_up_after_s: float = 24 * 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        #: ``None`` on a bot without Slack (``[[sinks]]`` only): Slack digests are not sent.
        self.client = client
        #: Group-bot sinks by name, and the worker that posts to them (``None``: no sink digests).
        self.sinks = {s.name: s for s in sinks}
        self.sink_worker = sink_worker
        #: A sink digest not accepted (rate limits, a broken sink) for this long is given up.
        self.sink_give_up_after_s = sink_give_up_after_s
        self.rng = rng or random.Random()
        self.config_schedules = tuple(config_schedules)
        self.config_subscriptions = tuple(config_subscriptions)
        self.worker = worker
        self.clock = clock
        self.lease_s = lease_s
        self.retry_after_s = retry_after_s
        #: A digest still failing after this many tries (half an hour at the default pace) is given up.
        self.max_attempts = max_attempts

    async def schedules(self, channel: str | None = None) -> list[DigestSchedule]:
        stored = await self.store.digest_schedules(channel)
        have = {s.channel for s in stored}
        config = [s for s in self.config_schedules if s.channel not in have and channel in (None, s.channel)]
        return [*stored, *config]

    async def run(self, *, channel: str | None = None, now_due: bool = False, zone: str = "UTC") -> RunReport:
        """Enqueue what is due and send what is pending (optionally for one channel).

        ``now_due`` (``ges-bot digest --now``) makes every selected schedule due this minute —
        a digest from the last one until now — and gives ``channel`` a daily one in ``zone`` if
        it has none."""
        now = self.clock()
        enqueued = 0
        schedules = await self.schedules(channel)
        if now_due and channel is not None and not schedules:
            at = now.astimezone(ZoneInfo(zone)).time().replace(second=0, microsecond=0)
            schedules = [DigestSchedule(channel=channel, at=at, tz=zone, always=True, source="cli")]
        for configured in schedules:
            if not self._can_send(configured.channel):
                continue
            schedule = configured
            if now_due:
                due = now.replace(second=0, microsecond=0)
                schedule = dataclasses.replace(configured, at=due.astimezone(configured.zone).time(), weekday=None)
            else:
                due = schedule.latest_due(now)
                if schedule.created_at is not None and due < schedule.created_at:
                    continue  # set after this period's due time: the first digest is the next one
            if await self.store.enqueue_digest(schedule, due, now) is not None:
                enqueued += 1
        sent = quiet = failed = 0
        for item in await self.store.claim_digests(self.worker, now, self.lease_s, channel):
            outcome = await self._send(item)
            sent += outcome == DigestState.SENT
            quiet += outcome == DigestState.QUIET
            failed += outcome not in (DigestState.SENT, DigestState.QUIET)
        return RunReport(enqueued, sent, quiet, failed)

    def _can_send(self, target: str) -> bool:
        """A Slack channel needs the Slack client; a sink, the sink worker and its settings."""
        if is_sink_target(target):
            return self.sink_worker is not None and sink_name_of(target) in self.sinks
        return self.client is not None

    async def _subscriptions(self, channel: str) -> list[Subscription]:
        stored = await self.store.subscriptions(channel)
        return [*stored, *(s for s in self.config_subscriptions if s.channel == channel)]

    async def build(self, item: DigestItem) -> DigestContent:
        schedule, channel = item.schedule, item.channel
        zone = schedule.zone
        subscriptions = await self._subscriptions(channel)
        scope = charting.scope_for(None, None, subscriptions)
        span = item.due_at - item.since
        rows, _ = await charting.gather(
            self.store, scope, min(item.since - span, item.due_at - _FLAKY_WINDOW), item.due_at
        )
        period = stats.aggregate(rows, zone, item.since, item.due_at)
        flaky = stats.flaky_graphs(rows)
        # The 7 local days ending with the digest's own morning, so last night's imports are on it.
        chart_start, chart_end = stats.chart_window(item.due_at - timedelta(days=7), item.due_at, item.due_at, zone)
        chart_stats = stats.aggregate(rows, zone, chart_start, chart_end)
        attention = await self._attention(channel, subscriptions, scope, item.since)
        return DigestContent(
            schedule=schedule,
            due_at=item.due_at,
            since=item.since,
            period=period,
            attention=attention,
            flaky=flaky,
            scope=scope,
            chart_stats=chart_stats,
        )

    async def _attention(
        self, channel: str, subscriptions: Sequence[Subscription], scope: ChartScope, since: datetime
    ) -> list[Attention]:
        events = await self.store.recent_events(since, ATTENTION_KINDS, _MAX_ATTENTION)

        def wanted(project: str, graph: str) -> bool:
            if scope.patterns is None:
                return True
            return any(graph_matches(s.graph_pattern, graph) and s.project in (None, project) for s in subscriptions)

        found: list[Attention] = []
        for event in sorted(events, key=lambda e: e.at):
            if not wanted(event.project, event.graph):
                continue
            found.append(Attention(event, await self._permalink(channel, event.project, event.job.job_id)))
        return found

    async def _permalink(self, channel: str, project: str, job_id: str) -> str | None:
        if self.client is None or is_sink_target(channel):
            return None  # a group bot's alerts have no link to share
        posted = await self.store.message_for_failure(channel, project, job_id)
        if posted is None:
            return None
        try:
            answer: Any = await self.client.chat_getPermalink(channel=channel, message_ts=posted.ts)
        except Exception as exc:
            log.info("digest: no permalink for %s in %s: %s", posted.ts, channel, type(exc).__name__)
            return None
        link = answer.get("permalink")
        return link if isinstance(link, str) else None

    async def _send(self, item: DigestItem) -> str:
        if is_sink_target(item.channel):
            return await self._send_to_sink(item)
        if self.client is None:
            # Enqueued while the bot had Slack: it waits for a bot that has it again.
            await self.store.retry_digest(
                item.id, self.worker, "no Slack token", self.clock() + timedelta(seconds=self.retry_after_s)
            )
            return DigestState.PENDING
        try:
            content = await self.build(item)
            message = digest_message(content, self.clock())
            if message is None:
                await self.store.finish_digest(item.id, self.worker, DigestState.QUIET, self.clock())
                log.info("digest %s for %s: nothing ran; staying quiet", item.period, item.channel)
                return DigestState.QUIET
            assert content.chart_stats is not None
            rendered = await charting.render_chart(content.chart_stats, "daily", content.scope)
            try:
                file_id: str | None = await charting.upload_png(self.client, rendered)
                problem = None
            except Exception as exc:
                file_id, problem = None, f"The chart could not be uploaded ({_error(exc)})."
            message = digest_message(
                dataclasses.replace(content, chart_file_id=file_id, chart_problem=problem), self.clock()
            )
            assert message is not None
            answer: Any = await self.client.chat_postMessage(
                channel=item.channel, text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as exc:
            error = _error(exc)
            if error in _PERMANENT or item.attempts >= self.max_attempts:
                log.error("digest %s for %s failed (%s); giving it up", item.period, item.channel, error)
                await self.store.finish_digest(item.id, self.worker, DigestState.DEAD, self.clock(), error=error)
                return DigestState.DEAD
            log.warning("digest %s for %s failed (%s); retrying", item.period, item.channel, error)
            await self.store.retry_digest(
                item.id, self.worker, error, self.clock() + timedelta(seconds=self.retry_after_s)
            )
            return DigestState.PENDING
        await self.store.finish_digest(item.id, self.worker, DigestState.SENT, self.clock(), ts=str(answer.get("ts")))
        log.info("digest %s sent to %s", item.period, item.channel)
        return DigestState.SENT

    async def _send_to_sink(self, item: DigestItem) -> str:
        """Build the digest, post it through the sink worker, record the answer (see the module
        docstring)."""
        name = sink_name_of(item.channel)
        sink = self.sinks.get(name)
        poster = self.sink_worker
        if sink is None or poster is None:
            # Its [[sinks]] table was removed (or this process posts to no sink): wait for one that does.
            await self.store.retry_digest(
                item.id, self.worker, f"sink {name!r} is not configured here", self.clock() + timedelta(minutes=10)
            )
            return DigestState.PENDING
        try:
            content = await self.build(item)
        except Exception as exc:
            return await self._sink_later(item, Answer(Outcome.RETRY, f"building failed ({type(exc).__name__})"))
        now = self.clock()
        if digest_message(content, now) is None:
            await self.store.finish_digest(item.id, self.worker, DigestState.QUIET, now)
            log.info("digest %s for sink %s: nothing ran; staying quiet", item.period, name)
            return DigestState.QUIET
        png: bytes | None = None
        if sink.type == "wecom" and content.chart_stats is not None:
            try:
                png = (await charting.render_chart(content.chart_stats, "daily", content.scope)).png
            except Exception as exc:
                log.warning("digest %s for sink %s: no chart (%s)", item.period, name, type(exc).__name__)
        picture = wecom_chart(png) if png is not None else None

        def draw(level: int) -> Rendered:
            return render_digest(
                sink.type, content, sink.locale, now, start=level, zone=content.schedule.tz, picture=picture is not None
            )

        answer = await poster.post(name, draw, key=-item.id, levels=len(DIGEST_LEVELS))
        if answer.outcome is not Outcome.SENT:
            return await self._sink_later(item, answer)
        problem = None
        if picture is not None:
            # The picture after the words: the digest reads without it, so a picture refused is
            # noted, not retried (retrying would post the words again).
            shown = await poster.post(name, lambda _: Rendered(picture, 0), key=-item.id - 2**40, levels=1)
            if shown.outcome is not Outcome.SENT:
                problem = f"chart not posted: {shown.outcome}: {shown.detail}"
                log.warning("digest %s for sink %s: %s", item.period, name, problem)
        await self.store.finish_digest(item.id, self.worker, DigestState.SENT, self.clock(), ts="sink", error=problem)
        log.info("digest %s sent to sink %s", item.period, name)
        return DigestState.SENT

    async def _sink_later(self, item: DigestItem, answer: Answer) -> str:
        """A sink digest not posted: given up when the platform refuses it at its shortest or it
        has waited a day; otherwise due again after the wait the answer asks (rate limit, broken
        sink) or a capped, jittered backoff."""
        now = self.clock()
        name = sink_name_of(item.channel)
        error = f"{answer.outcome}: {answer.detail}"
        too_old = (now - item.created_at).total_seconds() > self.sink_give_up_after_s
        if answer.outcome in (Outcome.OVERSIZED, Outcome.REFUSED) or too_old:
            log.error("digest %s for sink %s given up: %s", item.period, name, error)
            await self.store.finish_digest(item.id, self.worker, DigestState.DEAD, now, error=error)
            return DigestState.DEAD
        if answer.outcome in (Outcome.RATE, Outcome.BROKEN) and answer.retry_after is not None:
            delay = answer.retry_after + self.rng.random() * min(5.0, answer.retry_after * 0.1)
        else:
            exponent = min(max(0, item.attempts - 1), 30)
            delay = min(300.0, 2.0 * 2.0**exponent) * (0.5 + self.rng.random() / 2)
        log.warning("digest %s for sink %s not sent (%s); again in %.0fs", item.period, name, error, delay)
        await self.store.retry_digest(item.id, self.worker, error, now + timedelta(seconds=delay))
        return DigestState.PENDING


def _error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        data = getattr(exc.response, "data", None)
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
    return type(exc).__name__


def build_digest_runner(
    config: Config,
    store: Store,
    token: str | None,
    *,
    worker: str,
    clock: Callable[[], datetime],
    sink_worker: SinkWorker | None = None,
) -> DigestRunner:
    """The runner with its own Slack client (the same retry policy as the Slack app's; none
    without a token) and the sink worker that posts sink digests (``None``: none are sent)."""
    from ges_bot.slackapp.app import retry_handlers

    settings = config.settings
    client = (
        AsyncWebClient(
            token=token,
            base_url=settings.slack_api_url,
            timeout=int(max(1, settings.slack_timeout)),
            retry_handlers=retry_handlers(),
        )
        if token
        else None
    )
    return DigestRunner(
        store,
        client,
        config_schedules=config.digests,
        config_subscriptions=config.subscriptions,
        worker=worker,
        clock=clock,
        sinks=config.sinks,
        sink_worker=sink_worker,
    )
