"""``ges-bot poll --once [--dry-run] [--json]``: one poll tick over every configured project.

This module owns the ``poll`` subcommand: it builds a job-center client and a :class:`Poller` per
project from the configuration (GES and database settings only — no Slack), runs one tick each and
prints the events, as JSON lines or as readable lines. ``--dry-run`` diffs against the stored state
and writes nothing (no lease, no events, no outbox rows, no migration). Holds no logic of its own:
the tick is the poller's, the rules are diff's.

Exit status: 0 when every project was polled; 1 when at least one was not — GES (or the database)
failed, or another replica holds its poll lease (each printed as one line on stderr) — so a run that
polled nothing never passes for a good one; 2 on configuration errors (raised as
:class:`~ges_bot.errors.ConfigError` for ``ges_bot.cli`` to print). The poll lease is released
however the tick ends: each run is a new process (a new replica id), so a lease left behind by a
failed run would make the next runs skip until it expired.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from ges_bot.config import Config, load_config
from ges_bot.domain import JobEvent
from ges_bot.errors import ConfigError, GesBotError
from ges_bot.jobcenter.client import JobCenterClient
from ges_bot.store import open_store
from ges_bot.watch.poller import Poller, TickReport, describe_error

__all__ = ["add_parser", "event_json", "poll_once", "run"]

_KIND_STYLE = {
    "failed": "bold red",
    "partially_failed": "bold yellow",
    "unknown_outcome": "bold red",
    "stuck": "bold magenta",
    "recovered": "bold green",
    "succeeded": "green",
    "status_changed": "dim",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "poll",
        help="poll the GES job center once and print what changed (no Slack needed)",
        description="Run one poll tick over every configured GES project: fetch, compare with the stored "
        "state, record events and queue alerts (the running bot delivers them). Needs only the GES and "
        "database settings.",
    )
    p.add_argument(
        "--once",
        action="store_true",
        required=True,
        help="poll once and exit (continuous polling is `ges-bot run`)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="compare with the stored state but write nothing (no events, no alerts queued)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per event, one per line")
    p.add_argument(
        "--project",
        action="append",
        metavar="ALIAS",
        help="poll only this project (repeatable; default: every configured project)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    config = load_config()
    return asyncio.run(
        poll_once(config, dry_run=args.dry_run, as_json=args.json, only=args.project or (), out=sys.stdout)
    )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def event_json(event: JobEvent) -> dict[str, Any]:
    """The ``--json`` form of an event (stable keys; times ISO 8601 UTC)."""
    job = event.job
    return {
        "project": event.project,
        "job_id": job.job_id,
        "graph": job.graph,
        "job_name": job.job_name,
        "job_type": job.job_type,
        "kind": event.kind.value,
        "status": job.status,
        "previous_status": event.previous_status,
        "at": _iso(event.at),
        "begin_time": _iso(job.begin_time),
        "end_time": _iso(job.end_time),
        "fail_reason": job.fail_reason,
        "recovers_job_id": event.recovers_job_id,
        "problem_files": [
            {"kind": f.kind.value, "path": f.path, "status": f.status, "cause": f.cause, "failed_lines": f.failed_lines}
            for f in job.problem_files
        ],
    }


def _line(event: JobEvent) -> str:
    job = event.job
    change = f"{event.previous_status} → {job.status}" if event.previous_status else job.status
    style = _KIND_STYLE.get(event.kind.value, "")
    text = (
        f"{_iso(event.at)}  {escape(event.project)}  [{style}]{event.kind.value}[/]  "
        f"{escape(job.graph or '-')}  {escape(job.job_name or '-')}  {escape(job.job_id)}  ({escape(change)})"
    )
    if event.recovers_job_id:
        text += f"  recovers {escape(event.recovers_job_id)}"
    if job.fail_reason:
        text += f"  — {escape(job.fail_reason)}"
    for f in job.problem_files:
        text += f"\n    {escape(f.path or '?')}: {escape(f.status or '?')}" + (
            f" — {escape(f.cause)}" if f.cause else ""
        )
    return text


def _summary(report: TickReport) -> str:
    if report.skipped:
        return f"{report.project}: not polled — another ges-bot replica holds the poll lease for this project"
    what = "would record" if report.dry_run else "recorded"
    parts = [
        f"{report.project}: {what} {len(report.events)} event(s)",
        f"{report.requests} GES request(s)",
        f"{report.duration:.2f}s",
    ]
    if report.baseline:
        parts.append("first poll: history recorded as a baseline")
    if report.missing:
        parts.append(f"{len(report.missing)} active job(s) no longer listed by GES")
    if report.partial:
        parts.append(
            "stopped at the tick's budget (GES_BOT_TICK_MAX_PAGES / GES_BOT_TICK_DEADLINE); poll again to go on"
        )
    return ", ".join(parts)


def _replica() -> str:
    return f"cli-{socket.gethostname()}-{os.getpid()}"


def _sqlite_missing(url: str) -> bool:
    if not url.startswith("sqlite"):
        return False
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return bool(path) and not Path(path).exists()


async def poll_once(
    config: Config,
    *,
    dry_run: bool = False,
    as_json: bool = False,
    only: Sequence[str] = (),
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """One tick per configured project; prints events to ``out``, problems to ``err``. Returns the exit status."""
    err = err or sys.stderr
    s = config.settings
    projects = [p for p in config.projects if not only or p.alias in only]
    unknown = sorted(set(only) - {p.alias for p in config.projects})
    if unknown:
        known = ", ".join(p.alias for p in config.projects) or "none"
        raise ConfigError(f"no configured project named {', '.join(unknown)} (configured: {known})")
    if not projects:
        raise ConfigError("no GES project is configured; set GES_ENDPOINT, GES_PROJECT_ID and credentials")
    console = Console(file=out, highlight=False, soft_wrap=True)
    notes = Console(file=err, highlight=False, soft_wrap=True)
    scratch: tempfile.TemporaryDirectory[str] | None = None
    url = s.database_url
    if dry_run and _sqlite_missing(url):
        # Nothing recorded yet: dry-run against an empty scratch database (what a first start
        # would record) rather than fail, and never create the real file.
        scratch = tempfile.TemporaryDirectory(prefix="ges-bot-dry-run-")
        url = f"sqlite:///{Path(scratch.name) / 'dry-run.db'}"
        notes.print(
            "ges-bot: no database yet; dry run against an empty one (as a first start would see it)", style="dim"
        )
    try:
        store = await open_store(url, migrate=not dry_run or scratch is not None)
    except BaseException:
        if scratch is not None:
            scratch.cleanup()
        raise
    status = 0
    replica = s.replica_id or _replica()
    try:
        for project in projects:
            client = JobCenterClient(
                project,
                page_size=s.ges_page_size,
                concurrency=s.ges_page_concurrency,
                timeout=s.ges_timeout,
                max_retries=s.ges_max_retries,
                max_answer_bytes=s.ges_max_answer_bytes,
            )
            poller = Poller(
                project,
                client,
                store,
                config_subscriptions=config.subscriptions,
                stuck_after=s.stuck_after,
                backfill=s.backfill,
                replica=replica,
                page_size=s.ges_page_size,
                max_pages=s.tick_max_pages,
                tick_deadline=s.tick_deadline_s,
            )
            try:
                report = await poller.tick(dry_run=dry_run)
            except GesBotError as exc:
                status = 1
                text = describe_error(exc)
                notes.print(f"ges-bot: project {escape(project.alias)}: {escape(text)}", style="red")
                if not dry_run:
                    await _record(poller, text, notes)
                continue
            finally:
                await client.aclose()
                if not dry_run:
                    # Only this replica's own lease is released (a skipped tick holds none).
                    await _release(poller, notes)
            if report.skipped:
                status = 1
                notes.print(
                    f"ges-bot: {escape(_summary(report))}; a running `ges-bot run` polls it by itself", style="red"
                )
                continue
            for event in report.events:
                if as_json:
                    out.write(json.dumps(event_json(event), ensure_ascii=False) + "\n")
                else:
                    console.print(_line(event))
            (notes if as_json else console).print(escape(_summary(report)), style="dim")
    finally:
        await store.close()
        if scratch is not None:
            scratch.cleanup()
    out.flush()
    return status


async def _release(poller: Poller, notes: Console) -> None:
    try:
        await poller.release()
    except GesBotError as exc:
        notes.print(f"ges-bot: could not release the poll lease: {escape(describe_error(exc))}", style="red")


async def _record(poller: Poller, text: str, notes: Console) -> None:
    try:
        await poller.store.record_poll_error(poller.alias, poller.clock(), text)
    except GesBotError as exc:
        notes.print(f"ges-bot: could not record the error: {escape(describe_error(exc))}", style="red")
