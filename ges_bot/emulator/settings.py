"""The emulator's settings: credentials it accepts and every undocumented behaviour, as knobs.

This module owns :class:`EmulatorSettings` (immutable; the state swaps in a new one when
``POST /_emulator/settings`` changes a knob at run time), the demo credentials, and the parsing of
the small textual forms the CLI and the control API accept (time zones, user specs). It does no
I/O. The credentials here are the emulator's own *fake* ones: they are printed on purpose so a bot
can be pointed at the emulator, but are kept out of ``repr``.

Choices for behaviours GES does not document (each one a setting, so tests can vary it):

==========================  ===============  ==============================================
setting                     default          why
==========================  ===============  ==============================================
``order``                   ``asc``          the reference page's example lists the older
                                             job first; ``desc`` and ``random`` (a stable
                                             per-job shuffle) exist to break clients that
                                             rely on an order
``max_limit``               ``1000``         no documented maximum; 1000 matches the bot's
                                             own page-size cap. Above it: 400 GES.0001
``default_limit``           ``10``           documented
``date_filter_field``       ``begin_time``   ``start_time``/``end_time`` select jobs whose
                                             *begin_time* is in [start 00:00, end 24:00)
``date_filter_tz``          ``UTC``          zone in which those dates are read
``time_format``             ``T``            ``2018-12-17T12:55:40`` as in the SDK docs and
                                             the page's example (``space``, ``epoch`` ms too)
``retention_s``             ``None``         keep jobs forever (terminal jobs older than
                                             this, by end or begin time, are dropped)
``project_mismatch_status`` ``400``          GES.0016 "project and token do not match" is
                                             documented as a 400
==========================  ===============  ==============================================

Readings of the loosely documented job list (issue 11: a client must alert under each of them).
The default of each is the reading ges-bot was first built against, so "off" is today's
behaviour:

==========================  ===============  ==============================================
setting                     default          other readings
==========================  ===============  ==============================================
``job_count``               ``filtered``     ``unfiltered`` (every job of the project,
                                             whatever the filters), ``page`` (the length
                                             of this page)
``offset_unit``             ``item``         ``page0`` (offset is a page number from 0:
                                             the page starts at offset × limit), ``page1``
                                             (from 1; 0 is read as 1)
``status_filter``           ``all``          ``no-partial`` (``status=partiallyFailed`` is
                                             refused, 400 GES.0001), ``ignored`` (the
                                             filter is accepted and has no effect)
``waiting_word``            ``waiting``      the request word for queued jobs: ``pending``
                                             (and ``waiting`` is refused), ``both``
``start_filter_field``,     ``None``         the field/zone of ``start_time`` and of
``end_filter_field``,                        ``end_time`` when they differ; ``None`` = the
``start_filter_tz``,                         shared ``date_filter_field``/``date_filter_tz``
``end_filter_tz``
``time_zone_suffix``        ``none-utc``     how answers write times: ``utc`` (with a
                                             ``Z``), ``none-utc+8`` (no zone, UTC+8 wall
                                             time). Epoch times are not affected
``limit_cap``               ``None``         a page holds at most this many jobs, whatever
                                             ``limit`` asked for, without an error
``extra_statuses``          ``()``           statuses outside the documented enum (such as
                                             ``cancelled``, ``Failed``, ``partFailed``,
                                             ``complete``) that the ``nightly-imports``
                                             scenario ends some jobs in
==========================  ===============  ==============================================
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_PROJECT_ID",
    "DEFAULT_REGION",
    "DEMO_AK",
    "DEMO_DOMAIN",
    "DEMO_PASSWORD",
    "DEMO_SK",
    "DEMO_TOKEN",
    "DEMO_USER",
    "RUNTIME_SETTINGS",
    "SCENARIOS",
    "AkSk",
    "DateField",
    "EmulatorSettings",
    "IamUser",
    "JobCount",
    "OffsetUnit",
    "Order",
    "StaticToken",
    "StatusFilter",
    "TimeFormat",
    "TimeZoneSuffix",
    "WaitingWord",
    "parse_user_spec",
    "parse_zone",
]

DEFAULT_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEFAULT_REGION = "cn-north-4"
#: Demo AK/SK: shaped like real ones (20 upper-case characters; 40 characters).
DEMO_AK = "EMULATORDEMOAK000001"
DEMO_SK = "EmulatorDemoSecretKey0123456789abcdefghi"
DEMO_DOMAIN = "demo-account"
DEMO_USER = "demo-user"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - the emulator's own fake credential
#: A static token (what ``GES_TOKEN`` users paste); real tokens also start with ``MII``.
DEMO_TOKEN = "MIIEmulatorStaticDemoToken-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - fake, printed on purpose

Order = Literal["asc", "desc", "random"]
DateField = Literal["begin_time", "end_time"]
TimeFormat = Literal["T", "space", "epoch"]
JobCount = Literal["filtered", "unfiltered", "page"]
OffsetUnit = Literal["item", "page0", "page1"]
StatusFilter = Literal["all", "no-partial", "ignored"]
WaitingWord = Literal["waiting", "pending", "both"]
TimeZoneSuffix = Literal["utc", "none-utc", "none-utc+8"]
ScenarioName = Literal["none", "quiet", "nightly-imports", "large"]
SCENARIOS: tuple[str, ...] = get_args(ScenarioName)

_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")


def parse_zone(text: str) -> tzinfo:
    """``UTC``, an offset (``+08:00``, ``-0530``, ``UTC+8``) or an IANA name (``Asia/Shanghai``)."""
    value = text.strip()
    if value.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET.match(value)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"time zone offset {text!r} is out of range")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r}; use UTC, an offset such as +08:00, or an IANA name") from None


@dataclass(frozen=True, slots=True)
class AkSk:
    """An access key the gateway accepts. ``project_ids`` empty = the emulator's ``project_id``;
    ``("*",)`` = every project."""

    ak: str
    sk: str = field(repr=False)
    project_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IamUser:
    """An IAM user that may obtain tokens with ``POST /v3/auth/tokens`` (password method).
    ``project_ids`` as for :class:`AkSk`."""

    domain: str
    name: str
    password: str = field(repr=False)
    project_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A token accepted as ``X-Auth-Token`` without asking IAM (a ``GES_TOKEN`` user's token).
    ``expires_at`` None = valid until ``expire_tokens`` or forever."""

    token: str = field(repr=False)
    project_ids: tuple[str, ...] = ()
    expires_at: datetime | None = None


