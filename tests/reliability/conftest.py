"""Fixtures of the reliability suite: a fresh PostgreSQL database, the GES emulator and the Slack
stand-in served in the test process, and a fleet of ``ges-bot run`` subprocesses that is always
reaped. Every test here is marked ``reliability`` (CI runs them; ``-m 'not reliability'`` skips them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ges_bot.standin.slack import SlackStandIn
from tests.reliability.world import bot_env, new_stand_in
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle, run_emulator
from tests.support.processes import BotFleet, BotProcess, bot_fleet


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@dataclass
class Stack:
    """One test's world: where everything is, and how to start a replica in it."""

    emu: EmulatorHandle
    slack: SlackStandIn
    database_url: str
    fleet: BotFleet
    directory: Path

    def env(self, **overrides: Any) -> dict[str, str]:
        return bot_env(self.emu, self.slack, self.database_url, **overrides)

    async def start(self, name: str, **overrides: Any) -> BotProcess:
        return await self.fleet.start(name, self.env(**overrides))


@pytest.fixture
async def stack(pg_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    slack = new_stand_in()
    async with run_emulator() as emu, serve(slack.app) as slack_url, bot_fleet(tmp_path) as fleet:
        slack.base_url = slack_url
        yield Stack(emu=emu, slack=slack, database_url=pg_url, fleet=fleet, directory=tmp_path)
