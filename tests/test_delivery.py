"""The delivery worker on its own: real SqlStore, slack_sdk over real HTTP, the Slack stand-in.

Rows are written with ``Store.enqueue`` (no poller), the worker is stepped with ``run_once`` on a
clock the test moves, and what a person would see is read back from the stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ges_bot import runtime
from ges_bot.config import load_config
from ges_bot.domain import Delivery, EventKind, FileImport, Job, JobEvent, ProjectInfo, Subscription
from ges_bot.errors import ConfigError, RetryableSlackError, SlackDeliveryError, StoreError
from ges_bot.notify import limits, render
from ges_bot.notify.delivery import DeliveryPolicy, DeliveryWorker, backoff_delay
from ges_bot.notify.slack import FailureScope, PermanentSlackError, Posted, WebApiGateway
from ges_bot.runtime import Runtime, RuntimeOptions
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, Channel, SlackStandIn, User
from ges_bot.store import SqlStore, open_store
from ges_bot.store.api import MarkedSent, OutboxState
from tests.support.asgi import serve

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PROJECT = ProjectInfo(alias="prod", project_id="0123456789abcdef0123456789abcdef", region="cn-north-4")
POLICY = DeliveryPolicy(
    channel_interval_s=0.01,
    backoff_base_s=2.0,
    backoff_cap_s=60.0,
    idle_poll_s=0.02,
    installation_pause_s=120.0,
    inline_retry_cap_s=0.02,
    # These tests step the worker by hand (``run_once``), lanes holding a few rows each; the
    # production default (one row per lane) is exercised by the runtime and reliability tests.
    channel_queue=5,
)


class Clock:
    """The worker's clock, moved by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def real_clock() -> datetime:
    return datetime.now(UTC)


def event(
    job_id: str,
    kind: EventKind = EventKind.FAILED,
    *,
    graph: str = "movies",
    job_name: str = "ImportGraph",
    reason: str | None = "OBS path not found",
    files: Sequence[FileImport] = (),
    recovers: str | None = None,
) -> JobEvent:
    status = {EventKind.FAILED: "failed", EventKind.PARTIALLY_FAILED: "partiallyFailed"}.get(kind, "success")
    job = Job(
        job_id=job_id,
        status=status,
        job_type="GraphManagement",
        job_name=job_name,
        graph=graph,
        begin_time=T0 - timedelta(minutes=5),
        end_time=T0 - timedelta(minutes=1),
        fail_reason=reason if status != "success" else None,
        files=tuple(files),
    )
    return JobEvent(project="prod", kind=kind, job=job, at=T0, recovers_job_id=recovers)


def delivery(channel: str, *events: JobEvent, subs: tuple[int, ...] = (1,)) -> Delivery:
    return Delivery(channel=channel, project="prod", graph=events[0].graph, events=events, subscription_ids=subs)


@dataclass
class Rig:
    store: SqlStore
    slack: SlackStandIn
    gateway: WebApiGateway
    clock: Clock
    notes: dict[str, str]
    gateways: list[WebApiGateway]

    def worker(
        self,
        policy: DeliveryPolicy = POLICY,
        *,
        worker_id: str = "w1",
        clock: Callable[[], datetime] | None = None,
        timeout: float | None = None,
    ) -> DeliveryWorker:
        gateway = self.gateway
        if timeout is not None or worker_id != "w1":
            gateway = WebApiGateway(DEFAULT_BOT_TOKEN, base_url=self.slack.api_url, timeout=timeout or 5.0)
            self.gateways.append(gateway)
        return DeliveryWorker(
            self.store,
            gateway,
            {"prod": PROJECT},
            worker_id=worker_id,
            clock=clock or self.clock,
            policy=policy,
            rng=random.Random(3),
            notes=self.notes,
        )

    async def enqueue(self, *deliveries: Delivery, at: datetime | None = None) -> list[int]:
        return list(await self.store.enqueue(list(deliveries), at or self.clock()))

    async def state(self, outbox_id: int) -> str:
        item = await self.store.outbox_item(outbox_id)
        assert item is not None
        return item.state

    def posts_to(self, channel: str) -> list[Any]:
        return [c for c in self.slack.calls_to("chat.postMessage") if c.params.get("channel") == channel]


@contextlib.asynccontextmanager
async def rig(db_url: str) -> AsyncIterator[Rig]:
    slack = SlackStandIn(
        channels=[
            Channel("C0ALERTS", "alerts"),
            Channel("C0TEAM", "team"),
            Channel("C0OPS", "ops"),
            Channel("C0OLD", "old", is_archived=True),
            Channel("C0SECRET", "secret", is_private=True, is_member=False),
        ],
        users=[User("U0ALICE", "alice"), User("U0BOB", "bob")],
    )
    async with serve(slack.app) as url:
        slack.base_url = url
        store = await open_store(db_url)
        gateway = WebApiGateway(DEFAULT_BOT_TOKEN, base_url=slack.api_url, timeout=5.0)
        r = Rig(store=store, slack=slack, gateway=gateway, clock=Clock(), notes={}, gateways=[])
        try:
            yield r
        finally:
            for g in (gateway, *r.gateways):
                await g.aclose()
            await store.close()


def mentions(message: dict[str, Any], job_id: str) -> bool:
    return f"`{job_id}`" in json.dumps(message["blocks"] if "blocks" in message else message["text"])


# --- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_is_capped_and_jittered() -> None:
    policy = DeliveryPolicy(backoff_base_s=2.0, backoff_cap_s=60.0)
    rng = random.Random(1)
    expected_raw = [2, 4, 8, 16, 32, 60, 60, 60]
    for attempt, raw in enumerate(expected_raw, start=1):
        delays = [backoff_delay(attempt, policy, None, rng) for _ in range(200)]
        assert raw * 0.5 <= min(delays) and max(delays) <= raw, attempt
        # Real jitter: spread over most of [raw/2, raw], not one fixed value.
        assert max(delays) - min(delays) > raw * 0.4, attempt
    # Far beyond the cap the exponent never overflows.
    assert backoff_delay(10_000, policy, None, rng) <= 60.0


