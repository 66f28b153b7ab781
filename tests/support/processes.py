"""Run real ``ges-bot run`` processes for tests: start, wait for ``/healthz``, stop, kill -9, read logs.

Owns the subprocess side of the multi-process tests (``tests/test_runtime.py`` and its kin,
``tests/reliability/``): a clean environment (nothing from the developer's own ``GES_*``, ``SLACK_*``
or ``HUAWEICLOUD_*`` variables leaks in), a free HTTP port per bot, stderr captured to a file, and
teardown that never leaves a process behind. It knows nothing of what a scenario checks.

Usage::

    async with BotFleet(tmp_path) as fleet:
        bot = await fleet.start("a", env)             # waits until /healthz answers
        ...
        bot.kill()                                    # SIGKILL: nothing runs after it
        await bot.stop()                              # SIGTERM, then wait (SIGKILL after a timeout)
        assert "stopped" in bot.logs()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, SlackStandIn
from tests.support.asgi import free_port
from tests.support.emulator import EmulatorHandle

__all__ = ["SIGNING_SECRET", "BotFleet", "BotProcess", "base_env", "bot_env", "bot_fleet", "wait_for_json"]

#: Variables a bot may inherit from the test process; everything else is set explicitly.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT", "TZ")
_REPO = Path(__file__).resolve().parents[2]


def base_env(**values: str) -> dict[str, str]:
    """A clean environment for a bot: the inherited basics, the repository on ``PYTHONPATH``
    (so ``python -m ges_bot`` runs this checkout), an HTTP server on loopback, and ``values``."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env["PYTHONPATH"] = str(_REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env["GES_BOT_HTTP_HOST"] = "127.0.0.1"
    env.update(values)
    return env


#: The Slack signing secret :func:`bot_env` gives a bot (tests sign their requests with it).
SIGNING_SECRET = "test-signing-secret"


def bot_env(emu: EmulatorHandle, slack: SlackStandIn, database: Path, **extra: str) -> dict[str, str]:
    """:func:`base_env` for a bot in HTTP mode that polls ``emu`` (AK/SK, no retries, 2 s per GES
    request) every 0.3 s, posts to ``slack`` and keeps its records in the SQLite file ``database``;
    ``extra`` adds or overrides variables."""
    return base_env(
        **{
            "GES_ENDPOINT": emu.url,
            "GES_PROJECT_ID": emu.project_id,
            "HUAWEICLOUD_SDK_AK": emu.ak,
            "HUAWEICLOUD_SDK_SK": emu.sk,
            "GES_BOT_DATABASE_URL": f"sqlite:///{database}",
            "GES_BOT_POLL_INTERVAL": "0.3",
            "GES_BOT_GES_TIMEOUT": "2",
            "GES_BOT_GES_RETRIES": "0",
            "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            **extra,
        }
    )


async def wait_for_json(url: str, check: Callable[[Any], Any], timeout: float = 15.0) -> dict[str, Any]:
    """GET ``url`` until its JSON satisfies ``check`` (another process's state has no signal to
    wait on but its answers); fails after ``timeout`` seconds naming the last answer."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            body = (await client.get(url)).json()
            if check(body):
                return dict(body)
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never satisfied the check: {body}")
            await asyncio.sleep(0.1)


@dataclass
class BotProcess:
    """One ``python -m ges_bot run`` subprocess."""

    name: str
    env: dict[str, str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> None:
        self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ges_bot", "run"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.log_path.parent,
        )

    async def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until ``/healthz`` answers (any status but a refused connection); return its body.
        Fails with the log's tail if the process exits or the time runs out."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if not self.alive:
                    raise AssertionError(f"bot {self.name} exited with {self.returncode}:\n{self.tail()}")
                try:
                    response = await client.get(f"{self.url}/healthz")
                except httpx.HTTPError:
                    response = None
                if response is not None:
                    body: dict[str, Any] = response.json()
                    return body
                if time.monotonic() > deadline:
                    raise AssertionError(f"bot {self.name} did not serve /healthz within {timeout}s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.url}/healthz")
        return response.status_code, response.json()

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.url}/metrics")
        response.raise_for_status()
        return response.text

    def kill(self) -> None:
        """``kill -9``: the process gets no chance to finish anything."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; returns its status (SIGKILL after ``timeout``)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait(5)
                break
            await asyncio.sleep(0.05)
        self._close_log()
        return int(self.proc.returncode)

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (the graceful path); SIGKILL if it does not exit within ``timeout``."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])


class BotFleet:
    """Every bot a test started; on exit each one still running is killed and reaped."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bots: list[BotProcess] = []
        self._serial = 0

    def prepare(self, name: str, env: Mapping[str, str], *, port: int | None = None) -> BotProcess:
        """A bot with its own port and log file, not started yet."""
        self._serial += 1
        port = port or free_port()
        full = dict(env)
        full["GES_BOT_HTTP_PORT"] = str(port)
        full.setdefault("GES_BOT_REPLICA_ID", f"{name}-{self._serial}")
        bot = BotProcess(name=name, env=full, log_path=self.directory / f"bot-{self._serial:02d}-{name}.log", port=port)
        self.bots.append(bot)
        return bot

    async def start(
        self, name: str, env: Mapping[str, str], *, port: int | None = None, timeout: float = 45.0
    ) -> BotProcess:
        """Start a bot and wait until it serves ``/healthz``."""
        bot = self.prepare(name, env, port=port)
        bot.launch()
        await bot.wait_healthy(timeout)
        return bot

    @property
    def running(self) -> list[BotProcess]:
        return [b for b in self.bots if b.alive]

    async def aclose(self) -> None:
        for bot in self.bots:
            if bot.proc is None:
                continue
            bot.kill()
            await bot.wait(10)

    async def __aenter__(self) -> BotFleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def all_logs(self) -> str:
        return "\n".join(f"===== {b.log_path.name} =====\n{b.logs()}" for b in self.bots)


@contextlib.asynccontextmanager
async def bot_fleet(directory: Path) -> AsyncIterator[BotFleet]:
    fleet = BotFleet(directory)
    try:
        yield fleet
    finally:
        await fleet.aclose()
