"""The Slack app: bolt's ``AsyncApp`` with ``/gesjobs``, the alert buttons and the Home tab.

This module owns the conversation with people in Slack: every request is acknowledged first
(Slack gives 3 seconds) and answered at once; the work — parsing, asking GES or the store,
rendering — happens after the ack in a task of ``slackapp.inflight``, the answer going to the
request's ``response_url``. It decides who may change
subscriptions and mutes (``GES_BOT_ADMINS``; a long mute of every graph is an admin's), logs and
announces every mute and unmute in its channel, shows each person the Home tab of their own
channels, and counts commands in ``metrics.COMMANDS``.

It must not render alerts (``notify.render`` does, including the job-detail modal), parse command
text itself (``slackapp.commands``), decide how to query GES (``slackapp.queries``) or draw answers
(``slackapp.views``). The runtime builds it with :func:`build_app` and serves it with
:func:`build_http_routes` (HTTP mode) or :func:`start_socket_mode` (Socket Mode).

Slack calls go through one ``AsyncWebClient`` (and ``response_url`` posts through a webhook client)
with slack_sdk's retry handlers: at most a couple of retries for connection errors, 5xx and 429 —
and no retry at all when Slack asks to wait longer than a user would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ges_bot import metrics, stats
from ges_bot.domain import EventKind, Job, Mute, ProjectInfo, Subscription, covers_every_graph
from ges_bot.errors import ConfigError, StoreError
from ges_bot.notify import render
from ges_bot.notify.render import SlackMessage
from ges_bot.schedule import DigestSchedule
from ges_bot.services import Services
from ges_bot.slackapp import charting, commands, statsview, views
from ges_bot.slackapp.fairuse import LiveQueryLimiter
from ges_bot.slackapp.inflight import Inflight
from ges_bot.slackapp.queries import JobLookup, QueryProblem, QueryRunner, SourceKind, unknown_project
from ges_bot.slackapp.timezones import TimezoneCache
from ges_bot.store.api import JobQuery

__all__ = [
    "EVENTS_PATH",
    "SlackAppOptions",
    "build_app",
    "build_http_routes",
    "retry_handlers",
    "start_socket_mode",
]

log = logging.getLogger(__name__)

#: Where Slack sends commands, interactivity and events in HTTP mode (bolt's default path).
EVENTS_PATH = "/slack/events"
_SLASH_COMMAND = "/gesjobs"
_HOME_FAILURE_KINDS = frozenset(
    {EventKind.FAILED, EventKind.PARTIALLY_FAILED, EventKind.UNKNOWN_OUTCOME, EventKind.STUCK}
)
_SORRY = "Something went wrong on the bot's side (it is logged). Please try again in a minute."
_STORE_DOWN = "The bot's database is not answering right now, so nothing was changed. Please try again in a minute."


@dataclass(frozen=True, slots=True)
class SlackAppOptions:
    """Tunables with production defaults (tests and the benchmark turn them)."""

    #: Seconds a ``/gesjobs`` question waits for the live job center before snapshots answer it.
    live_timeout_s: float = 8.0
    #: Seconds paging through GES may take to find a job the bot has never seen.
    search_timeout_s: float = 20.0
    #: How long a user's time zone from ``users.info`` is trusted.
    timezone_ttl_s: float = 6 * 3600
    #: Timeout of each Slack Web API / response_url call.
    slack_timeout_s: float = 10.0
    #: How far back the Home tab lists failures.
    home_failures_since: timedelta = timedelta(hours=24)


class _CappedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits ``Retry-After`` plus up to 1 s of jitter), but only when that
    wait is short: a person is waiting for this answer, and a long limit means "not now"."""

    def __init__(self, max_retry_count: int, max_wait_s: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        for key, values in response.headers.items():
            if key.lower() == "retry-after":
                try:
                    return float(values[0]) <= self.max_wait_s
                except (ValueError, IndexError):
                    return False
        return True


def retry_handlers(max_retries: int = 2, max_rate_limit_wait_s: float = 3.0) -> list[AsyncRetryHandler]:
    """The retry policy of every Slack call this app makes: connection errors, 5xx (exponential
    backoff with jitter) and short 429s, each at most ``max_retries`` times."""
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=max_retries),
        AsyncServerErrorRetryHandler(max_retry_count=max_retries),
        _CappedRateLimitRetryHandler(max_retry_count=1, max_wait_s=max_rate_limit_wait_s),
    ]


