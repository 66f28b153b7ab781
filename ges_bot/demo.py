"""``ges-bot demo``: the bot doing its real job on embedded defaults, with nothing to configure.

This module owns the demo's wiring: the GES emulator running the ``nightly-imports`` scenario at
an accelerated clock, the Slack stand-in, the real bot runtime (SQLite in a temporary folder, HTTP
mode with a demo signing secret) and a demo subscription; it shows each alert in the terminal as
the channel would see it and offers a ``/gesjobs`` prompt whose commands travel as signed HTTP
requests into the bot, exactly as Slack would send them. Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from ges_bot.config import Config, load_config
from ges_bot.emulator import EmulatorSettings, create_app
from ges_bot.loopback import serve
from ges_bot.runtime import Runtime, RuntimeOptions
from ges_bot.standin.slack import SlackStandIn, signed_command_request
from ges_bot.terminal import message_panel

log = logging.getLogger(__name__)

DEMO_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEMO_CHANNEL = "C0DEMOALERTS"
DEMO_CHANNEL_NAME = "ges-alerts"
DEMO_USER = "U0DEMOUSER"
DEMO_TEAM = "T0DEMOTEAM"
DEMO_BOT_TOKEN = "xoxb-demo-token"  # noqa: S105 - a stand-in's token, not a secret
SAMPLE_COMMANDS = ("failed today", "running", "subscriptions", "status", "stats today", "stats today by graph")
#: Where the demo keeps the charts the bot uploads (the stand-in writes each upload there).
DEFAULT_CHARTS_DIR = Path(tempfile.gettempdir()) / "ges-bot-demo-charts"


@dataclass
class DemoWorld:
    """Everything the demo started, for the prompt and for tests."""

    emulator_url: str
    slack: SlackStandIn
    slack_url: str
    runtime: Runtime
    signing_secret: str
    console: Console


def demo_env(workdir: Path, emulator_url: str, slack_url: str, signing_secret: str, ak: str, sk: str) -> dict[str, str]:
    config_file = workdir / "ges-bot.toml"
    config_file.write_text(
        "# The demo's subscription: every graph's failures, partial failures, recoveries and stuck jobs.\n"
        "[[subscriptions]]\n"
        f'channel = "{DEMO_CHANNEL}"\n'
        'graph = "*"\n'
        'statuses = ["failed", "partial", "recovered", "stuck"]\n',
        encoding="utf-8",
    )
    return {
        "GES_ENDPOINT": emulator_url,
        "GES_PROJECT_ID": DEMO_PROJECT_ID,
        "GES_PROJECT_ALIAS": "demo",
        "HUAWEICLOUD_SDK_AK": ak,
        "HUAWEICLOUD_SDK_SK": sk,
        "GES_BOT_DATABASE_URL": f"sqlite:///{workdir / 'ges-bot.db'}",
        "GES_BOT_CONFIG": str(config_file),
        "GES_BOT_POLL_INTERVAL": "2",
        "GES_BOT_STUCK_AFTER": "2h",
        "GES_BOT_HTTP_HOST": "127.0.0.1",
        "GES_BOT_HTTP_PORT": "0",
        "SLACK_BOT_TOKEN": DEMO_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_API_URL": f"{slack_url}/api/",
        "GES_BOT_TIMEZONE": "UTC",
    }


@contextlib.asynccontextmanager
async def start_world(
    *, speed: float, seed: int, console: Console, charts_dir: Path = DEFAULT_CHARTS_DIR
) -> AsyncIterator[DemoWorld]:
    with tempfile.TemporaryDirectory(prefix="ges-bot-demo-") as tmp:
        workdir = Path(tmp)
        ak, sk = "DEMOAKEXAMPLE0000000", secrets.token_hex(20)
        emu_settings = EmulatorSettings(
            project_id=DEMO_PROJECT_ID, ak=ak, sk=sk, scenario="nightly-imports", seed=seed, speed=speed
        )
        slack = SlackStandIn(
            bot_tokens={DEMO_BOT_TOKEN},
            channels={DEMO_CHANNEL: DEMO_CHANNEL_NAME},
            users={DEMO_USER: "UTC"},
            team_id=DEMO_TEAM,
            files_dir=str(charts_dir),
        )
        signing_secret = secrets.token_hex(16)
        async with serve(create_app(emu_settings)) as emulator_url, serve(slack.app) as slack_url:
            slack.base_url = slack_url  # response URLs are handed out before Slack's first request
            env = demo_env(workdir, emulator_url, slack_url, signing_secret, ak, sk)
            config: Config = load_config(env)
            runtime = Runtime(config, options=RuntimeOptions(poll_jitter_s=0))
            await runtime.start()
            try:
                yield DemoWorld(emulator_url, slack, slack_url, runtime, signing_secret, console)
            finally:
                await runtime.stop()


async def send_command(world: DemoWorld, text: str) -> list[dict[str, Any]]:
    """Send ``/gesjobs <text>`` as Slack would (signed HTTP) and return the answers posted to its response URL."""
    response_id = secrets.token_hex(6)
    response_url = world.slack.response_url(response_id)
    body, headers = signed_command_request(
        world.signing_secret,
        command="/gesjobs",
        text=text,
        user_id=DEMO_USER,
        user_name="demo",
        channel_id=DEMO_CHANNEL,
        channel_name=DEMO_CHANNEL_NAME,
        team_id=DEMO_TEAM,
        response_url=response_url,
        trigger_id=f"demo.{response_id}",
    )
    url = f"http://127.0.0.1:{world.runtime.http_port}/slack/events"
    async with httpx.AsyncClient(timeout=10) as http:
        ack = await http.post(url, content=body, headers=headers)
    if ack.status_code != 200:
        return [{"text": f"the bot answered HTTP {ack.status_code}"}]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        answers = world.slack.responses(response_id)
        if answers:
            return list(answers)
        await asyncio.sleep(0.05)
    return [{"text": "no answer within 15 s"}]


def print_answers(world: DemoWorld, text: str, answers: list[dict[str, Any]], charts_before: int) -> None:
    """Show a command's answers, then where the charts it uploaded were written."""
    for answer in answers:
        world.console.print(message_panel(answer, title=f"/gesjobs {text}", border_style="green"))
    for path in world.slack.written_files[charts_before:]:
        # One unwrapped line: a path broken over two lines cannot be copied.
        world.console.print(f"📊 chart: {path}", soft_wrap=True, markup=False, highlight=False)


