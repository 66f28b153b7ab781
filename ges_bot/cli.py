"""The ``ges-bot`` command line: run, poll, demo, emulator, db, check.

Each subcommand's parser and body live with the part they drive (``watch.cli``, ``store.cli``,
``emulator.cli``, ``check``, ``demo``); this module only assembles them, sets up logging and turns
configuration errors into one clear line and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ges_bot import __version__
from ges_bot.errors import ConfigError, GesBotError


class _Subcommand(Protocol):
    def add_parser(self, subparsers: Any) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: Subcommand name → module providing ``add_parser(subparsers)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, str] = {
    "run": "ges_bot.cli",
    "poll": "ges_bot.watch.cli",
    "demo": "ges_bot.demo",
    "emulator": "ges_bot.emulator.cli",
    "db": "ges_bot.store.cli",
    "check": "ges_bot.check",
    "digest": "ges_bot.digest_cli",
}


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


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
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
    from ges_bot.config import load_config
    from ges_bot.runtime import Runtime

    config = load_config()
    setup_logging(config.settings.log_level, config.settings.log_format)
    asyncio.run(Runtime(config).serve_forever())
    return 0


def _load(name: str) -> _Subcommand:
    module: Any = importlib.import_module(SUBCOMMANDS[name])
    return module  # type: ignore[no-any-return]


def _unavailable(name: str, exc: ImportError) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(
            f"ges-bot: the {name!r} command cannot load ({exc}); reinstall ges-bot (pip install -e .) and check its "
            "dependencies",
            file=sys.stderr,
        )
        return 1

    return run


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(
        prog="ges-bot",
        description="Huawei Cloud GES job center, in Slack: alerts on failed jobs and /gesjobs answers.",
    )
    parser.add_argument("--version", action="version", version=f"ges-bot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for name in SUBCOMMANDS:
        try:
            module = _load(name)
        except ImportError as exc:
            # One broken part must not take the other commands down, but choosing it must say why.
            subparsers.add_parser(name, help=f"(unavailable: {exc})")
            runners[name] = _unavailable(name, exc)
            continue
        module.add_parser(subparsers)
        runners[name] = module.run
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
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