def test_a_429_waits_as_long_as_slack_says_with_a_little_jitter() -> None:
    policy = DeliveryPolicy(backoff_base_s=2.0, backoff_cap_s=60.0)
    rng = random.Random(2)
    for attempt in (1, 5, 40):  # however often the row was claimed before
        delays = [backoff_delay(attempt, policy, 30.0, rng) for _ in range(200)]
        assert min(delays) >= 30.0 and max(delays) <= 31.0
        assert max(delays) - min(delays) > 0.5
    # Slack's Retry-After wins over our cap …
    assert 120.0 <= backoff_delay(9, policy, 120.0, rng) <= 121.0
    # … and a short one is not stretched by our own exponential backoff.
    assert 1.0 <= backoff_delay(12, policy, 1.0, rng) <= 1.1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 429, "retry_after": 7}, ("retry", "ratelimited", 7.0)),
        ({"status": 503}, ("retry", "service_unavailable", None)),
        ({"status": 500}, ("retry", "internal_error", None)),
        ({"error": "fatal_error"}, ("retry", "fatal_error", None)),
        ({"error": "channel_not_found"}, (FailureScope.TARGET, "channel_not_found", None)),
        ({"error": "not_in_channel"}, (FailureScope.TARGET, "not_in_channel", None)),
        ({"error": "is_archived"}, (FailureScope.TARGET, "is_archived", None)),
        ({"error": "invalid_blocks"}, (FailureScope.MESSAGE, "invalid_blocks", None)),
        ({"error": "invalid_auth"}, (FailureScope.INSTALLATION, "invalid_auth", None)),
        ({"error": "token_revoked"}, (FailureScope.INSTALLATION, "token_revoked", None)),
        ({"error": "missing_scope"}, (FailureScope.INSTALLATION, "missing_scope", None)),
        # A Slack error we do not know must not break anybody's subscription: this message only.
        (
            {"error": "some_error_slack_invents_tomorrow"},
            (FailureScope.MESSAGE, "some_error_slack_invents_tomorrow", None),
        ),
    ],
)
async def test_slack_answers_are_classified_by_what_must_happen_next(
    sqlite_url: str, fault: dict[str, Any], expected: tuple[Any, str, float | None]
) -> None:
    async with rig(sqlite_url) as r:
        r.slack.fail("chat.postMessage", count=1, **fault)
        with pytest.raises(SlackDeliveryError) as caught:
            await r.gateway.post("C0ALERTS", "hi", [])
        error = caught.value
        kind = "retry" if isinstance(error, RetryableSlackError) else getattr(error, "scope", None)
        assert (kind, error.error, error.retry_after) == expected


async def test_a_wrong_slack_api_url_is_an_installation_problem_and_timeouts_are_retryable(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        wrong = WebApiGateway(DEFAULT_BOT_TOKEN, base_url=f"{r.slack.base_url}/not-the-api/", timeout=2)
        slow = WebApiGateway(DEFAULT_BOT_TOKEN, base_url=r.slack.api_url, timeout=0.2)
        r.gateways += [wrong, slow]
        with pytest.raises(PermanentSlackError) as caught:
            await wrong.post("C0ALERTS", "hi", [])
        assert (caught.value.scope, caught.value.error) == (FailureScope.INSTALLATION, "http_404")
        r.slack.fail("chat.postMessage", delay=1.0, count=1)
        with pytest.raises(RetryableSlackError) as late:
            await slow.post("C0ALERTS", "hi", [])
        assert late.value.error == "timeout"


# --- the claim lease ------------------------------------------------------------------------


async def test_a_delivery_lease_too_short_for_the_slack_timeout_is_refused_at_start_up(tmp_path: Path) -> None:
    env = {
        "GES_ENDPOINT": "http://127.0.0.1:9",
        "GES_PROJECT_ID": "0123456789abcdef0123456789abcdef",
        "GES_TOKEN": "ges-token",
        "GES_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'ges-bot.db'}",
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "signing-secret",
        "GES_BOT_SLACK_TIMEOUT": "10",
        "GES_BOT_CLAIM_LEASE": "14",
    }
    bot = Runtime(load_config(env), options=RuntimeOptions(serve_http=False))
    try:
        with pytest.raises(ConfigError) as refused:
            await bot.start()
    finally:
        await bot.stop()
    message = str(refused.value)
    assert "GES_BOT_CLAIM_LEASE=14 is too short for GES_BOT_SLACK_TIMEOUT=10" in message
    assert "at least 15 seconds" in message
    assert bot.worker is None  # refused before any delivery could start


@pytest.mark.parametrize(
    ("lease", "slack_timeout", "margin"),
    [(120.0, 10.0, 30.0), (40.0, 10.0, 20.0), (16.0, 10.0, 13.0), (8.0, 2.0, 5.0), (600.0, 60.0, 63.0)],
)
def test_the_hand_back_margin_covers_a_whole_slack_call_and_its_record(
    lease: float, slack_timeout: float, margin: float
) -> None:
    # Half the lease, at most the default 30 s, never less than the Slack timeout + 3 s: a post
    # that starts inside the claim is recorded inside it, however slow Slack is.
    policy = runtime._delivery_policy(lease, "GES_BOT_CLAIM_LEASE", slack_timeout)
    assert (policy.claim_lease_s, policy.lease_margin_s) == (lease, margin)
    assert policy.lease_margin_s >= slack_timeout + 3


# --- pacing ---------------------------------------------------------------------------------


async def test_each_channel_gets_one_message_per_interval_while_channels_proceed_side_by_side(
    sqlite_url: str,
) -> None:
    interval = 0.3
    async with rig(sqlite_url) as r:
        rows = []
        for i in range(4):
            rows += await r.enqueue(delivery("C0ALERTS", event(f"a{i}")), delivery("C0TEAM", event(f"t{i}")))
        worker = r.worker(replace(POLICY, channel_interval_s=interval))
        started = time.monotonic()
        assert await worker.run_once() == 8
        elapsed = time.monotonic() - started

        for channel, prefix in (("C0ALERTS", "a"), ("C0TEAM", "t")):
            messages = r.slack.messages(channel)
            assert [mentions(m, f"{prefix}{i}") for i, m in enumerate(messages)] == [True] * 4
            times = [c.at for c in r.posts_to(channel)]
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
            # Measured where Slack receives them, so allow for some network jitter on loopback.
            assert min(gaps) >= interval - 0.1, gaps
        # Side by side: #team's first message did not wait for #alerts to finish.
        alerts, team = r.posts_to("C0ALERTS"), r.posts_to("C0TEAM")
        assert team[0].at < alerts[1].at
        # One channel after the other would take at least 7 intervals; side by side about 3.
        assert elapsed < 7 * interval, elapsed
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}


async def test_a_busy_channel_does_not_hold_up_the_others(sqlite_url: str) -> None:
    # Six rows for #alerts, then one for #team: #alerts' lane takes two, the rest wait in the
    # outbox for their turn, and #team's row is posted without waiting for #alerts' backlog.
    interval = 0.2
    async with rig(sqlite_url) as r:
        backlog = await r.enqueue(*(delivery("C0ALERTS", event(f"a{i}")) for i in range(6)), at=real_clock())
        [team] = await r.enqueue(delivery("C0TEAM", event("t0")), at=real_clock())
        policy = replace(POLICY, channel_interval_s=interval, channel_queue=2, batch_size=10)
        worker = r.worker(policy, clock=real_clock)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await r.slack.wait_for(lambda: len(r.slack.messages("C0ALERTS")) == 6, timeout=10)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        alerts = r.posts_to("C0ALERTS")
        [team_post] = r.posts_to("C0TEAM")
        assert team_post.at < alerts[2].at
        assert [mentions(m, f"a{i}") for i, m in enumerate(r.slack.messages("C0ALERTS"))] == [True] * 6
        assert {await r.state(i) for i in [*backlog, team]} == {OutboxState.SENT}
        assert len(r.slack.calls_to("chat.postMessage")) == 7


