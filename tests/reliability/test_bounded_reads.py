"""A hostile GES against a real ``ges-bot run``: bounded memory, bounded database, /healthz alive.

Each test is what an attacker (or a broken GES) would try, served by the emulator's fault API to a
``ges-bot run`` child process on SQLite: a 100 MB answer, a ``job_count`` of a million, a 10 MB
``fail_reason``, and one person firing twenty ``/gesjobs job <unknown id>`` at 6,000 jobs. While the
bot chews on it, a watcher asks ``/healthz`` every quarter second (each must answer within two
seconds) and the bot's peak RSS is read from ``/proc/<pid>/status`` (``VmHWM``: the high-water mark,
so no peak falls between two samples). The database is the SQLite file with its WAL.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import Stack
from tests.reliability.world import Sub, slash_command, subscribe, wait_for_baseline
from tests.support.emulator import LIST_ROUTE
from tests.support.processes import BotProcess

pytestmark = pytest.mark.reliability

RSS_LIMIT = 200 << 20
DB_GROWTH_LIMIT = 10 << 20


def _status_kb(pid: int, field_name: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, text
    return int(match[1]) * 1024


def _db_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("bot.db*"))


@dataclass
class Watch:
    """/healthz answers and RSS samples while an attack runs."""

    answered: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    rss: list[int] = field(default_factory=list)


@asynccontextmanager
async def watching(bot: BotProcess) -> AsyncIterator[Watch]:
    watch = Watch()

    async def loop() -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                started = time.monotonic()
                try:
                    response = await client.get(f"{bot.url}/healthz")
                    if response.status_code != 200:
                        watch.failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    else:
                        watch.answered += 1
                except httpx.HTTPError as exc:
                    watch.failures.append(f"{type(exc).__name__} after {time.monotonic() - started:.1f}s")
                watch.slowest = max(watch.slowest, time.monotonic() - started)
                if bot.alive:
                    watch.rss.append(_status_kb(bot.pid, "VmRSS"))
                await asyncio.sleep(0.25)

    task = asyncio.create_task(loop())
    try:
        yield watch
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _ticks(bot: BotProcess, result: str) -> int:
    """Poll ticks of the bot's project with that result, from /metrics."""
    match = re.search(
        rf'ges_bot_poll_ticks_total\{{project="default",result="{result}"\}} (\d+(?:\.\d+)?)', await bot.metrics()
    )
    return int(float(match[1])) if match else 0


async def _until(predicate: Any, timeout: float, what: str, bot: BotProcess) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s:\n{bot.tail()}")
        await asyncio.sleep(0.2)


def _history(stack: Stack, n: int) -> None:
    """``n`` finished jobs over the last two days (the emulator's now), oldest first."""
    now = stack.emu.state.now()
    stack.emu.state.add_many(
        [
            {
                "status": "failed" if i % 10 == 0 else "success",
                "job_name": "ImportGraph",
                "related_graph": f"g{i % 20:02d}",
                "begin_time": (now - timedelta(seconds=25 * (n - i) + 60)).strftime("%Y-%m-%dT%H:%M:%S"),
                "end_time": (now - timedelta(seconds=25 * (n - i))).strftime("%Y-%m-%dT%H:%M:%S"),
            }
            for i in range(n)
        ]
    )


async def _start(stack: Stack, **env: str) -> tuple[BotProcess, int]:
    env.setdefault("GES_BOT_DATABASE_URL", f"sqlite:///{stack.directory / 'bot.db'}")
    bot = await stack.start("hostile", **env)
    await wait_for_baseline(bot, timeout=60)
    return bot, _db_bytes(stack.directory)


def _assert_bounded(stack: Stack, bot: BotProcess, watch: Watch, db_before: int) -> None:
    assert bot.alive, bot.tail()
    peak = _status_kb(bot.pid, "VmHWM")
    growth = _db_bytes(stack.directory) - db_before
    print(  # the figures, for whoever runs this by hand
        f"peak RSS {peak / 2**20:.0f} MB, database +{growth / 2**20:.2f} MB, "
        f"/healthz answered {watch.answered} times (slowest {watch.slowest:.2f}s)"
    )
    assert not watch.failures, watch.failures[:5]
    assert watch.answered >= 4
    assert peak < RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MB"
    assert growth < DB_GROWTH_LIMIT, f"database grew by {growth / 2**20:.1f} MB"


