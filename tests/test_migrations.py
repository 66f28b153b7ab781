"""Alembic migrations on SQLite and PostgreSQL: they build exactly ``store.tables``, run once even
when replicas start together, go down and up again, and ``ges-bot db`` drives them."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from ges_bot.cli import main as cli_main
from ges_bot.domain import Subscription
from ges_bot.store import migrate, open_store
from ges_bot.store.engine import create_engine
from ges_bot.store.tables import metadata

TABLES = {
    "job_snapshots",
    "job_events",
    "outcomes",
    "poll_state",
    "subscriptions",
    "mutes",
    "outbox",
    "posted_messages",
    "ops_incidents",
    "posted_message_jobs",
    "muted_deliveries",
    "leases",
    "digest_schedules",
    "digest_outbox",
}


async def _diffs(url: str) -> list[object]:
    engine = create_engine(url, pooled=False)
    try:
        async with engine.connect() as conn:

            def compare(sync: Connection) -> list[object]:
                ctx = MigrationContext.configure(sync, opts={"compare_type": True, "compare_server_default": True})
                return list(compare_metadata(ctx, metadata))

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pooled=False)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_builds_exactly_the_model(db_url: str) -> None:
    assert await migrate.current_revision(db_url) is None
    result = await migrate.upgrade(db_url)
    assert (result.before, result.after, result.changed) == (None, migrate.head_revision(), True)
    assert await migrate.current_revision(db_url) == migrate.head_revision()
    assert await _tables(db_url) == TABLES | {"alembic_version"}
    # `alembic check`: autogenerate finds nothing to add, drop or alter.
    assert await _diffs(db_url) == []
    again = await migrate.upgrade(db_url)
    assert not again.changed


async def test_replicas_starting_together_migrate_once(db_url: str) -> None:
    stores = await asyncio.gather(*(open_store(db_url) for _ in range(4)))
    try:
        sub = await stores[0].add_subscription(Subscription(id=0, channel="C1", graph_pattern="*"))
        assert [s.id for s in await stores[3].subscriptions()] == [sub.id]
    finally:
        for s in stores:
            await s.close()
    assert await migrate.current_revision(db_url) == migrate.head_revision()


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    await migrate.upgrade(db_url)
    engine = create_engine(db_url, pooled=False)
    try:
        async with engine.begin() as conn:

            def down(sync: Connection) -> None:
                cfg = migrate.alembic_config()
                cfg.attributes["connection"] = sync
                command.downgrade(cfg, "base")

            await conn.run_sync(down)
    finally:
        await engine.dispose()
    assert await _tables(db_url) == {"alembic_version"}
    assert await migrate.current_revision(db_url) is None
    await migrate.upgrade(db_url)
    assert await _diffs(db_url) == []


async def test_subscriptions_to_failures_gain_unknown_outcomes(db_url: str) -> None:
    await migrate.upgrade(db_url, "0002")
    engine = create_engine(db_url, pooled=False)
    try:
        async with engine.begin() as conn:
            for channel, kinds in (
                ("C0DEFAULT", ["failed", "partially_failed"]),
                ("C0SUCCESS", ["recovered", "succeeded"]),
                ("C0FAILED", ["failed"]),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO subscriptions (channel, graph_pattern, kinds, project, job_names, created_at) "
                        "VALUES (:channel, '*', :kinds, '', '[]', :at)"
                    ),
                    {"channel": channel, "kinds": json.dumps(kinds), "at": datetime(2026, 11, 1, tzinfo=UTC)},
                )
    finally:
        await engine.dispose()

    store = await open_store(db_url)
    try:
        kinds = {s.channel: {k.value for k in s.kinds} for s in await store.subscriptions()}
    finally:
        await store.close()

    assert kinds == {
        "C0DEFAULT": {"failed", "partially_failed", "unknown_outcome"},
        "C0SUCCESS": {"recovered", "succeeded"},
        "C0FAILED": {"failed", "unknown_outcome"},
    }


async def test_languages_keep_existing_subscriptions_and_schedules_english(db_url: str) -> None:
    await migrate.upgrade(db_url, "0006")
    engine = create_engine(db_url, pooled=False)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO subscriptions (channel, graph_pattern, kinds, project, job_names, created_at) "
                    "VALUES ('C0OLD', 'prod-*', :kinds, '', '[]', :at)"
                ),
                {"kinds": json.dumps(["failed"]), "at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO digest_schedules (channel, at_minute, tz, always, created_at) "
                    "VALUES ('C0OLD', 540, 'Asia/Shanghai', false, :at)"
                ),
                {"at": at},
            )
    finally:
        await engine.dispose()

    store = await open_store(db_url)
    try:
        subs = await store.subscriptions()
        schedules = await store.digest_schedules()
        chinese = await store.add_subscription(
            Subscription(id=0, channel="C0NEW", graph_pattern="prod-*", created_at=at, locale="zh-CN")
        )
    finally:
        await store.close()

    assert [(s.channel, s.locale) for s in subs] == [("C0OLD", "en")]
    assert [(d.channel, d.locale) for d in schedules] == [("C0OLD", "en")]
    assert chinese.locale == "zh-CN"


def test_history_lists_the_shipped_migrations() -> None:
    revisions = migrate.history()
    assert revisions[-1].revision == "0001"
    assert revisions[-1].down_revision is None
    assert revisions[0].is_head
    assert revisions[0].revision == migrate.head_revision()
    assert all(r.message for r in revisions)


def test_env_module_does_nothing_when_imported() -> None:
    # Tools that import every module of the package must not start a migration.
    module = importlib.import_module("ges_bot.store.migrations.env")
    assert module.run_env is migrate.run_env


def test_migration_files_ship_with_the_package() -> None:
    versions = migrate.MIGRATIONS_DIR / "versions"
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert (migrate.MIGRATIONS_DIR / "script.py.mako").is_file()
    assert sorted(p.name for p in versions.glob("*.py")) == [
        "0001_initial.py",
        "0002_failed_job_ids_and_durable_replies.py",
        "0003a_unknown_outcomes_for_failure_subscriptions.py",
        "0003c_ops_incidents.py",
        "0005_exact_mutes.py",
        "0006_digests.py",
        "0007_snapshot_placement_indexes.py",
        "0008_languages.py",
    ]


def _with_password(url: str) -> str:
    # Trust authentication ignores the password; it must still never be printed.
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(password="s3cret-pw")
    return parsed.render_as_string(hide_password=False)


def test_db_command_upgrades_and_reports(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GES_BOT_DATABASE_URL", _with_password(db_url))
    for name in ("GES_ENDPOINT", "GES_PROJECT_ID", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    assert cli_main(["db", "current"]) == 1
    assert "empty (no schema); run `ges-bot db upgrade`" in capsys.readouterr().out
    assert cli_main(["db", "upgrade"]) == 0
    assert f"upgraded from <empty> to {migrate.head_revision()}" in capsys.readouterr().out
    assert cli_main(["db", "upgrade"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli_main(["db", "current"]) == 0
    out = capsys.readouterr().out
    assert f"at {migrate.head_revision()} (head)" in out
    assert "s3cret-pw" not in out
    assert cli_main(["db", "history"]) == 0
    assert "<base> -> 0001" in capsys.readouterr().out


def test_db_command_on_an_unreachable_database_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.asgi import free_port

    port = free_port()
    monkeypatch.setenv("GES_BOT_DATABASE_URL", f"postgresql://ges:s3cret-pw@127.0.0.1:{port}/ges")
    assert cli_main(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the PostgreSQL database ges at 127.0.0.1:{port}" in err
    assert "s3cret-pw" not in err


def test_alembic_command_line_works_for_developers(tmp_path: Path) -> None:
    # `alembic -c ges_bot/store/migrations/alembic.ini …` against GES_BOT_DATABASE_URL.
    db = tmp_path / "dev.db"
    env = {"GES_BOT_DATABASE_URL": f"sqlite:///{db}", "PATH": ""}
    ini = migrate.MIGRATIONS_DIR / "alembic.ini"
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert asyncio.run(migrate.current_revision(f"sqlite:///{db}")) == migrate.head_revision()