# --- retries --------------------------------------------------------------------------------


async def test_a_retryable_failure_backs_off_and_keeps_the_channel_in_order(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        first, second = await r.enqueue(delivery("C0ALERTS", event("j-1")), delivery("C0ALERTS", event("j-2")))
        [other] = await r.enqueue(delivery("C0TEAM", event("j-3")))
        r.slack.fail("chat.postMessage", channel="C0ALERTS", status=503, count=1)
        worker = r.worker()
        await worker.run_once()

        assert r.slack.messages("C0ALERTS") == []
        assert len(r.slack.messages("C0TEAM")) == 1  # another channel is not held back
        row = await r.store.outbox_item(first)
        behind = await r.store.outbox_item(second)
        assert row is not None and behind is not None
        assert (row.state, row.last_error) == (OutboxState.PENDING, "service_unavailable")
        wait = (row.next_attempt_at - r.clock()).total_seconds()
        assert 1.0 <= wait <= 2.0  # attempt 1: base 2 s with jitter in [50 %, 100 %]
        assert behind.state == OutboxState.PENDING
        assert behind.next_attempt_at == row.next_attempt_at  # the second waits behind the first

        assert await worker.run_once() == 0  # nothing due before the backoff ends
        # A newer alert for the channel, due at once, does not overtake the two waiting ones.
        [newer] = await r.enqueue(delivery("C0ALERTS", event("j-4")))
        assert await worker.run_once() == 1
        assert r.slack.messages("C0ALERTS") == []
        r.clock.advance(wait)
        await worker.deliver_due()
        messages = r.slack.messages("C0ALERTS")
        assert [[mentions(m, j) for j in ("j-1", "j-2", "j-4")] for m in messages] == [
            [True, False, False],
            [False, True, False],
            [False, False, True],
        ]
        assert {await r.state(i) for i in (first, second, other, newer)} == {OutboxState.SENT}


async def test_a_row_is_given_up_after_max_attempts(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with rig(sqlite_url) as r:
        [row] = await r.enqueue(delivery("C0ALERTS", event("j-1")))
        r.slack.fail("chat.postMessage", status=503)
        worker = r.worker(replace(POLICY, max_attempts=3))
        with caplog.at_level(logging.ERROR, logger="ges_bot.notify.delivery"):
            for _ in range(6):
                await worker.run_once()
                r.clock.advance(POLICY.backoff_cap_s)
        item = await r.store.outbox_item(row)
        assert item is not None
        assert item.state == OutboxState.DEAD
        assert item.last_error == "gave up after 3 attempts: service_unavailable"
        assert r.slack.count("chat.postMessage") == 3
        health = await r.store.health(r.clock())
        assert (health.outbox_dead, health.outbox_pending) == (1, 0)
        assert any("giving up on outbox row" in rec.getMessage() for rec in caplog.records)


async def test_a_429_storm_is_waited_out_as_slack_asks(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        rows = await r.enqueue(*(delivery("C0ALERTS", event(f"j-{i}")) for i in range(3)), at=real_clock())
        r.slack.fail("chat.postMessage", channel="C0ALERTS", status=429, retry_after=1, count=2)
        worker = r.worker(replace(POLICY, backoff_base_s=0.05), clock=real_clock)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await r.slack.wait_for(lambda: len(r.slack.messages("C0ALERTS")) == 3, timeout=10)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        calls = r.posts_to("C0ALERTS")
        assert [c.http_status for c in calls] == [429, 429, 200, 200, 200]
        for limited, following in itertools.pairwise(calls):
            if limited.http_status == 429:
                assert (following.at - limited.at).total_seconds() >= 0.95
        assert [mentions(m, f"j-{i}") for i, m in enumerate(r.slack.messages("C0ALERTS"))] == [True] * 3
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}
        # Two 429s doubled the channel's pacing twice; three accepted posts took 10 % off each.
        assert worker.channel_interval("C0ALERTS") == pytest.approx(POLICY.channel_interval_s * 4 * 0.9**3)
        assert worker.channel_interval("C0TEAM") == POLICY.channel_interval_s


async def test_a_storm_of_40_429s_is_waited_out_everywhere_and_pacing_recovers(sqlite_url: str) -> None:
    # Eight channels each answer five 429s with Retry-After: 1 in a row (40 in all), then accept
    # 30 messages each. Every retry waits as long as Slack said; the channels wait side by side;
    # each channel's pacing slows (doubling per 429, capped) and then recovers to the base.
    channels = [f"C0STORM{i}" for i in range(8)]
    per_channel = 30
    policy = replace(POLICY, backoff_base_s=0.05, max_channel_interval_s=0.16, batch_size=80)
    async with rig(sqlite_url) as r:
        for channel in channels:
            r.slack.add_channel(Channel(channel, channel.lower()))
            r.slack.fail("chat.postMessage", channel=channel, status=429, retry_after=1, count=5)
        rows = await r.enqueue(
            *(delivery(channel, event(f"{channel}-{i}")) for i in range(per_channel) for channel in channels),
            at=real_clock(),
        )
        worker = r.worker(policy, clock=real_clock)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            for channel in channels:
                await r.slack.wait_for(lambda c=channel: len(r.slack.messages(c)) == per_channel, timeout=60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        assert not r.slack.faults  # all 40 were answered
        assert r.slack.count("chat.postMessage", ok=False) == 40
        for channel in channels:
            calls = r.posts_to(channel)
            assert [c.http_status for c in calls] == [429] * 5 + [200] * per_channel, channel
            # Each retry came as late as Slack asked (Retry-After: 1), measured where Slack is.
            for limited, following in itertools.pairwise(calls[:6]):
                assert (following.at - limited.at).total_seconds() >= 0.95, channel
            # Pacing slowed down after the storm (the interval doubled per 429, up to its cap) …
            accepted = [c.at for c in calls[5:]]
            assert (accepted[1] - accepted[0]).total_seconds() >= 0.16 * 0.9 - 0.02, channel
            # … and came back to the base: 27 accepted posts take 10 % off each time.
            assert worker.channel_interval(channel) == POLICY.channel_interval_s, channel
            assert [mentions(m, f"{channel}-{i}") for i, m in enumerate(r.slack.messages(channel))] == [True] * 30
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}
        # Side by side: eight channels' five waits took about five seconds, not forty.
        first = min(c.at for c in r.slack.calls_to("chat.postMessage"))
        last_429 = max(c.at for c in r.slack.calls_to("chat.postMessage") if c.http_status == 429)
        assert (last_429 - first).total_seconds() < 4 * 8, (first, last_429)


async def test_a_post_that_timed_out_but_landed_shows_twice_the_documented_window(sqlite_url: str) -> None:
    # The one duplicate the design allows besides a crash: Slack got the post, we never heard back.
    async with rig(sqlite_url) as r:
        [row] = await r.enqueue(delivery("C0ALERTS", event("j-1")))
        r.slack.fail("chat.postMessage", delay=2.0, count=1)
        worker = r.worker(timeout=0.3)
        await worker.run_once()
        item = await r.store.outbox_item(row)
        assert item is not None
        assert (item.state, item.last_error) == (OutboxState.PENDING, "timeout")
        await r.slack.wait_for(lambda: r.slack.messages("C0ALERTS"), timeout=5)
        r.clock.advance(POLICY.backoff_base_s)
        await worker.deliver_due()
        assert await r.state(row) == OutboxState.SENT
        assert [mentions(m, "j-1") for m in r.slack.messages("C0ALERTS")] == [True, True]


# --- permanent failures ---------------------------------------------------------------------


async def test_installation_errors_pause_delivery_and_lose_nothing(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig(sqlite_url) as r:
        rows = await r.enqueue(
            delivery("C0ALERTS", event("j-1")), delivery("C0TEAM", event("j-2")), delivery("C0ALERTS", event("j-3"))
        )
        r.slack.bot_tokens = {"xoxb-rotated"}  # our token was revoked
        worker = r.worker()
        with caplog.at_level(logging.CRITICAL, logger="ges_bot.notify.delivery"):
            await worker.run_once()
        assert worker.last_installation_error == "invalid_auth"
        assert worker.paused_until == r.clock() + timedelta(seconds=POLICY.installation_pause_s)
        assert "SLACK_BOT_TOKEN" in r.notes["slack"]
        assert any(rec.levelno == logging.CRITICAL for rec in caplog.records)
        assert {await r.state(i) for i in rows} == {OutboxState.PENDING}
        failed_calls = r.slack.count("chat.postMessage")
        assert failed_calls <= 2  # one per channel at most, then everything pauses

        r.clock.advance(POLICY.installation_pause_s / 2)
        assert await worker.run_once() == 0
        assert r.slack.count("chat.postMessage") == failed_calls

        r.slack.bot_tokens = {DEFAULT_BOT_TOKEN}  # fixed
        r.clock.advance(POLICY.installation_pause_s / 2)
        await worker.deliver_due()
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}
        assert [mentions(m, "j-1") for m in r.slack.messages("C0ALERTS")] == [True, False]
        assert len(r.slack.messages("C0TEAM")) == 1
        assert worker.last_installation_error is None
        assert "slack" not in r.notes


async def test_a_payload_slack_refuses_is_sent_again_as_plain_text(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        d = delivery("C0ALERTS", event("j-1"))
        [row] = await r.enqueue(d)
        r.slack.fail("chat.postMessage", error="invalid_blocks", count=1)
        await r.worker().run_once()
        [message] = r.slack.messages("C0ALERTS")
        expected = render.render_alert(d, PROJECT, r.clock()).message.text
        assert "blocks" not in message
        assert message["text"] == expected
        assert await r.state(row) == OutboxState.SENT
        # Still remembered as the message of j-1's failure, for a later recovery thread.
        original = await r.store.message_for_failure("C0ALERTS", "prod", "j-1")
        assert original is not None
        assert original.ts == message["ts"]


async def test_a_payload_refused_even_as_text_is_given_up_alone(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        bad, good = await r.enqueue(delivery("C0ALERTS", event("j-1")), delivery("C0ALERTS", event("j-2")))
        r.slack.fail("chat.postMessage", error="msg_too_long", count=2)
        await r.worker().run_once()
        assert (await r.state(bad), await r.state(good)) == (OutboxState.DEAD, OutboxState.SENT)
        [message] = r.slack.messages("C0ALERTS")
        assert mentions(message, "j-2")
        assert (await r.store.subscriptions("C0ALERTS")) == []  # nothing marked broken


async def test_a_channel_that_refuses_us_breaks_its_subscriptions_and_its_creator_is_told(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        sub = await r.store.add_subscription(
            Subscription(id=0, channel="C0OLD", graph_pattern="movies", created_by="U0ALICE", created_at=T0)
        )
        rows = await r.enqueue(
            delivery("C0OLD", event("j-1"), subs=(sub.id,)),
            delivery("C0OLD", event("j-2"), subs=(sub.id,)),
            delivery("C0ALERTS", event("j-3")),
        )
        worker = r.worker()
        await worker.run_once()
        assert [await r.state(i) for i in rows] == [OutboxState.DEAD, OutboxState.DEAD, OutboxState.SENT]
        assert len(r.posts_to("C0OLD")) == 1  # the row behind it was given up without asking again
        [broken] = await r.store.subscriptions("C0OLD")
        assert broken.broken == "is_archived"
        assert [s.channel for s in (await r.store.health(r.clock())).broken_subscriptions] == ["C0OLD"]

        [dm] = [m for m in r.slack.messages() if m["channel"].startswith("D")]
        assert r.slack.channels[dm["channel"]].user == "U0ALICE"
        text = json.dumps(dm["blocks"])
        assert "<#C0OLD>" in text
        assert "unarchive it" in text
        assert limits.check_message(dm) == []

        # Told once: a later row for the same channel dies without another DM.
        [later] = await r.enqueue(delivery("C0OLD", event("j-4"), subs=(sub.id,)))
        await worker.run_once()
        assert await r.state(later) == OutboxState.DEAD
        assert len([m for m in r.slack.messages() if m["channel"].startswith("D")]) == 1


async def test_a_config_file_channel_that_refuses_us_is_logged_and_shown(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig(sqlite_url) as r:
        [row] = await r.enqueue(delivery("C0SECRET", event("j-1"), subs=(-1,)))
        worker = r.worker()
        with caplog.at_level(logging.ERROR, logger="ges_bot.notify.delivery"):
            await worker.run_once()
        assert await r.state(row) == OutboxState.DEAD
        assert any("GES_BOT_CONFIG" in rec.getMessage() for rec in caplog.records if rec.levelno == logging.ERROR)
        assert "channel_not_found" in r.notes["slack:C0SECRET"]
        assert worker.broken_config_channels == {"C0SECRET": "channel_not_found"}
        assert r.slack.count("conversations.open") == 0  # no one to DM

        # Someone invites the bot: the next alert goes through and the problem note goes away.
        r.slack.add_channel(Channel("C0SECRET", "secret", is_private=True, is_member=True))
        [again] = await r.enqueue(delivery("C0SECRET", event("j-2"), subs=(-1,)))
        await worker.run_once()
        assert await r.state(again) == OutboxState.SENT
        assert "slack:C0SECRET" not in r.notes


# --- threads --------------------------------------------------------------------------------


async def test_an_alert_too_big_for_one_message_continues_in_its_thread(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        events = [event(f"j-{i}", graph="movies") for i in range(8)]
        await r.enqueue(delivery("C0ALERTS", *events))
        await r.worker().run_once()
        main, reply = r.slack.messages("C0ALERTS")
        assert "thread_ts" not in main
        assert reply["thread_ts"] == main["ts"]
        assert "…and 3 more jobs on this graph, listed in the thread" in json.dumps(main["blocks"], ensure_ascii=False)
        assert [mentions(main, f"j-{i}") for i in range(8)] == [True] * 5 + [False] * 3
        assert [mentions(reply, f"j-{i}") for i in range(5, 8)] == [True] * 3
        assert [limits.check_message(m) for m in (main, reply)] == [[], []]


async def test_a_recovery_threads_under_the_message_of_the_job_it_recovers(sqlite_url: str) -> None:
    # The demo's sequence: j-a failed before the bot watched (recorded silently, never posted);
    # j-b of the same graph and job name failed and was posted; then j-a's successor succeeded.
    async with rig(sqlite_url) as r:
        worker = r.worker()
        await r.enqueue(delivery("C0ALERTS", event("j-b")))
        await worker.run_once()
        [alert_b] = r.slack.messages("C0ALERTS")

        [row] = await r.enqueue(delivery("C0ALERTS", event("j-a2", EventKind.RECOVERED, recovers="j-a")))
        await worker.run_once()
        _, standalone = r.slack.messages("C0ALERTS")
        # On its own: nobody here saw j-a fail. j-b's alert is untouched: no reply, no update.
        assert "thread_ts" not in standalone
        assert standalone["text"].startswith("✅ ImportGraph recovered")
        assert "*Recovers failed job*\\n`j-a`" in json.dumps(standalone["blocks"])
        assert r.slack.updates() == []
        assert [m for m in r.slack.messages() if m.get("thread_ts") == alert_b["ts"]] == []
        b = await r.store.message_for_failure("C0ALERTS", "prod", "j-b")
        assert b is not None
        assert (b.ts, b.recovered) == (alert_b["ts"], False)
        assert await r.state(row) == OutboxState.SENT

        # j-b's own recovery: in j-b's thread, and j-b's alert is marked recovered.
        await r.enqueue(delivery("C0ALERTS", event("j-b2", EventKind.RECOVERED, recovers="j-b")))
        await worker.run_once()
        reply = r.slack.messages("C0ALERTS")[2]
        assert reply["thread_ts"] == alert_b["ts"]
        assert mentions(reply, "j-b2")
        [update] = r.slack.updates("C0ALERTS")
        assert update["ts"] == alert_b["ts"]
        [shown] = [m for m in r.slack.history("C0ALERTS") if m["ts"] == alert_b["ts"]]
        assert shown["text"].startswith("✅ Recovered: ")
        b = await r.store.message_for_failure("C0ALERTS", "prod", "j-b")
        assert b is not None and b.recovered


async def test_a_recovery_row_of_several_events_is_recorded_one_post_at_a_time(sqlite_url: str) -> None:
    # Each recovery posted is recorded before the next one is posted: a crash after the first
    # leaves only the others to post (no re-post of the first).
    async with rig(sqlite_url) as r:
        await r.enqueue(delivery("C0ALERTS", event("j-a"), event("j-b", job_name="BuildIndex")))
        worker = r.worker()
        await worker.run_once()
        [original] = r.slack.messages("C0ALERTS")
        recorded: list[int] = []
        store = _RecordingStore(r.store, recorded)
        worker.store = store  # type: ignore[assignment]
        posts: list[int] = []
        worker.gateway = _AfterPost(r.gateway, lambda n: posts.append(len(recorded)))
        [row] = await r.enqueue(
            delivery(
                "C0ALERTS",
                event("j-a2", EventKind.RECOVERED, recovers="j-a"),
                event("j-b2", EventKind.RECOVERED, job_name="BuildIndex", recovers="j-b"),
                event("j-c2", EventKind.RECOVERED, job_name="Export", recovers="j-c"),
            )
        )
        await worker.run_once()
        # Before the 2nd and 3rd post, the rows of the 1st and 2nd were already marked sent.
        assert posts == [0, 1, 2]
        assert recorded[0] == row
        assert {await r.state(i) for i in recorded} == {OutboxState.SENT}
        replies = [m for m in r.slack.messages("C0ALERTS") if m.get("thread_ts") == original["ts"]]
        assert [[mentions(m, j) for j in ("j-a2", "j-b2")] for m in replies] == [[True, False], [False, True]]
        [alone] = [m for m in r.slack.messages("C0ALERTS")[1:] if "thread_ts" not in m]
        assert mentions(alone, "j-c2")
        assert (await r.store.health(r.clock())).outbox_pending == 0


async def test_a_recovery_with_no_failure_message_to_thread_under_is_posted_on_its_own(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        [row] = await r.enqueue(delivery("C0ALERTS", event("j-2", EventKind.RECOVERED, recovers="j-1")))
        await r.worker().run_once()
        [message] = r.slack.messages("C0ALERTS")
        assert "thread_ts" not in message
        assert message["text"].startswith("✅ ImportGraph recovered")
        assert r.slack.updates() == []
        assert await r.state(row) == OutboxState.SENT


class _AfterPost:
    """Our own ``SlackGateway`` around the real one, calling ``hook`` after each successful post."""

    def __init__(self, inner: WebApiGateway, hook: Callable[[int], None]) -> None:
        self.inner = inner
        self.hook = hook
        self.posts = 0

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
    ) -> Posted:
        posted = await self.inner.post(channel, text, blocks, thread_ts=thread_ts)
        self.posts += 1
        self.hook(self.posts)
        return posted

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await self.inner.update(channel, ts, text, blocks)

    async def open_dm(self, user_id: str) -> str:
        return await self.inner.open_dm(user_id)


async def test_a_recovery_row_failing_part_way_keeps_what_was_posted(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        failures = delivery("C0ALERTS", event("j-a"), event("j-b", job_name="BuildIndex"))
        recoveries = delivery(
            "C0ALERTS",
            event("j-a2", EventKind.RECOVERED, recovers="j-a"),
            event("j-b2", EventKind.RECOVERED, job_name="BuildIndex", recovers="j-b"),
        )
        await r.enqueue(failures)
        worker = r.worker()
        await worker.run_once()
        [original] = r.slack.messages("C0ALERTS")

        # Slack goes down right after the first recovery reply is posted.
        def outage(posts: int) -> None:
            if posts == 1:
                r.slack.fail("chat.postMessage", status=503, count=1)

        worker.gateway = _AfterPost(r.gateway, outage)
        [row] = await r.enqueue(recoveries)
        await worker.run_once()
        assert await r.state(row) == OutboxState.SENT  # what was posted stays posted
        r.clock.advance(POLICY.backoff_base_s)
        await worker.deliver_due()

        replies = [m for m in r.slack.messages("C0ALERTS") if m.get("thread_ts") == original["ts"]]
        assert [mentions(m, "j-a2") for m in replies] == [True, False]
        assert mentions(replies[1], "j-b2")
        assert len(r.slack.messages("C0ALERTS")) == 3  # the original and two replies, nothing twice
        assert {u["ts"] for u in r.slack.updates()} == {original["ts"]}
        marked = await r.store.message_for_failure("C0ALERTS", "prod", "j-b")
        assert marked is not None and marked.recovered
        assert (await r.store.health(r.clock())).outbox_pending == 0


# --- several workers, stopping, the database going away -------------------------------------


class _FlakyStore:
    """Our own ``Store`` around the real one: the first ``claims`` claims find no database, and
    so do the first ``records`` calls of ``mark_sent`` (a crash right after posting, as the
    database sees it)."""

    def __init__(self, inner: SqlStore, *, claims: int = 0, records: int = 0) -> None:
        self.inner = inner
        self.claims = claims
        self.records = records

    async def claim_outbox(
        self, worker: str, now: datetime, limit: int, lease_seconds: float, **options: Any
    ) -> list[Any]:
        if self.claims > 0:
            self.claims -= 1
            raise StoreError("the database at sqlite:///ges-bot.db is unavailable: disk I/O error")
        return await self.inner.claim_outbox(worker, now, limit, lease_seconds, **options)

    async def mark_sent(self, outbox_id: int, ts: str, now: datetime, posted: Any, **options: Any) -> MarkedSent:
        if self.records > 0:
            self.records -= 1
            raise StoreError("the database at sqlite:///ges-bot.db is unavailable: disk I/O error")
        return await self.inner.mark_sent(outbox_id, ts, now, posted, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_the_worker_outlives_a_database_outage(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with rig(sqlite_url) as r:
        [row] = await r.enqueue(delivery("C0ALERTS", event("j-1")))
        worker = r.worker()
        worker.store = _FlakyStore(r.store, claims=3)  # type: ignore[assignment]
        stop = asyncio.Event()
        with caplog.at_level(logging.WARNING, logger="ges_bot.notify.delivery"):
            task = asyncio.create_task(worker.run(stop))
            try:
                await r.slack.wait_for(lambda: r.slack.messages("C0ALERTS"), timeout=5)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
        assert await r.state(row) == OutboxState.SENT
        warnings = [rec.getMessage() for rec in caplog.records if "database unavailable" in rec.getMessage()]
        assert len(warnings) == 3


async def test_two_workers_share_the_outbox_without_posting_anything_twice(db_url: str) -> None:
    async with rig(db_url) as r:
        channels = ["C0ALERTS", "C0TEAM", "C0OPS"]
        rows = await r.enqueue(*(delivery(channels[i % 3], event(f"j-{i:02d}")) for i in range(18)))
        first = r.worker(replace(POLICY, batch_size=4))
        second = r.worker(replace(POLICY, batch_size=4), worker_id="w2")
        await asyncio.gather(first.deliver_due(), second.deliver_due())
        posted = [m for c in channels for m in r.slack.messages(c)]
        assert sorted(i for i in range(18) for m in posted if mentions(m, f"j-{i:02d}")) == list(range(18))
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}


class _RecordingStore:
    """Our own ``Store`` around the real one: notes the outbox id of every applied ``mark_sent``."""

    def __init__(self, inner: SqlStore, recorded: list[int]) -> None:
        self.inner = inner
        self.recorded = recorded

    async def mark_sent(self, outbox_id: int, ts: str, now: datetime, posted: Any, **options: Any) -> MarkedSent:
        marked = await self.inner.mark_sent(outbox_id, ts, now, posted, **options)
        if marked.applied:
            self.recorded.append(outbox_id)
        return marked

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Sections:
    """Counts post→mark-sent sections in flight: from the start of a ``chat.postMessage`` until
    the row is recorded as sent (our own ``SlackGateway`` and ``Store`` around the real ones)."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0

    def gateway(self, inner: WebApiGateway) -> Any:
        sections = self

        class Gateway(_AfterPost):
            async def post(
                self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
            ) -> Posted:
                sections.open += 1
                sections.most = max(sections.most, sections.open)
                return await super().post(channel, text, blocks, thread_ts=thread_ts)

        return Gateway(inner, lambda n: None)

    def store(self, inner: SqlStore) -> Any:
        sections = self

        class Store(_RecordingStore):
            async def mark_sent(
                self, outbox_id: int, ts: str, now: datetime, posted: Any, **options: Any
            ) -> MarkedSent:
                marked = await super().mark_sent(outbox_id, ts, now, posted, **options)
                sections.open -= 1
                return marked

        return Store(inner, [])


async def test_at_most_max_concurrent_posts_messages_are_posted_and_not_yet_recorded(sqlite_url: str) -> None:
    # What a crash can post twice is what is posted and not yet recorded: 8 channels post side
    # by side, Slack takes 0.15 s per post, and still no more than 3 are ever in that state.
    async with rig(sqlite_url) as r:
        channels = [f"C0P{i}" for i in range(8)]
        for c in channels:
            r.slack.add_channel(Channel(c, c.lower()))
        rows = await r.enqueue(*(delivery(c, event(f"{c}-{n}")) for n in range(2) for c in channels))
        r.slack.fail("chat.postMessage", delay=0.15)
        worker = r.worker(replace(POLICY, max_concurrent_posts=3))
        sections = _Sections()
        worker.gateway = sections.gateway(r.gateway)
        worker.store = sections.store(r.store)
        started = time.monotonic()
        await worker.run_once()
        elapsed = time.monotonic() - started
        assert sections.most == 3  # the cap is reached (the lanes do run side by side) …
        assert sections.open == 0
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}
        assert [len(r.slack.messages(c)) for c in channels] == [2] * 8
        # … and only the Slack calls wait for a slot: 16 posts, 3 at a time, ~0.15 s each.
        assert 16 / 3 * 0.15 <= elapsed < 16 * 0.15, elapsed
    assert DeliveryPolicy().max_concurrent_posts == 4


class _Frozen(_AfterPost):
    """Our own ``SlackGateway``: posts in a thread hang (the process froze or was killed there)
    until ``thaw`` is set, then fail as a timeout; everything else goes through."""

    def __init__(self, inner: WebApiGateway) -> None:
        super().__init__(inner, lambda n: None)
        self.frozen = asyncio.Event()
        self.thaw = asyncio.Event()

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
    ) -> Posted:
        if thread_ts is not None:
            self.frozen.set()
            await self.thaw.wait()
            raise RetryableSlackError("timeout")
        return await super().post(channel, text, blocks, thread_ts=thread_ts)


async def test_thread_replies_survive_a_worker_that_dies_after_posting_the_alert(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig(sqlite_url) as r:
        d = delivery("C0ALERTS", *(event(f"j-{i:02d}") for i in range(30)))
        assert len(render.render_alert(d, PROJECT, r.clock()).thread_replies) == 2
        [row] = await r.enqueue(d)
        dying = r.worker()
        frozen = _Frozen(r.gateway)
        dying.gateway = frozen
        task = asyncio.create_task(dying.run_once())
        try:
            await asyncio.wait_for(frozen.frozen.wait(), 10)
            # The alert is out and recorded; the worker dies before its thread replies are posted.
            [alert] = r.slack.messages("C0ALERTS")
            assert await r.state(row) == OutboxState.SENT
            assert (await r.store.health(r.clock())).outbox_pending == 2

            # Another worker, once the dead one's claims have run out, posts them: in order, once.
            r.clock.advance(POLICY.claim_lease_s + 1)
            survivor = r.worker(worker_id="w2")
            assert await survivor.deliver_due() == 2
        finally:
            # The frozen worker wakes up late (its post "timed out"): it must not hand back rows
            # that the other worker has sent since.
            with caplog.at_level(logging.WARNING, logger="ges_bot.notify.delivery"):
                frozen.thaw.set()
                await asyncio.wait_for(task, 10)
        main, first, second = r.slack.messages("C0ALERTS")
        assert main == alert
        assert (first["thread_ts"], second["thread_ts"]) == (alert["ts"], alert["ts"])
        assert first["text"].endswith("(1/2)") and second["text"].endswith("(2/2)")
        shown = [j for m in (main, first, second) for j in (f"j-{i:02d}" for i in range(30)) if mentions(m, j)]
        assert sorted(shown) == [f"j-{i:02d}" for i in range(30)]  # every job once
        health = await r.store.health(r.clock())
        assert (health.outbox_pending, health.outbox_dead) == (0, 0)
        assert any("is no longer ours" in rec.getMessage() for rec in caplog.records)


async def test_a_post_outliving_its_claim_is_not_recorded_over_the_new_holder(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Slack takes longer than the claim: meanwhile another worker claims the row and posts it.
    # The late worker's record is refused (fenced): the row keeps the other worker's ts and its
    # thread replies are written once.
    async with rig(sqlite_url) as r:
        d = delivery("C0ALERTS", *(event(f"j-{i}") for i in range(8)))
        [row] = await r.enqueue(d)
        late = r.worker()
        other = r.worker(worker_id="w2")

        class SlowFirst(_AfterPost):
            async def post(
                self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
            ) -> Posted:
                posted = await super().post(channel, text, blocks, thread_ts=thread_ts)
                if self.posts == 1:
                    r.clock.advance(POLICY.claim_lease_s + 1)
                    await other.deliver_due()
                return posted

        late.gateway = SlowFirst(r.gateway, lambda n: None)
        with caplog.at_level(logging.WARNING, logger="ges_bot.notify.delivery"):
            await late.run_once()
        first, second, reply = r.slack.messages("C0ALERTS")  # posted twice: the claim ran out mid-post
        assert "thread_ts" not in first and "thread_ts" not in second
        assert reply["thread_ts"] == second["ts"]
        item = await r.store.outbox_item(row)
        assert item is not None
        assert (item.state, item.ts) == (OutboxState.SENT, second["ts"])
        original = await r.store.message_for_failure("C0ALERTS", "prod", "j-0")
        assert original is not None
        assert original.ts == second["ts"]
        assert (await r.store.health(r.clock())).outbox_pending == 0
        assert any("is no longer ours" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize(("lost", "expected"), [(2, ["j-0", "j-1", "j-2"]), (100, ["j-0", "j-0", "j-1", "j-2"])])
async def test_losing_the_record_of_a_post_duplicates_that_one_message_at_most(
    sqlite_url: str, lost: int, expected: list[str]
) -> None:
    # The documented crash window: posted, then not recorded. A database blip is ridden out; a
    # longer loss (or a crash) leaves the row claimed until its lease expires, then it is posted
    # again. The rows queued behind it in its lane are neither lost nor doubled.
    async with rig(sqlite_url) as r:
        rows = await r.enqueue(*(delivery("C0ALERTS", event(f"j-{i}")) for i in range(3)))
        worker = r.worker()
        flaky = _FlakyStore(r.store, records=lost)
        worker.store = flaky  # type: ignore[assignment]
        await worker.run_once()
        flaky.records = 0  # the database is back
        r.clock.advance(POLICY.claim_lease_s + 1)
        await worker.deliver_due()
        posted = [next(j for j in ("j-0", "j-1", "j-2") if mentions(m, j)) for m in r.slack.messages("C0ALERTS")]
        assert posted == expected
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}


async def test_stopping_hands_queued_rows_back_for_the_next_worker(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        rows = await r.enqueue(*(delivery("C0ALERTS", event(f"j-{i}")) for i in range(5)), at=real_clock())
        worker = r.worker(replace(POLICY, channel_interval_s=0.3), clock=real_clock)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await r.slack.wait_for(lambda: r.slack.messages("C0ALERTS"), timeout=5)
        stop.set()
        await asyncio.wait_for(task, 10)
        delivered = len(r.slack.messages("C0ALERTS"))
        assert delivered < 5
        # Handed back due now, not left claimed until the lease expires.
        successor = r.worker(worker_id="w2", clock=real_clock)
        await successor.deliver_due()
        assert [mentions(m, f"j-{i}") for i, m in enumerate(r.slack.messages("C0ALERTS"))] == [True] * 5
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}


async def test_a_row_claimed_again_while_it_waits_in_its_lane_is_posted_once(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        rows = await r.enqueue(*(delivery("C0ALERTS", event(f"j-{i}")) for i in range(3)))
        worker = r.worker(replace(POLICY, channel_interval_s=0.4))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await r.slack.wait_for(lambda: r.slack.messages("C0ALERTS"), timeout=5)
            # j-0 is recorded; j-1 and j-2 wait in the lane (j-1 for its turn, 0.4 s) …
            await r.slack.wait_for(lambda: worker.in_flight == 2 or None, timeout=5)
            # … when every claim expires: the worker claims j-1 and j-2 again.
            r.clock.advance(POLICY.claim_lease_s + 1)
            await r.slack.wait_for(lambda: len(r.slack.messages("C0ALERTS")) >= 3, timeout=5)

            async def settled() -> bool:
                return {await r.state(i) for i in rows} == {OutboxState.SENT} and worker.idle

            # Nothing is left to post (every row sent, nothing in hand): a duplicate would be out.
            deadline = time.monotonic() + 5
            while not await settled():
                assert time.monotonic() < deadline, "rows still pending"
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        assert [mentions(m, f"j-{i}") for i, m in enumerate(r.slack.messages("C0ALERTS"))] == [True] * 3
        assert {await r.state(i) for i in rows} == {OutboxState.SENT}


async def test_a_row_does_not_wait_for_its_turn_beyond_its_claim(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        first, second = await r.enqueue(delivery("C0ALERTS", event("j-0")), delivery("C0ALERTS", event("j-1")))
        policy = replace(POLICY, claim_lease_s=60.0, lease_margin_s=20.0, channel_interval_s=0.5)
        worker = r.worker(policy)

        # The first post takes 39.8 s of the claim's 40: j-1 would have to wait 0.5 s for its turn.
        def slow(posts: int) -> None:
            if posts == 1:
                r.clock.advance(39.8)

        worker.gateway = _AfterPost(r.gateway, slow)
        await worker.run_once()
        assert len(r.slack.messages("C0ALERTS")) == 1
        row = await r.store.outbox_item(second)
        assert row is not None
        assert (row.state, row.last_error) == (OutboxState.PENDING, "waiting for this channel's rate limit")
        await asyncio.sleep(0.5)
        r.clock.advance(1)
        await worker.deliver_due()
        assert [mentions(m, f"j-{i}") for i, m in enumerate(r.slack.messages("C0ALERTS"))] == [True, True]
        assert {await r.state(i) for i in (first, second)} == {OutboxState.SENT}


async def test_a_row_whose_claim_is_running_out_is_handed_back_not_posted(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        rows = await r.enqueue(*(delivery("C0ALERTS", event(f"j-{i}")) for i in range(3)))
        policy = replace(POLICY, claim_lease_s=60.0, lease_margin_s=20.0)
        worker = r.worker(policy)
        claimed_at = r.clock()

        # Slack is slow: each post moves the worker's clock on by 25 s.
        def slow(posts: int) -> None:
            r.clock.advance(25)

        worker.gateway = _AfterPost(r.gateway, slow)
        await worker.run_once()
        # j-0 at +0 s and j-1 at +25 s were posted; j-2 (at +50 s, past 60 − 20) went back.
        assert len(r.slack.messages("C0ALERTS")) == 2
        assert [await r.state(i) for i in rows] == [OutboxState.SENT, OutboxState.SENT, OutboxState.PENDING]
        assert r.clock() == claimed_at + timedelta(seconds=50)
        await worker.deliver_due()
        assert [mentions(m, f"j-{i}") for i, m in enumerate(r.slack.messages("C0ALERTS"))] == [True] * 3


# --- live claims ----------------------------------------------------------------------------


async def test_a_heartbeat_renews_the_claims_in_hand_and_never_one_another_worker_took(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        mine, taken = await r.enqueue(delivery("C0ALERTS", event("j-0")), delivery("C0TEAM", event("j-1")))
        lease = POLICY.claim_lease_s
        claimed = await r.store.claim_outbox("w1", r.clock(), 10, lease)
        assert [i.id for i in claimed] == [mine, taken]
        # w1 stalls past its lease; w2 takes the row of #team meanwhile.
        r.clock.advance(lease + 1)
        [stolen] = await r.store.claim_outbox("w2", r.clock(), 10, lease, busy=["C0ALERTS"])
        assert stolen.id == taken
        # w1's heartbeat renews the claim it still holds, not the one w2 took.
        assert await r.store.renew_claims("w1", [mine, taken], r.clock(), lease) == {mine}
        assert await r.store.claim_outbox("w3", r.clock() + timedelta(seconds=lease - 1), 10, lease) == []
        # w1 goes on renewing; nobody renews w2's claim: a lease later its row alone is free.
        assert await r.store.renew_claims("w1", [mine], r.clock() + timedelta(seconds=lease - 1), lease) == {mine}
        [again] = await r.store.claim_outbox("w3", r.clock() + timedelta(seconds=lease + 1), 10, lease)
        assert again.id == taken


async def test_a_worker_claims_a_row_only_when_its_channel_can_take_it(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        alerts = await r.enqueue(*(delivery("C0ALERTS", event(f"a{i}")) for i in range(4)))
        [team] = await r.enqueue(delivery("C0TEAM", event("t0")))
        # One row per channel: the oldest of each; the rest stays unclaimed for whoever has room.
        claimed = await r.store.claim_outbox("w1", r.clock(), 50, 15.0, per_channel=1)
        assert [i.id for i in claimed] == [alerts[0], team]
        # Another worker gets nothing of a channel in which w1 holds a live claim …
        assert await r.store.claim_outbox("w2", r.clock(), 50, 15.0, per_channel=1) == []
        # … until w1 settles it (or its claim runs out): then the channel's next row.
        assert await r.store.mark_sent(alerts[0], "1.1", r.clock(), None, worker="w1")
        [next_row] = await r.store.claim_outbox("w2", r.clock(), 50, 15.0, per_channel=1)
        assert next_row.id == alerts[1]
        assert (await r.store.outbox_item(alerts[2])) is not None
        assert (await r.store.outbox_item(alerts[2])).attempts == 0  # type: ignore[union-attr]


async def test_a_worker_that_dies_holds_back_one_row_per_channel_for_one_lease(sqlite_url: str) -> None:
    # The production default: a lane holds the row it posts next, nothing more. A worker that
    # dies while pacing a burst leaves one row claimed; the rest is due, unclaimed, at once.
    async with rig(sqlite_url) as r:
        rows = await r.enqueue(*(delivery("C0ALERTS", event(f"j-{i}")) for i in range(5)))
        policy = replace(POLICY, channel_queue=DeliveryPolicy().channel_queue, channel_interval_s=30.0)
        dying = r.worker(policy)
        await dying.run_once()  # posts j-0; j-1 would wait 30 s for its turn: handed back
        assert len(r.slack.messages("C0ALERTS")) == 1
        pending = [await r.store.outbox_item(i) for i in rows[1:]]
        assert all(item is not None and item.attempts <= 1 for item in pending)
        # Whatever the dead worker held, another one has it all within a lease.
        r.clock.advance(policy.claim_lease_s + 1)
        survivor = r.worker(replace(policy, channel_interval_s=0.01), worker_id="w2")
        await survivor.deliver_due()
        assert [mentions(m, f"j-{i}") for i, m in enumerate(r.slack.messages("C0ALERTS"))] == [True] * 5


async def test_stopping_hands_back_a_row_waiting_for_its_turn_at_once(sqlite_url: str) -> None:
    async with rig(sqlite_url) as r:
        first, second = await r.enqueue(
            delivery("C0ALERTS", event("j-0")), delivery("C0ALERTS", event("j-1")), at=real_clock()
        )
        # j-1 would wait 8 s for its turn; the worker stops meanwhile.
        policy = replace(POLICY, channel_interval_s=8.0, max_turn_wait_s=10.0, claim_lease_s=60.0, lease_margin_s=5.0)
        worker = r.worker(policy, clock=real_clock)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await r.slack.wait_for(lambda: r.slack.messages("C0ALERTS"), timeout=5)
        await r.slack.wait_for(lambda: worker.in_flight == 1 or None, timeout=5)
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - started < 8.0  # did not sit out the turn
        row = await r.store.outbox_item(second)
        assert row is not None
        assert (row.state, row.last_error) == (OutboxState.PENDING, "worker stopping")
        assert row.next_attempt_at <= real_clock()
        assert await r.state(first) == OutboxState.SENT
