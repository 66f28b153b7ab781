"""`ges-bot check` gives actionable messages: tested against the emulator and the Slack stand-in."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from ges_bot.check import Report, run_checks
from ges_bot.config import load_config
from ges_bot.standin.slack import Channel, SlackStandIn
from ges_bot.store import open_store
from tests.support.asgi import free_port, serve
from tests.support.emulator import EmulatorHandle, run_emulator

BOT_TOKEN = "xoxb-check-test"


@dataclass
class World:
    emu: EmulatorHandle
    slack_url: str
    db_url: str
    config_file: Path

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "GES_ENDPOINT": self.emu.url,
            "GES_PROJECT_ID": self.emu.project_id,
            "HUAWEICLOUD_SDK_AK": self.emu.ak,
            "HUAWEICLOUD_SDK_SK": self.emu.sk,
            "GES_BOT_DATABASE_URL": self.db_url,
            "GES_BOT_CONFIG": str(self.config_file),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": "xapp-check-test",
            "SLACK_API_URL": f"{self.slack_url}/api/",
            "GES_BOT_GES_TIMEOUT": "3",
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v != ""}


@pytest.fixture
async def world(tmp_path: Path, sqlite_url: str) -> AsyncIterator[World]:
    store = await open_store(sqlite_url, migrate=True)
    await store.close()
    slack = SlackStandIn(
        bot_tokens={BOT_TOKEN},
        channels=[
            Channel("C0GOOD", "data-oncall"),
            Channel("C0ARCHIVED", "old-alerts", is_archived=True),
            Channel("C0PRIVATE", "secret-team", is_private=True, is_member=False),
        ],
    )
    config_file = tmp_path / "ges-bot.toml"
    config_file.write_text('[[subscriptions]]\nchannel = "C0GOOD"\ngraph = "movies"\n', encoding="utf-8")
    async with run_emulator() as emu, serve(slack.app) as slack_url:
        yield World(emu, slack_url, sqlite_url, config_file)


def _problems(report: Report) -> list[str]:
    return [f"{f.summary} | {f.fix}" for f in report.findings if not f.ok]


async def test_everything_right_passes(world: World) -> None:
    report = await run_checks(load_config(world.env()))
    assert report.ok, _problems(report)
    summaries = " ".join(f.summary for f in report.findings)
    assert "authenticated (aksk) and listed jobs" in summaries
    assert "channel C0GOOD: the bot can post here" in summaries


async def test_wrong_ges_token_says_to_renew_it(world: World) -> None:
    env = world.env(HUAWEICLOUD_SDK_AK="", HUAWEICLOUD_SDK_SK="", GES_TOKEN="MIIwrong-token")
    report = await run_checks(load_config(env))
    assert not report.ok
    [problem] = [f for f in report.findings if not f.ok]
    assert problem.area == "GES"
    assert "credentials refused" in problem.summary
    assert problem.fix is not None and "GES_TOKEN" in problem.fix
    assert "MIIwrong-token" not in problem.summary + problem.fix  # the secret is never echoed


async def test_wrong_secret_key_names_both_keys_and_the_clock(world: World) -> None:
    report = await run_checks(load_config(world.env(HUAWEICLOUD_SDK_SK="not-the-secret-key-at-all-0000000000000")))
    [problem] = [f for f in report.findings if not f.ok]
    assert "credentials refused" in problem.summary
    assert problem.fix is not None and "HUAWEICLOUD_SDK_SK" in problem.fix and "clock" in problem.fix
    assert "not-the-secret-key" not in problem.summary + problem.fix


async def test_wrong_project_id_is_named(world: World) -> None:
    report = await run_checks(load_config(world.env(GES_PROJECT_ID="ffffffffffffffffffffffffffffffff")))
    [problem] = [f for f in report.findings if not f.ok]
    assert problem.area == "GES"
    assert "project id is not accepted" in problem.summary
    assert problem.fix is not None and "GES_PROJECT_ID" in problem.fix


async def test_unreachable_endpoint_says_what_to_check(world: World) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    report = await run_checks(load_config(world.env(GES_ENDPOINT=dead)))
    [problem] = [f for f in report.findings if not f.ok]
    assert "unreachable" in problem.summary and dead in problem.summary
    assert problem.fix is not None and "GES_ENDPOINT" in problem.fix


async def test_channels_the_bot_cannot_post_to(world: World) -> None:
    world.config_file.write_text(
        '[[subscriptions]]\nchannel = "C0ARCHIVED"\ngraph = "movies"\n\n'
        '[[subscriptions]]\nchannel = "C0PRIVATE"\ngraph = "prod-*"\n\n'
        '[[subscriptions]]\nchannel = "C0MISSING"\ngraph = "*"\n',
        encoding="utf-8",
    )
    report = await run_checks(load_config(world.env()))
    problems = {f.summary: f.fix for f in report.findings if not f.ok}
    assert problems == {
        "channel C0ARCHIVED: archived": "the channel is archived: unarchive it or move the subscription elsewhere",
        "channel C0MISSING: channel_not_found": "the channel does not exist or is private without the bot: invite the "
        "bot (`/invite @ges-bot`) or fix the channel id",
        # Slack answers a private channel without the bot exactly like a missing one.
        "channel C0PRIVATE: channel_not_found": "the channel does not exist or is private without the bot: invite the "
        "bot (`/invite @ges-bot`) or fix the channel id",
    }


async def test_subscriptions_made_in_slack_are_checked_too(world: World) -> None:
    from datetime import UTC, datetime

    from ges_bot.domain import Subscription

    store = await open_store(world.db_url, migrate=False)
    await store.add_subscription(
        Subscription(
            id=0, channel="C0ARCHIVED", graph_pattern="kg-*", created_by="U0ALICE", created_at=datetime.now(UTC)
        )
    )
    await store.close()
    report = await run_checks(load_config(world.env()))
    assert [f.summary for f in report.findings if not f.ok] == ["channel C0ARCHIVED: archived"]


async def test_wrong_slack_token(world: World) -> None:
    report = await run_checks(load_config(world.env(SLACK_BOT_TOKEN="xoxb-revoked")))
    [problem] = [f for f in report.findings if not f.ok]
    assert problem.summary == "auth.test failed: invalid_auth"
    assert problem.fix is not None and "SLACK_BOT_TOKEN" in problem.fix


async def test_missing_database_schema_says_to_upgrade(world: World, tmp_path: Path) -> None:
    report = await run_checks(load_config(world.env(GES_BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}")))
    [problem] = [f for f in report.findings if not f.ok]
    assert problem.area == "database"
    assert problem.fix is not None and "ges-bot db upgrade" in problem.fix


async def test_command_line_prints_the_fix_and_exits_1(world: World) -> None:
    env = {**os.environ, **world.env(GES_PROJECT_ID="ffffffffffffffffffffffffffffffff")}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ges_bot", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "✗ GES: project 'default'" in proc.stdout
    assert "how to fix: check GES_PROJECT_ID" in proc.stdout
    assert "some checks failed" in proc.stdout
    assert world.emu.sk not in proc.stdout + proc.stderr


def test_command_line_rejects_bad_config_with_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_", "HUAWEICLOUD_", "SLACK_"))}
    env.update({"GES_ENDPOINT": "http://127.0.0.1:9", "GES_PROJECT_ID": "abc123"})
    proc = subprocess.run(
        [sys.executable, "-m", "ges_bot", "check"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "no GES credentials" in proc.stdout
    assert "HUAWEICLOUD_SDK_AK" in proc.stdout


# --- the reading of the job list ----------------------------------------------------------------

#: Emulator settings → the lines ``check`` must print for them (each also a warning when marked !).
READINGS: list[tuple[dict[str, object], list[str]]] = [
    ({}, ["job_count: filtered total", "offset: counts jobs", "status filter: every status accepted"]),
    ({"job_count": "unfiltered"}, ["! job_count: the unfiltered total"]),
    ({"job_count": "page"}, ["! job_count: the page's length"]),
    ({"offset_unit": "page0"}, ["offset: a page number from 0"]),
    ({"offset_unit": "page1"}, ["offset: a page number from 1"]),
    (
        {"status_filter": "no-partial"},
        ["! status filter: partiallyFailed refused — listing without it and filtering here"],
    ),
    ({"status_filter": "ignored"}, ["! status filter: ignored by GES — listing without it and filtering here"]),
    ({"waiting_word": "pending"}, ["waiting word: status=pending (waiting refused)"]),
    ({"waiting_word": "both"}, ["waiting word: status=waiting"]),
    ({"time_zone_suffix": "utc"}, ["times: with a zone"]),
    ({"time_zone_suffix": "none-utc"}, ["times: without a zone, read as UTC"]),
    ({"time_zone_suffix": "none-utc+8"}, ["times: without a zone, read as UTC+8"]),
    ({"limit_cap": 2}, ["limit: capped at 2 — paging by 2"]),
    (
        {"offset_unit": "page1", "job_count": "page", "limit_cap": 2},
        ["offset: a page number from 1", "! job_count: the page's length", "limit: capped at 2"],
    ),
    ({"date_filter_field": "end_time", "date_filter_tz": "+08:00"}, ["status filter: every status accepted"]),
]


def _reading_lines(report: Report) -> list[str]:
    lines = []
    for f in report.findings:
        if f.area == "GES reading":
            text = f.summary.split(": ", 1)[1]
            lines.append(f"! {text}" if f.warning else text)
    return lines


@pytest.mark.parametrize(
    ("settings", "expected"),
    READINGS,
    ids=[",".join(f"{k}={v}" for k, v in s.items()) or "documented" for s, _ in READINGS],
)
async def test_check_names_the_reading_of_every_emulator_variant(
    world: World, settings: dict[str, object], expected: list[str]
) -> None:
    await world.emu.configure(**settings)
    now = await world.emu.now()
    for i, status in enumerate(["success", "failed", "running", "pending", "partiallyFailed", "success"]):
        begin = (now - timedelta(minutes=40 - i)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        await world.emu.add_job(job_id=f"j{i}", status=status, related_graph=f"g{i % 2}", begin_time=begin)
    report = await run_checks(load_config(world.env(GES_BOT_PAGE_SIZE="3")))
    assert report.ok, _problems(report)
    lines = _reading_lines(report)
    for line in expected:
        assert any(got.startswith(line) for got in lines), (line, lines)
    listings = [f.summary for f in report.findings if "the poller's listing" in f.summary]
    assert listings, "check must run the poller's own listings"
    # Each fallback says what it costs each tick.
    costs = [f.summary for f in report.findings if f.area == "GES" and "a steady poll tick costs" in f.summary]
    assert len(costs) == 1


async def test_check_prints_the_reading_and_the_fallback_cost(world: World) -> None:
    await world.emu.configure(status_filter="no-partial")
    await world.emu.add_job(job_id="j1", status="running", related_graph="g")
    await world.emu.add_job(job_id="j2", status="success", related_graph="g")
    env = {**os.environ, **world.env(), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ges_bot", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "status filter: partiallyFailed refused — listing without it and filtering here" in out
    assert "job_count: filtered total" in out
    assert "the poller's listing status=failed since" in out
    assert "partiallyFailed cannot be listed by its filter" in out
    assert "a steady poll tick costs about" in out
