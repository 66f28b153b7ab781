"""``ges-bot emulator``: serve the GES job-center + IAM emulator from the command line.

Owns the subcommand's flags (one per :class:`~ges_bot.emulator.settings.EmulatorSettings` knob),
turning them into settings, and the start-up banner that prints the environment variables which
point a bot (or the official SDK) at the emulator. ``python -m ges_bot.emulator`` runs the same
command standalone.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from ges_bot.emulator.app import create_app
from ges_bot.emulator.settings import (
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEMO_AK,
    DEMO_SK,
    SCENARIOS,
    EmulatorSettings,
    StaticToken,
    parse_user_spec,
)
from ges_bot.loopback import free_port

__all__ = ["add_parser", "banner", "main", "run", "settings_from_args"]


def _duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``2d`` → seconds."""
    value = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if value and value[-1] in units:
            return float(value[:-1]) * units[value[-1]]
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90, 15m, 6h, 2d)") from None


def _pair(text: str, what: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give one {what} or two, comma-separated (start_time's,end_time's)")
    return parts[0], parts[1]


def _field_pair(text: str) -> tuple[str, str]:
    pair = _pair(text, "field")
    bad = [f for f in pair if f not in ("begin_time", "end_time")]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]!r} is not a date filter field (begin_time or end_time)")
    return pair


def _zone_pair(text: str) -> tuple[str, str]:
    return _pair(text, "zone")


def _retention(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "forever", "0") else _duration(text)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    net = p.add_argument_group("where")
    net.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=8081, help="port (default 8081; 0 picks a free one)")
    creds = p.add_argument_group("credentials the emulated gateway accepts")
    creds.add_argument("--project-id", default=DEFAULT_PROJECT_ID, help="the project (default %(default)s)")
    creds.add_argument(
        "--region", default=DEFAULT_REGION, help="region name IAM accepts as a project scope (default %(default)s)"
    )
    creds.add_argument("--ak", default=DEMO_AK, help="access key (default: a demo AK)")
    creds.add_argument("--sk", default=DEMO_SK, help="secret key (default: a demo SK)")
    creds.add_argument(
        "--user",
        action="append",
        metavar="DOMAIN:USER:PASSWORD[:PROJECT,…]",
        help="an IAM user for POST /v3/auth/tokens (repeatable; default demo-account:demo-user:demo-password)",
    )
    creds.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help="a static X-Auth-Token to accept, as GES_TOKEN users have (repeatable; default: a demo token)",
    )
    creds.add_argument(
        "--token-lifetime", type=_duration, default=86400.0, help="lifetime of issued tokens (default 24h)"
    )
    world = p.add_argument_group("jobs")
    world.add_argument("--scenario", choices=SCENARIOS, default="none", help="seeded jobs to show (default none)")
    world.add_argument("--seed", type=int, default=0, help="scenario seed (default 0)")
    world.add_argument(
        "--speed", type=float, default=1.0, help="scenario time runs this many times faster (default 1; demo: 60)"
    )
    world.add_argument("--large-count", type=int, default=100_000, help="jobs of the 'large' scenario (default 100000)")
    quirks = p.add_argument_group("undocumented behaviours of GES")
    quirks.add_argument("--order", choices=["asc", "desc", "random"], default="asc", help="list order by begin_time")
    quirks.add_argument("--max-limit", type=int, default=1000, help="largest accepted limit (default 1000)")
    quirks.add_argument(
        "--date-filter-field",
        type=_field_pair,
        default=("begin_time", "begin_time"),
        metavar="FIELD[,FIELD]",
        help="field that start_time/end_time filter on: begin_time or end_time; two, comma-separated, "
        "for start_time's and end_time's own (e.g. begin_time,end_time; default begin_time)",
    )
    quirks.add_argument(
        "--date-filter-tz",
        type=_zone_pair,
        default=("UTC", "UTC"),
        metavar="ZONE[,ZONE]",
        help="zone the filter dates are read in (UTC, +08:00, Asia/Shanghai); two, comma-separated, "
        "for start_time's and end_time's own (e.g. UTC,+08:00; default UTC)",
    )
    quirks.add_argument(
        "--time-format", choices=["T", "space", "epoch"], default="T", help="time format of answers (default T)"
    )
    quirks.add_argument(
        "--retention", type=_retention, default=None, help="drop finished jobs older than this (default: never)"
    )
    quirks.add_argument(
        "--project-mismatch-status",
        type=int,
        choices=[400, 403],
        default=400,
        help="status of GES.0016 for a project the credentials do not cover (default 400)",
    )
    readings = p.add_argument_group(
        "readings of the job list",
        "GES documents these loosely; each default is the reading ges-bot was built against. "
        "The same names (with _) are keys of POST /_emulator/settings.",
    )
    readings.add_argument(
        "--job-count",
        choices=["filtered", "unfiltered", "page"],
        default="filtered",
        help="what job_count counts: the jobs the filters select (default), every job of the project, "
        "or the jobs on this page",
    )
    readings.add_argument(
        "--offset-unit",
        choices=["item", "page0", "page1"],
        default="item",
        help="what offset counts: jobs (default), pages from 0 (page starts at offset x limit), pages from 1",
    )
    readings.add_argument(
        "--status-filter",
        choices=["all", "no-partial", "ignored"],
        default="all",
        help="status filter: all words work (default); no-partial: status=partiallyFailed gets 400 GES.0001; "
        "ignored: accepted but lists every status",
    )
    readings.add_argument(
        "--waiting-word",
        choices=["waiting", "pending", "both"],
        default="waiting",
        help="the status word a request uses for queued jobs (answers always say pending; default waiting)",
    )
    readings.add_argument(
        "--time-zone-suffix",
        choices=["utc", "none-utc", "none-utc+8"],
        default="none-utc",
        help="how answers write times: UTC with no zone (default), UTC with Z, or UTC+8 wall time with no zone",
    )
    readings.add_argument(
        "--limit-cap",
        type=int,
        default=None,
        metavar="N",
        help="answer at most N jobs a page whatever limit asks, without an error (default: no cap)",
    )
    readings.add_argument(
        "--extra-status",
        action="append",
        default=None,
        metavar="STATUS",
        help="a status outside the documented enum (cancelled, Failed, partFailed, complete…) that the "
        "nightly-imports scenario ends one job in five in (repeatable; jobs can also be PATCHed to any status)",
    )
    p.add_argument("--log-level", default="INFO", help="log level (default INFO)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help="serve a GES job-center + IAM emulator (scenarios, faults, control API)",
        description="Serve an emulator of the GES job center, IAM tokens and the API gateway's checks, "
        "with seeded scenarios and a control API under /_emulator/. Prints the environment that "
        "points ges-bot (or Huawei's SDK) at it.",
    )
    _add_arguments(p)
    return p


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """Flags → settings (``ValueError`` names what is wrong)."""
    extra: dict[str, Any] = {}
    if args.user:
        extra["users"] = tuple(parse_user_spec(u) for u in args.user)
    if args.token:
        extra["static_tokens"] = tuple(StaticToken(t) for t in args.token)
    start_field, end_field = args.date_filter_field
    start_tz, end_tz = args.date_filter_tz
    return EmulatorSettings(
        project_id=args.project_id,
        region=args.region,
        ak=args.ak,
        sk=args.sk,
        token_lifetime_s=args.token_lifetime,
        scenario=args.scenario,
        seed=args.seed,
        speed=args.speed,
        large_count=args.large_count,
        order=args.order,
        max_limit=args.max_limit,
        default_limit=min(10, args.max_limit),
        # A pair's first value is the shared one; the second overrides it for end_time only.
        date_filter_field=start_field,
        end_filter_field=None if end_field == start_field else end_field,
        date_filter_tz=start_tz,
        end_filter_tz=None if end_tz == start_tz else end_tz,
        job_count=args.job_count,
        offset_unit=args.offset_unit,
        status_filter=args.status_filter,
        waiting_word=args.waiting_word,
        time_zone_suffix=args.time_zone_suffix,
        limit_cap=args.limit_cap,
        extra_statuses=tuple(args.extra_status or ()),
        time_format=args.time_format,
        retention_s=args.retention,
        project_mismatch_status=args.project_mismatch_status,
        **extra,
    )


