"""The Slack app end to end: the real bolt app behind real HTTP, the Slack stand-in, the GES emulator
and a real SQLite store, each on loopback.

Requests are signed the way Slack signs them and POSTed to ``/slack/events``; answers arrive at the
stand-in's response URLs, Web API calls (``users.info``, ``views.open``, ``chat.update``,
``views.publish``) are recorded by the stand-in. The tests assert what a person would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.routing import Mount

from ges_bot import metrics
from ges_bot.config import Config, load_settings
from ges_bot.domain import Delivery, EventKind, Job, JobEvent, Subscription
from ges_bot.jobcenter.client import JobCenterClient
from ges_bot.jobcenter.reading import ASSUMED
from ges_bot.notify import limits, render
from ges_bot.services import Services
from ges_bot.slackapp.app import SlackAppOptions, build_app, build_http_routes, start_socket_mode
from ges_bot.slackapp.commands import HELP_TEXT
from ges_bot.slackapp.inflight import Inflight
from ges_bot.slackapp.timezones import TimezoneCache
from ges_bot.standin.slack import (
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    Channel,
    SlackStandIn,
    User,
    signed_command_request,
    signed_interaction_request,
)
from ges_bot.store import SqlStore, open_store
from ges_bot.store.api import Snapshot, TickResult
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle, run_emulator

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALIAS = "prod"
#: 23:30 UTC: already tomorrow in Berlin (00:30), still today in New York (18:30).
NOW = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
HOSTILE = "<!channel> <!here> <@U0BOB> <https://evil.example|click me> & <#C0GENERAL>"
pytestmark = pytest.mark.asyncio(loop_scope="module")

LIVE_MARKUP = re.compile(r"<(?:!channel|!here|!everyone|@U0BOB|https?://|#C0GENERAL)")


# ------------------------------------------------------------------------------------------------
# The harness
# ------------------------------------------------------------------------------------------------


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Bot:
    emu: EmulatorHandle
    slack: SlackStandIn
    store: SqlStore
    services: Services
    url: str
    http: httpx.AsyncClient
    clock: Clock
    #: The app's work after each ack: drained, it says every click and question was handled.
    answers: Inflight
    ack_times: list[float] = field(default_factory=list)

    async def handled(self) -> None:
        """Wait until the work of every request sent so far has finished (none left running)."""
        assert await self.answers.drain(10) == 0, "a handler was still running after 10 s"

    async def post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        started = time.perf_counter()
        response = await self.http.post(f"{self.url}/slack/events", content=body, headers=dict(headers))
        self.ack_times.append(time.perf_counter() - started)
        return response

    async def command(
        self, text: str, *, secret: str = SECRET, timestamp: int | None = None, **fields: str
    ) -> tuple[httpx.Response, str]:
        """POST ``/gesjobs text``; returns the HTTP answer (the ack) and the response-URL id."""
        rid = f"r{time.monotonic_ns()}"
        url = self.slack.response_url(rid)
        body, headers = signed_command_request(
            secret, timestamp=timestamp, text=text, response_url=url, trigger_id=self.slack.issue_trigger_id(), **fields
        )
        return await self.post(body, headers), rid

    async def answer(self, rid: str, timeout: float = 10.0) -> dict[str, Any]:
        posts = await self.slack.wait_for(lambda: self.slack.responses(rid), timeout)
        assert len(posts) == 1, posts
        return posts[0]

    async def ask(self, text: str, **fields: str) -> dict[str, Any]:
        """``/gesjobs text`` as a person types it: the ack is fast and empty; returns the answer."""
        response, rid = await self.command(text, **fields)
        assert response.status_code == 200, response.text
        assert response.text == ""
        answer = await self.answer(rid)
        assert limits.check_message(answer) == [], limits.check_message(answer)
        return answer

    async def click(self, payload: Mapping[str, Any]) -> httpx.Response:
        body, headers = signed_interaction_request(SECRET, payload)
        response = await self.post(body, headers)
        assert response.status_code == 200, response.text
        return response

    async def event(self, event: Mapping[str, Any]) -> httpx.Response:
        payload = {
            "token": "legacy",
            "team_id": self.slack.team_id,
            "api_app_id": self.slack.app_id,
            "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": dict(event),
        }
        body = json.dumps(payload)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body),
        }
        response = await self.post(body.encode(), headers)
        assert response.status_code == 200, response.text
        return response

    async def add_job(self, **fields: Any) -> str:
        job = await self.emu.add_job(**fields)
        return str(job["job_id"])

    async def remember(self, *jobs: Job, at: datetime | None = None, events: Iterable[JobEvent] = ()) -> None:
        """Put snapshots (and events) in the store, as a successful poll tick at ``at`` would."""
        at = at or self.clock.now
        snapshots = [Snapshot(project=ALIAS, job=j, first_seen=at, last_seen=at, last_change=at) for j in jobs]
        await self.store.commit_tick(
            TickResult(project=ALIAS, at=at, snapshots=snapshots, events=list(events), outcomes=[], deliveries=[])
        )


def wire_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def seen(payload: Mapping[str, Any]) -> str:
    """Everything a person can read in a message or view: block texts, fields, context, buttons."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                parts.append(node["text"])
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload.get("blocks", []))
    return "\n".join(parts)


