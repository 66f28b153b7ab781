"""PostgreSQL goes away for 30 seconds under two running replicas: they log, retry and recover
without a restart, and no alert is lost or doubled.

The server really stops (``pg_ctlcluster … stop``; the tests run as root). That would break any
other test using PostgreSQL at the time, so this one holds :mod:`tests.support.pglock`
exclusively (every test database holds it shared), and it restarts the server in a ``finally``
whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database
from tests.reliability.conftest import Stack
from tests.reliability.world import (
    Workload,
    db_rows,
    expected_alerts,
    new_stand_in,
    report,
    settle,
    subscribe,
    subscription_plan,
    wait_for_baseline,
)
from tests.support import pglock
from tests.support.asgi import serve
from tests.support.emulator import run_emulator
from tests.support.processes import bot_fleet

pytestmark = pytest.mark.reliability

OUTAGE_S = 30.0


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        if os.environ.get("GES_BOT_REQUIRE_POSTGRES") == "1":
            pytest.fail("the database-outage test needs pg_ctlcluster and a cluster under /etc/postgresql")
        pytest.skip("no local PostgreSQL cluster to stop and start")
    return versions[-1], "main"


def _pg_ctl(action: str) -> None:
    version, name = _cluster()
    args = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action]
    if action == "stop":
        args += ["-m", "fast"]
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def _pg_ready() -> bool:
    return (
        subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False, timeout=10).returncode == 0
    )


@pytest.fixture
def postgres_alone() -> Iterator[None]:
    """Exclusive use of the PostgreSQL server; it is running again afterwards, whatever happened."""
    _cluster()
    with pglock.exclusive():
        try:
            yield
        finally:
            if not _pg_ready():
                _pg_ctl("start")
            for _ in range(60):
                if _pg_ready():
                    break
                time.sleep(0.5)


@pytest.fixture
async def outage_stack(postgres_alone: None, tmp_path: Path) -> AsyncIterator[Stack]:
    slack = new_stand_in()
    async with (
        fresh_pg_database() as url,
        run_emulator() as emu,
        serve(slack.app) as slack_url,
        bot_fleet(tmp_path) as fleet,
    ):
        slack.base_url = slack_url
        yield Stack(emu=emu, slack=slack, database_url=url, fleet=fleet, directory=tmp_path)


# Generous: the setup may first wait for other test runs to release PostgreSQL (tests/support/pglock.py).
@pytest.mark.timeout(600)
async def test_thirty_seconds_without_the_database(outage_stack: Stack) -> None:
    stack = outage_stack
    bots = list(await asyncio.gather(*(stack.start(f"d{i}") for i in range(2))))
    pids = [bot.pid for bot in bots]
    await wait_for_baseline(bots[0])
    plan = subscription_plan()
    await subscribe(stack.slack, bots, plan)
    workload = Workload(stack.emu, random.Random(30))

    # Before: alerts flow; the outbox is drained so that nothing is in flight when the server stops.
    await workload.run(60, per_wave=20, pause=0.5)
    before = await settle(
        stack.slack, expected_alerts(workload.finished, plan), database_url=stack.database_url, timeout=60
    )
    assert not before.missing, before.summary()

    started = time.monotonic()
    down_health: list[tuple[int, dict[str, object]]] = []
    try:
        await asyncio.to_thread(_pg_ctl, "stop")
        # During: jobs keep finishing in GES; the bots cannot record them yet.
        await workload.run(80, per_wave=10, pause=1.0)
        for bot in bots:
            down_health.append(await bot.health())
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
    finally:
        await asyncio.to_thread(_pg_ctl, "start")
    outage_s = time.monotonic() - started

    # After: more transitions, then everything must have arrived exactly once.
    await workload.run(40, per_wave=10, pause=0.5)
    expected = expected_alerts(workload.finished, plan)
    result = await settle(stack.slack, expected, database_url=stack.database_url, timeout=120)
    logs = stack.fleet.all_logs()
    pending = await db_rows(stack.database_url, "SELECT count(*) AS n FROM outbox WHERE state <> 'sent'")
    report(
        "database-outage",
        {
            "replicas": 2,
            "transitions": len(workload.finished),
            "outage_seconds": round(outage_s, 1),
            "expected": result.expected,
            "delivered": result.delivered,
            "duplicated": result.duplicate_count,
            "messages": result.messages,
        },
        stack.directory,
        stack.slack,
    )
    # Nobody restarted: the same processes, alive and healthy again.
    assert [bot.pid for bot in bots] == pids
    assert all(bot.alive for bot in bots), logs[-5000:]
    for status, health in down_health:
        assert status == 503 and health["status"] == "down", health
        assert "database unavailable" in str(health["reason"]), health
    for bot in bots:
        status, health = await bot.health()
        assert status == 200, health
    assert "database" in logs.lower() and ("unavailable" in logs.lower() or "failed" in logs.lower())
    assert not result.missing, f"{result.summary()}; missing: {result.missing[:5]}"
    assert not result.duplicates, f"{result.summary()}; {list(result.duplicates.items())[:5]}"
    assert not result.unexpected, result.summary()
    assert pending[0]["n"] == 0
