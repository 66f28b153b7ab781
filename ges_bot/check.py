"""``ges-bot check``: validate the configuration, then prove each connection works.

This module owns the pre-flight checks a person runs after installing: settings, GES (auth and one
list call per project), the database, Slack (``auth.test``) and every subscribed channel
(``conversations.info``: exists, not archived, and the bot may post there), and each group-bot
sink (``sinks.preflight``). For each problem it prints what is wrong and how to fix it; it exits
non-zero when anything failed. It never posts a message (but a sink's test message with
``--send-test``) and never prints a secret.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from ges_bot.config import Config, ProjectSettings, load_config
from ges_bot.domain import Subscription
from ges_bot.errors import ApiError, AuthError, ConfigError, JobCenterError, StoreError, TransportError
from ges_bot.jobcenter.client import JobCenterClient, ListQuery
from ges_bot.sinks.preflight import check_sinks, read_backlog
from ges_bot.sinks.targets import is_sink_target


@dataclass
class Finding:
    """One check's outcome: ``ok`` or a problem with the fix."""

    area: str
    ok: bool
    summary: str
    fix: str | None = None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, area: str, ok: bool, summary: str, fix: str | None = None) -> None:
        self.findings.append(Finding(area, ok, summary, fix))

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)


def explain_ges_error(project: ProjectSettings, exc: JobCenterError) -> tuple[str, str]:
    """What went wrong reaching a GES project, and how to fix it."""
    where = f"project {project.alias!r} at {project.endpoint}"
    if isinstance(exc, AuthError):
        how = {
            "token": "GES_TOKEN is expired or wrong; tokens last 24 h — prefer AK/SK (HUAWEICLOUD_SDK_AK/SK)",
            "aksk": "check HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (an access key of a user with GES permissions) "
            "and that this machine's clock is right (signatures older than 15 min are refused)",
            "password": "check GES_IAM_DOMAIN (the account name), GES_IAM_USER and GES_IAM_PASSWORD, and the IAM endpoint",
        }[project.auth]
        return f"{where}: credentials refused ({exc})", how
    if isinstance(exc, ApiError) and (exc.error_code in ("GES.0016", "APIG.0101") or exc.http_status in (403, 404)):
        return (
            f"{where}: the project id is not accepted ({exc})",
            "check GES_PROJECT_ID: it must be the project of the region the endpoint serves (console → My Credentials → Projects)",
        )
    if isinstance(exc, TransportError):
        return (
            f"{where}: unreachable ({exc})",
            "check GES_ENDPOINT / GES_REGION, DNS, proxies and firewalls from this machine",
        )
    return f"{where}: {exc}", "see the error above; GES may be having trouble — try again later"


async def check_ges(config: Config, report: Report) -> None:
    for project in config.projects:
        client = JobCenterClient(
            project,
            page_size=1,
            concurrency=1,
            timeout=config.settings.ges_timeout,
            max_retries=0,
            max_answer_bytes=config.settings.ges_max_answer_bytes,
        )
        try:
            page = await client.list_page(ListQuery(), 0, 1)
        except JobCenterError as exc:
            summary, fix = explain_ges_error(project, exc)
            report.add("GES", False, summary, fix)
        else:
            report.add(
                "GES",
                True,
                f"project {project.alias!r}: authenticated ({project.auth}) and listed jobs "
                f"({page.job_count if page.job_count is not None else '?'} in the job center)",
            )
        finally:
            await client.aclose()


async def check_database(config: Config, report: Report) -> list[Subscription]:
    from ges_bot.store import open_store
    from ges_bot.store.engine import describe

    url = config.settings.database_url
    try:
        store = await open_store(url, migrate=False)
    except (StoreError, ConfigError) as exc:
        fix = (
            "run `ges-bot db upgrade` (or start `ges-bot run`, which upgrades on start)"
            if "db upgrade" in str(exc)
            else "check GES_BOT_DATABASE_URL and that the database is running"
        )
        report.add("database", False, str(exc), fix)
        return []
    try:
        subs = await store.subscriptions()
    except StoreError as exc:
        report.add(
            "database",
            False,
            str(exc),
            "run `ges-bot db upgrade` (or start `ges-bot run`, which upgrades on start)",
        )
        return []
    finally:
        await store.close()
    report.add("database", True, f"{describe(url)}: reachable, {len(subs)} subscription(s) stored")
    return subs