@pytest.mark.timeout(180)
async def test_a_100_mb_answer_is_refused_in_bounded_memory(stack: Stack) -> None:
    _history(stack, 500)
    bot, db_before = await _start(stack)
    errors_before = await _ticks(bot, "error")
    # Every job-center answer from now on: 100 MB of JSON, streamed.
    await stack.emu.fault(huge_bytes=100 << 20, count=-1)
    async with watching(bot) as watch:

        async def refused_thrice_while_watched() -> bool:
            return watch.answered >= 4 and await _more(bot, "error", errors_before + 3)

        await _until(refused_thrice_while_watched, 90, "three refused ticks", bot)
    await stack.emu.clear_faults()
    _, health = await bot.health()
    [project] = health["projects"]
    assert project["consecutive_failures"] >= 3
    if project.get("last_error") is not None:  # shown on loopback
        assert "too large" in project["last_error"]
    _assert_bounded(stack, bot, watch, db_before)
    # GES well again: the next tick succeeds.
    oks = await _ticks(bot, "ok")
    await _until(lambda: _more(bot, "ok", oks + 1), 30, "a good tick after the fault", bot)


async def _more(bot: BotProcess, result: str, at_least: int) -> bool:
    return await _ticks(bot, result) >= at_least


@pytest.mark.timeout(240)
async def test_a_job_count_of_a_million_is_read_within_the_tick_budget(stack: Stack) -> None:
    _history(stack, 6000)
    bot, db_before = await _start(stack)
    oks = await _ticks(bot, "ok")
    await stack.emu.reset_stats()
    # Every list answer claims a million jobs (its pages hold the real ones).
    await stack.emu.fault(job_count=1_000_000, count=-1)
    async with watching(bot) as watch:

        async def four_ticks_while_watched() -> bool:
            return watch.answered >= 4 and await _more(bot, "ok", oks + 4)

        await _until(four_ticks_while_watched, 120, "four ticks under the lying count", bot)
    await stack.emu.clear_faults()
    stats = await stack.emu.stats()
    listed = int(stats["requests"].get(LIST_ROUTE, 0))
    ticks = await _ticks(bot, "ok") - oks
    # Each tick stops at its page budget (200 by default), whatever the count says.
    assert listed <= (ticks + 1) * (200 + 8), (listed, ticks)
    assert "used its budget" in bot.logs()
    _assert_bounded(stack, bot, watch, db_before)


@pytest.mark.timeout(180)
async def test_a_10_mb_fail_reason_is_stored_bounded_and_alerted_once(stack: Stack) -> None:
    _history(stack, 200)
    bot, db_before = await _start(stack)
    await subscribe(stack.slack, [bot], [Sub("C0REL00", "*")])
    reason = "Import failed: " + "x" * (10 << 20)
    async with watching(bot) as watch:
        [job] = stack.emu.state.add_many(
            [{"status": "failed", "job_name": "ImportGraph", "related_graph": "huge", "fail_reason": reason}]
        )
        alerts = await stack.slack.wait_for(lambda: stack.slack.messages("C0REL00") or None, timeout=60)
        # A few more ticks over the same 10 MB job.
        oks = await _ticks(bot, "ok")

        async def three_more_ticks_while_watched() -> bool:
            return watch.answered >= 4 and await _more(bot, "ok", oks + 3)

        await _until(three_more_ticks_while_watched, 60, "three more ticks", bot)
    [alert] = alerts
    text = str(alert)
    assert job.job_id in text
    assert "Import failed: xxx" in text
    assert len(text) < 60_000
    # Stored cut once, with the marker, wherever it is kept (snapshot, event, outbox row).
    with sqlite3.connect(f"file:{stack.directory / 'bot.db'}?mode=ro", uri=True) as db:
        (stored,) = db.execute("SELECT fail_reason FROM job_snapshots WHERE job_id = ?", (job.job_id,)).fetchone()
        (event,) = db.execute("SELECT job FROM job_events WHERE job_id = ?", (job.job_id,)).fetchone()
    assert stored.endswith(f" … [truncated, {len(reason):,} bytes]")
    assert len(stored) < 5000
    assert len(event) < 10_000
    _assert_bounded(stack, bot, watch, db_before)


@pytest.mark.timeout(240)
async def test_twenty_unknown_job_lookups_by_one_person_cost_at_most_100_ges_requests(stack: Stack) -> None:
    _history(stack, 6000)
    # Polls far apart: the requests counted are the lookups'.
    bot, _ = await _start(stack, GES_BOT_POLL_INTERVAL="600")
    await stack.emu.reset_stats()
    # Twenty at once (well within 20 s), each for a job GES does not have.
    answers = await asyncio.gather(
        *(slash_command(stack.slack, bot, f"job ffff{i:028d}", user="U0MALLORY", timeout=30) for i in range(20))
    )
    stats = await stack.emu.stats()
    requests = sum(int(n) for n in stats["requests"].values())
    print(f"20 lookups: {requests} GES requests")  # the figure, for whoever runs this by hand
    assert requests <= 100, stats["requests"]
    texts = [a[0]["text"] for a in answers]
    assert sum("Slow down" in t for t in texts) >= 10, texts
    # The rest say clearly where they looked.
    assert all("Slow down" in t or "since" in t for t in texts), texts
    _, health = await bot.health()
    assert health["status"] in ("ok", "degraded")