def parse_user_spec(spec: str) -> IamUser:
    """``DOMAIN:USER:PASSWORD[:PROJECT,PROJECT…]`` → :class:`IamUser` (the CLI's ``--user``)."""
    parts = spec.split(":", 3)
    if len(parts) < 3 or not all(parts[:3]):
        raise ValueError("an IAM user is DOMAIN:USER:PASSWORD[:PROJECT_ID,PROJECT_ID…]")
    projects = tuple(p for p in parts[3].split(",") if p) if len(parts) == 4 else ()
    return IamUser(domain=parts[0], name=parts[1], password=parts[2], project_ids=projects)


#: Settings that ``POST /_emulator/settings`` may change while the emulator runs.
RUNTIME_SETTINGS: frozenset[str] = frozenset(
    {
        "order",
        "max_limit",
        "default_limit",
        "date_filter_field",
        "date_filter_tz",
        "time_format",
        "retention_s",
        "token_lifetime_s",
        "max_clock_skew_s",
        "project_mismatch_status",
        "speed",
        "job_count",
        "offset_unit",
        "status_filter",
        "waiting_word",
        "start_filter_field",
        "end_filter_field",
        "start_filter_tz",
        "end_filter_tz",
        "time_zone_suffix",
        "limit_cap",
        "extra_statuses",
    }
)
_CHOICES: dict[str, tuple[str, ...]] = {
    "order": get_args(Order),
    "date_filter_field": get_args(DateField),
    "time_format": get_args(TimeFormat),
    "job_count": get_args(JobCount),
    "offset_unit": get_args(OffsetUnit),
    "status_filter": get_args(StatusFilter),
    "waiting_word": get_args(WaitingWord),
    "time_zone_suffix": get_args(TimeZoneSuffix),
}
#: Statuses of the documented enum (a job in any other status is "outside the enum").
DOCUMENTED_STATUSES: frozenset[str] = frozenset({"pending", "running", "success", "failed", "partiallyFailed"})


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """Everything the emulator can be told. Invalid values raise ``ValueError`` on construction."""

    project_id: str = DEFAULT_PROJECT_ID
    #: The region whose name IAM accepts as a project *name* scope (→ ``project_id``).
    region: str = DEFAULT_REGION
    ak: str = DEMO_AK
    sk: str = field(default=DEMO_SK, repr=False)
    #: More access keys (e.g. one that covers another project).
    extra_aksk: tuple[AkSk, ...] = ()
    users: tuple[IamUser, ...] = (IamUser(DEMO_DOMAIN, DEMO_USER, DEMO_PASSWORD),)
    static_tokens: tuple[StaticToken, ...] = (StaticToken(DEMO_TOKEN),)
    #: Lifetime of tokens issued by ``POST /v3/auth/tokens`` (IAM: 24 h).
    token_lifetime_s: float = 86400.0
    #: The gateway rejects an ``X-Sdk-Date`` further than this from the (real) clock.
    max_clock_skew_s: float = 900.0
    order: Order = "asc"
    max_limit: int = 1000
    default_limit: int = 10
    date_filter_field: DateField = "begin_time"
    date_filter_tz: str = "UTC"
    time_format: TimeFormat = "T"
    retention_s: float | None = None
    project_mismatch_status: int = 400
    scenario: str = "none"
    seed: int = 0
    #: Scenario time runs ``speed`` times faster than the emulated clock.
    speed: float = 1.0
    #: Number of historical jobs of the ``large`` scenario.
    large_count: int = 100_000
    # Readings of the job list (see the module docstring); each default is today's behaviour.
    job_count: JobCount = "filtered"
    offset_unit: OffsetUnit = "item"
    status_filter: StatusFilter = "all"
    waiting_word: WaitingWord = "waiting"
    start_filter_field: DateField | None = None
    end_filter_field: DateField | None = None
    start_filter_tz: str | None = None
    end_filter_tz: str | None = None
    time_zone_suffix: TimeZoneSuffix = "none-utc"
    limit_cap: int | None = None
    extra_statuses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.project_id.isalnum() or len(self.project_id) > 64:
            raise ValueError(f"project id {self.project_id!r} must be up to 64 letters and digits")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)} (got {getattr(self, name)!r})")
        for name in ("start_filter_field", "end_filter_field"):
            value = getattr(self, name)
            if value is not None and value not in get_args(DateField):
                raise ValueError(f"{name} must be begin_time, end_time or null (got {value!r})")
        for name in ("date_filter_tz", "start_filter_tz", "end_filter_tz"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_zone(value)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        if self.limit_cap is not None and self.limit_cap < 1:
            raise ValueError("limit_cap must be at least 1 (or null for no cap)")
        odd = [s for s in self.extra_statuses if not isinstance(s, str) or not s or s in DOCUMENTED_STATUSES]
        if odd:
            raise ValueError(
                f"extra_statuses are statuses outside the documented enum, such as cancelled (got {odd[0]!r})"
            )
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)} (got {self.scenario!r})")
        if self.max_limit < 1:
            raise ValueError("max_limit must be at least 1")
        if not 1 <= self.default_limit <= self.max_limit:
            raise ValueError("default_limit must be from 1 to max_limit")
        if self.retention_s is not None and self.retention_s <= 0:
            raise ValueError("retention_s must be positive (or None to keep jobs forever)")
        if self.token_lifetime_s <= 0 or self.max_clock_skew_s <= 0:
            raise ValueError("token_lifetime_s and max_clock_skew_s must be positive")
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.large_count < 0:
            raise ValueError("large_count must not be negative")
        if self.project_mismatch_status not in (400, 401, 403, 404):
            raise ValueError("project_mismatch_status must be 400, 401, 403 or 404")

    @property
    def zone(self) -> tzinfo:
        return parse_zone(self.date_filter_tz)

    @property
    def start_field(self) -> DateField:
        """The field ``start_time`` filters on."""
        return self.start_filter_field or self.date_filter_field

    @property
    def end_field(self) -> DateField:
        """The field ``end_time`` filters on."""
        return self.end_filter_field or self.date_filter_field

    @property
    def start_zone(self) -> tzinfo:
        """The zone ``start_time``'s date is read in."""
        return parse_zone(self.start_filter_tz or self.date_filter_tz)

    @property
    def end_zone(self) -> tzinfo:
        """The zone ``end_time``'s date is read in."""
        return parse_zone(self.end_filter_tz or self.date_filter_tz)

    def all_aksk(self) -> tuple[AkSk, ...]:
        return (AkSk(self.ak, self.sk), *self.extra_aksk)

    def covers(self, project_ids: tuple[str, ...], project_id: str) -> bool:
        """Whether a credential's ``project_ids`` (empty = our project, ``*`` = all) cover ``project_id``."""
        if not project_ids:
            return project_id == self.project_id
        return "*" in project_ids or project_id in project_ids

    def with_changes(self, changes: Mapping[str, Any]) -> EmulatorSettings:
        """A copy with run-time ``changes`` applied; ``ValueError`` names a bad or fixed setting."""
        unknown = sorted(set(changes) - RUNTIME_SETTINGS)
        if unknown:
            allowed = ", ".join(sorted(RUNTIME_SETTINGS))
            raise ValueError(f"cannot change {', '.join(unknown)} at run time; changeable: {allowed}")
        coerced: dict[str, Any] = {}
        for name, value in changes.items():
            number = not isinstance(value, bool) and isinstance(value, int | float)
            if name in ("max_limit", "default_limit", "project_mismatch_status"):
                if not number or not isinstance(value, int):
                    raise ValueError(f"{name} must be an integer")
                coerced[name] = value
            elif name == "limit_cap":
                if value is not None and (not number or not isinstance(value, int)):
                    raise ValueError("limit_cap must be an integer or null")
                coerced[name] = value
            elif name in ("start_filter_field", "end_filter_field", "start_filter_tz", "end_filter_tz"):
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{name} must be a string or null")
                coerced[name] = value
            elif name == "extra_statuses":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError('extra_statuses must be a list of statuses, e.g. ["cancelled", "Failed"]')
                coerced[name] = tuple(value)
            elif name in ("token_lifetime_s", "max_clock_skew_s", "speed"):
                if not number:
                    raise ValueError(f"{name} must be a number")
                coerced[name] = float(value)
            elif name == "retention_s":
                if value is not None and not number:
                    raise ValueError("retention_s must be a number of seconds or null")
                coerced[name] = None if value is None else float(value)
            elif isinstance(value, str):
                coerced[name] = value
            else:
                raise ValueError(f"{name} must be a string")
        return dataclasses.replace(self, **coerced)

    def public_view(self) -> dict[str, Any]:
        """The settings as JSON, without secrets (for ``GET /_emulator/settings``)."""
        return {
            "project_id": self.project_id,
            "region": self.region,
            "ak": self.ak,
            "extra_aks": [a.ak for a in self.extra_aksk],
            "users": [{"domain": u.domain, "name": u.name, "project_ids": list(u.project_ids)} for u in self.users],
            "static_tokens": len(self.static_tokens),
            "scenario": self.scenario,
            "seed": self.seed,
            "large_count": self.large_count,
            **{name: getattr(self, name) for name in sorted(RUNTIME_SETTINGS - {"extra_statuses"})},
            "extra_statuses": list(self.extra_statuses),
        }