_CHANNEL_FIXES: dict[str, str] = {
    "channel_not_found": "the channel does not exist or is private without the bot: invite the bot (`/invite @ges-bot`) "
    "or fix the channel id",
    "is_archived": "the channel is archived: unarchive it or move the subscription elsewhere",
    "not_in_channel": "invite the bot to the channel (`/invite @ges-bot`)",
    "missing_scope": "reinstall the app from manifest.yml so it has the channels:read/groups:read scope it needs for this check",
}


async def check_slack(config: Config, report: Report, subscriptions: list[Subscription]) -> None:
    s = config.settings
    if s.slack_bot_token is None and config.sinks:
        report.add("Slack", True, "SLACK_BOT_TOKEN is not set: alerts go to the [[sinks]] only, and /gesjobs is off")
        return
    if s.slack_bot_token is None:
        report.add(
            "Slack",
            False,
            "SLACK_BOT_TOKEN is not set",
            "create the app from manifest.yml, install it, and copy its Bot User OAuth Token (xoxb-…)",
        )
        return
    if s.slack_app_token is None and s.slack_signing_secret is None:
        report.add(
            "Slack",
            False,
            "neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET is set",
            "Socket Mode (recommended): create an app-level token with connections:write and set SLACK_APP_TOKEN; "
            "HTTP mode: set SLACK_SIGNING_SECRET from Basic Information",
        )
    client = AsyncWebClient(
        token=s.slack_bot_token.get_secret_value(), base_url=s.slack_api_url, timeout=int(s.slack_timeout)
    )
    try:
        try:
            auth: Any = await client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown_error") if exc.response is not None else "unknown_error"
            report.add(
                "Slack",
                False,
                f"auth.test failed: {error}",
                "SLACK_BOT_TOKEN is wrong or revoked: reinstall the app and copy the new token",
            )
            return
        except Exception as exc:
            report.add(
                "Slack",
                False,
                f"Slack API at {s.slack_api_url} unreachable: {type(exc).__name__}",
                "check SLACK_API_URL, proxies and firewalls",
            )
            return
        report.add(
            "Slack",
            True,
            f"authenticated as {auth.get('user', '?')} in team {auth.get('team', auth.get('team_id', '?'))}",
        )
        # Group-bot sinks ("sink:<name>") are checked by check_sinks, not as Slack channels.
        channels = sorted(
            {sub.channel for sub in [*config.subscriptions, *subscriptions] if not is_sink_target(sub.channel)}
        )
        for channel in channels:
            await _check_channel(client, channel, report)
    finally:
        session = getattr(client, "session", None)
        if session is not None and not session.closed:
            await session.close()


async def _check_channel(client: AsyncWebClient, channel: str, report: Report) -> None:
    try:
        resp: Any = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown_error") if exc.response is not None else "unknown_error"
        report.add("Slack", False, f"channel {channel}: {error}", _CHANNEL_FIXES.get(error, "check the channel id"))
        return
    info = resp.get("channel") or {}
    if info.get("is_archived"):
        report.add("Slack", False, f"channel {channel}: archived", _CHANNEL_FIXES["is_archived"])
    else:
        report.add("Slack", True, f"channel {channel}: the bot can post here")


async def run_checks(config: Config, *, send_test: bool = False) -> Report:
    report = Report()
    report.add(
        "config",
        True,
        f"settings valid; {len(config.projects)} GES project(s), {len(config.subscriptions)} config-file subscription(s)",
    )
    await check_ges(config, report)
    subs = await check_database(config, report)
    await check_slack(config, report, subs)
    await check_sinks(config, report, send_test=send_test, backlog=await read_backlog(config))
    return report


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=False, highlight=False)
    for f in report.findings:
        mark = "[green]✓[/green]" if f.ok else "[red]✗[/red]"
        console.print(f"{mark} [bold]{f.area}[/bold]: {escape(f.summary)}", markup=True, soft_wrap=True)
        if f.fix:
            console.print(f"    [yellow]how to fix:[/yellow] {escape(f.fix)}", soft_wrap=True)
    console.print("[green]all checks passed[/green]" if report.ok else "[red]some checks failed[/red]")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="validate the configuration and test GES, the database and Slack",
        description="Validate the configuration, then reach GES (auth and one list call per project), the database and "
        "Slack (auth.test and every subscribed channel), and each group-bot sink (URL shape, secret). Prints how to fix "
        "each problem; exits 1 if any check fails.",
    )
    p.add_argument("--send-test", action="store_true", help="also send one test message to each [[sinks]] group bot")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"✗ config: {exc}")
        return 2
    report = asyncio.run(run_checks(config, send_test=getattr(args, "send_test", False)))
    print_report(report)
    return 0 if report.ok else 1
