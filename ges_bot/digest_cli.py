"""``ges-bot digest``: send the digests that are due, once, and exit (for cron and for testing).

Uses the bot's configuration (database, Slack token, ``[[sinks]]``); safe beside running replicas,
since a digest is one outbox row per channel (or sink) and period whoever sends it. ``--channel
sink:<name>`` selects a sink's digest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from typing import Any

import httpx

from ges_bot.errors import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "digest",
        help="send the channel digests that are due (once, even beside running replicas), then exit",
        description="Send due digests now. With --now every digest (or the one of --channel) is due this minute "
        "and covers the time since its last digest; --channel without a schedule sends one anyway.",
    )
    p.add_argument("--now", action="store_true", help="send now instead of waiting for each digest's time")
    p.add_argument(
        "--channel", default=None, help="only this channel (id, as in /gesjobs digest), or sink:<name> for a sink"
    )
    return p


async def _send(now_due: bool, channel: str | None) -> int:
    from ges_bot.clock import utc_now
    from ges_bot.config import load_config
    from ges_bot.digests import build_digest_runner
    from ges_bot.sinks.sender import SinkSender
    from ges_bot.sinks.worker import SinkWorker
    from ges_bot.store import open_store

    config = load_config(require_ges=False)
    settings = config.settings
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    if not token and not config.sinks:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set; digests are posted with the bot's token (or to [[sinks]] in GES_BOT_CONFIG)"
        )
    worker_id = f"cli-{socket.gethostname()}-{os.getpid()}"
    store = await open_store(settings.database_url, migrate=True)
    try:
        async with httpx.AsyncClient(timeout=settings.sink_timeout) as http:
            sinks = (
                SinkWorker(store, config.sinks, {}, SinkSender(http), worker_id=worker_id, zone=settings.timezone)
                if config.sinks
                else None
            )
            runner = build_digest_runner(config, store, token, worker=worker_id, clock=utc_now, sink_worker=sinks)
            report = await runner.run(channel=channel, now_due=now_due, zone=settings.timezone)
    finally:
        await store.close()
    print(f"digests: {report.sent} sent, {report.quiet} quiet (nothing ran), {report.failed} failed")
    return 1 if report.failed else 0


def run(args: argparse.Namespace) -> int:
    from ges_bot.cli import setup_logging

    setup_logging("WARNING")
    return asyncio.run(_send(args.now, args.channel))