def banner(settings: EmulatorSettings, url: str) -> str:
    """What the emulator prints on start: where it is and the variables that point a bot at it."""
    region_var = "HUAWEICLOUD_SDK_REGION_GES_" + settings.region.upper().replace("-", "_")
    lines = [
        f"GES job-center emulator on {url} (scenario {settings.scenario}, seed {settings.seed}, "
        f"speed {settings.speed:g}x; control API at {url}/_emulator/)",
        "Point ges-bot at it (AK/SK):",
        f"export GES_ENDPOINT={url}",
        f"export GES_PROJECT_ID={settings.project_id}",
        f"export HUAWEICLOUD_SDK_AK={settings.ak}",
        f"export HUAWEICLOUD_SDK_SK={settings.sk}",
        "Huawei's official SDK (region " + settings.region + ") also needs:",
        f"export {region_var}={url}",
    ]
    if settings.users:
        user = settings.users[0]
        lines += [
            "Or IAM password auth (instead of the AK/SK):",
            f"  HUAWEICLOUD_SDK_IAM_ENDPOINT={url} GES_IAM_DOMAIN={user.domain} GES_IAM_USER={user.name} "
            f"GES_IAM_PASSWORD={user.password}",
        ]
    if settings.static_tokens:
        lines += ["Or a static token:", f"  GES_TOKEN={settings.static_tokens[0].token}"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"ges-bot emulator: {exc}", file=sys.stderr)
        return 2
    port = args.port or free_port(args.host if args.host not in ("0.0.0.0", "::") else "127.0.0.1")
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    url = f"http://{shown_host}:{port}"
    app = create_app(settings)
    print(banner(settings, url), flush=True)
    config = uvicorn.Config(app, host=args.host, port=port, log_level=str(args.log_level).lower(), access_log=False)
    uvicorn.Server(config).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ges_bot.emulator [flags]``."""
    parser = argparse.ArgumentParser(prog="ges-bot emulator", description="GES job-center + IAM emulator")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=str(args.log_level).upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    return run(args)
