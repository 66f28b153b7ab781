"""Database URLs and engines: which async driver, which pragmas, which timeouts.

This module owns turning ``GES_BOT_DATABASE_URL`` into a SQLAlchemy ``AsyncEngine`` — SQLite through
aiosqlite (WAL, ``busy_timeout``, foreign keys, explicit ``BEGIN``) or PostgreSQL through asyncpg
(connect and command timeouts, ``pool_pre_ping`` so the pool recovers after the server restarts) —
describing a database to a person without its password, and turning database and driver failures
into :class:`~ges_bot.errors.StoreError` sentences that say what to check. It knows no tables and
runs no queries of its own beyond connection set-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import NullPool

from ges_bot.errors import ConfigError, StoreError
from ges_bot.lean import defer_package_init

# The store's modules take the async engine from here: importing sqlalchemy.ext.asyncio whole
# loads the ORM for AsyncSession (~7 MiB resident) that nothing in ges-bot uses.
defer_package_init("sqlalchemy.ext.asyncio", engine=("AsyncConnection", "AsyncEngine", "create_async_engine"))
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402

__all__ = [
    "PG_COMMAND_TIMEOUT_S",
    "PG_CONNECT_TIMEOUT_S",
    "POOL_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_WRITE_OPTION",
    "AsyncConnection",
    "AsyncEngine",
    "Dialect",
    "create_engine",
    "database_url",
    "describe",
    "dialect_of",
    "store_error",
]

Dialect = Literal["sqlite", "postgresql"]

#: How long a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS: Final = 5000
#: How long opening a PostgreSQL connection may take.
PG_CONNECT_TIMEOUT_S: Final = 5.0
#: Longest a single PostgreSQL statement may run (the store's statements take milliseconds).
PG_COMMAND_TIMEOUT_S: Final = 30.0
#: How long a caller waits for a free pooled connection.
POOL_TIMEOUT_S: Final = 10.0

#: Execution option read by the SQLite ``begin`` hook: ``True`` makes the transaction
#: ``BEGIN IMMEDIATE`` (take the write lock up front, so the busy timeout applies instead of a
#: snapshot conflict failing at the first write).
SQLITE_WRITE_OPTION: Final = "ges_bot_sqlite_write"

_HOW_TO = "use sqlite:///path/to/ges-bot.db or postgresql://user:password@host:5432/dbname"


def database_url(url: str) -> str:
    """Normalise a user-given database URL to its async-driver form.

    Accepts ``sqlite:///file.db`` (relative to the working directory), ``sqlite:////abs/file.db``,
    ``postgresql://…``, ``postgres://…`` and URLs that already name ``aiosqlite`` / ``asyncpg``.
    ``sslmode=`` in a PostgreSQL URL is passed to asyncpg as ``ssl=``. Anything else is a
    :class:`ConfigError` saying what to use instead.
    """
    text = url.strip()
    if not text:
        raise ConfigError(f"GES_BOT_DATABASE_URL is empty; {_HOW_TO}")
    if text.startswith("postgres://"):
        text = "postgresql://" + text.removeprefix("postgres://")
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ConfigError(f"GES_BOT_DATABASE_URL is not a database URL; {_HOW_TO}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+aiosqlite"):
            raise ConfigError(
                f"GES_BOT_DATABASE_URL uses driver {driver!r}; ges-bot talks to SQLite through aiosqlite, so write sqlite:///… instead"
            )
        if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
            raise ConfigError(
                "GES_BOT_DATABASE_URL names an in-memory SQLite database, which would forget everything "
                f"and is not shared between connections; {_HOW_TO}"
            )
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        if parsed.drivername not in ("postgresql", "postgresql+asyncpg"):
            raise ConfigError(
                f"GES_BOT_DATABASE_URL uses driver {driver!r}; ges-bot talks to PostgreSQL through asyncpg, so write postgresql://… instead"
            )
        query = dict(parsed.query)
        if "sslmode" in query and "ssl" not in query:
            query["ssl"] = query.pop("sslmode")
        return parsed.set(drivername="postgresql+asyncpg", query=query).render_as_string(hide_password=False)
    raise ConfigError(
        f"GES_BOT_DATABASE_URL names a {backend!r} database; ges-bot supports SQLite and PostgreSQL: {_HOW_TO}"
    )


def dialect_of(url: str) -> Dialect:
    """``"sqlite"`` or ``"postgresql"`` for a URL :func:`database_url` accepts."""
    return "sqlite" if make_url(database_url(url)).get_backend_name() == "sqlite" else "postgresql"


def describe(url: str) -> str:
    """The database in words a person can check, never with its password."""
    try:
        parsed = make_url(database_url(url))
    except ConfigError:
        return "the database named by GES_BOT_DATABASE_URL"
    return _describe(parsed)


def _describe(parsed: URL) -> str:
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite database {parsed.database}"
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    who = f" as {parsed.username}" if parsed.username else ""
    return f"PostgreSQL database {parsed.database or '(default)'} at {where}{who}"


def create_engine(url: str, *, pooled: bool = True, command_timeout_s: float = PG_COMMAND_TIMEOUT_S) -> AsyncEngine:
    """An engine for ``url`` with ges-bot's connection settings.

    ``pooled=False`` opens a fresh connection per use (migrations, one-shot CLI commands).
    """
    parsed = make_url(database_url(url))
    pool: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_directory(parsed)
        engine = create_async_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **pool,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    if pooled:
        pool |= {"pool_size": 5, "max_overflow": 5, "pool_timeout": POOL_TIMEOUT_S, "pool_recycle": 1800}
    return create_async_engine(
        parsed,
        # A connection that died with a server restart is noticed at checkout and replaced.
        pool_pre_ping=True,
        connect_args={
            "timeout": PG_CONNECT_TIMEOUT_S,
            "command_timeout": command_timeout_s,
            "server_settings": {"application_name": "ges-bot"},
        },
        **pool,
    )


def _check_sqlite_directory(parsed: URL) -> None:
    # Said up front rather than left to the driver: it is the common mistake, and aiosqlite's
    # failed-open path leaves a worker thread that can outlive the event loop (omnilib/aiosqlite#389).
    directory = Path(parsed.database or "").parent
    if not directory.is_dir():
        raise StoreError(
            f"cannot use the {_describe(parsed)}: directory {directory} does not exist; check that its "
            "directory exists and is writable, or point GES_BOT_DATABASE_URL elsewhere"
        )


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:
    # The sqlite3 module's own transaction handling begins lazily and commits before DDL; turn it
    # off so that SQLAlchemy's BEGIN (below) really starts a transaction — including for migrations.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL on a new file may itself wait for a lock.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(SQLITE_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def store_error(exc: BaseException, where: str, dialect: str) -> StoreError:
    """A :class:`StoreError` for a database or driver failure: what happened, where, what to check.

    The SQL text and its parameters are left out (they can hold message contents); ``where`` is
    already free of passwords.
    """
    reason = _reason(exc)
    lowered = reason.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreError(
            f"the {where} has no ges-bot tables or an old schema ({reason}); run `ges-bot db upgrade` to migrate it"
        )
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    unreachable = (
        isinstance(exc, OSError | TimeoutError | PoolTimeoutError | OperationalError | InterfaceError)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        # connection exception, bad credentials, no such database, server shutting down or starting
        or sqlstate.startswith(("08", "28", "3D", "57P"))
    )
    if dialect == "sqlite" and unreachable:
        return StoreError(
            f"cannot use the {where}: {reason}; check that its directory exists and is writable, "
            "and that no other process keeps the file locked"
        )
    if unreachable:
        return StoreError(
            f"cannot reach the {where}: {reason}; check that PostgreSQL is running and accepts connections there, "
            "and that GES_BOT_DATABASE_URL names the right host, port, database and user"
        )
    return StoreError(f"the {where} refused an operation: {reason}")


def _reason(exc: BaseException) -> str:
    inner: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        inner = exc.orig
    # The first line only: SQLAlchemy appends the SQL text and its parameters below it.
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__