@dataclass(frozen=True, slots=True)
class _Asker:
    """Who asked, and where: the fields of a slash command that the handlers use."""

    user: str
    channel: str
    channel_name: str
    team: str | None


def _command_kind(command: commands.Command | commands.UsageError) -> str:
    """A fixed metrics label per command type."""
    return {
        commands.Query: "query",
        commands.JobDetail: "job",
        commands.Subscribe: "subscribe",
        commands.Unsubscribe: "unsubscribe",
        commands.ListSubscriptions: "subscriptions",
        commands.Mute: "mute",
        commands.Unmute: "unmute",
        commands.Status: "status",
        commands.Help: "help",
        commands.Stats: "stats",
        commands.Digest: "digest",
        commands.DigestOff: "digest",
        commands.DigestShow: "digest",
        commands.UsageError: "usage_error",
    }.get(type(command), "other")


class _Answer:
    """What a handler answers: the message, whether the channel sees it, and the metrics result."""

    __slots__ = ("message", "public", "result")

    def __init__(self, message: SlackMessage, *, result: str = "ok", public: bool = False) -> None:
        self.message = message
        self.result = result
        self.public = public


class GesSlackApp:
    """The handlers, with what they share: services, the Slack client, the time-zone cache."""

    def __init__(
        self, services: Services, client: AsyncWebClient, options: SlackAppOptions, inflight: Inflight
    ) -> None:
        self.services = services
        self.inflight = inflight
        self.client = client
        self.options = options
        settings = services.config.settings
        self.admins = settings.admin_ids
        self.max_wildcard_mute = settings.max_wildcard_mute
        self.runner = QueryRunner(
            services,
            live_timeout_s=options.live_timeout_s,
            search_timeout_s=options.search_timeout_s,
            fresh_within=timedelta(seconds=settings.answer_max_age_s),
            clock=self._now,
            limiter=LiveQueryLimiter(
                settings.live_queries_per_user, settings.live_queries_per_minute, clock=time.monotonic
            ),
            lookup_max_pages=settings.lookup_max_pages,
            lookup_window=timedelta(seconds=settings.lookup_window_s),
        )
        self.timezones = TimezoneCache(client, settings.zone, ttl_s=options.timezone_ttl_s)
        #: Home-tab charts already uploaded, by what they show (zone, graphs and numbers) → file id.
        self._home_charts: dict[str, str] = {}

    # --- wiring --------------------------------------------------------------------------------

    def register(self, app: AsyncApp) -> None:
        app.command(_SLASH_COMMAND)(self._acked("/gesjobs", self.on_command))
        app.action(render.ACTION_DETAILS)(self._acked("details", self.on_details))
        app.action(render.ACTION_MUTE_1H)(self._acked("mute", self.on_mute_button))
        app.action(render.ACTION_MUTE_24H)(self._acked("mute", self.on_mute_button))
        app.action(render.ACTION_ACK)(self._acked("acknowledge", self.on_acknowledge))
        app.action(render.ACTION_DETAIL_PREV)(self._acked("detail page", self.on_detail_page))
        app.action(render.ACTION_DETAIL_NEXT)(self._acked("detail page", self.on_detail_page))
        app.event("app_home_opened")(self._after_event("home tab", self.on_home_opened))

    def _acked(
        self, name: str, work: Callable[[Mapping[str, Any]], Coroutine[Any, Any, None]]
    ) -> Callable[..., Awaitable[None]]:
        """A listener that acks — Slack shows the user an error after 3 s without it — and leaves
        the work to a task of its own, so the request is answered as soon as the ack is given."""

        async def listener(ack: Callable[..., Awaitable[None]], body: Mapping[str, Any]) -> None:
            await ack()
            self.inflight.spawn(work(body), name)

        return listener

    def _after_event(
        self, name: str, work: Callable[[Mapping[str, Any], Mapping[str, Any]], Coroutine[Any, Any, None]]
    ) -> Callable[..., Awaitable[None]]:
        """An event listener (bolt acks events itself) whose work runs after the request is answered."""

        async def listener(event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
            self.inflight.spawn(work(event, body), name)

        return listener

    # --- Slack plumbing ------------------------------------------------------------------------

    async def _respond(self, response_url: str | None, message: SlackMessage, *, public: bool = False) -> bool:
        """Post to a ``response_url``; False (and logged) when Slack did not take it."""
        if not response_url:
            log.warning("slack: no response_url to answer on; the answer is dropped")
            return False
        webhook = AsyncWebhookClient(
            url=response_url, timeout=int(max(1, self.options.slack_timeout_s)), retry_handlers=retry_handlers()
        )
        try:
            response = await webhook.send(
                text=message.text,
                blocks=message.blocks,
                response_type="in_channel" if public else "ephemeral",
                replace_original=False,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            log.warning("slack: posting to the response_url failed: %s", type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("slack: the response_url refused the answer: HTTP %s %s", response.status_code, response.body)
            return False
        return True

    def _now(self) -> datetime:
        return self.services.clock()

    def _project_info(self, alias: str) -> ProjectInfo:
        return self.services.projects.get(alias) or ProjectInfo(alias=alias, project_id="")

    def _may_manage(self, user: str) -> bool:
        return not self.admins or user in self.admins

    # --- /gesjobs ------------------------------------------------------------------------------

    async def on_command(self, body: Mapping[str, Any]) -> None:
        text = str(body.get("text") or "")
        asker = _Asker(
            user=str(body.get("user_id") or ""),
            channel=str(body.get("channel_id") or ""),
            channel_name=str(body.get("channel_name") or ""),
            team=str(body["team_id"]) if body.get("team_id") else None,
        )
        command = commands.parse(text)
        kind = _command_kind(command)
        try:
            answer = await self._answer(command, asker)
        except StoreError as exc:
            log.error("/gesjobs %s: database unavailable: %s", kind, exc)
            answer = _Answer(views.problem_message(QueryProblem(_STORE_DOWN)), result="error")
        except Exception:
            log.exception("/gesjobs %s failed", kind)
            answer = _Answer(views.problem_message(QueryProblem(_SORRY)), result="error")
        metrics.COMMANDS.labels(kind, answer.result).inc()
        await self._respond(body.get("response_url"), answer.message, public=answer.public)

    async def _answer(self, command: commands.Command | commands.UsageError, asker: _Asker) -> _Answer:
        if isinstance(command, commands.UsageError):
            return _Answer(views.usage_message(command), result="usage_error")
        if isinstance(command, commands.Help):
            return _Answer(views.help_message(command.topic))
        if isinstance(command, commands.Query):
            return await self._query(command, asker)
        if isinstance(command, commands.JobDetail):
            return await self._job(command, asker.user)
        if isinstance(command, commands.ListSubscriptions):
            return await self._list_subscriptions(asker)
        if isinstance(command, commands.Status):
            return await self._status()
        if isinstance(command, commands.Stats):
            return await self._stats(command, asker)
        if isinstance(command, commands.DigestShow):
            return await self._digest_show(asker)
        if not self._may_manage(asker.user):
            return _Answer(views.not_allowed_message(self.admins, "change subscriptions and mutes"), result="refused")
        if isinstance(command, commands.Subscribe):
            return await self._subscribe(command, asker)
        if isinstance(command, commands.Unsubscribe):
            return await self._unsubscribe(command, asker)
        if isinstance(command, commands.Mute):
            return await self._mute(command, asker)
        if isinstance(command, commands.Unmute):
            return await self._unmute(command, asker)
        return await self._digest(command, asker)

    async def _query(self, command: commands.Query, asker: _Asker) -> _Answer:
        zone: ZoneInfo = await self.timezones.zone_for(asker.user)
        result = await self.runner.jobs(command, now=self._now(), zone=zone, user=asker.user)
        if isinstance(result, QueryProblem):
            return _Answer(views.problem_message(result), result="refused")
        outcome = "ok"
        if any(s.kind is SourceKind.RECENT for s in result.sources):
            outcome = "recent"
        if result.failed_sources:
            outcome = "ges_error"
        elif result.snapshot_sources:
            outcome = "snapshots"
        return _Answer(views.jobs_message(result, self._now()), result=outcome, public=command.public)

    async def _stats(self, command: commands.Stats, asker: _Asker) -> _Answer:
        if command.project is not None and command.project not in self.services.projects:
            problem = unknown_project(command.project, tuple(self.services.projects))
            return _Answer(views.problem_message(problem), result="refused")
        zone: ZoneInfo = await self.timezones.zone_for(asker.user)
        now = self._now()
        start, end = commands.resolve(command.range, now, zone)
        start, end = stats.chart_window(start, end, now, zone)
        subscriptions = [*await self.services.store.subscriptions(asker.channel), *self._config_subscriptions(asker)]
        scope = charting.scope_for(command.graph, command.project, subscriptions)
        rows, truncated = await charting.gather(self.services.store, scope, start - (end - start), end)
        data = stats.aggregate(rows, zone, start, end)
        notes = [f"Only the newest {charting.MAX_JOBS:,} jobs were counted."] if truncated else []
        file_id, chart_problem = await self._chart_file(data, command.chart, scope)
        message = statsview.stats_message(
            data, command.chart, scope, file_id=file_id, chart_problem=chart_problem, notes=notes
        )
        return _Answer(message, result="ok" if file_id else "no_chart", public=command.public)

    async def _chart_file(
        self, data: stats.Stats, chart: commands.ChartKind, scope: statsview.ChartScope
    ) -> tuple[str | None, str | None]:
        """Render and upload a chart: its file id, or why there is none (the text answer stands alone)."""
        rendered = await charting.render_chart(data, chart, scope)
        try:
            return await charting.upload_png(self.client, rendered), None
        except Exception as exc:
            error = _slack_error(exc)
            log.warning("slack: uploading a chart failed: %s", error)
            hint = " (the app needs the files:write scope: reinstall it)" if error == "missing_scope" else ""
            return (
                None,
                f"The chart could not be uploaded to Slack ({error}){hint}; the numbers above stand without it.",
            )

    def _config_digest(self, asker: _Asker) -> DigestSchedule | None:
        names = {asker.channel, asker.channel_name, f"#{asker.channel_name}"} - {"", "#"}
        return next((d for d in self.services.config.digests if d.channel in names), None)

    async def _digest_show(self, asker: _Asker) -> _Answer:
        stored = await self.services.store.digest_schedules(asker.channel)
        config = self._config_digest(asker)
        shown = stored or ([config] if config is not None else [])
        return _Answer(statsview.digest_show_message(shown, self._now()))

    async def _digest(self, command: commands.Digest | commands.DigestOff, asker: _Asker) -> _Answer:
        if isinstance(command, commands.DigestOff):
            removed = await self.services.store.remove_digest_schedule(asker.channel)
            return _Answer(statsview.digest_off_message(removed, self._config_digest(asker)))
        zone: ZoneInfo = await self.timezones.zone_for(asker.user)
        now = self._now()
        schedule = await self.services.store.set_digest_schedule(
            DigestSchedule(
                channel=asker.channel,
                at=command.at,
                weekday=command.weekday,
                tz=zone.key,
                always=command.always,
                team=asker.team,
                created_by=asker.user,
                created_at=now,
                locale=command.locale,
            )
        )
        subscriptions = [*await self.services.store.subscriptions(asker.channel), *self._config_subscriptions(asker)]
        scope = charting.scope_for(None, None, subscriptions)
        log.info("/gesjobs: %s set a digest %s in %s", asker.user, schedule.text, asker.channel)
        message = statsview.digest_set_message(schedule, scope, now, config=self._config_digest(asker) is not None)
        return _Answer(message)

    async def _job(self, command: commands.JobDetail, user: str) -> _Answer:
        found = await self.runner.job(command, user=user)
        if isinstance(found, QueryProblem):
            return _Answer(views.problem_message(found), result="not_found")
        return _Answer(self._job_view(found), result=self._job_result(found), public=command.public)

    def _job_view(self, found: JobLookup) -> SlackMessage:
        return views.job_message(found, self._project_info(found.project), self._now())

    @staticmethod
    def _job_result(found: JobLookup) -> str:
        return {SourceKind.LIVE: "ok", SourceKind.RECENT: "recent"}.get(found.source.kind, "snapshots")

    def _config_subscriptions(self, asker: _Asker) -> list[Subscription]:
        # Config files may name a channel by id or by name.
        names = {asker.channel, asker.channel_name, f"#{asker.channel_name}"} - {"", "#"}
        return [s for s in self.services.config_subscriptions if s.channel in names]

    async def _list_subscriptions(self, asker: _Asker) -> _Answer:
        now = self._now()
        stored = await self.services.store.subscriptions(asker.channel)
        mutes = await self.services.store.mutes(now, asker.channel)
        # Config-file subscriptions are not stored; they share their channel's fate, which the
        # stored ones record.
        channel_error = next((sub.broken for sub in stored if sub.broken), None)
        config = [
            dataclasses.replace(sub, broken=sub.broken or channel_error) for sub in self._config_subscriptions(asker)
        ]
        return _Answer(views.subscriptions_message(asker.channel, [*stored, *config], mutes, now))

    async def _status(self) -> _Answer:
        now = self._now()
        health = await self.services.store.health(now)
        message = views.status_message(
            health,
            list(self.services.projects),
            now,
            poll_interval_s=self.services.config.settings.poll_interval,
            notes=self.services.notes,
        )
        return _Answer(message)

    async def _subscribe(self, command: commands.Subscribe, asker: _Asker) -> _Answer:
        if command.project is not None and command.project not in self.services.projects:
            problem = unknown_project(command.project, tuple(self.services.projects))
            return _Answer(views.problem_message(problem), result="refused")
        sub = await self.services.store.add_subscription(
            Subscription(
                id=0,
                channel=asker.channel,
                graph_pattern=command.pattern,
                kinds=command.kinds,
                team=asker.team,
                project=command.project,
                created_by=asker.user,
                created_at=self._now(),
                locale=command.locale,
            )
        )
        log.info("/gesjobs: %s subscribed %s to %r (%s)", asker.user, asker.channel, command.pattern, command.locale)
        return _Answer(views.subscribed_message(sub, asker.channel))

    async def _unsubscribe(self, command: commands.Unsubscribe, asker: _Asker) -> _Answer:
        removed = await self.services.store.remove_subscription(asker.channel, command.pattern, command.project)
        in_config = any(s.graph_pattern == command.pattern for s in self._config_subscriptions(asker))
        if removed:
            log.info("/gesjobs: %s unsubscribed %s from %r", asker.user, asker.channel, command.pattern)
        return _Answer(views.unsubscribed_message(command.pattern, removed, in_config=in_config))

    async def _mute(self, command: commands.Mute, asker: _Asker) -> _Answer:
        limit = self.max_wildcard_mute
        if command.duration > limit and covers_every_graph(command.pattern) and asker.user not in self.admins:
            # With GES_BOT_ADMINS unset anyone may mute; silencing a whole channel for long is
            # still an admin's call.
            log.info(
                "/gesjobs: %s was refused muting %r in %s for %s (every graph; limit %s without admin rights)",
                asker.user,
                command.pattern,
                asker.channel,
                command.duration,
                limit,
            )
            return _Answer(views.wildcard_mute_refused(command.pattern, limit, self.admins), result="refused")
        now = self._now()
        mute = await self.services.store.add_mute(
            Mute(
                id=0,
                channel=asker.channel,
                graph_pattern=command.pattern,
                until=now + command.duration,
                created_by=asker.user,
                created_at=now,
            )
        )
        await self._announce_mute(mute, now)
        return _Answer(views.muted_message(mute, now))

    async def _unmute(self, command: commands.Unmute, asker: _Asker) -> _Answer:
        removed = await self.services.store.remove_mutes(asker.channel, command.pattern)
        if removed:
            log.info("/gesjobs: %s unmuted %r in %s", asker.user, command.pattern, asker.channel)
            await self._announce(asker.channel, views.unmute_announcement(command.pattern, asker.user))
        return _Answer(views.unmuted_message(command.pattern, removed))

    async def _announce_mute(self, mute: Mute, now: datetime) -> None:
        log.info(
            "slack: %s muted %s %r in %s until %s",
            mute.created_by,
            "graph" if mute.exact else "pattern",
            mute.graph_pattern,
            mute.channel,
            mute.until.isoformat(),
        )
        await self._announce(mute.channel, views.mute_announcement(mute, now))

    async def _announce(self, channel: str, message: SlackMessage) -> bool:
        """Tell the whole channel (a normal message, not an ephemeral one): mutes are never silent."""
        try:
            await self.client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as exc:
            log.warning("slack: could not announce in %s: %s", channel, _slack_error(exc))
            return False
        return True

    # --- buttons -------------------------------------------------------------------------------

    @staticmethod
    def _action(body: Mapping[str, Any]) -> Mapping[str, Any]:
        actions = body.get("actions") or [{}]
        first = actions[0]
        return first if isinstance(first, Mapping) else {}

    @staticmethod
    def _user(body: Mapping[str, Any]) -> str:
        user = body.get("user") or {}
        return str(user.get("id") or "") if isinstance(user, Mapping) else ""

    @staticmethod
    def _channel(body: Mapping[str, Any]) -> str:
        channel = body.get("channel") or {}
        if isinstance(channel, Mapping) and channel.get("id"):
            return str(channel["id"])
        container = body.get("container") or {}
        return str(container.get("channel_id") or "") if isinstance(container, Mapping) else ""

    async def _snapshot_job(self, project: str, job_id: str) -> Job | None:
        try:
            rows = await self.services.store.query_jobs(JobQuery(project=project, job_id=job_id, limit=1))
        except StoreError as exc:
            log.error("slack: job %s: database unavailable: %s", job_id, exc)
            return None
        return rows[0].job if rows else None

    async def _modal_from_ges(self, project: str, job_id: str, user: str, page: int = 0) -> dict[str, Any]:
        """The detail modal of a job the store does not have, asked of GES (no trigger deadline here)."""
        alias = project if project in self.services.clients else None
        found = await self.runner.job(commands.JobDetail(job_id, alias), user=user)
        if isinstance(found, QueryProblem):
            return views.missing_job_modal(job_id, found.message)
        return render.render_job_detail_modal(found.job, self._project_info(found.project), self._now(), page=page)

    async def on_details(self, body: Mapping[str, Any]) -> None:
        value = str(self._action(body).get("value") or "")
        try:
            project, job_id = render.parse_job_ref(value)
        except ValueError:
            log.warning("slack: Details button with an unreadable value %r", value[:80])
            metrics.COMMANDS.labels("details_button", "error").inc()
            return
        # The trigger expires in ~3 s: open from the snapshot (fast), never wait for GES first.
        job = await self._snapshot_job(project, job_id)
        if job is not None:
            view = render.render_job_detail_modal(job, self._project_info(project), self._now())
        else:
            view = views.loading_job_modal(job_id)
        try:
            opened = await self.client.views_open(trigger_id=body.get("trigger_id"), view=view)
        except Exception as exc:
            log.warning("slack: views.open for job %s failed: %s", job_id, _slack_error(exc))
            metrics.COMMANDS.labels("details_button", "error").inc()
            notice = views.problem_message(
                QueryProblem(f"The details did not open in time. `/gesjobs job {job_id}` shows the same.")
            )
            await self._respond(body.get("response_url"), notice)
            return
        metrics.COMMANDS.labels("details_button", "ok").inc()
        if job is None:
            # Not in the store (e.g. an old job found by `/gesjobs job`): fill the open modal from GES.
            opened_view = opened.get("view") or {}
            await self._update_view(
                opened_view.get("id"),
                opened_view.get("hash"),
                await self._modal_from_ges(project, job_id, self._user(body)),
            )

    async def _update_view(self, view_id: object, view_hash: object, view: dict[str, Any]) -> None:
        if not view_id:
            return
        try:
            await self.client.views_update(view_id=str(view_id), hash=str(view_hash) if view_hash else None, view=view)
        except Exception as exc:
            log.warning("slack: views.update failed: %s", _slack_error(exc))

    async def on_detail_page(self, body: Mapping[str, Any]) -> None:
        value = str(self._action(body).get("value") or "")
        view_info = body.get("view") or {}
        try:
            project, job_id, page = render.parse_page_ref(value)
        except ValueError:
            log.warning("slack: detail page button with an unreadable value %r", value[:80])
            return
        job = await self._snapshot_job(project, job_id)
        if job is not None:
            view = render.render_job_detail_modal(job, self._project_info(project), self._now(), page=page)
        else:
            view = await self._modal_from_ges(project, job_id, self._user(body), page)
        await self._update_view(view_info.get("id"), view_info.get("hash"), view)

    async def on_mute_button(self, body: Mapping[str, Any]) -> None:
        action = self._action(body)
        span = render.MUTE_ACTIONS.get(str(action.get("action_id") or ""))
        graph = str(action.get("value") or "")
        user = self._user(body)
        channel = self._channel(body)
        response_url = body.get("response_url")
        if span is None or not graph or not channel:
            log.warning("slack: mute button without a graph or channel")
            return
        if not self._may_manage(user):
            metrics.COMMANDS.labels("mute_button", "refused").inc()
            await self._respond(response_url, views.not_allowed_message(self.admins, "mute alerts"))
            return
        now = self._now()
        try:
            # exact: the button names one graph; a name with * or ? in it is not a pattern.
            mute = await self.services.store.add_mute(
                Mute(
                    id=0,
                    channel=channel,
                    graph_pattern=graph,
                    until=now + span,
                    created_by=user,
                    created_at=now,
                    exact=True,
                )
            )
        except StoreError as exc:
            log.error("slack: mute button: database unavailable: %s", exc)
            metrics.COMMANDS.labels("mute_button", "error").inc()
            await self._respond(response_url, views.problem_message(QueryProblem(_STORE_DOWN)))
            return
        metrics.COMMANDS.labels("mute_button", "ok").inc()
        await self._announce_mute(mute, now)
        await self._respond(response_url, views.mute_button_message(mute, span, user))

    async def on_acknowledge(self, body: Mapping[str, Any]) -> None:
        message = body.get("message") or {}
        channel = self._channel(body)
        user = self._user(body)
        ts = message.get("ts") if isinstance(message, Mapping) else None
        if not ts or not channel:
            log.warning("slack: Acknowledge without a message to update")
            return
        updated = views.acknowledged(
            str(message.get("text") or ""), list(message.get("blocks") or []), user, self._now()
        )
        if updated is None:
            # Not a user id we would mention, or the alert was acknowledged already.
            metrics.COMMANDS.labels("ack_button", "refused").inc()
            return
        try:
            await self.client.chat_update(channel=channel, ts=str(ts), text=updated.text, blocks=updated.blocks)
        except Exception as exc:
            log.warning("slack: chat.update for an acknowledgement failed: %s", _slack_error(exc))
            metrics.COMMANDS.labels("ack_button", "error").inc()
            return
        metrics.COMMANDS.labels("ack_button", "ok").inc()

    # --- Home tab ------------------------------------------------------------------------------

    async def _channels_of(self, user: str) -> set[str]:
        """Ids and names of the channels ``user`` is in (as far as the bot can see them:
        ``users.conversations``); empty when Slack does not say, so nothing is shown by mistake."""
        found: set[str] = set()
        cursor: str | None = None
        for _ in range(_HOME_CHANNEL_PAGES):
            try:
                page = await self.client.users_conversations(
                    user=user,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
            except Exception as exc:
                log.warning("slack: users.conversations for the Home tab failed: %s", _slack_error(exc))
                return set()
            for channel in page.get("channels") or ():
                if isinstance(channel, Mapping):
                    found |= _names(channel)
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "") or None
            if cursor is None:
                break
        return found

    async def _home_chart(self, user: str, subs: list[Subscription], now: datetime) -> list[dict[str, Any]]:
        """The last 7 days' chart of the graphs the user's channels subscribe to (``subs`` holds only
        those channels' subscriptions: nothing when Slack does not say which channels they are)."""
        try:
            chosen = subs
            if not chosen:
                return statsview.home_chart_blocks(None, None, file_id=None)
            zone = await self.timezones.zone_for(user)
            start, end = commands.resolve(commands.TimeRange.last(timedelta(days=7)), now, zone)
            start, end = stats.chart_window(start, end, now, zone)
            scope = charting.scope_for(None, None, chosen, whose="your channels")
            rows, _ = await charting.gather(self.services.store, scope, start - (end - start), end)
            data = stats.aggregate(rows, zone, start, end)
            key = _chart_key(zone, scope, data)
            file_id = self._home_charts.get(key)
            problem = None
            if file_id is None:
                # Same numbers, same picture: re-opening the Home tab does not upload it again.
                file_id, problem = await self._chart_file(data, "daily", scope)
                if file_id is not None:
                    if len(self._home_charts) >= 256:
                        self._home_charts.pop(next(iter(self._home_charts)))
                    self._home_charts[key] = file_id
            return statsview.home_chart_blocks(data, scope, file_id=file_id, problem=problem)
        except StoreError as exc:
            log.error("slack: Home tab chart: database unavailable: %s", exc)
            return []

    async def on_home_opened(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = str(event.get("user") or "")
        if not user:
            return
        team = body.get("team_id")
        now = self._now()
        store = self.services.store
        try:
            stored = await store.subscriptions()
            since = now - self.options.home_failures_since
            events = await store.recent_events(since, _HOME_FAILURE_KINDS, 20)
            health = await store.health(now)
        except StoreError as exc:
            log.error("slack: Home tab: database unavailable: %s", exc)
            return
        # Only the channels the viewer is in: another channel's subscriptions (a private
        # channel's id and graphs above all) are not theirs to read.
        theirs = await self._channels_of(user)
        subs = [
            s
            for s in [*(s for s in stored if s.team in (None, team)), *self.services.config_subscriptions]
            if s.channel in theirs
        ]
        chart_blocks = await self._home_chart(user, subs, now)
        data = views.HomeData(
            subscriptions=subs,
            events=events,
            health=health,
            projects=list(self.services.projects),
            poll_interval_s=self.services.config.settings.poll_interval,
            notes=dict(self.services.notes),
            events_since=since,
        )
        view = views.home_view(data, now)
        blocks = list(view.get("blocks") or [])
        if len(blocks) + len(chart_blocks) <= 100:
            # Under the Home tab's header, intro and divider: the first thing a person sees.
            view = {**view, "blocks": [*blocks[:3], *chart_blocks, *blocks[3:]]}
        try:
            await self.client.views_publish(user_id=user, view=view)
        except Exception as exc:
            log.warning("slack: views.publish for the Home tab failed: %s", _slack_error(exc))


_HOME_CHANNEL_PAGES = 10


def _names(channel: Mapping[str, Any]) -> set[str]:
    # Config files may name a channel by id, by name or by #name.
    name = str(channel.get("name") or "")
    return {str(channel.get("id") or ""), name, f"#{name}"} - {"", "#"}


def _chart_key(zone: ZoneInfo, scope: statsview.ChartScope, data: stats.Stats) -> str:
    return json.dumps([zone.key, scope.patterns, scope.project, data.to_json()], sort_keys=True, default=str)


def _slack_error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    data = getattr(response, "data", None)
    if isinstance(data, Mapping) and data.get("error"):
        return str(data["error"])
    return type(exc).__name__


def build_app(
    services: Services,
    *,
    bot_token: str,
    signing_secret: str | None,
    api_url: str,
    socket_mode: bool,
    options: SlackAppOptions | None = None,
    inflight: Inflight | None = None,
) -> AsyncApp:
    """The bolt app. In HTTP mode every request must carry a valid Slack signature (bolt answers
    401 otherwise); in Socket Mode requests arrive over the app's own WebSocket, unsigned. The work
    after each ack runs in ``inflight`` (the caller drains it on stop)."""
    options = options or SlackAppOptions()
    if not socket_mode and not signing_secret:
        raise ConfigError("HTTP mode needs SLACK_SIGNING_SECRET (Basic Information → Signing Secret)")
    client = AsyncWebClient(
        token=bot_token,
        base_url=api_url,
        timeout=int(max(1, options.slack_timeout_s)),
        retry_handlers=retry_handlers(),
    )
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=not socket_mode,
        # Listeners only ack and hand their work to ``inflight``: answered at once, without bolt's
        # 10 ms ack polling (see slackapp.inflight).
        process_before_response=True,
        logger=_bolt_logger(),
        name="ges-bot",
    )
    GesSlackApp(services, client, options, Inflight() if inflight is None else inflight).register(app)
    return app


def build_http_routes(app: AsyncApp) -> list[Route]:
    """``POST /slack/events``: commands, button clicks and events (HTTP mode)."""
    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return [Route(EVENTS_PATH, events, methods=["POST"])]


class _DropTokenSkippedWarning(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from the environment even when given a client, then warns on every
    start that the token is unused. Operators read that as a misconfiguration; it is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("ges_bot.slackapp.bolt")
    if not any(isinstance(f, _DropTokenSkippedWarning) for f in logger.filters):
        logger.addFilter(_DropTokenSkippedWarning())
    return logger


#: Slack errors that mean the app-level token itself is wrong: no retry will help.
_BAD_APP_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "not_allowed_token_type", "token_revoked", "account_inactive"}
)


async def start_socket_mode(app: AsyncApp, app_token: str, *, check_timeout_s: float = 10.0) -> AsyncSocketModeHandler:
    """Check the app-level token once (``apps.connections.open``) and return a Socket Mode handler
    that is not yet connected; the caller runs ``await handler.connect_async()`` (it reconnects by
    itself) and stops it with ``await handler.close_async()``.

    A token Slack rejects raises :class:`ConfigError`; an unreachable Slack is only logged, since
    the handler keeps trying and health reports the missing connection meanwhile."""
    try:
        await asyncio.wait_for(app.client.apps_connections_open(app_token=app_token), check_timeout_s)
    except SlackApiError as exc:
        error = _slack_error(exc)
        if error in _BAD_APP_TOKEN:
            raise ConfigError(
                f"Slack rejects SLACK_APP_TOKEN ({error}); generate an app-level token with the connections:write "
                "scope under Basic Information → App-Level Tokens, and enable Socket Mode for the app"
            ) from None
        log.warning("slack: apps.connections.open failed (%s); Socket Mode will keep trying", error)
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        log.warning("slack: cannot reach Slack for Socket Mode (%s); it will keep trying", type(exc).__name__)
    return AsyncSocketModeHandler(app, app_token)
