"""The store: persistence of snapshots, events, outbox, subscriptions and leases.

``store.api`` is the interface (importing it does not load SQLAlchemy); ``SqlStore``,
``open_store`` and ``database_url`` are the SQL implementation, loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ges_bot.store.engine import database_url
    from ges_bot.store.sql import SqlStore, open_store

__all__ = ["SqlStore", "database_url", "open_store"]


def __getattr__(name: str) -> Any:
    # Lazy so that the pure core importing ``ges_bot.store.api`` records does not pull in SQLAlchemy.
    if name == "database_url":
        from ges_bot.store.engine import database_url

        return database_url
    if name in ("SqlStore", "open_store"):
        from ges_bot.store import sql

        return getattr(sql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
