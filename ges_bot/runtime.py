"""Starts and stops everything ``ges-bot run`` does, in one process.

This module owns the lifecycle: open (and migrate) the store, take the single-instance lease on
SQLite, build one job-center client and one poller per project, schedule the pollers, run the
delivery worker, serve HTTP (``/healthz``, ``/metrics`` and, in HTTP mode, ``/slack/events``),
connect Socket Mode when ``SLACK_APP_TOKEN`` is set, and shut all of it down cleanly on SIGINT
or SIGTERM. It holds no business logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ges_bot import frontdoor, metrics
from ges_bot.clock import Clock, utc_now
from ges_bot.config import DEFAULT_CLAIM_LEASE_S, Config
from ges_bot.digests import DigestRunner, build_digest_runner
from ges_bot.errors import ConfigError, StoreError
from ges_bot.jobcenter.client import JobCenterClient
from ges_bot.loopback import EmbeddedServer
from ges_bot.notify.delivery import DeliveryPolicy, DeliveryWorker
from ges_bot.notify.ops import OpsWatch, ops_watch_for
from ges_bot.notify.slack import SlackGateway, WebApiGateway
from ges_bot.services import Services
from ges_bot.sinks.sender import SinkSender
from ges_bot.sinks.targets import is_sink_target
from ges_bot.sinks.worker import SinkPolicy, SinkWorker
from ges_bot.slackapp.app import build_app, build_http_routes, start_socket_mode
from ges_bot.slackapp.inflight import Inflight
from ges_bot.store import open_store
from ges_bot.store.api import Store
from ges_bot.store.engine import describe
from ges_bot.watch.poller import Cadence, Poller, run_tick

log = logging.getLogger(__name__)

INSTANCE_LEASE = "instance"
#: How long a stopping bot waits for the Slack answers it already acknowledged.
_ANSWER_DRAIN_S = 10.0


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class RuntimeOptions:
    """Knobs that tests, the demo and benchmarks turn; production uses the defaults."""

    serve_http: bool = True
    delivery_policy: DeliveryPolicy | None = None
    #: Seconds between lease renewals; the lease lives 3× as long.
    instance_lease_renew_s: float = 10.0
    poll_jitter_s: float | None = None
    #: Alternative Slack gateway (the demo can add a terminal view on top of the stand-in).
    gateway_factory: Callable[[Config], SlackGateway] | None = None
    #: Seconds between checks for due digests (``ges_bot.digests``).
    digest_interval_s: float = 60.0
    #: Seconds between health checks of the dead man's switch (default: the poll interval, ≤ 30 s).
    ops_check_s: float | None = None


def schedule_polls(
    scheduler: AsyncIOScheduler,
    pollers: Sequence[Poller],
    tick: Callable[[Poller], Awaitable[object]],
    *,
    interval_s: float,
    jitter_s: float = 0.0,
    fast_tick: Callable[[Poller], Awaitable[object]] | None = None,
    fast_interval_s: float = 0.0,
) -> None:
    """Add one APScheduler interval job per project, calling ``tick(poller)``, the first at once.

    ``max_instances=1`` and ``coalesce=True``: a slow tick is never overlapped by the next, and
    missed runs collapse into one. ``jitter_s`` spreads projects and replicas apart.

    With ``fast_tick`` and a ``fast_interval_s`` shorter than ``interval_s``, a second job per
    project calls ``fast_tick(poller)`` on that interval (the poller's fast lane: the end of the
    arrivals window; it stands aside while the normal tick runs, and under the same lease, so
    replicas still poll each project once). While it serves, the poller's own ``Cadence`` makes
    most of the interval's ticks (``Poller.poll``) ask nothing: the scans wait for their interval.
    """
    fast = fast_tick is not None and 0 < fast_interval_s < interval_s
    for poller in pollers:
        if fast:
            assert fast_tick is not None
            scheduler.add_job(
                fast_tick,
                "interval",
                seconds=fast_interval_s,
                jitter=min(jitter_s, fast_interval_s / 4) or None,
                args=[poller],
                id=f"fast:{poller.project.alias}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=utc_now() + timedelta(seconds=fast_interval_s),
            )
        scheduler.add_job(
            tick,
            "interval",
            seconds=interval_s,
            jitter=jitter_s or None,
            args=[poller],
            id=f"poll:{poller.project.alias}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=utc_now() + timedelta(milliseconds=50),
        )


class Runtime:
    """The whole bot. ``await start()``, then ``await stop()`` (or ``serve_forever()``)."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utc_now,
        options: RuntimeOptions | None = None,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.clock = clock
        self.options = options or RuntimeOptions()
        self.replica = self.settings.replica_id or default_replica_id()
        self.store: Store | None = None
        self.clients: dict[str, JobCenterClient] = {}
        self.pollers: list[Poller] = []
        self.services: Services | None = None
        self.worker: DeliveryWorker | None = None
        #: Delivers outbox rows routed to group-bot sinks (``[[sinks]]``); ``None`` without sinks.
        self.sink_worker: SinkWorker | None = None
        self._sink_client: httpx.AsyncClient | None = None
        self.ops: OpsWatch | None = None
        self.http_port: int | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        #: The Slack app's work after each ack (answers, clicks, the Home tab).
        self.answers = Inflight()
        self._ticks_in_flight: set[asyncio.Task[Any]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._server: uvicorn.Server | None = None
        self._socket_handler: Any = None
        self._gateway: SlackGateway | None = None
        self._is_sqlite = self.settings.database_url.startswith("sqlite")
        self.digests: DigestRunner | None = None

    # --- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        token = s.slack_bot_token.get_secret_value() if s.slack_bot_token else None
        if not token and not self.config.sinks:
            raise ConfigError(
                "SLACK_BOT_TOKEN is not set; create the app from manifest.yml and copy its Bot User OAuth Token (xoxb-…) "
                "(or declare [[sinks]] in GES_BOT_CONFIG to alert only group bots: Lark, DingTalk, WeCom, Teams)"
            )
        # Without a Slack token but with [[sinks]], ges-bot alerts only the group bots (no /gesjobs).
        socket_mode = bool(token) and s.slack_app_token is not None
        if token and not socket_mode and not s.slack_signing_secret:
            raise ConfigError(
                "set SLACK_APP_TOKEN (xapp-…, Socket Mode, recommended) or SLACK_SIGNING_SECRET (HTTP mode); see the README"
            )
        lease_s, lease_name = s.claim_lease
        if s.delivery_lease_s is not None:
            log.warning(
                "GES_BOT_DELIVERY_LEASE is deprecated: claims are now renewed while a replica lives; %s; "
                "set GES_BOT_CLAIM_LEASE instead (default %g s)",
                "ignored because GES_BOT_CLAIM_LEASE is set"
                if lease_name == "GES_BOT_CLAIM_LEASE"
                else f"its {lease_s:g} s is used as the claim lease",
                DEFAULT_CLAIM_LEASE_S,
            )
        self.store = await open_store(s.database_url, migrate=True)
        if self._is_sqlite:
            await self._take_instance_lease()
        for project in self.config.projects:
            self.clients[project.alias] = JobCenterClient(
                project,
                page_size=s.ges_page_size,
                concurrency=s.ges_page_concurrency,
                timeout=s.ges_timeout,
                max_retries=s.ges_max_retries,
                max_answer_bytes=s.ges_max_answer_bytes,
            )
        self.services = Services(
            config=self.config, store=self.store, clients=self.clients, clock=self.clock, replica=self.replica
        )
        if token:
            if self.options.gateway_factory is not None:
                self._gateway = self.options.gateway_factory(self.config)
            else:
                self._gateway = WebApiGateway(token, base_url=s.slack_api_url, timeout=s.slack_timeout)
            self.worker = DeliveryWorker(
                self.store,
                self._gateway,
                self.services.projects,
                worker_id=self.replica,
                clock=self.clock,
                policy=self.options.delivery_policy or _delivery_policy(*s.claim_lease, s.slack_timeout),
                # Slack problems a person must see reach /gesjobs status and the Home tab through these.
                notes=self.services.notes,
            )
        else:
            waiting = [sub.channel for sub in self.config.subscriptions if not is_sink_target(sub.channel)]
            if waiting:
                log.warning(
                    "SLACK_BOT_TOKEN is not set: alerts for %d Slack channel subscription(s) wait in the outbox",
                    len(waiting),
                )
        if self.config.sinks:
            self._sink_client = httpx.AsyncClient(timeout=s.sink_timeout)
            self.sink_worker = SinkWorker(
                self.store,
                self.config.sinks,
                self.services.projects,
                SinkSender(self._sink_client),
                worker_id=self.replica,
                clock=self.clock,
                # Rows are handed back when less than one post (and its recording) is left of a claim.
                policy=SinkPolicy(claim_lease_s=lease_s, lease_margin_s=s.sink_timeout + 3),
                zone=s.timezone,
            )
        for project in self.config.projects:
            self.pollers.append(
                Poller(
                    project,
                    self.clients[project.alias],
                    self.store,
                    config_subscriptions=self.config.subscriptions,
                    stuck_after=s.stuck_after,
                    backfill=s.backfill,
                    clock=self.clock,
                    replica=self.replica,
                    # Renewed by the heartbeat while this replica lives, so a dead replica's
                    # projects are taken over within a lease and one interval (every replica
                    # tries each interval). A tick outliving it is harmless: events are unique by
                    # dedup key, so an overlapping tick records and routes nothing twice.
                    lease_ttl=lease_s,
                    max_pages=s.tick_max_pages,
                    tick_deadline=s.tick_deadline_s,
                    # The scheduled polls below and the fast lane's: while it serves, a poll
                    # leaves its scans for GES_BOT_SCAN_INTERVAL (module docstring of watch.poller).
                    cadence=Cadence(poll_s=s.poll_interval, fast_s=s.fast_interval, scan_s=s.scan_interval),
                )
            )
        # Everything that can refuse to start (port, Slack tokens) comes before the loops, so a
        # failed start never leaves a tick or a delivery half-done.
        slack_app = self._build_slack_app(token, socket_mode) if token else None
        if self.options.serve_http:
            await self._start_http(slack_app if not socket_mode else None)
        if socket_mode and slack_app is not None:
            await self._start_socket_mode(slack_app)
        worker = self.worker if token else None
        if worker is not None:
            self._tasks.append(asyncio.create_task(worker.run(self._stop), name="delivery"))
        if worker is not None or self.sink_worker is not None:
            # The dead man's switch: says so (ops channel, ops sinks, log, notes, /healthz) when a
            # project is blind — also on a bot that alerts only group bots.
            self.ops = ops_watch_for(
                self.config,
                self.store,
                self._gateway if worker is not None else None,
                self.services.notes,
                clock=self.clock,
                replica=self.replica,
                installation_error=lambda: worker.last_installation_error if worker is not None else None,
                broken_config_channels=lambda: dict(worker.broken_config_channels) if worker is not None else {},
                broken_sinks=lambda: self.sink_worker.broken() if self.sink_worker is not None else {},
                check_every_s=self.options.ops_check_s,
            )
            self._tasks.append(asyncio.create_task(self.ops.run(self._stop), name="ops"))
            self.digests = build_digest_runner(
                self.config, self.store, token, worker=self.replica, clock=self.clock, sink_worker=self.sink_worker
            )
        if self.sink_worker is not None:
            self._tasks.append(asyncio.create_task(self.sink_worker.run(self._stop), name="sink-delivery"))
        self._tasks.append(asyncio.create_task(self._renew_poll_leases(lease_s), name="poll-leases"))
        self._start_scheduler()
        log.info(
            "ges-bot %s started: %d project(s), database %s, %s, %d sink(s), poll every %.0fs "
            "(fast lane every %.0fs, scans every %.0fs while it serves)",
            self.replica,
            len(self.config.projects),
            describe(s.database_url),
            ("Slack Socket mode" if socket_mode else "Slack HTTP mode") if token else "no Slack",
            len(self.config.sinks),
            s.poll_interval,
            s.fast_interval,
            s.scan_interval,
        )

    async def _take_instance_lease(self) -> None:
        assert self.store is not None
        ttl = self.options.instance_lease_renew_s * 3
        if not await self.store.try_lease(INSTANCE_LEASE, self.replica, self.clock(), ttl):
            raise ConfigError(
                f"another ges-bot is already running on {describe(self.settings.database_url)}; with SQLite only one "
                "instance per database file is supported. Stop the other one, or use PostgreSQL "
                "(GES_BOT_DATABASE_URL=postgresql://…) to run several replicas"
            )
        self._tasks.append(asyncio.create_task(self._renew_instance_lease(ttl), name="instance-lease"))

    async def _renew_instance_lease(self, ttl: float) -> None:
        assert self.store is not None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.options.instance_lease_renew_s)
            if self._stop.is_set():
                return
            try:
                if not await self.store.try_lease(INSTANCE_LEASE, self.replica, self.clock(), ttl):
                    log.critical("lost the SQLite instance lease to another process; stopping")
                    self._stop.set()
            except StoreError as exc:
                log.warning("could not renew the instance lease: %s", exc)

    async def _renew_poll_leases(self, lease_s: float) -> None:
        """The pollers' heartbeat: renew the poll leases this replica holds, three times a lease,
        so that it stays the poller while it lives and a dead one is replaced within seconds."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), lease_s / 3)
            if self._stop.is_set():
                return
            for poller in self.pollers:
                try:
                    await poller.renew_lease()
                except StoreError as exc:
                    log.warning("could not renew the poll lease of %s: %s", poller.alias, exc)

    def _start_scheduler(self) -> None:
        interval = self.settings.poll_interval
        jitter = self.options.poll_jitter_s if self.options.poll_jitter_s is not None else min(10.0, interval * 0.1)
        scheduler = AsyncIOScheduler(timezone=UTC)
        schedule_polls(
            scheduler,
            self.pollers,
            self._tick,
            interval_s=interval,
            jitter_s=jitter,
            fast_tick=self._fast_tick,
            fast_interval_s=self.settings.fast_interval,
        )
        if self.digests is not None:
            scheduler.add_job(
                self._run_digests,
                "interval",
                seconds=self.options.digest_interval_s,
                id="digests",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=utc_now() + timedelta(milliseconds=100),
            )
        scheduler.start()
        self._scheduler = scheduler

    async def _run_digests(self) -> None:
        """Send due digests. Never raises: the scheduler must outlive every database or Slack fault."""
        if self._stop.is_set() or self.digests is None:
            return
        # Its own task, shielded: the scheduler cancels its jobs on shutdown, but a digest that
        # was posted must also be marked sent, so stop() waits for it like a poll tick.
        task = asyncio.create_task(self._digests_once(self.digests), name="digests")
        self._ticks_in_flight.add(task)
        task.add_done_callback(self._ticks_in_flight.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    @staticmethod
    async def _digests_once(digests: DigestRunner) -> None:
        try:
            await digests.run()
        except Exception:
            log.exception("digests: the check failed; retrying at the next interval")

    async def _tick(self, poller: Poller) -> None:
        """One scheduled tick. Never raises: the scheduler must outlive every GES or database fault."""
        if self._stop.is_set():
            return
        current = asyncio.current_task()
        if current is not None:
            self._ticks_in_flight.add(current)
        try:
            # run_tick logs a failed tick with the GES error and records it in the poll state
            # (shown by /gesjobs status and /healthz); the next interval retries.
            report = await run_tick(poller)
        except asyncio.CancelledError:
            log.info("poll tick for %s cancelled by shutdown", poller.project.alias)
            return
        except Exception:
            log.exception("poll tick for %s failed unexpectedly; retrying at the next interval", poller.project.alias)
            return
        finally:
            if current is not None:
                self._ticks_in_flight.discard(current)
        if report is not None and report.outbox_ids and self.worker is not None:
            self.worker.wake()
        if report is not None and report.outbox_ids and self.sink_worker is not None:
            self.sink_worker.wake()
        if self.ops is not None:
            self.ops.wake()

    async def _fast_tick(self, poller: Poller) -> None:
        """One fast-lane tick. Never raises; a failure is the normal tick's to record and retry."""
        if self._stop.is_set():
            return
        try:
            report = await poller.fast_tick()
        except asyncio.CancelledError:
            return
        except Exception as exc:
            log.warning("fast poll of %s failed (the next normal tick retries): %s", poller.project.alias, exc)
            return
        if report.outbox_ids and self.worker is not None:
            self.worker.wake()

    def _build_slack_app(self, token: str, socket_mode: bool) -> Any:
        assert self.services is not None
        secret = self.settings.slack_signing_secret
        return build_app(
            self.services,
            bot_token=token,
            signing_secret=secret.get_secret_value() if secret else None,
            api_url=self.settings.slack_api_url,
            socket_mode=socket_mode,
            inflight=self.answers,
        )

    async def _start_http(self, slack_app: Any) -> None:
        routes: list[BaseRoute] = [Route("/healthz", self._healthz), Route("/metrics", self._metrics)]
        if slack_app is not None:
            routes.extend(build_http_routes(slack_app))
        app: Any = Starlette(routes=routes)
        if slack_app is not None:
            app = frontdoor.guard_slack_events(app, self.settings)
        host = self.settings.serve_host
        config = uvicorn.Config(
            app,
            host=host,
            port=self.settings.http_port,
            log_level="warning",
            # None: uvicorn's lines go through the bot's own handler and format (frontdoor).
            log_config=None,
            lifespan="off",
            access_log=False,
            limit_concurrency=self.settings.http_concurrency,
            # Said here, not left to uvicorn's FORWARDED_ALLOW_IPS: /healthz shows its details to
            # loopback callers, so only a proxy on this host may name the client for it.
            forwarded_allow_ips="127.0.0.1,::1",
        )
        frontdoor.route_server_logs()
        # Bind the socket ourselves: uvicorn answers a busy port with sys.exit(), which would end
        # the whole event loop with a traceback instead of a message saying what to change.
        sock = _bind(host, self.settings.http_port)
        server = EmbeddedServer(config)
        self._server = server
        task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        self._tasks.append(task)
        for _ in range(1000):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            raise ConfigError(f"could not serve HTTP on {host}:{self.settings.http_port}")
        self.http_port = int(sock.getsockname()[1])
        log.info(
            "serving /healthz, /metrics%s on port %d", "" if slack_app is None else ", /slack/events", self.http_port
        )

    async def _start_socket_mode(self, slack_app: Any) -> None:
        app_token = self.settings.slack_app_token
        assert app_token is not None
        # A rejected app token fails start-up with a ConfigError; an unreachable Slack does not:
        # the handler keeps reconnecting in the background and /healthz reports it meanwhile.
        handler = await start_socket_mode(slack_app, app_token.get_secret_value())
        self._socket_handler = handler
        self._tasks.append(asyncio.create_task(self._connect_socket_mode(handler), name="socket-mode"))

    async def _connect_socket_mode(self, handler: Any) -> None:
        try:
            await handler.connect_async()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("Socket Mode connection failed: %s; slash commands are unavailable until it connects", exc)

    async def socket_mode_connected(self) -> bool | None:
        """``None`` in HTTP mode; otherwise whether the Socket Mode WebSocket is up."""
        if self._socket_handler is None:
            return None
        client = getattr(self._socket_handler, "client", None)
        try:
            return bool(await client.is_connected()) if client is not None else False
        except Exception:
            return False

    # --- HTTP endpoints ------------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        body = await self.health()
        status = 200 if body["status"] != "down" else 503
        if not frontdoor.trusted(request, self.settings.health_token):
            # Anyone who can reach the port learns whether the bot works, not where its
            # database lives or what GES said.
            body = frontdoor.public_health(body)
        return JSONResponse(body, status_code=status)

    async def _metrics(self, request: Request) -> Response:
        if self.store is not None:
            with contextlib.suppress(StoreError):
                health = await self.store.health(self.clock())
                metrics.OUTBOX_PENDING.set(health.outbox_pending)
                metrics.OUTBOX_DEAD.set(health.outbox_dead)
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def health(self) -> dict[str, Any]:
        """``ok`` / ``degraded`` (GES or Slack trouble; the process works) / ``down`` (no database)."""
        now = self.clock()
        if self.store is None:
            return {"status": "down", "reason": "not started"}
        try:
            health = await self.store.health(now)
        except StoreError as exc:
            return {"status": "down", "reason": f"database unavailable: {exc}"}
        status = "ok"
        projects = []
        stale_after = timedelta(seconds=self.settings.poll_interval * 5)
        for poll in health.polls:
            lag = (now - poll.last_success_at).total_seconds() if poll.last_success_at else None
            if poll.last_success_at is None or now - poll.last_success_at > stale_after:
                status = "degraded"
            projects.append(
                {
                    "project": poll.project,
                    "last_success_at": _iso(poll.last_success_at),
                    "lag_seconds": lag,
                    "last_error": poll.last_error,
                    "consecutive_failures": poll.consecutive_failures,
                }
            )
        slack_error = self.worker.last_installation_error if self.worker else None
        socket_connected = await self.socket_mode_connected()
        incidents = self.ops.health() if self.ops is not None else []
        if slack_error or health.outbox_dead or socket_connected is False or incidents:
            status = "degraded"
        # Sinks by name only: their URL and secret are secrets.
        broken_sinks = self.sink_worker.broken() if self.sink_worker is not None else {}
        if broken_sinks:
            status = "degraded"
        backlog: dict[str, tuple[int, str | None]] = {}
        if self.config.sinks:
            with contextlib.suppress(StoreError):
                backlog = await self.store.sink_backlog()
        sinks = [
            {
                "name": sink.name,
                "type": sink.type,
                "broken": broken_sinks.get(sink.name),
                "waiting": backlog.get(sink.target, (0, None))[0],
            }
            for sink in self.config.sinks
        ]
        return {
            "status": status,
            "replica": self.replica,
            "projects": projects,
            "outbox_pending": health.outbox_pending,
            "outbox_dead": health.outbox_dead,
            "oldest_pending_at": _iso(health.oldest_pending_at),
            "broken_subscriptions": len(health.broken_subscriptions),
            "slack_error": slack_error,
            "socket_mode_connected": socket_connected,
            "sinks": sinks,
            "notes": dict(self.services.notes) if self.services else {},
            "incidents": incidents,
        }

    # --- stop ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            # A tick the scheduler already handed to the loop sees the stop flag and returns.
            await asyncio.sleep(0.05)
        if self._ticks_in_flight:
            # Let a tick that is mid-transaction finish rather than cancel it half-way.
            await asyncio.wait(set(self._ticks_in_flight), timeout=15)
        for poller in self.pollers:
            # Hand the project to another replica at once (its next tick takes it) instead of
            # after the lease expires: a rolling update loses no poll interval.
            with contextlib.suppress(Exception):
                await poller.release()
        if self._socket_handler is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._socket_handler.close_async(), 5)
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        self._tasks.clear()
        # Answers already acknowledged are finished before the store and clients close under them.
        unfinished = await self.answers.drain(_ANSWER_DRAIN_S)
        if unfinished:
            log.warning("stopped with %d Slack answer(s) unfinished after %ss", unfinished, _ANSWER_DRAIN_S)
        if self.store is not None and self._is_sqlite:
            with contextlib.suppress(StoreError):
                await self.store.release_lease(INSTANCE_LEASE, self.replica)
        for client in self.clients.values():
            await client.aclose()
        if self._sink_client is not None:
            await self._sink_client.aclose()
        close = getattr(self._gateway, "aclose", None)
        if close is not None:
            await close()
        if self.store is not None:
            await self.store.close()
        log.info("ges-bot %s stopped", self.replica)

    async def serve_forever(self, ready: Callable[[Runtime], Awaitable[None]] | None = None) -> None:
        """Run until SIGINT/SIGTERM (or ``request_stop``)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.start()
            if ready is not None:
                await ready(self)
            await self._stop.wait()
        finally:
            # Also after a failed start: release the SQLite lease and close what was opened.
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()


def _delivery_policy(lease_s: float, name: str, slack_timeout_s: float) -> DeliveryPolicy:
    """The production policy with the configured claim lease (``GES_BOT_CLAIM_LEASE``, or the
    deprecated ``GES_BOT_DELIVERY_LEASE`` — ``name`` says which, for the message).

    A row is handed back instead of posted when its claim has less than ``lease_margin_s`` left,
    so the margin must cover a whole Slack call and its recording — else a slow post outlives the
    claim and another replica posts the row too: it is half the lease (30 s at most) but never
    less than ``GES_BOT_SLACK_TIMEOUT`` + 3 s. The worker renews its claims often enough to keep
    them above that margin (``DeliveryPolicy.heartbeat_interval``); a lease that leaves less than
    2 s beyond the margin for that is refused with a :class:`ConfigError`.
    """
    # Beyond the Slack call, a claim must cover recording the post and the event loop's own
    # delays (record_s); and it must leave room for heartbeats between the margin and the lease.
    record_s, room_s, max_margin_s = 3.0, 2.0, 30.0
    floor = slack_timeout_s + record_s
    if lease_s < floor + room_s:
        raise ConfigError(
            f"{name}={lease_s:g} is too short for GES_BOT_SLACK_TIMEOUT={slack_timeout_s:g}: a claim "
            f"must outlast a Slack call and its recording with time to spare; set {name} to at least "
            f"{floor + room_s:g} seconds (the default {DEFAULT_CLAIM_LEASE_S:g} suits the default Slack timeout), "
            "or lower GES_BOT_SLACK_TIMEOUT"
        )
    margin = max(floor, min(max_margin_s, lease_s / 2))
    return replace(DeliveryPolicy(), claim_lease_s=lease_s, lease_margin_s=margin)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot serve HTTP on {host}:{port} ({exc.strerror or exc}); set GES_BOT_HTTP_PORT to a free port "
            "(or GES_BOT_HTTP_HOST to an address of this machine)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None
