"""Shared fixtures: database URLs for SQLite and PostgreSQL; the GES emulator, the Slack stand-in
and a fleet of bot processes, for the tests that run the whole bot (a module that needs other
channels or credentials defines its own ``slack`` or ``emu``, which pytest prefers).

PostgreSQL tests use ``GES_BOT_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``):
each test gets a fresh database created from it and dropped afterwards. Without the variable (or
with the server down) they skip — unless ``GES_BOT_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where
they fail, so CI never skips them silently.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ges_bot.standin.slack import Channel, SlackStandIn
from tests.support import pglock
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle, run_emulator
from tests.support.processes import BotFleet, bot_fleet

PG_ENV = "GES_BOT_TEST_POSTGRES_URL"


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


async def _pg_admin(url: str):  # type: ignore[no-untyped-def]
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    return await asyncpg.connect(dsn, timeout=5)


@contextlib.asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """Create a fresh, empty PostgreSQL database; yield its URL in plain ``postgresql://`` form."""
    admin = _pg_admin_url()
    required = os.environ.get("GES_BOT_REQUIRE_POSTGRES") == "1"
    if not admin:
        if required:
            pytest.fail(f"GES_BOT_REQUIRE_POSTGRES=1 but {PG_ENV} is not set")
        pytest.skip(f"PostgreSQL not configured (set {PG_ENV})")
    # Held shared by every test database; the database-outage test holds it exclusively while
    # it stops the server (tests.support.pglock).
    with pglock.shared():
        try:
            conn = await _pg_admin(admin)
        except Exception as exc:
            if required:
                pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable: {exc}")
            pytest.skip(f"PostgreSQL unreachable: {exc}")
        name = f"gesbot_t_{uuid.uuid4().hex[:12]}"
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        base = admin.rsplit("/", 1)[0]
        try:
            yield f"{base}/{name}"
        finally:
            conn = await _pg_admin(admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this test."""
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test, as a plain ``sqlite:///`` URL."""
    return f"sqlite:///{tmp_path / 'ges-bot.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Runs a test once on SQLite and once on PostgreSQL (fresh database each time)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ges-bot.db'}"
    else:
        async with fresh_pg_database() as url:
            yield url


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    """The GES emulator on loopback, with its default project and AK/SK."""
    async with run_emulator() as handle:
        yield handle


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    """The Slack stand-in on loopback, with one channel: ``C0ALERTS`` (#alerts)."""
    stand_in = SlackStandIn(channels=[Channel("C0ALERTS", "alerts")])
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        yield stand_in


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[BotFleet]:
    """Bot processes started by the test; none outlives it."""
    async with bot_fleet(tmp_path) as bots:
        yield bots
