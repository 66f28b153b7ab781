"""``ges-bot db upgrade | current | history``: the database schema from the command line.

This module owns the ``db`` subcommand's parser and output. It needs only ``GES_BOT_DATABASE_URL``
(no GES or Slack settings) and leaves the work to ``store.migrate``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ges_bot.config import load_settings
from ges_bot.errors import GesBotError
from ges_bot.store import migrate
from ges_bot.store.engine import describe


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "db",
        help="database schema: upgrade, current, history",
        description="Manage ges-bot's database schema (GES_BOT_DATABASE_URL). `ges-bot run` upgrades on start; "
        "use `db upgrade` to migrate ahead of a deployment.",
    )
    actions = p.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="migrate the schema to this version's newest revision")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    actions.add_parser("current", help="show the schema revision the database is at")
    actions.add_parser("history", help="list the migrations this version knows")
    return p


def run(args: argparse.Namespace) -> int:
    action: str = args.db_action
    if action == "history":
        for rev in migrate.history():
            head = " (head)" if rev.is_head else ""
            print(f"{rev.down_revision or '<base>'} -> {rev.revision}{head}: {rev.message.splitlines()[0]}")
        return 0
    url = load_settings().database_url
    where = describe(url)
    if action == "upgrade":
        result = asyncio.run(migrate.upgrade(url, args.revision))
        if result.changed:
            print(f"{where}: upgraded from {result.before or '<empty>'} to {result.after}")
        else:
            print(f"{where}: already at {result.after}, nothing to do")
        return 0
    if action == "current":
        current = asyncio.run(migrate.current_revision(url))
        head = migrate.head_revision()
        if current is None:
            print(f"{where}: empty (no schema); run `ges-bot db upgrade`")
            return 1
        if current != head:
            print(f"{where}: at {current}; this ges-bot needs {head}, run `ges-bot db upgrade`")
            return 1
        print(f"{where}: at {current} (head)")
        return 0
    raise GesBotError(f"unknown db action {action!r}; use upgrade, current or history")
