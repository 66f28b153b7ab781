"""The ``ges-bot`` command line: run, poll, demo, emulator, db, check, digest.

Each subcommand's parser and body live with the part they drive (``watch.cli``, ``store.cli``,
``emulator.cli``, ``check``, ``demo``, ``digest_cli``); this module only assembles them, sets up logging and turns
configuration errors into one clear line and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ges_bot import __version__
from ges_bot.errors import ConfigError, GesBotError
from ges_bot.lean import absent


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (GES_BOT_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One line per record (tracebacks aside): line breaks and control characters in the message
    are escaped, so no text from outside (a GES error, a Slack answer) can forge a log line or
    drive the terminal that shows the log. JSON lines get the same from ``json.dumps``."""

    _UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        if text.isprintable():
            return text
        return self._UNSAFE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that would otherwise log request URLs at INFO.
    for noisy in ("httpx", "httpcore", "apscheduler", "slack_bolt", "slack_sdk", "aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


# --- `ges-bot run` lives here: it is the runtime's only entry point -----------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the bot: poller, delivery and the Slack app (Socket Mode or HTTP)",
        description="Run ges-bot: poll the GES job center, post alerts to Slack and answer /gesjobs. "
        "Upgrades the database schema on start.",
    )
    return p


def run(args: argparse.Namespace) -> int:
    # httpx's command-line client (click, rich, pygments: ~3 MiB resident) is never used here.
    with absent("httpx._main"):
        from ges_bot.config import load_config
        from ges_bot.runtime import Runtime

    config = load_config()
    setup_logging(config.settings.log_level, config.settings.log_format)
    asyncio.run(Runtime(config).serve_forever())
    return 0


_Runner = Callable[[argparse.Namespace], int]

#: Subcommand name → the module with its ``add_parser(subparsers)`` and ``run(args) -> int``.
#: Imported only when that subcommand is named (all of them for ``ges-bot --help``): the demo,
#: the emulator, ``check`` and ``poll`` bring rich, markdown-it, pygments, the emulator's app and
#: the Slack stand-in (~9 MiB resident) that ``ges-bot run`` never uses.
SUBCOMMANDS: dict[str, str] = {
    "run": __name__,
    "poll": "ges_bot.watch.cli",
    "demo": "ges_bot.demo",
    "emulator": "ges_bot.emulator.cli",
    "db": "ges_bot.store.cli",
    "check": "ges_bot.check",
    "digest": "ges_bot.digest_cli",
}


def _subcommands(
    only: str | None = None,
) -> dict[str, tuple[Callable[[Any], argparse.ArgumentParser], _Runner]]:
    """Subcommand name → its ``add_parser(subparsers)`` and ``run(args) -> int``; just ``only``'s
    when given."""
    out: dict[str, tuple[Callable[[Any], argparse.ArgumentParser], _Runner]] = {}
    for name, module_name in SUBCOMMANDS.items():
        if only is None or name == only:
            module = importlib.import_module(module_name)
            out[name] = (module.add_parser, module.run)
    return out


def build_parser(
    only: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    """The ``ges-bot`` parser with every subcommand, or with ``only`` that one (the others' modules
    stay unimported)."""
    parser = argparse.ArgumentParser(
        prog="ges-bot",
        description="Huawei Cloud GES job center, in Slack: alerts on failed jobs and /gesjobs answers.",
    )
    parser.add_argument("--version", action="version", version=f"ges-bot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for name, (add, runner) in _subcommands(only).items():
        add(subparsers)
        runners[name] = runner
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # A named subcommand needs only its own parser; anything else (no command, --help,
    # --version, a typo) gets the whole one, so help and errors read as before.
    parser, runners = build_parser(words[0] if words and words[0] in SUBCOMMANDS else None)
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        setup_logging()
    try:
        return runners[args.command](args)
    except ConfigError as exc:
        print(f"ges-bot: configuration problem: {exc}", file=sys.stderr)
        return 2
    except GesBotError as exc:
        print(f"ges-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