def live_markup(payload: Mapping[str, Any], allowed: Iterable[str] = ()) -> list[str]:
    """Live Slack markup (pings, links, channel links) in what Slack parses: the ``text`` fallback
    and every mrkdwn text object. ``plain_text`` and button values are never parsed."""
    texts = [str(payload.get("text") or "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                texts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload.get("blocks", []))
    found = []
    for text in texts:
        rest = text
        for ok in allowed:
            rest = rest.replace(ok, "")
        found += [m.group(0) for m in LIVE_MARKUP.finditer(rest)]
    return found


def job_ids_in(payload: Mapping[str, Any]) -> list[str]:
    return re.findall(r"job `([^`]+)`", seen(payload))


class Dispatch:
    """The bot server's ASGI app: forwards to the current test's app (the servers outlive tests)."""

    def __init__(self) -> None:
        self.current: Starlette | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.current is not None, "no bot is running"
        await self.current(scope, receive, send)


@dataclass
class Servers:
    """The loopback servers shared by this module's tests: emulator, Slack stand-in, the bot's HTTP."""

    emu: EmulatorHandle
    slack: SlackStandIn
    url: str
    http: httpx.AsyncClient
    dispatch: Dispatch
    #: An empty, migrated database that each bot starts from (a copy: migrating takes a while).
    template_db: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Servers]:
    template = tmp_path_factory.mktemp("db") / "template.db"
    await (await open_store(f"sqlite:///{template}")).close()
    stand_in = SlackStandIn(
        users=[
            User("U0ALICE", "alice", tz="Europe/Berlin"),
            User("U0BOB", "bob", tz="America/New_York"),
            User("U0NOTZ", "carol", tz="Not/A_Zone"),
        ],
        channels=[Channel("C0GENERAL", "general"), Channel("C0ALERTS", "alerts")],
        trigger_ttl=3.0,
    )
    dispatch = Dispatch()
    async with (
        run_emulator() as emu,
        serve(stand_in.app) as slack_url,
        serve(Starlette(routes=[Mount("/", app=dispatch)])) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        stand_in.base_url = slack_url
        yield Servers(emu, stand_in, url, http, dispatch, template)


@contextlib.asynccontextmanager
async def running_bot(
    servers: Servers,
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    options: SlackAppOptions | None = None,
    config_subscriptions: tuple[Subscription, ...] = (),
    max_retries: int = 1,
) -> AsyncIterator[Bot]:
    """A fresh bot (store, GES client, bolt app) on the shared servers, which start empty."""
    emu, stand_in = servers.emu, servers.slack
    await emu.control.delete("/_emulator/jobs")
    await emu.clear_faults()
    await emu.reset_stats()
    stand_in.reset()
    stand_in.clear_faults()
    shutil.copyfile(servers.template_db, tmp_path / "bot.db")
    store = await open_store(f"sqlite:///{tmp_path / 'bot.db'}", migrate=False)
    project = emu.project_settings(alias=ALIAS)
    client = JobCenterClient(project, max_retries=max_retries, backoff_base=0.01, backoff_cap=0.05, timeout=5)
    # As after the poller's first tick calibrated it against the emulator's (documented) reading.
    client.use_reading(ASSUMED)
    settings = load_settings({"GES_BOT_POLL_INTERVAL": "60", **(env or {})})
    config = Config(settings=settings, projects=(project,), subscriptions=config_subscriptions)
    clock = Clock()
    services = Services(config=config, store=store, clients={ALIAS: client}, clock=clock)
    answers = Inflight()
    app = build_app(
        services,
        bot_token=DEFAULT_BOT_TOKEN,
        signing_secret=SECRET,
        api_url=stand_in.api_url,
        socket_mode=False,
        options=options or SlackAppOptions(live_timeout_s=5.0),
        inflight=answers,
    )
    servers.dispatch.current = Starlette(routes=build_http_routes(app))
    try:
        yield Bot(emu, stand_in, store, services, servers.url, servers.http, clock, answers)
    finally:
        servers.dispatch.current = None
        await emu.clear_faults()
        await client.aclose()
        await store.close()


@pytest_asyncio.fixture(loop_scope="module")
async def bot(servers: Servers, tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(servers, tmp_path) as b:
        yield b


def failed_import(job_id: str = "job-import-1", graph: str = "movies") -> dict[str, Any]:
    """An ImportGraph job that partially failed, with per-file causes (wire form)."""
    return {
        "job_id": job_id,
        "status": "partiallyFailed",
        "job_type": "GraphManagement",
        "job_name": "ImportGraph",
        "related_graph": graph,
        "begin_time": wire_time(NOW - timedelta(minutes=40)),
        "end_time": wire_time(NOW - timedelta(minutes=25)),
        "fail_reason": "some files failed",
        "job_detail": {
            "schema_path": [{"path": "obs://bucket/schema.xml", "status": "success"}],
            "vertexset_path": [
                {
                    "path": "obs://bucket/vertex/person.csv",
                    "status": "failed",
                    "cause": "line 7: label 'persn' is not in the schema",
                    "total_lines": 1000,
                    "failed_lines": 1000,
                },
                {"path": "obs://bucket/vertex/movie.csv", "status": "success", "total_lines": 50, "failed_lines": 0},
            ],
            "edgeset_path": [
                {
                    "path": "obs://bucket/edge/rate.csv",
                    "status": "partFailed",
                    "cause": "line 12: vertex 'p42' does not exist",
                    "log": "obs://bucket/logs/rate.log",
                    "total_lines": 200,
                    "failed_lines": 3,
                }
            ],
        },
    }


# ------------------------------------------------------------------------------------------------
# Help, usage, signatures
# ------------------------------------------------------------------------------------------------


async def test_help_is_what_users_see_for_gesjobs_alone(bot: Bot) -> None:
    before = metrics.COMMANDS.labels("help", "ok")._value.get()
    answer = await bot.ask("")
    text = seen(answer)
    assert answer["response_type"] == "ephemeral"
    # The whole help text, escaped once (its <placeholders> shown, not parsed as links).
    for line in HELP_TEXT.split("\n"):
        assert line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text
    assert "`graph &lt;name or pattern&gt;`" in text
    assert metrics.COMMANDS.labels("help", "ok")._value.get() == before + 1
    assert seen(await bot.ask("help")) == text


async def test_usage_error_says_what_to_fix_and_suggests(bot: Bot) -> None:
    answer = await bot.ask("faild today")
    text = seen(answer)
    assert "🤔" in text
    assert "Try `/gesjobs failed today`." in text
    assert "/gesjobs help" in text


async def test_hostile_command_text_is_shown_inert(bot: Bot) -> None:
    answer = await bot.ask(f"failed today graph {HOSTILE}")
    assert live_markup(answer) == []
    assert "&lt;!channel&gt;" in seen(answer)
    answer = await bot.ask("subscribe <!here>")
    assert live_markup(answer) == []
    assert await bot.store.subscriptions() == []


@pytest.mark.parametrize("problem", ["forged", "stale"])
async def test_forged_or_stale_signatures_get_401_and_change_nothing(bot: Bot, problem: str) -> None:
    if problem == "forged":
        response, rid = await bot.command("subscribe prod-*", secret="not-the-signing-secret")
    else:
        response, rid = await bot.command("subscribe prod-*", timestamp=int(time.time()) - 6 * 60)
    # The 401 is the signal that it was handled: refused before any listener could run.
    assert response.status_code == 401
    assert bot.slack.responses(rid) == []
    assert await bot.store.subscriptions() == []
    payload = bot.slack.block_action_payload(render.ACTION_MUTE_1H, "movies")
    body, headers = signed_interaction_request("not-the-signing-secret", payload)
    assert (await bot.post(body, headers)).status_code == 401
    assert await bot.store.mutes(NOW) == []


# ------------------------------------------------------------------------------------------------
# Queries
# ------------------------------------------------------------------------------------------------


async def _midnight_jobs(bot: Bot) -> dict[str, str]:
    """Jobs around 23:00 UTC on 2026-03-10, which is midnight in Berlin."""
    ids = {}
    ids["berlin_today"] = await bot.add_job(
        status="failed",
        job_name="ImportGraph",
        related_graph="movies",
        begin_time=wire_time(NOW - timedelta(minutes=30)),
        end_time=wire_time(NOW - timedelta(minutes=20)),  # 23:10 UTC = 00:10 in Berlin, 03-11
        fail_reason=HOSTILE,
    )
    ids["berlin_yesterday"] = await bot.add_job(
        status="failed",
        job_name="ExportGraph",
        related_graph="prod-orders",
        begin_time=wire_time(NOW - timedelta(hours=3)),  # began 03-10 20:30 UTC
        end_time=wire_time(NOW - timedelta(minutes=40)),  # 22:50 UTC = 23:50 in Berlin, 03-10
        fail_reason="disk full",
    )
    ids["succeeded"] = await bot.add_job(
        status="success",
        job_name="ImportGraph",
        related_graph="movies",
        begin_time=wire_time(NOW - timedelta(minutes=15)),
        end_time=wire_time(NOW - timedelta(minutes=10)),
    )
    ids["old"] = await bot.add_job(
        status="failed",
        job_name="ImportGraph",
        related_graph="movies",
        begin_time=wire_time(NOW - timedelta(days=1, hours=12)),
        end_time=wire_time(NOW - timedelta(days=1, hours=11)),
    )
    ids["running"] = await bot.add_job(
        status="running",
        job_name="ImportGraph",
        related_graph="prod-users",
        begin_time=wire_time(NOW - timedelta(days=2)),
        end_time=None,
    )
    return ids


async def test_failed_today_is_the_askers_today_around_midnight(bot: Bot) -> None:
    ids = await _midnight_jobs(bot)
    # Alice is in Berlin: her "today" began at 23:00 UTC.
    alice = await bot.ask("failed today", user_id="U0ALICE")
    assert job_ids_in(alice) == [ids["berlin_today"]]
    text = seen(alice)
    assert "*1 job* match `failed today`" in text
    assert "Europe/Berlin" in text
    assert "🔴 1 failed" in text
    # Bob is in New York, where it is still 18:30 on the 10th: both failures are today.
    bob = await bot.ask("failed today", user_id="U0BOB")
    assert job_ids_in(bob) == [ids["berlin_today"], ids["berlin_yesterday"]]  # newest first
    assert "America/New_York" in seen(bob)
    # Alice's yesterday holds the other one; and users.info was asked once per user (cached).
    assert job_ids_in(await bot.ask("failed yesterday", user_id="U0ALICE")) == [ids["berlin_yesterday"]]
    assert bot.slack.count("users.info") == 2
    # A zone Slack reports but nobody knows: the bot's default (UTC), where 22:50 and 23:10 are today.
    carol = await bot.ask("failed today", user_id="U0NOTZ")
    assert sorted(job_ids_in(carol)) == sorted([ids["berlin_today"], ids["berlin_yesterday"]])
    assert "in UTC" in seen(carol)


async def test_query_answer_shows_times_reasons_escaped_and_filters(bot: Bot) -> None:
    ids = await _midnight_jobs(bot)
    answer = await bot.ask("failed today graph movies", user_id="U0BOB")
    assert live_markup(answer) == []
    text = seen(answer)
    assert job_ids_in(answer) == [ids["berlin_today"]]
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U0BOB&gt;" in text  # the fail_reason, inert
    assert "*ImportGraph* on graph `movies`" in text
    assert f"ended <!date^{int((NOW - timedelta(minutes=20)).timestamp())}^" in text
    assert "took 10m 00s" in text
    # A glob filters locally; `type` is the job name.
    assert job_ids_in(await bot.ask("failed today graph prod-*", user_id="U0BOB")) == [ids["berlin_yesterday"]]
    assert job_ids_in(await bot.ask("failed today type ExportGraph", user_id="U0BOB")) == [ids["berlin_yesterday"]]
    assert "No jobs match" in seen(await bot.ask("failed today type Nothing", user_id="U0BOB"))


async def test_graph_exact_name_goes_to_ges_and_glob_does_not(bot: Bot) -> None:
    await _midnight_jobs(bot)
    await bot.emu.reset_stats()
    await bot.ask("failed today graph movies", user_id="U0BOB")
    recent = (await bot.emu.stats())["recent"]
    assert any("graph_name=movies" in str(r) for r in recent), recent
    await bot.emu.reset_stats()
    await bot.ask("failed today graph mov*", user_id="U0BOB")
    recent = (await bot.emu.stats())["recent"]
    assert not any("graph_name" in str(r) for r in recent), recent


async def test_several_statuses_are_asked_concurrently_and_counted(bot: Bot) -> None:
    ids = await _midnight_jobs(bot)
    await bot.emu.reset_stats()
    answer = await bot.ask("failed success today", user_id="U0BOB")
    assert set(job_ids_in(answer)) == {ids["berlin_today"], ids["berlin_yesterday"], ids["succeeded"]}
    assert "🔴 2 failed · 🟢 1 succeeded" in seen(answer)
    recent = json.dumps((await bot.emu.stats())["recent"])
    assert "status=failed" in recent
    assert "status=success" in recent


async def test_running_shows_jobs_active_now_whenever_they_began(bot: Bot) -> None:
    ids = await _midnight_jobs(bot)
    answer = await bot.ask("running")
    assert job_ids_in(answer) == [ids["running"]]
    text = seen(answer)
    assert "active now" in text
    assert "(2d 0h ago)" in text


async def test_public_answers_go_to_the_channel(bot: Bot) -> None:
    await _midnight_jobs(bot)
    assert (await bot.ask("failed today public"))["response_type"] == "in_channel"


async def test_long_answers_are_capped_with_a_hint(bot: Bot) -> None:
    jobs = [
        {
            "job_id": f"bulk-{i:03d}",
            "status": "failed",
            "job_name": "ImportGraph",
            "related_graph": f"g{i % 5}",
            "begin_time": wire_time(NOW - timedelta(hours=2, minutes=i)),
            "end_time": wire_time(NOW - timedelta(hours=1, minutes=i)),
            "fail_reason": "x" * 500,
        }
        for i in range(134)
    ]
    await bot.emu.add_jobs(jobs)
    answer = await bot.ask("failed today", user_id="U0BOB")
    text = seen(answer)
    assert "*134 jobs* match" in text
    assert "Showing 20 of 134 — narrow it with `graph" in text
    assert job_ids_in(answer) == [f"bulk-{i:03d}" for i in range(20)]  # newest first
    answer = await bot.ask("failed today limit 100", user_id="U0BOB")
    assert len(answer["blocks"]) <= 50
    shown = len(job_ids_in(answer))
    assert shown >= 40
    # Every one of the 100 asked for fits; the hint no longer offers a bigger limit.
    assert shown == 100
    assert "Showing 100 of 134 — narrow it with `graph &lt;name or pattern&gt;` or `type &lt;job name&gt;`." in seen(
        answer
    )


async def test_ges_down_answers_from_snapshots_and_says_how_old(bot: Bot) -> None:
    polled_at = NOW - timedelta(minutes=4)
    from ges_bot.jobcenter.wire import parse_job

    job = parse_job({**failed_import(), "status": "failed", "end_time": wire_time(NOW - timedelta(minutes=10))})
    other = parse_job(
        {**failed_import("job-older"), "status": "failed", "end_time": wire_time(NOW - timedelta(days=2))}
    )
    await bot.remember(job, other, at=polled_at)
    await bot.emu.fault(status=503, count=-1)
    before = metrics.COMMANDS.labels("query", "snapshots")._value.get()
    answer = await bot.ask("failed today", user_id="U0BOB")
    text = seen(answer)
    assert job_ids_in(answer) == ["job-import-1"]
    assert "unreachable" in text
    assert "answering from the bot's snapshots as of the last successful poll" in text
    assert f"<!date^{int(polled_at.timestamp())}^" in text
    assert "(4m 00s ago)" in text
    assert "snapshots" in answer["text"]
    assert metrics.COMMANDS.labels("query", "snapshots")._value.get() == before + 1


async def test_ges_that_does_not_answer_in_time_falls_back_too(servers: Servers, tmp_path: Path) -> None:
    async with running_bot(servers, tmp_path, options=SlackAppOptions(live_timeout_s=0.5), max_retries=0) as bot:
        await bot.emu.fault(latency_ms=3000, count=-1)
        started = time.perf_counter()
        answer = await bot.ask("failed today")
        assert time.perf_counter() - started < 2.5
        assert "did not answer within 0.5s" in seen(answer)
        assert "never polled successfully" in seen(answer)


async def test_ges_refusing_credentials_is_a_sentence_not_a_traceback(bot: Bot) -> None:
    await bot.emu.fault(status=401, count=-1)
    answer = await bot.ask("failed today")
    text = seen(answer)
    assert "GES refused the bot's credentials for project prod" in text
    assert "Traceback" not in text
    assert "snapshots" not in text


async def test_unknown_project_alias_lists_the_configured_ones(bot: Bot) -> None:
    text = seen(await bot.ask("failed today project nope"))
    assert "There is no GES project 'nope'; the bot watches: prod." in text


# ------------------------------------------------------------------------------------------------
# One job
# ------------------------------------------------------------------------------------------------


async def test_job_detail_has_every_file_with_its_cause(bot: Bot) -> None:
    await bot.emu.add_job(**failed_import())
    await bot.emu.reset_stats()
    answer = await bot.ask("job job-import-1")
    text = seen(answer)
    assert "partiallyFailed" in text
    assert "obs://bucket/vertex/person.csv" in text
    assert "line 7: label 'persn' is not in the schema" in text
    assert "obs://bucket/edge/rate.csv" in text
    assert "line 12: vertex 'p42' does not exist" in text
    assert "obs://bucket/logs/rate.log" in text
    assert "4 files" in text
    # Unknown to the store: found by paging through GES (no graph filter known).
    recent = json.dumps((await bot.emu.stats())["recent"])
    assert "graph_name" not in recent


async def test_job_known_to_the_store_is_refreshed_with_graph_and_date(bot: Bot) -> None:
    from ges_bot.jobcenter.wire import parse_job

    wire = failed_import()
    running = parse_job({**wire, "status": "running", "end_time": None, "job_detail": None})
    await bot.remember(running)
    await bot.emu.add_job(**wire)
    await bot.emu.reset_stats()
    text = seen(await bot.ask("job job-import-1"))
    assert "line 7: label 'persn'" in text  # fresh from GES, not the running snapshot
    recent = json.dumps((await bot.emu.stats())["recent"])
    assert "graph_name=movies" in recent
    assert "start_time=2026-03-09" in recent
    # GES down: the snapshot, marked as such.
    await bot.emu.fault(status=503, count=-1)
    text = seen(await bot.ask("job job-import-1"))
    assert "showing the bot's snapshot" in text
    assert "running" in text


async def test_unknown_job_says_so(bot: Bot) -> None:
    await _midnight_jobs(bot)
    text = seen(await bot.ask("job does-not-exist"))
    assert "No job does-not-exist in GES project prod" in text


# ------------------------------------------------------------------------------------------------
# Subscriptions, mutes, status
# ------------------------------------------------------------------------------------------------


async def test_subscribe_list_unsubscribe(servers: Servers, tmp_path: Path) -> None:
    from_config = Subscription(
        id=-1, channel="#general", graph_pattern="nightly-*", source="config", created_by="config"
    )
    async with running_bot(servers, tmp_path, config_subscriptions=(from_config,)) as bot:
        answer = await bot.ask("subscribe prod-* failed stuck project prod", user_id="U0BOB")
        assert (
            "✅ <#C0GENERAL> will hear when a job of a graph matching `prod-*` in project prod fails or gets stuck."
            in seen(answer)
        )
        (sub,) = await bot.store.subscriptions("C0GENERAL")
        assert (sub.graph_pattern, sub.kinds, sub.project) == ("prod-*", {EventKind.FAILED, EventKind.STUCK}, "prod")
        assert (sub.created_by, sub.team, sub.created_at) == ("U0BOB", "T0STANDIN", NOW)

        text = seen(await bot.ask("subscriptions"))
        assert "*Subscriptions of <#C0GENERAL>* (2)" in text
        assert "`prod-*` — failed, stuck in project prod · by <@U0BOB>" in text
        assert (
            "`nightly-*` — failed, partially failed, unknown outcome · 🔒 from the config file (read-only here)" in text
        )

        await bot.store.mark_channel_broken("C0GENERAL", "not_in_channel", NOW)
        text = seen(await bot.ask("subscriptions"))
        assert text.count("⚠️ *broken*: Slack answered `not_in_channel` — invite the bot (`/invite @ges-bot`)") == 2
        assert "alerts resume by themselves once Slack accepts them there" in text  # the config-file one

        text = seen(await bot.ask("unsubscribe nightly-*"))
        assert "comes from the bot's config file" in text
        text = seen(await bot.ask("unsubscribe prod-*"))
        assert "🔕 This channel no longer hears about graphs matching `prod-*`." in text
        assert await bot.store.subscriptions() == []
        assert "has no subscription to `prod-*`" in seen(await bot.ask("unsubscribe prod-*"))


async def test_subscribe_to_an_unknown_project_lists_the_aliases(bot: Bot) -> None:
    text = seen(await bot.ask("subscribe movies project staging"))
    assert "There is no GES project 'staging'; the bot watches: prod." in text
    assert await bot.store.subscriptions() == []


async def test_mute_and_unmute(bot: Bot) -> None:
    text = seen(await bot.ask("mute prod-* 2h"))
    assert "🔇 No alerts for graphs matching `prod-*` in this channel until" in text
    assert "(2h 00m)" in text
    (mute,) = await bot.store.mutes(NOW, "C0GENERAL")
    assert (mute.graph_pattern, mute.until, mute.created_by) == ("prod-*", NOW + timedelta(hours=2), "U0ALICE")
    assert "🔇 `prod-*` until" in seen(await bot.ask("subscriptions"))
    assert "🔔 Alerts for graphs matching `prod-*` are back on" in seen(await bot.ask("unmute prod-*"))
    assert await bot.store.mutes(NOW) == []
    assert "No mute for `prod-*`" in seen(await bot.ask("unmute prod-*"))


async def test_only_admins_manage_when_admins_are_set(servers: Servers, tmp_path: Path) -> None:
    async with running_bot(servers, tmp_path, env={"GES_BOT_ADMINS": "U0BOB"}) as bot:
        for text in ("subscribe prod-*", "unsubscribe prod-*", "mute prod-* 1h", "unmute prod-*"):
            answer = await bot.ask(text, user_id="U0ALICE")
            assert "only <@U0BOB> may change subscriptions and mutes" in seen(answer), text
        assert await bot.store.subscriptions() == []
        assert await bot.store.mutes(NOW) == []
        # Asking is for everyone.
        assert "has no subscriptions" in seen(await bot.ask("subscriptions", user_id="U0ALICE"))
        assert "✅" in seen(await bot.ask("subscribe prod-*", user_id="U0BOB"))
        payload = bot.slack.block_action_payload(render.ACTION_MUTE_1H, "movies", user_id="U0ALICE")
        await bot.click(payload)
        (post,) = await bot.slack.wait_for(lambda: bot.slack.responses(payload["response_url"].rsplit("/", 1)[1]))
        assert "only <@U0BOB> may mute alerts" in seen(post)
        assert await bot.store.mutes(NOW) == []


async def test_status_shows_polls_lag_errors_backlog_and_broken(bot: Bot) -> None:
    text = seen(await bot.ask("status"))
    assert "⚪ *prod* · no successful poll yet" in text
    await bot.remember(at=NOW - timedelta(minutes=2))
    await bot.store.record_poll_error(ALIAS, NOW - timedelta(minutes=1), "GES at http://x did not answer")
    await bot.store.add_subscription(Subscription(id=0, channel="C0ALERTS", graph_pattern="movies", created_by="U0BOB"))
    await bot.store.mark_channel_broken("C0ALERTS", "is_archived", NOW)
    bot.services.notes["slack"] = "Slack rejects the bot token"
    text = seen(await bot.ask("status"))
    assert "*prod* · last successful poll" in text
    assert "(2m 00s ago)" in text
    assert "last error (1 failure in a row): `GES at http://x did not answer`" in text
    assert "📬 Alerts waiting to be delivered: 0 · given up: 0" in text
    assert "`movies` in <#C0ALERTS> is broken: Slack answered `is_archived`" in text
    assert "Slack rejects the bot token" in text


# ------------------------------------------------------------------------------------------------
# Buttons
# ------------------------------------------------------------------------------------------------


async def _post_alert(bot: Bot, job: Job) -> tuple[str, dict[str, Any]]:
    """Post an alert the way delivery does; returns its ts and the message as Slack keeps it."""
    event = JobEvent(project=ALIAS, kind=EventKind.PARTIALLY_FAILED, job=job, at=NOW)
    delivery = Delivery(channel="C0ALERTS", project=ALIAS, graph=job.graph or "", events=(event,))
    rendered = render.render_alert(delivery, bot.services.projects[ALIAS], NOW)
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=bot.slack.api_url)
    posted = await client.chat_postMessage(channel="C0ALERTS", **rendered.message.payload())
    (message,) = [m for m in bot.slack.history("C0ALERTS") if m["ts"] == posted["ts"]]
    return str(posted["ts"]), message


async def test_details_button_opens_the_modal_from_snapshots(bot: Bot) -> None:
    from ges_bot.jobcenter.wire import parse_job

    job = parse_job(failed_import())
    await bot.remember(job)
    await bot.emu.fault(status=503, count=-1)  # GES must not be needed
    payload = bot.slack.block_action_payload(render.ACTION_DETAILS, render.job_ref(ALIAS, job.job_id))
    started = time.perf_counter()
    await bot.click(payload)
    (call,) = await bot.slack.wait_for(lambda: [c for c in bot.slack.calls_to("views.open") if c.ok])
    assert time.perf_counter() - started < 1.0
    view = call.params["view"]
    assert limits.check_view(view) == []
    text = seen(view)
    assert "obs://bucket/vertex/person.csv" in text
    assert "line 7: label 'persn' is not in the schema" in text
    assert "obs://bucket/edge/rate.csv" in text
    assert "line 12: vertex 'p42' does not exist" in text
    assert "obs://bucket/vertex/movie.csv" in text  # every file, not just the problems


async def test_details_for_a_job_the_store_does_not_have_opens_at_once_then_asks_ges(bot: Bot) -> None:
    await bot.emu.add_job(**failed_import("old-import"))
    for job_id, expected in (
        ("old-import", "line 7: label 'persn' is not in the schema"),
        ("gone-1", "No job gone-1 in GES project prod"),
    ):
        bot.slack.reset()
        payload = bot.slack.block_action_payload(render.ACTION_DETAILS, render.job_ref(ALIAS, job_id))
        await bot.click(payload)
        (opened,) = await bot.slack.wait_for(lambda: bot.slack.calls_to("views.open"))
        assert f"⏳ Asking GES for job `{job_id}`…" in seen(opened.params["view"])
        (update,) = await bot.slack.wait_for(lambda: bot.slack.calls_to("views.update"))
        view_id = opened.answer["view"]["id"]
        assert update.params["view_id"] == view_id
        assert update.answer["ok"] is True
        # What the user now sees in the open modal:
        shown = bot.slack.views[view_id]
        assert limits.check_view({k: v for k, v in shown.items() if k in ("type", "title", "blocks", "close")}) == []
        assert expected in seen(shown)


async def test_modal_pages_are_read_from_snapshots(bot: Bot) -> None:
    from ges_bot.jobcenter.wire import parse_job

    files = [{"path": f"obs://b/v{i}.csv", "status": "failed", "cause": f"cause {i} " + "y" * 1100} for i in range(300)]
    job = parse_job({**failed_import(), "job_detail": {"vertexset_path": files}})
    await bot.remember(job)
    payload = bot.slack.block_action_payload(render.ACTION_DETAIL_NEXT, render.page_ref(ALIAS, job.job_id, 1))
    payload["view"] = {"id": "V0MODAL", "hash": "h1"}
    await bot.click(payload)
    (call,) = await bot.slack.wait_for(lambda: bot.slack.calls_to("views.update"))
    assert call.params["view_id"] == "V0MODAL"
    assert limits.check_view(call.params["view"]) == []
    assert "page 2 of" in seen(call.params["view"])


async def test_mute_buttons_mute_the_graph_in_the_channel(bot: Bot) -> None:
    for action, span in ((render.ACTION_MUTE_1H, timedelta(hours=1)), (render.ACTION_MUTE_24H, timedelta(hours=24))):
        graph = f"movies-{span.total_seconds():.0f}"
        payload = bot.slack.block_action_payload(action, graph, channel_id="C0ALERTS", user_id="U0BOB")
        await bot.click(payload)
        rid = payload["response_url"].rsplit("/", 1)[1]
        (post,) = await bot.slack.wait_for(lambda rid=rid: bot.slack.responses(rid))
        assert post["response_type"] == "ephemeral"
        assert limits.check_message(post) == []
        assert f"🔇 <@U0BOB> muted alerts for graph `{graph}` in this channel for" in seen(post)
        mutes = {m.graph_pattern: m for m in await bot.store.mutes(NOW, "C0ALERTS")}
        assert mutes[graph].until == NOW + span
        assert mutes[graph].created_by == "U0BOB"


async def test_acknowledge_updates_the_alert_with_who_took_it(bot: Bot) -> None:
    from ges_bot.jobcenter.wire import parse_job

    job = parse_job({**failed_import(), "fail_reason": HOSTILE, "related_graph": "<!here>"})
    ts, message = await _post_alert(bot, job)
    payload = bot.slack.block_action_payload(
        render.ACTION_ACK, render.job_ref(ALIAS, job.job_id), channel_id="C0ALERTS", message_ts=ts, user_id="U0BOB"
    )
    payload["message"].update({"text": message["text"], "blocks": message["blocks"]})
    await bot.click(payload)
    (update,) = await bot.slack.wait_for(lambda: bot.slack.updates("C0ALERTS"))
    assert update["ts"] == ts
    assert limits.check_message(update) == []
    now_shown = seen(bot.slack.history("C0ALERTS")[-1])
    assert f"👀 Acknowledged by <@U0BOB> at <!date^{int(NOW.timestamp())}^" in now_shown
    assert live_markup(update, allowed=["<@U0BOB> at"]) == []
    buttons = [e["action_id"] for b in update["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert render.ACTION_ACK not in buttons
    assert render.ACTION_DETAILS in buttons
    # Everything else of the alert is still there.
    assert "line 7: label 'persn' is not in the schema" in now_shown


async def test_acknowledge_with_a_malformed_user_id_changes_nothing(bot: Bot) -> None:
    from ges_bot.jobcenter.wire import parse_job

    ts, message = await _post_alert(bot, parse_job(failed_import()))
    payload = bot.slack.block_action_payload(
        render.ACTION_ACK, "x", channel_id="C0ALERTS", message_ts=ts, user_id="<!channel>"
    )
    payload["message"].update({"text": message["text"], "blocks": message["blocks"]})
    await bot.click(payload)
    await bot.handled()
    assert bot.slack.updates("C0ALERTS") == []


# ------------------------------------------------------------------------------------------------
# Home tab
# ------------------------------------------------------------------------------------------------


async def test_home_tab_shows_subscriptions_failures_and_health(bot: Bot) -> None:
    from ges_bot.jobcenter.wire import parse_job

    job = parse_job({**failed_import(), "fail_reason": HOSTILE, "related_graph": "<!channel>"})
    event = JobEvent(project=ALIAS, kind=EventKind.PARTIALLY_FAILED, job=job, at=NOW - timedelta(minutes=5))
    await bot.remember(job, at=NOW - timedelta(minutes=5), events=[event])
    for i in range(60):
        await bot.store.add_subscription(
            Subscription(id=0, channel="C0ALERTS", graph_pattern=f"graph-{i:02d}", team="T0STANDIN", created_by="U0BOB")
        )
    await bot.store.add_subscription(Subscription(id=0, channel="C0OTHER", graph_pattern="elsewhere", team="T0OTHER"))
    await bot.event({"type": "app_home_opened", "user": "U0ALICE", "channel": "D0ALICE", "tab": "home"})
    view = await bot.slack.wait_for(lambda: bot.slack.home("U0ALICE"))
    assert len(view["blocks"]) <= 100
    clean = {k: v for k, v in view.items() if k not in ("id", "team_id", "app_id", "bot_id", "hash")}
    assert limits.check_view(clean) == []
    text = seen(view)
    assert "*Subscriptions* (60)" in text
    assert "`graph-00`" in text
    assert "…and 20 more" in text
    assert "elsewhere" not in text  # another workspace's
    assert "*Recent failures*" in text
    assert "on graph `&lt;!channel&gt;`" in text
    assert "*prod* · last successful poll" in text
    assert live_markup(view, allowed=["by <@U0BOB>"]) == []
    # The Messages tab is not the Home tab.
    calls = bot.slack.count("views.publish")
    await bot.event({"type": "app_home_opened", "user": "U0ALICE", "channel": "D0ALICE", "tab": "messages"})
    await bot.handled()
    assert bot.slack.count("views.publish") == calls


# ------------------------------------------------------------------------------------------------
# Socket Mode
# ------------------------------------------------------------------------------------------------


async def test_socket_mode_acks_and_answers(servers: Servers, tmp_path: Path) -> None:
    async with running_bot(servers, tmp_path) as http_bot:
        await _midnight_jobs(http_bot)
        app = build_app(
            http_bot.services,
            bot_token=DEFAULT_BOT_TOKEN,
            signing_secret=None,
            api_url=http_bot.slack.api_url,
            socket_mode=True,
        )
        handler = await start_socket_mode(app, DEFAULT_APP_TOKEN)
        connecting = asyncio.create_task(handler.connect_async())
        try:
            await http_bot.slack.wait_for(lambda: http_bot.slack.socket_connections)
            payload = http_bot.slack.command_payload("failed today", user_id="U0ALICE")
            started = time.perf_counter()
            envelope = await http_bot.slack.push_envelope("slash_commands", payload)
            ack = await http_bot.slack.wait_for_ack(envelope)
            assert time.perf_counter() - started < 1.0
            assert not ack.payload
            rid = payload["response_url"].rsplit("/", 1)[1]
            (answer,) = await http_bot.slack.wait_for(lambda: http_bot.slack.responses(rid), 10)
            assert "*1 job* match `failed today`" in seen(answer)
        finally:
            await handler.close_async()
            await connecting


async def test_socket_mode_with_a_rejected_app_token_says_how_to_fix_it(bot: Bot) -> None:
    from ges_bot.errors import ConfigError

    app = build_app(
        bot.services, bot_token=DEFAULT_BOT_TOKEN, signing_secret=None, api_url=bot.slack.api_url, socket_mode=True
    )
    with pytest.raises(ConfigError, match=r"Slack rejects SLACK_APP_TOKEN \(invalid_auth\).*connections:write"):
        await start_socket_mode(app, "xapp-revoked")


async def test_http_mode_needs_a_signing_secret(bot: Bot) -> None:
    from ges_bot.errors import ConfigError

    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        build_app(bot.services, bot_token="xoxb-x", signing_secret=None, api_url=bot.slack.api_url, socket_mode=False)


async def test_acks_are_fast_even_when_ges_is_slow(servers: Servers, tmp_path: Path) -> None:
    async with running_bot(servers, tmp_path, options=SlackAppOptions(live_timeout_s=5)) as bot:
        await bot.emu.fault(latency_ms=1500, count=-1)
        response, rid = await bot.command("failed today")
        assert response.status_code == 200
        assert bot.ack_times[-1] < 1.0
        answer = await bot.answer(rid)
        assert "No jobs match" in seen(answer)


# ------------------------------------------------------------------------------------------------
# Time zones
# ------------------------------------------------------------------------------------------------


async def test_time_zones_are_cached_with_a_ttl_and_fall_back_to_the_default(servers: Servers) -> None:
    stand_in = servers.slack
    stand_in.reset()
    stand_in.clear_faults()
    ticks = [0.0]
    cache = TimezoneCache(
        AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=stand_in.api_url, retry_handlers=[]),
        ZoneInfo("Asia/Shanghai"),
        ttl_s=60,
        failure_ttl_s=5,
        clock=lambda: ticks[0],
    )
    # Concurrent look-ups of one user share one users.info call.
    zones = await asyncio.gather(*(cache.zone_for("U0ALICE") for _ in range(5)))
    assert {z.key for z in zones} == {"Europe/Berlin"}
    assert stand_in.count("users.info") == 1
    ticks[0] = 59
    assert (await cache.zone_for("U0ALICE")).key == "Europe/Berlin"
    assert stand_in.count("users.info") == 1
    ticks[0] = 61
    assert (await cache.zone_for("U0ALICE")).key == "Europe/Berlin"
    assert stand_in.count("users.info") == 2
    # Slack failing: the default zone, remembered only briefly.
    stand_in.fail("users.info", error="internal_error")
    assert (await cache.zone_for("U0BOB")).key == "Asia/Shanghai"
    assert (await cache.zone_for("U0BOB")).key == "Asia/Shanghai"
    assert stand_in.count("users.info") == 3
    stand_in.clear_faults()
    ticks[0] += 6
    assert (await cache.zone_for("U0BOB")).key == "America/New_York"
    # Unknown users, unknown zones and no user at all: the default.
    assert (await cache.zone_for("U0NOBODY")).key == "Asia/Shanghai"
    assert (await cache.zone_for("U0NOTZ")).key == "Asia/Shanghai"
    calls = stand_in.count("users.info")
    assert (await cache.zone_for(None)).key == "Asia/Shanghai"
    assert stand_in.count("users.info") == calls
