"""``ges-bot check`` for group-bot sinks: each sink's URL shape, its secret, what routes to it,
and — only with ``--send-test`` — one test message to each, with the platform's answer explained.

Names every sink by its name only: its URL and secret are never printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import httpx

from ges_bot.config import Config, SinkSettings
from ges_bot.errors import ConfigError, StoreError
from ges_bot.sinks.render import render_notice
from ges_bot.sinks.sender import Answer, Outcome, SinkSender
from ges_bot.sinks.targets import SIGNING_PLATFORMS, secret_problem, url_problem
from ges_bot.words import words_for

__all__ = ["check_sinks", "read_backlog"]

Backlog = Mapping[str, tuple[int, str | None]]


class _Report(Protocol):
    def add(self, area: str, ok: bool, summary: str, fix: str | None = None) -> None: ...


_FIXES: dict[Outcome, str] = {
    Outcome.BROKEN: "fix the bot's security settings or copy its URL (and secret) again; see the README's section for this platform",
    Outcome.RATE: "the bot is rate limited right now; try again in a minute (alerts wait, nothing is lost)",
    Outcome.RETRY: "the webhook could not be reached; check proxies and firewalls from this machine",
    Outcome.OVERSIZED: "unexpected for a test message; report it",
    Outcome.REFUSED: "the platform refused the message; check the sink's type matches its URL",
}


async def read_backlog(config: Config) -> Backlog:
    """The outbox's pending rows per sink, as the workers left them (empty when unreadable:
    the database check reports why)."""
    if not config.sinks:
        return {}
    from ges_bot.store import open_store

    try:
        store = await open_store(config.settings.database_url, migrate=False)
    except (StoreError, ConfigError):
        return {}
    try:
        return await store.sink_backlog()
    except StoreError:
        return {}
    finally:
        await store.close()


def _backlog(sink: SinkSettings, backlog: Backlog, report: _Report) -> None:
    waiting, error = backlog.get(sink.target, (0, None))
    if not waiting:
        return
    if error is not None and error.startswith(Outcome.BROKEN):
        report.add(
            "sinks",
            False,
            f"sink {sink.name!r}: {waiting} alert(s) waiting; last answer: {error}",
            _FIXES[Outcome.BROKEN],
        )
    else:
        report.add("sinks", True, f"sink {sink.name!r}: {waiting} alert(s) waiting ({error or 'not tried yet'})")


def _static(sink: SinkSettings, config: Config, report: _Report) -> None:
    where = f"sink {sink.name!r} ({sink.type}, {sink.locale})"
    problem = url_problem(sink.type, sink.url.get_secret_value()) or secret_problem(
        sink.type, sink.secret.get_secret_value() if sink.secret is not None else None
    )
    if problem:
        report.add("sinks", False, f"{where}: {problem}", "fix the [[sinks]] table in GES_BOT_CONFIG")
        return
    routed = sum(1 for s in config.subscriptions if s.channel == sink.target)
    signing = (
        "signed"
        if sink.secret is not None
        else "unsigned"
        if sink.type in SIGNING_PLATFORMS
        else "the URL is its secret"
    )
    fix = None
    if sink.type in SIGNING_PLATFORMS and sink.secret is None:
        fix = "turn on the bot's signature verification (Lark) / 加签 (DingTalk) and set secret_env, so a leaked URL alone cannot post"
    digests = sum(1 for d in config.digests if d.channel == sink.target)
    ops = sink.name in config.ops_sinks
    uses = (
        f"{routed} subscription(s)" + (f", {digests} digest(s)" if digests else "") + (", ops notices" if ops else "")
    )
    if routed == 0 and not digests and not ops:
        fix = (
            "no [[subscriptions]] names this sink: add one with sink = "
            + repr(sink.name)
            + " (or a [[digests]] table with it, or list it in [ops] sinks)"
        )
    report.add("sinks", True, f"{where}: URL has the right shape, {signing}, {uses}", fix)


async def check_sinks(
    config: Config,
    report: _Report,
    *,
    send_test: bool = False,
    backlog: Backlog | None = None,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] | None = None,
) -> None:
    for sink in config.sinks:
        _static(sink, config, report)
        _backlog(sink, backlog or {}, report)
    if not send_test or not config.sinks:
        return
    own = client is None
    http = client or httpx.AsyncClient(timeout=config.settings.sink_timeout)
    try:
        sender = SinkSender(http) if clock is None else SinkSender(http, clock=clock)
        for sink in config.sinks:
            w = words_for(sink.locale)
            body = render_notice(
                sink.type,
                "GES · " + w("ges-bot test message"),
                w("Sink {name} is set up: GES alerts routed to it will appear here.", name=sink.name),
            )
            answer: Answer = await sender.send(sink, body)
            if answer.outcome is Outcome.SENT:
                report.add("sinks", True, f"sink {sink.name!r}: test message accepted")
            else:
                report.add(
                    "sinks",
                    False,
                    f"sink {sink.name!r}: test message {answer.outcome}: {answer.detail}",
                    _FIXES[answer.outcome],
                )
    finally:
        if own:
            await http.aclose()
