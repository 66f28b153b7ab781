"""A whole scenario with known secret values: none of them may appear anywhere a person or a log
shipper can read.

Three GES projects authenticate three ways (AK/SK, IAM password, static token), Slack runs in
Socket Mode (bot token, app token, and a signing secret set as well), and the database URL carries
a password. The bot logs at DEBUG; alerts are posted, commands answered, tokens expire, GES and
Slack refuse requests. Then every log line, ``/metrics``, ``/healthz``, every Slack call the
stand-in recorded (messages, command answers) and every error text is searched for each secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ges_bot.emulator.settings import IamUser, StaticToken
from ges_bot.standin.slack import Channel, SlackStandIn
from tests.reliability.world import db_rows
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle, run_emulator
from tests.support.processes import BotFleet, base_env, bot_fleet

pytestmark = pytest.mark.reliability

P_AKSK = "0123456789abcdef0123456789abcdef"
P_IAM = "11111111111111111111111111111111"
P_TOKEN = "22222222222222222222222222222222"

SECRETS = {
    "AK": "AKRELIABSECRET000042",
    "SK": "SkReliabilitySecret0123456789abcdefghijK",
    "IAM password": "IamPassw0rd-Reliability-Secret!",
    "GES token": "MIIReliabilityStaticSecretToken-0123456789abcdef",
    "Slack bot token": "xoxb-4242-reliability-secret-bot-token",
    "Slack signing secret": "reliability-signing-secret-4242abcd",
    "Slack app token": "xapp-1-A0GESBOT-4242-reliability-secret-app-token",
    "database password": "DbPassw0rdReliabilitySecret",
}


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(
        project_id=P_AKSK,
        ak=SECRETS["AK"],
        sk=SECRETS["SK"],
        users=(IamUser("rel-domain", "rel-user", SECRETS["IAM password"], project_ids=("*",)),),
        static_tokens=(StaticToken(SECRETS["GES token"], project_ids=("*",)),),
    ) as handle:
        yield handle


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(
        bot_tokens=[SECRETS["Slack bot token"]],
        app_tokens=[SECRETS["Slack app token"]],
        channels=[Channel("C0REL00", "alerts")],
    )
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        yield stand_in


def _config(path: Path, emu: EmulatorHandle) -> Path:
    path.write_text(
        f"""
[[projects]]
alias = "aksk"
project_id = "{P_AKSK}"
endpoint = "{emu.url}"
ak_env = "REL_AK"
sk_env = "REL_SK"

[[projects]]
alias = "iam"
project_id = "{P_IAM}"
endpoint = "{emu.url}"
iam_endpoint = "{emu.url}"
iam_domain = "rel-domain"
iam_user = "rel-user"
iam_password_env = "REL_IAM_PASSWORD"

[[projects]]
alias = "tok"
project_id = "{P_TOKEN}"
endpoint = "{emu.url}"
token_env = "REL_TOKEN"

[[subscriptions]]
channel = "C0REL00"
graph = "*"
statuses = ["all"]
""",
        encoding="utf-8",
    )
    return path


async def _wait(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(180)
async def test_no_secret_appears_in_logs_metrics_health_or_slack(
    emu: EmulatorHandle, slack: SlackStandIn, pg_url: str, tmp_path: Path
) -> None:
    database_url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRETS['database password']}@")
    env = base_env(
        GES_BOT_CONFIG=str(_config(tmp_path / "ges-bot.toml", emu)),
        REL_AK=SECRETS["AK"],
        REL_SK=SECRETS["SK"],
        REL_IAM_PASSWORD=SECRETS["IAM password"],
        REL_TOKEN=SECRETS["GES token"],
        GES_BOT_DATABASE_URL=database_url,
        GES_BOT_POLL_INTERVAL="0.5",
        GES_BOT_GES_TIMEOUT="2",
        GES_BOT_GES_RETRIES="1",
        GES_BOT_SLACK_TIMEOUT="2",
        SLACK_BOT_TOKEN=SECRETS["Slack bot token"],
        SLACK_SIGNING_SECRET=SECRETS["Slack signing secret"],
        SLACK_APP_TOKEN=SECRETS["Slack app token"],
        SLACK_API_URL=slack.api_url,
        GES_BOT_LOG_LEVEL="DEBUG",
    )
    seen: list[str] = []
    async with bot_fleet(tmp_path) as fleet:
        bot = await fleet.start("secret", env)
        await _scenario(fleet, emu, slack, bot.url, seen)
        assert await bot.stop() == 0
        seen.append(bot.logs())
    # A start that fails on a bad credential says so without the credential.
    async with bot_fleet(tmp_path) as fleet:
        broken = fleet.prepare("bad-config", {**env, "REL_AK": "", "GES_BOT_DATABASE_URL": database_url})
        broken.launch()
        assert await broken.wait(30) == 2
        seen.append(broken.logs())

    seen.extend(str(call.to_json()) for call in slack.calls)
    stored = await db_rows(pg_url, "SELECT last_error FROM poll_state")
    seen.extend(str(row["last_error"]) for row in stored)
    everything = "\n".join(seen)
    assert "DEBUG" in everything  # the logs really were at DEBUG level
    leaks = [name for name, value in SECRETS.items() if value in everything]
    assert not leaks, f"secrets found: {leaks}"


async def _scenario(fleet: BotFleet, emu: EmulatorHandle, slack: SlackStandIn, url: str, seen: list[str]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:

        async def all_polled() -> bool:
            body = (await client.get(f"{url}/healthz")).json()
            return len(body["projects"]) == 3 and all(p["last_success_at"] for p in body["projects"])

        await _wait(all_polled, "a first poll of every project")
        for project in (P_AKSK, P_IAM, P_TOKEN):
            emu.state.add_many(
                [{"status": "failed", "job_name": "ImportGraph", "related_graph": "movies"}], project_id=project
            )
        await slack.wait_for(lambda: len(slack.messages("C0REL00")) >= 3, timeout=30)

        # Commands over Socket Mode (app token), answered on the response URL.
        for text in ("status", "failed last 1h", "subscriptions", "help"):
            payload = slack.command_payload(text, channel_id="C0REL00")
            rid = payload["response_url"].rsplit("/", 1)[1]
            await slack.push_envelope("slash_commands", payload, timeout=15)
            await slack.wait_for(lambda rid=rid: slack.responses(rid), timeout=15)

        # Credentials go bad and services refuse: the errors are logged and shown, never the secrets.
        await emu.expire_tokens()  # IAM re-authenticates with the password; the static token is dead
        await emu.fault(status=401, count=3)
        await emu.fault(status=403, count=2, target="iam")
        slack.fail("chat.postMessage", error="invalid_auth", count=1)
        slack.fail("chat.postMessage", status=503, count=2)
        for project in (P_AKSK, P_IAM, P_TOKEN):
            emu.state.add_many(
                [{"status": "partiallyFailed", "job_name": "ExportGraph", "related_graph": "people"}],
                project_id=project,
            )

        async def token_project_failing() -> bool:
            body = (await client.get(f"{url}/healthz")).json()
            return any(p["project"] == "tok" and p["last_error"] for p in body["projects"])

        await _wait(token_project_failing, "the token project to report its error")
        await asyncio.sleep(2.0)
        seen.append((await client.get(f"{url}/metrics")).text)
        seen.append((await client.get(f"{url}/healthz")).text)
    seen.append(fleet.all_logs())
