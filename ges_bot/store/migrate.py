"""Schema migrations, run programmatically with Alembic: upgrade, current revision, history.

This module owns applying ``store/migrations`` to a database — serialised between processes that
start at the same moment (a transaction-scoped ``pg_advisory_xact_lock`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite) — and the Alembic environment that ``migrations/env.py`` runs. It
does not define the schema (``store.tables`` does) and never touches rows.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ges_bot.errors import StoreError
from ges_bot.lean import absent
from ges_bot.store.engine import (
    SQLITE_WRITE_OPTION,
    AsyncConnection,
    create_engine,
    describe,
    dialect_of,
    store_error,
)
from ges_bot.store.tables import metadata

# Mako (Alembic's templates) loads pygments and its lexers (~4 MiB) when installed, for HTML
# tracebacks; migrations never render one, and this module is imported by every `ges-bot run`.
with absent("pygments"):
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
#: Key of the PostgreSQL advisory lock held while migrating (the bytes of "ges-bot!").
ADVISORY_LOCK_KEY: Final = 7450487797316547617
#: Longest a migration statement — or the wait for another process's migration — may take.
MIGRATION_TIMEOUT_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class Revision:
    """One migration script, for ``ges-bot db history``."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What ``upgrade`` did: the schema revision before and after."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config() -> Config:
    """An Alembic ``Config`` for ges-bot's migrations, without an ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "ges-bot ships at least one migration"
    return head


def history() -> list[Revision]:
    """Every migration, newest first."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    out = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        out.append(
            Revision(
                revision=rev.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                message=(rev.doc or "").strip(),
                is_head=rev.revision in heads,
            )
        )
    return out


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


async def _locked_upgrade(conn: AsyncConnection, revision: str) -> Upgrade:
    if conn.dialect.name == "sqlite":
        await conn.execution_options(**{SQLITE_WRITE_OPTION: True})
    async with conn.begin():
        if conn.dialect.name == "postgresql":
            # Two replicas starting together: the second waits here, then finds the schema current.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        before = await conn.run_sync(_current)
        await conn.run_sync(_upgrade, revision)
        after = await conn.run_sync(_current)
    return Upgrade(before=before, after=after)


#: Tries of a SQLite migration that finds the file locked by another process's migration.
SQLITE_LOCKED_ATTEMPTS = 5


async def upgrade(url: str, revision: str = "head") -> Upgrade:
    """Migrate the database at ``url`` to ``revision`` (default: the newest), in one transaction."""
    engine = create_engine(url, pooled=False, command_timeout_s=MIGRATION_TIMEOUT_S)
    where = describe(url)
    try:
        for attempt in range(1, SQLITE_LOCKED_ATTEMPTS + 1):
            try:
                async with engine.connect() as conn:
                    return await _locked_upgrade(conn, revision)
            except OperationalError as exc:
                # Two processes migrating one SQLite file: the second can outwait the busy
                # timeout on a loaded machine. Try again (capped, jittered); then it finds the
                # schema current. PostgreSQL serialises on its advisory lock instead.
                if "database is locked" not in str(exc) or attempt == SQLITE_LOCKED_ATTEMPTS:
                    raise
                await asyncio.sleep(min(4.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate the {where}: {exc}; if a newer ges-bot migrated it, run that version "
            "(this one knows revisions up to " + head_revision() + ")"
        ) from exc
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise store_error(exc, where, dialect_of(url)) from exc
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    """The schema revision the database at ``url`` is at (``None`` for an empty database)."""
    engine = create_engine(url, pooled=False)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise store_error(exc, describe(url), dialect_of(url)) from exc
    finally:
        await engine.dispose()


async def require_current(url: str) -> None:
    """Raise :class:`StoreError` unless the database at ``url`` is at this version's newest revision."""
    current, head = await current_revision(url), head_revision()
    if current != head:
        raise StoreError(
            f"the {describe(url)} is at schema revision {current or 'none (empty)'}, but this ges-bot needs "
            f"{head}; run `ges-bot db upgrade`"
        )


# ---------------------------------------------------------------------- the Alembic environment


def _configure_and_run(conn: Connection) -> None:
    from alembic import context

    context.configure(
        connection=conn,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_own_connection(url: str) -> None:
    engine = create_engine(url, pooled=False, command_timeout_s=MIGRATION_TIMEOUT_S)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                await conn.execution_options(**{SQLITE_WRITE_OPTION: True})
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
                await conn.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def run_env() -> None:
    """The body of ``migrations/env.py``.

    Called by ges-bot with a connection in ``config.attributes["connection"]``; called by the
    ``alembic`` command line (developers writing a migration, with ``migrations/alembic.ini``) it
    connects to ``sqlalchemy.url`` from the ini file or else ``GES_BOT_DATABASE_URL``.
    """
    from alembic import context

    config = context.config
    conn = config.attributes.get("connection")
    if conn is not None:
        _configure_and_run(conn)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from ges_bot.config import load_settings

        url = load_settings().database_url
    if context.is_offline_mode():
        from ges_bot.store.engine import database_url

        context.configure(
            url=database_url(url),
            target_metadata=metadata,
            literal_binds=True,
            render_as_batch=dialect_of(url) == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_own_connection(url))
