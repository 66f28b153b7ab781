"""``ges-bot check``: validate the configuration, then prove each connection works.

This module owns the pre-flight checks a person runs after installing: settings, GES (auth, then
what the poller runs: the calibration of the job list's reading and each listing of a steady tick
with its status, date bound and page size), the database, Slack (``auth.test``) and every
subscribed channel (``conversations.info``: exists, not archived, and the bot may post there).
For each problem it prints what is wrong and how to fix it; it exits non-zero when anything
failed. It prints the reading of the job list GES follows, one line per point, and a warning for
each fallback with its cost in requests per tick. It never posts a message and never prints a
secret.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from ges_bot.config import Config, ProjectSettings, load_config
from ges_bot.domain import ACTIVE_STATUSES, QueryStatus, Subscription
from ges_bot.errors import ApiError, AuthError, ConfigError, JobCenterError, StoreError, TransportError
from ges_bot.jobcenter.client import JobCenterClient, ListQuery
from ges_bot.jobcenter.reading import describe, naive_offset_hint, trusts_count
from ges_bot.watch.poller import plan_queries


@dataclass
class Finding:
    """One check's outcome: ``ok`` or a problem with the fix."""

    area: str
    ok: bool
    summary: str
    fix: str | None = None
    #: Works, but not as cheaply or as well as it could: printed with a warning mark.
    warning: bool = False


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, area: str, ok: bool, summary: str, fix: str | None = None, *, warning: bool = False) -> None:
        self.findings.append(Finding(area, ok, summary, fix, warning))

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
            continue
        else:
            report.add(
                "GES",
                True,
                f"project {project.alias!r}: authenticated ({project.auth}) and listed jobs "
                f"({page.job_count if page.job_count is not None else '?'} in the job center)",
            )
        finally:
            await client.aclose()
        await check_poller_queries(config, project, report)


#: The status listings a steady tick makes under the reading the reference page describes.
_STATUS_WORDS: tuple[str, ...] = tuple(s.value for s in QueryStatus)


async def check_poller_queries(config: Config, project: ProjectSettings, report: Report) -> None:
    """Calibrate as the poller does, print the reading, then run each listing of a steady tick
    (whole) and say what a steady tick costs — with a warning for each fallback."""
    s = config.settings
    client = JobCenterClient(
        project, page_size=s.ges_page_size, concurrency=s.ges_page_concurrency, timeout=s.ges_timeout, max_retries=1
    )
    where = f"project {project.alias!r}"
    try:
        try:
            reading = await client.calibrate()
        except JobCenterError as exc:
            summary, fix = explain_ges_error(project, exc)
            report.add("GES", False, f"calibrating the job list: {summary}", fix)
            return
        if reading.times == "naive":
            # GES's clock (its Date header, else ours) against the times it wrote: none is in the future.
            now = client.server_date or datetime.now(UTC)
            recent = await client.list_jobs(ListQuery(start_date=now.date() - timedelta(days=1)))
            times = [t for j in recent.jobs for t in (j.begin_time, j.end_time) if t is not None]
            client.learn_naive_offset(reading.naive_offset_min + naive_offset_hint(times, now))
            reading = client.reading
        for point, text, fallback in describe(reading):
            report.add("GES reading", True, f"{where}: {point}: {text}", warning=fallback)
        start = datetime.now(UTC).date() - timedelta(days=1)
        steady = 0
        full_reads: list[str] = []
        active_graphs: set[str | None] = set()
        plan = plan_queries(reading, start)
        for planned in plan:
            before = client.requests_sent
            try:
                listed = await client.list_jobs(planned.query)
            except JobCenterError as exc:
                summary, fix = explain_ges_error(project, exc)
                report.add("GES", False, f"the poller's listing {planned.name}: {summary}", fix)
                return
            cost = client.requests_sent - before
            active_graphs |= {j.graph for j in listed.jobs if j.status in ACTIVE_STATUSES}
            filtered = planned.query.status is not None or planned.query.start_date is not None
            counted = trusts_count(client.reading, filtered=filtered, local_filter=False) and not (
                planned.status != "*" and planned.status in client.reading.refused
            )
            if planned.kind == "active":
                steady += cost
            elif not counted:
                # Probed past what is known and read to an empty page: 2 when it grew, 1 if not.
                steady += 2
                full_reads.append(planned.name)
            else:
                steady += 1
            report.add(
                "GES",
                True,
                f"{where}: the poller's listing {planned.name} (pages of {s.ges_page_size}): "
                f"{len(listed.jobs)} job(s), {cost} request(s)",
            )
        lookups = 0
        if sum(1 for p in plan if p.kind == "active") < 2:
            # Active jobs are then followed by a lookup per graph each tick.
            lookups = len(active_graphs)
            steady += lookups
            report.add(
                "GES",
                True,
                f"{where}: active jobs cannot be listed by status — each tick looks them up by graph: "
                f"about {lookups} request(s) per tick now ({len(active_graphs)} graph(s) with active jobs)",
                warning=True,
            )
        if full_reads:
            report.add(
                "GES",
                True,
                f"{where}: job_count cannot be trusted for {', '.join(full_reads)} — each tick reads past what is "
                f"known to an empty page: up to 2 requests per listing instead of 1 (+{len(full_reads)} per tick), "
                "and the first tick after a restart or a new day reads each whole",
                warning=True,
            )
        unlisted = sorted({*_STATUS_WORDS} - {p.status for p in plan})
        if unlisted:
            report.add(
                "GES",
                True,
                f"{where}: {', '.join(unlisted)} cannot be listed by its filter — the jobs new since "
                f"{start.isoformat()} (listed each tick anyway) are filtered here instead",
                warning=True,
            )
        documented = len(_STATUS_WORDS) + 1
        report.add(
            "GES",
            True,
            f"{where}: a steady poll tick costs about {steady} request(s) now"
            + ("" if steady <= documented else f" ({documented} under the reading the reference page describes)"),
            warning=steady > documented,
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
        channels = sorted({sub.channel for sub in [*config.subscriptions, *subscriptions]})
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


async def run_checks(config: Config) -> Report:
    report = Report()
    report.add(
        "config",
        True,
        f"settings valid; {len(config.projects)} GES project(s), {len(config.subscriptions)} config-file subscription(s)",
    )
    await check_ges(config, report)
    subs = await check_database(config, report)
    await check_slack(config, report, subs)
    return report


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=False, highlight=False)
    for f in report.findings:
        mark = "[red]✗[/red]" if not f.ok else "[yellow]![/yellow]" if f.warning else "[green]✓[/green]"
        console.print(f"{mark} [bold]{f.area}[/bold]: {escape(f.summary)}", markup=True, soft_wrap=True)
        if f.fix:
            console.print(f"    [yellow]how to fix:[/yellow] {escape(f.fix)}", soft_wrap=True)
    console.print("[green]all checks passed[/green]" if report.ok else "[red]some checks failed[/red]")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="validate the configuration and test GES, the database and Slack",
        description="Validate the configuration, then reach GES (auth, the calibration of the job list's reading and "
        "each listing a steady poll tick makes, per project), the database and Slack (auth.test and every subscribed "
        "channel). Prints the reading GES follows, a warning for each fallback with its cost in requests per tick, "
        "and how to fix each problem; exits 1 if any check fails.",
    )
    return p


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"✗ config: {exc}")
        return 2
    report = asyncio.run(run_checks(config))
    print_report(report)
    return 0 if report.ok else 1