async def show_alerts(world: DemoWorld, stop: asyncio.Event) -> int:
    """Print every message the bot posts to Slack as it arrives; returns how many were shown."""
    shown = 0
    while not stop.is_set():
        messages = world.slack.messages()
        for message in messages[shown:]:
            channel = message.get("channel", "?")
            where = f"#{DEMO_CHANNEL_NAME}" if channel == DEMO_CHANNEL else channel
            thread = " (thread reply)" if message.get("thread_ts") else ""
            world.console.print(message_panel(message, title=f"{where}{thread}", border_style="red"))
        shown = len(messages)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    return shown


async def prompt_loop(world: DemoWorld, stop: asyncio.Event) -> None:
    console = world.console
    console.print(
        "[bold]Type a /gesjobs command[/bold] (e.g. [cyan]failed today[/cyan], [cyan]running[/cyan], "
        "[cyan]job <id>[/cyan], [cyan]help[/cyan]); [cyan]quit[/cyan] to stop."
    )
    while not stop.is_set():
        try:
            line = await asyncio.to_thread(input, "/gesjobs ")
        except (EOFError, KeyboardInterrupt):
            break
        line = line.strip().removeprefix("/gesjobs").strip()
        if line in ("quit", "exit", "q"):
            break
        before = len(world.slack.written_files)
        try:
            answers = await send_command(world, line)
        except Exception as exc:  # the prompt must outlive any one command
            log.exception("demo: /gesjobs %s failed", line)
            answers = [{"text": f"could not send the command: {type(exc).__name__}: {exc}"}]
        print_answers(world, line, answers, before)
    stop.set()


async def run_demo(
    *,
    no_input: bool,
    duration: float | None,
    speed: float,
    seed: int,
    console: Console,
    charts_dir: Path = DEFAULT_CHARTS_DIR,
) -> int:
    console.print(
        "[bold]ges-bot demo[/bold]: GES emulator (nightly-imports scenario, "
        f"{speed:g}× time) → ges-bot → Slack stand-in. Nothing leaves this machine."
    )
    async with start_world(speed=speed, seed=seed, console=console, charts_dir=charts_dir) as world:
        stop = asyncio.Event()
        watcher = asyncio.create_task(show_alerts(world, stop))
        started = time.monotonic()
        if no_input:
            wait = duration if duration is not None else 30.0
            await asyncio.sleep(max(0.0, wait - 5))
            for text in SAMPLE_COMMANDS:
                console.print(f"[bold]/gesjobs {text}[/bold]")
                before = len(world.slack.written_files)
                print_answers(world, text, await send_command(world, text), before)
            remaining = wait - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            stop.set()
        else:
            prompt = asyncio.create_task(prompt_loop(world, stop))
            if duration is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), duration)
                stop.set()
            await stop.wait()
            prompt.cancel()
        shown = await watcher
        charts_written = len(world.slack.written_files)
    console.print(f"[bold]demo finished[/bold]: {shown} message(s) posted to the Slack stand-in.")
    if charts_written:
        console.print(f"{charts_written} chart(s) the bot uploaded are in {charts_dir}", soft_wrap=True, markup=False)
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="watch ges-bot alert on an emulated GES and answer /gesjobs — no Slack or Huawei account needed",
        description="Start the GES emulator (nightly-imports, accelerated), a Slack stand-in and the bot on SQLite in a "
        "temporary folder; show alerts as the channel sees them and answer /gesjobs typed at the prompt.",
    )
    p.add_argument("--no-input", action="store_true", help="no prompt: run sample commands, then exit 0")
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default 30 with --no-input)"
    )
    p.add_argument("--speed", type=float, default=600.0, help="emulated seconds per real second (default 600)")
    p.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    p.add_argument(
        "--charts-dir",
        type=Path,
        default=DEFAULT_CHARTS_DIR,
        help=f"where to write the charts the bot uploads (default {DEFAULT_CHARTS_DIR})",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from ges_bot.cli import setup_logging

    setup_logging("WARNING")
    console = Console(highlight=False, force_terminal=None if sys.stdout.isatty() else False, width=110)
    return asyncio.run(
        run_demo(
            no_input=args.no_input,
            duration=args.duration,
            speed=args.speed,
            seed=args.seed,
            console=console,
            charts_dir=args.charts_dir,
        )
    )
