"""Typed settings: the only module that reads the environment and the ``GES_BOT_CONFIG`` file.

Everything is validated at start-up; a problem becomes a :class:`~ges_bot.errors.ConfigError`
whose message names the setting and says how to fix it. Secrets are ``SecretStr`` and never
appear in ``repr``, logs or error messages.

One GES project comes from the environment (``GES_ENDPOINT``/``GES_REGION``, ``GES_PROJECT_ID`` and
one way to authenticate); several come from ``[[projects]]`` tables in the TOML file named by
``GES_BOT_CONFIG``, which may also declare ``[[subscriptions]]`` and ``[[digests]]`` (config as code).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ges_bot.domain import ProjectInfo, Subscription, kinds_from_words
from ges_bot.errors import ConfigError
from ges_bot.schedule import DigestSchedule, parse_schedule
from ges_bot.sinks.targets import SINK_NAME, SinkType, secret_problem, sink_target, url_problem
from ges_bot.words import Locale

#: Regions the official SDK knows, and their management-plane endpoints.
GES_REGIONS: dict[str, str] = {
    "cn-north-1": "https://ges.cn-north-1.myhuaweicloud.com",
    "cn-north-2": "https://ges.cn-north-2.myhuaweicloud.com",
    "cn-north-4": "https://ges.cn-north-4.myhuaweicloud.com",
    "cn-east-3": "https://ges.cn-east-3.myhuaweicloud.com",
    "cn-south-1": "https://ges.cn-south-1.myhuaweicloud.com",
    "ap-southeast-1": "https://ges.ap-southeast-1.myhuaweicloud.com",
    "ap-southeast-3": "https://ges.ap-southeast-3.myhuaweicloud.com",
    "ru-moscow-1": "https://ges.ru-moscow-1.myhuaweicloud.com",
    "eu-west-101": "https://ges.eu-west-101.myhuaweicloud.eu",
}

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
#: Seconds a claim lasts unless renewed (GES_BOT_CLAIM_LEASE): how long a dead replica delays its work.
DEFAULT_CLAIM_LEASE_S = 15.0

AuthMethod = Literal["token", "aksk", "password"]


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """One GES project to watch: where it is and how to authenticate. Exactly one auth method."""

    alias: str
    project_id: str
    endpoint: str
    region: str | None
    auth: AuthMethod
    token: SecretStr | None = None
    ak: SecretStr | None = None
    sk: SecretStr | None = None
    iam_endpoint: str | None = None
    iam_domain: str | None = None
    iam_user: str | None = None
    iam_password: SecretStr | None = None

    def info(self) -> ProjectInfo:
        return ProjectInfo(alias=self.alias, project_id=self.project_id, region=self.region, endpoint=self.endpoint)


class _ProjectTable(BaseModel):
    """A ``[[projects]]`` table. Any credential may be given as ``<name>_env`` naming an
    environment variable instead of the value itself (keeps secrets out of the file)."""

    model_config = ConfigDict(extra="forbid")

    alias: str
    project_id: str | None = None
    project_id_env: str | None = None
    endpoint: str | None = None
    region: str | None = None
    token: SecretStr | None = None
    token_env: str | None = None
    ak: SecretStr | None = None
    ak_env: str | None = None
    sk: SecretStr | None = None
    sk_env: str | None = None
    iam_endpoint: str | None = None
    iam_domain: str | None = None
    iam_user: str | None = None
    iam_password: SecretStr | None = None
    iam_password_env: str | None = None


class _SubscriptionTable(BaseModel):
    """A ``[[subscriptions]]`` table: a Slack ``channel`` or a ``sink`` (one of them) hears about
    the graphs matching ``graph``."""

    model_config = ConfigDict(extra="forbid")

    channel: str | None = None
    sink: str | None = None
    graph: str
    statuses: list[str] = Field(default_factory=list)
    project: str | None = None
    job_names: list[str] = Field(default_factory=list)
    #: The language of a channel's alerts (``lang`` is accepted too, as in ``/gesjobs``); a sink
    #: has its own ``locale``.
    locale: Locale | None = Field(default=None, validation_alias=AliasChoices("locale", "lang"))

    @field_validator("channel", "sink", "graph")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v.strip() if v is not None else None


class _SinkTable(BaseModel):
    """A ``[[sinks]]`` table: a group-bot webhook alerts may be routed to. ``url`` and ``secret``
    may be given as ``url_env`` / ``secret_env`` naming an environment variable instead."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: SinkType
    url: SecretStr | None = None
    url_env: str | None = None
    secret: SecretStr | None = None
    secret_env: str | None = None
    locale: Locale = "en"


class _OpsTable(BaseModel):
    """``[ops]``: where the bot reports on its own health (``GES_BOT_OPS_CHANNEL`` wins over it)."""

    model_config = ConfigDict(extra="forbid")

    channel: str | None = None
    #: ``[[sinks]]`` names that also hear each incident's start and end (``GES_BOT_OPS_SINKS`` wins).
    sinks: list[str] | None = None
    #: The language of the ops messages (``GES_BOT_OPS_LOCALE`` wins over it).
    locale: Locale | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        return _ops_channel(v)


class _DigestTable(BaseModel):
    """``[[digests]]``: ``channel`` or ``sink`` (one of them), ``schedule`` (``daily 09:00`` /
    ``weekly mon 09:00``), ``tz`` (IANA; default ``GES_BOT_TIMEZONE``) and ``always`` (post even
    when nothing ran)."""

    model_config = ConfigDict(extra="forbid")

    channel: str | None = None
    sink: str | None = None
    schedule: str
    tz: str | None = None
    always: bool = False
    locale: Locale = Field(default="en", validation_alias=AliasChoices("locale", "lang"))


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: list[_ProjectTable] = Field(default_factory=list)
    sinks: list[_SinkTable] = Field(default_factory=list)
    subscriptions: list[_SubscriptionTable] = Field(default_factory=list)
    digests: list[_DigestTable] = Field(default_factory=list)
    ops: _OpsTable = Field(default_factory=_OpsTable)


def _ops_channel(value: str | None) -> str | None:
    """A channel id (``C…``/``G…``) or a name (``#ops`` or ``ops``, which Slack resolves for public
    channels); blank means none."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if any(ch.isspace() for ch in text) or len(text) > 80:
        raise ValueError("must be one Slack channel id (C0123ABCD) or name (#ges-bot-ops)")
    return text


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """One group-bot webhook (``[[sinks]]``). ``url`` and ``secret`` are secrets: show ``name``."""

    name: str
    type: SinkType
    url: SecretStr
    secret: SecretStr | None = None
    locale: Locale = "en"

    @property
    def target(self) -> str:
        """The outbox target (``Delivery.channel``) of alerts routed to this sink."""
        return sink_target(self.name)


def _duration_seconds(value: object) -> float:
    """Accept ``90``, ``"90"``, ``"90s"``, ``"15m"``, ``"6h"``, ``"2d"``."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


class Settings(BaseSettings):
    """Every setting of ges-bot, with its environment variable and default.

    The README's configuration reference is generated from the same names; keep them in step.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # --- GES (one project from the environment) ---
    ges_endpoint: str | None = Field(default=None, validation_alias="GES_ENDPOINT")
    ges_region: str | None = Field(default=None, validation_alias="GES_REGION")
    ges_project_id: str | None = Field(
        default=None, validation_alias=AliasChoices("GES_PROJECT_ID", "HUAWEICLOUD_SDK_PROJECT_ID")
    )
    ges_project_alias: str = Field(default="default", validation_alias="GES_PROJECT_ALIAS")
    ges_token: SecretStr | None = Field(default=None, validation_alias="GES_TOKEN")
    ges_ak: SecretStr | None = Field(default=None, validation_alias="HUAWEICLOUD_SDK_AK")
    ges_sk: SecretStr | None = Field(default=None, validation_alias="HUAWEICLOUD_SDK_SK")
    ges_iam_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("HUAWEICLOUD_SDK_IAM_ENDPOINT", "GES_IAM_ENDPOINT")
    )
    ges_iam_domain: str | None = Field(default=None, validation_alias="GES_IAM_DOMAIN")
    ges_iam_user: str | None = Field(default=None, validation_alias="GES_IAM_USER")
    ges_iam_password: SecretStr | None = Field(default=None, validation_alias="GES_IAM_PASSWORD")
    ges_page_size: int = Field(default=100, ge=1, le=1000, validation_alias="GES_BOT_PAGE_SIZE")
    ges_page_concurrency: int = Field(default=4, ge=1, le=32, validation_alias="GES_BOT_PAGE_CONCURRENCY")
    ges_timeout: float = Field(default=10.0, gt=0, validation_alias="GES_BOT_GES_TIMEOUT")
    ges_max_retries: int = Field(default=4, ge=0, le=10, validation_alias="GES_BOT_GES_RETRIES")
    #: Bytes of one GES answer past which it is abandoned (a page of 1000 imports is a few MB).
    ges_max_answer_bytes: int = Field(
        default=16 * 1024 * 1024, ge=64 * 1024, validation_alias="GES_BOT_GES_MAX_ANSWER_BYTES"
    )
    #: Pages one poll tick may ask GES for; the rest continues next tick (a tick needs ~5).
    tick_max_pages: int = Field(default=200, ge=5, validation_alias="GES_BOT_TICK_MAX_PAGES")
    #: Seconds after which a poll tick asks GES for nothing more and commits what it read.
    tick_deadline_s: float = Field(default=30.0, gt=0, validation_alias="GES_BOT_TICK_DEADLINE")
    #: Live /gesjobs questions per person per minute (0: no limit); past it, snapshots answer.
    live_queries_per_user: int = Field(default=6, ge=0, validation_alias="GES_BOT_LIVE_QUERIES_PER_USER")
    #: Live /gesjobs questions of everyone together per minute (0: no limit).
    live_queries_per_minute: int = Field(default=30, ge=0, validation_alias="GES_BOT_LIVE_QUERIES_PER_MINUTE")
    #: How far back `/gesjobs job <id>` looks in GES for a job the bot has never seen.
    lookup_window_s: float = Field(default=3 * 86400, gt=0, validation_alias="GES_BOT_LOOKUP_WINDOW")
    #: Pages of GES's list one such lookup may read.
    lookup_max_pages: int = Field(default=10, ge=1, le=1000, validation_alias="GES_BOT_LOOKUP_PAGES")

    # --- the bot ---
    config_file: Path | None = Field(default=None, validation_alias="GES_BOT_CONFIG")
    database_url: str = Field(default="sqlite:///ges-bot.db", validation_alias="GES_BOT_DATABASE_URL")
    poll_interval: float = Field(default=60.0, gt=0, validation_alias="GES_BOT_POLL_INTERVAL")
    #: The fast lane: seconds between looks at the end of the arrivals window (what began lately,
    #: running jobs included) between two polls; 0 turns it off.
    fast_interval: float = Field(default=12.0, ge=0, validation_alias="GES_BOT_FAST_INTERVAL")
    #: While the fast lane serves a project (it saw every active job and every arrival since its
    #: last look), the full scans are a safety net and run this often instead of every
    #: ``poll_interval``; at or below ``poll_interval`` every poll is a full scan. Wherever the fast
    #: lane cannot serve, the scans keep to ``poll_interval``.
    scan_interval: float = Field(default=600.0, ge=0, validation_alias="GES_BOT_SCAN_INTERVAL")
    stuck_after_s: float = Field(default=6 * 3600, gt=0, validation_alias="GES_BOT_STUCK_AFTER")
    backfill_s: float = Field(default=0, ge=0, validation_alias="GES_BOT_BACKFILL")
    #: /gesjobs answers come from the store when the project's last successful poll is at most
    #: this old (0: always ask GES live).
    answer_max_age_s: float = Field(default=90.0, ge=0, validation_alias="GES_BOT_ANSWER_MAX_AGE")
    timezone: str = Field(default="UTC", validation_alias="GES_BOT_TIMEZONE")
    admins: str = Field(default="", validation_alias="GES_BOT_ADMINS")
    #: Unset: loopback in Socket Mode (nothing outside needs the port), all interfaces in HTTP
    #: mode (Slack must reach /slack/events). See :attr:`serve_host`.
    http_host: str | None = Field(default=None, validation_alias="GES_BOT_HTTP_HOST")
    http_port: int = Field(default=3000, ge=0, le=65535, validation_alias="GES_BOT_HTTP_PORT")
    #: Largest request body /slack/events accepts (bytes); Slack's payloads are a few kilobytes.
    http_max_body: int = Field(default=1024 * 1024, ge=1024, validation_alias="GES_BOT_HTTP_MAX_BODY")
    #: Connections and requests the HTTP server handles at once; beyond it, 503.
    http_concurrency: int = Field(default=100, ge=1, validation_alias="GES_BOT_HTTP_CONCURRENCY")
    #: Bearer token that unlocks /healthz details for callers not on loopback.
    health_token: SecretStr | None = Field(default=None, validation_alias="GES_BOT_HEALTH_TOKEN")
    #: Accept http:// GES, IAM and Slack API endpoints on hosts other than loopback.
    allow_http: bool = Field(default=False, validation_alias="GES_BOT_ALLOW_HTTP")
    #: Longest mute of every graph (``*`` or a pattern matching any name) a non-admin may set.
    max_wildcard_mute_s: float = Field(default=86400, gt=0, validation_alias="GES_BOT_MAX_WILDCARD_MUTE")
    log_level: str = Field(default="INFO", validation_alias="GES_BOT_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(default="text", validation_alias="GES_BOT_LOG_FORMAT")
    replica_id: str | None = Field(default=None, validation_alias="GES_BOT_REPLICA_ID")
    #: The Slack channel for the bot's own health (blind projects, refused credentials, delivery
    #: that keeps failing); ``[ops] channel`` in the config file when unset here.
    ops_channel: str | None = Field(default=None, validation_alias="GES_BOT_OPS_CHANNEL")
    #: ``[[sinks]]`` names (comma separated) that hear each incident's start and end; ``[ops]
    #: sinks`` in the config file when unset here.
    ops_sinks: str | None = Field(default=None, validation_alias="GES_BOT_OPS_SINKS")
    #: The language of the ops channel's messages (``en`` or ``zh-CN``); ``[ops] locale`` in the
    #: config file when unset here.
    ops_locale: Locale | None = Field(default=None, validation_alias="GES_BOT_OPS_LOCALE")
    #: Polls failing for longer than this make a project *blind* (default: the longer of 5 minutes
    #: and 3 poll intervals; see :attr:`blind_after`).
    blind_after_s: float | None = Field(default=None, gt=0, validation_alias="GES_BOT_BLIND_AFTER")

    # --- Slack ---
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default=DEFAULT_SLACK_API_URL, validation_alias="SLACK_API_URL")
    slack_timeout: float = Field(default=10.0, gt=0, validation_alias="GES_BOT_SLACK_TIMEOUT")
    #: Seconds a replica's claims (on outbox rows and on projects to poll) last unless renewed: a
    #: live replica renews them (heartbeat), so this is how long the work of a replica that died
    #: waits before another replica takes it. It must exceed a Slack call's timeout (+ 5 s).
    claim_lease_s: float | None = Field(default=None, gt=0, validation_alias="GES_BOT_CLAIM_LEASE")
    #: Deprecated name of GES_BOT_CLAIM_LEASE (it was a 120 s lease that nothing renewed).
    delivery_lease_s: float | None = Field(default=None, gt=0, validation_alias="GES_BOT_DELIVERY_LEASE")
    #: Seconds one post to a group-bot webhook (``[[sinks]]``) may take.
    sink_timeout: float = Field(default=10.0, gt=0, validation_alias="GES_BOT_SINK_TIMEOUT")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the documented names count: load_settings reads them (and only them) from the
        # environment. pydantic-settings' own environment source would also take each field's
        # bare name, so DATABASE_URL, HTTP_HOST or ADMINS meant for something else were used.
        return (init_settings,)

    @field_validator(
        "stuck_after_s",
        "backfill_s",
        "poll_interval",
        "fast_interval",
        "scan_interval",
        "answer_max_age_s",
        "blind_after_s",
        "tick_deadline_s",
        "lookup_window_s",
        "max_wildcard_mute_s",
        mode="before",
    )
    @classmethod
    def _durations(cls, v: object) -> float | None:
        return None if v is None else _duration_seconds(v)

    @field_validator("ops_channel")
    @classmethod
    def _ops(cls, v: str | None) -> str | None:
        return _ops_channel(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as UTC or Europe/Berlin") from None
        return v

    # --- derived ---
    @property
    def claim_lease(self) -> tuple[float, str]:
        """The claim lease in seconds and the variable it came from (the deprecated
        ``GES_BOT_DELIVERY_LEASE`` counts when ``GES_BOT_CLAIM_LEASE`` is not set)."""
        if self.claim_lease_s is not None:
            return self.claim_lease_s, "GES_BOT_CLAIM_LEASE"
        if self.delivery_lease_s is not None:
            return self.delivery_lease_s, "GES_BOT_DELIVERY_LEASE"
        return DEFAULT_CLAIM_LEASE_S, "GES_BOT_CLAIM_LEASE"

    @property
    def stuck_after(self) -> timedelta:
        return timedelta(seconds=self.stuck_after_s)

    @property
    def backfill(self) -> timedelta:
        return timedelta(seconds=self.backfill_s)

    @property
    def blind_after(self) -> timedelta:
        """``GES_BOT_BLIND_AFTER``, or the longer of 5 minutes and 3 poll intervals: one failed
        tick is routine (GES retries are capped), three in a row are not."""
        if self.blind_after_s is not None:
            return timedelta(seconds=self.blind_after_s)
        return timedelta(seconds=max(300.0, 3 * self.poll_interval))

    @property
    def max_wildcard_mute(self) -> timedelta:
        return timedelta(seconds=self.max_wildcard_mute_s)

    @property
    def serve_host(self) -> str:
        """Where /healthz (and in HTTP mode /slack/events) listens: ``GES_BOT_HTTP_HOST``, else
        loopback in Socket Mode and every interface in HTTP mode."""
        if self.http_host:
            return self.http_host
        return "127.0.0.1" if self.slack_app_token is not None else "0.0.0.0"

    @property
    def admin_ids(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.admins.replace(";", ",").split(",") if a.strip())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _env_secret(table: _ProjectTable, name: str, env: Mapping[str, str]) -> SecretStr | None:
    direct: SecretStr | None = getattr(table, name)
    ref: str | None = getattr(table, f"{name}_env")
    if direct is not None and ref is not None:
        raise ConfigError(f"project {table.alias!r}: give either {name} or {name}_env, not both")
    if ref is not None:
        value = env.get(ref)
        if not value:
            raise ConfigError(
                f"project {table.alias!r}: {name}_env names ${ref}, which is not set; export it or fix the name"
            )
        return SecretStr(value)
    return direct


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_scheme(where: str, what: str, url: str, *, allow_http: bool) -> None:
    """Refuse a plain ``http://`` URL unless it is on loopback (an emulator, a stand-in) or
    ``GES_BOT_ALLOW_HTTP`` says the network is trusted: passwords, tokens and signed requests go
    to it. Checked at start, before any connection is made."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    # Scheme and host only: a URL may carry a user and password, or a token in its path or query.
    shown = f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    if parts.scheme != "http":
        raise ConfigError(f"{where}: {what} {shown} must start with https://")
    if allow_http or _is_loopback(parts.hostname or ""):
        return
    raise ConfigError(
        f"{where}: {what} {shown} is plain http://, which would send credentials in clear text; use https:// "
        "(or, only on a network you trust, set GES_BOT_ALLOW_HTTP=1)"
    )


def _resolve_endpoint(
    where: str, endpoint: str | None, region: str | None, *, allow_http: bool = False
) -> tuple[str, str | None]:
    if endpoint:
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}: endpoint {endpoint!r} must start with https:// (or http:// for a local emulator)"
            )
        check_scheme(where, "GES endpoint", endpoint, allow_http=allow_http)
        return endpoint.rstrip("/"), region
    if region:
        override = os.environ.get("HUAWEICLOUD_SDK_REGION_GES_" + region.upper().replace("-", "_"))
        if override:
            check_scheme(where, "GES endpoint", override, allow_http=allow_http)
            return override.rstrip("/"), region
        if region not in GES_REGIONS:
            known = ", ".join(sorted(GES_REGIONS))
            raise ConfigError(f"{where}: unknown region {region!r}; use one of {known}, or set an endpoint instead")
        return GES_REGIONS[region], region
    raise ConfigError(
        f"{where}: no GES endpoint; set GES_ENDPOINT (e.g. https://ges.cn-north-4.myhuaweicloud.com) or GES_REGION (e.g. cn-north-4)"
    )


def _build_project(
    where: str,
    alias: str,
    project_id: str | None,
    endpoint: str | None,
    region: str | None,
    token: SecretStr | None,
    ak: SecretStr | None,
    sk: SecretStr | None,
    iam_endpoint: str | None,
    iam_domain: str | None,
    iam_user: str | None,
    iam_password: SecretStr | None,
    *,
    allow_http: bool = False,
) -> ProjectSettings:
    if not project_id:
        raise ConfigError(
            f"{where}: no project id; set GES_PROJECT_ID (the 32-character id from 'My Credentials' in the console)"
        )
    if not project_id.isalnum() or len(project_id) > 64:
        raise ConfigError(f"{where}: project id {project_id!r} must be up to 64 letters and digits")
    url, region = _resolve_endpoint(where, endpoint, region, allow_http=allow_http)
    methods: list[AuthMethod] = []
    if token is not None:
        methods.append("token")
    if ak is not None or sk is not None:
        if ak is None or sk is None:
            raise ConfigError(f"{where}: AK/SK needs both HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK")
        methods.append("aksk")
    if iam_user or iam_password is not None:
        missing = [
            n
            for n, v in (("GES_IAM_DOMAIN", iam_domain), ("GES_IAM_USER", iam_user), ("GES_IAM_PASSWORD", iam_password))
            if not v
        ]
        if missing:
            raise ConfigError(f"{where}: IAM password auth is missing {', '.join(missing)}")
        methods.append("password")
        if not iam_endpoint:
            if region:
                iam_endpoint = f"https://iam.{region}.myhuaweicloud.com"
            else:
                raise ConfigError(
                    f"{where}: IAM password auth needs HUAWEICLOUD_SDK_IAM_ENDPOINT (or GES_IAM_ENDPOINT) when no region is set"
                )
    if iam_endpoint:
        check_scheme(where, "IAM endpoint", iam_endpoint, allow_http=allow_http)
    if not methods:
        raise ConfigError(
            f"{where}: no GES credentials; set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (recommended), "
            "or GES_IAM_DOMAIN, GES_IAM_USER and GES_IAM_PASSWORD, or GES_TOKEN"
        )
    if len(methods) > 1:
        raise ConfigError(f"{where}: credentials for several methods ({', '.join(methods)}); keep exactly one")
    return ProjectSettings(
        alias=alias,
        project_id=project_id,
        endpoint=url,
        region=region,
        auth=methods[0],
        token=token,
        ak=ak,
        sk=sk,
        iam_endpoint=iam_endpoint.rstrip("/") if iam_endpoint else None,
        iam_domain=iam_domain,
        iam_user=iam_user,
        iam_password=iam_password,
    )


@dataclass(frozen=True, slots=True)
class Config:
    """The validated whole: settings, the GES projects and config-file subscriptions."""

    settings: Settings
    projects: tuple[ProjectSettings, ...]
    subscriptions: tuple[Subscription, ...]
    #: ``GES_BOT_OPS_CHANNEL``, else ``[ops] channel`` of the config file, else ``None``.
    ops_channel: str | None = None
    #: ``GES_BOT_OPS_SINKS``, else ``[ops] sinks``: the sinks told of each incident's start and end.
    ops_sinks: tuple[str, ...] = ()
    #: ``GES_BOT_OPS_LOCALE``, else ``[ops] locale``, else English.
    ops_locale: Locale = "en"
    #: ``[[digests]]`` of the config file (read-only in Slack).
    digests: tuple[DigestSchedule, ...] = ()
    sinks: tuple[SinkSettings, ...] = ()

    def sink(self, name: str) -> SinkSettings:
        for s in self.sinks:
            if s.name == name:
                return s
        raise KeyError(name)

    def project(self, alias: str) -> ProjectSettings:
        for p in self.projects:
            if p.alias == alias:
                return p
        raise KeyError(alias)


def _read_file(path: Path) -> _ConfigFile:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"GES_BOT_CONFIG names {path}, which does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return _ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc)}") from None


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read :class:`Settings` from ``env`` (default: the process environment)."""
    source = dict(os.environ if env is None else env)
    try:
        # Settings reads os.environ itself; pass values explicitly so tests can inject an env.
        fields = {}
        for name, info in Settings.model_fields.items():
            alias = info.validation_alias
            names = alias.choices if isinstance(alias, AliasChoices) else [alias]
            for a in names:
                if isinstance(a, str) and a in source and source[a] != "":
                    fields[name] = source[a]
                    break
        return Settings.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError("invalid settings: " + _explain_settings(exc)) from None


def _explain_settings(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        info = Settings.model_fields.get(name)
        alias = info.validation_alias if info else None
        env_name = alias.choices[0] if isinstance(alias, AliasChoices) else alias
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(
            f"{env_name or name}: {msg} (got {err.get('input')!r})"
            if "secret" not in name and "password" not in name and "token" not in name
            else f"{env_name or name}: {msg}"
        )
    return "; ".join(parts)


def load_config(env: Mapping[str, str] | None = None, *, require_ges: bool = True) -> Config:
    """Validate everything needed to run. ``require_ges=False`` allows zero projects (e.g. for
    commands that only touch the database)."""
    source = dict(os.environ if env is None else env)
    settings = load_settings(source)
    # The bot token goes to the Slack API URL with every call.
    check_scheme("environment", "SLACK_API_URL", settings.slack_api_url, allow_http=settings.allow_http)
    file = _read_file(settings.config_file) if settings.config_file else _ConfigFile()
    projects: list[ProjectSettings] = []
    env_has_project = any(
        source.get(k) for k in ("GES_ENDPOINT", "GES_REGION", "GES_PROJECT_ID", "GES_TOKEN", "HUAWEICLOUD_SDK_AK")
    )
    if file.projects and env_has_project and source.get("GES_PROJECT_ID"):
        raise ConfigError(
            "both GES_PROJECT_ID and [[projects]] in GES_BOT_CONFIG are set; declare every project in the file "
            "(credentials may still come from the environment via token_env / ak_env / sk_env)"
        )
    if file.projects:
        seen: set[str] = set()
        for i, t in enumerate(file.projects):
            where = f"{settings.config_file} [[projects]] #{i + 1} ({t.alias!r})"
            if t.alias in seen:
                raise ConfigError(f"{where}: alias {t.alias!r} is used twice; aliases must be unique")
            seen.add(t.alias)
            pid = t.project_id
            if t.project_id_env:
                pid = source.get(t.project_id_env)
            projects.append(
                _build_project(
                    where,
                    t.alias,
                    pid,
                    t.endpoint,
                    t.region,
                    _env_secret(t, "token", source),
                    _env_secret(t, "ak", source),
                    _env_secret(t, "sk", source),
                    t.iam_endpoint,
                    t.iam_domain,
                    t.iam_user,
                    _env_secret(t, "iam_password", source),
                    allow_http=settings.allow_http,
                )
            )
    elif env_has_project or require_ges:
        s = settings
        projects.append(
            _build_project(
                "environment",
                s.ges_project_alias,
                s.ges_project_id,
                s.ges_endpoint,
                s.ges_region,
                s.ges_token,
                s.ges_ak,
                s.ges_sk,
                s.ges_iam_endpoint,
                s.ges_iam_domain,
                s.ges_iam_user,
                s.ges_iam_password,
                allow_http=s.allow_http,
            )
        )
    aliases = {p.alias for p in projects}
    sinks = _build_sinks(settings.config_file, file.sinks, source)
    sink_names = {s.name for s in sinks}
    subs: list[Subscription] = []
    for i, st in enumerate(file.subscriptions):
        where = f"{settings.config_file} [[subscriptions]] #{i + 1}"
        if (st.channel is None) == (st.sink is None):
            raise ConfigError(
                f'{where}: name either a Slack channel (channel = "C…") or a sink (sink = "…"), one of them'
            )
        if st.sink is not None and st.locale is not None:
            raise ConfigError(f"{where}: a sink's language is its own `locale` in [[sinks]], not the subscription's")
        if st.sink is not None and st.sink not in sink_names:
            raise ConfigError(
                f"{where}: sink {st.sink!r} is not a configured [[sinks]] name ({', '.join(sorted(sink_names)) or 'none'})"
            )
        channel = st.channel if st.channel is not None else sink_target(st.sink or "")
        try:
            kinds = kinds_from_words(st.statuses)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if st.project is not None and st.project not in aliases:
            raise ConfigError(
                f"{where}: project {st.project!r} is not a configured alias ({', '.join(sorted(aliases)) or 'none'})"
            )
        subs.append(
            Subscription(
                id=-(i + 1),
                channel=channel,
                graph_pattern=st.graph,
                kinds=kinds,
                project=st.project,
                job_names=frozenset(st.job_names),
                source="config",
                created_by="config",
                locale=st.locale or "en",
            )
        )
    digests: list[DigestSchedule] = []
    for i, dt in enumerate(file.digests):
        where = f"{settings.config_file} [[digests]] #{i + 1}"
        target = _digest_target(where, dt, sink_names)
        try:
            at, weekday, always = parse_schedule(dt.schedule)
            digests.append(
                DigestSchedule(
                    channel=target,
                    at=at,
                    weekday=weekday,
                    tz=dt.tz or settings.timezone,
                    always=always or dt.always,
                    created_by="config",
                    source="config",
                    locale=dt.locale,
                )
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return Config(
        settings=settings,
        projects=tuple(projects),
        subscriptions=tuple(subs),
        ops_channel=settings.ops_channel or file.ops.channel,
        ops_sinks=_ops_sinks(settings, file.ops, sink_names),
        ops_locale=settings.ops_locale or file.ops.locale or "en",
        digests=tuple(digests),
        sinks=sinks,
    )


def _digest_target(where: str, table: _DigestTable, sink_names: set[str]) -> str:
    """The digest outbox target of a ``[[digests]]`` table: its Slack channel, or ``sink:<name>``."""
    channel = table.channel.strip() if table.channel is not None else ""
    sink = table.sink.strip() if table.sink is not None else ""
    if bool(channel) == bool(sink):
        raise ConfigError(
            f'{where}: name either a Slack channel (channel = "C…") or a sink (sink = "<a [[sinks]] name>"), '
            "exactly one of them"
        )
    if channel:
        return channel
    if sink not in sink_names:
        raise ConfigError(
            f"{where}: sink {sink!r} is not a configured [[sinks]] name ({', '.join(sorted(sink_names)) or 'none'}); "
            "declare it as a [[sinks]] table or fix the name"
        )
    return sink_target(sink)


def _ops_sinks(settings: Settings, table: _OpsTable, sink_names: set[str]) -> tuple[str, ...]:
    """``GES_BOT_OPS_SINKS`` (comma separated), else ``[ops] sinks``: each a configured sink, once."""
    if settings.ops_sinks is not None and settings.ops_sinks.strip():
        where, names = "GES_BOT_OPS_SINKS", [n.strip() for n in settings.ops_sinks.split(",")]
    else:
        where, names = f"{settings.config_file} [ops] sinks", [n.strip() for n in table.sinks or ()]
    chosen: list[str] = []
    for name in names:
        if not name:
            raise ConfigError(f"{where}: an empty sink name; list [[sinks]] names separated by commas")
        if name not in sink_names:
            raise ConfigError(
                f"{where}: {name!r} is not a configured [[sinks]] name ({', '.join(sorted(sink_names)) or 'none'}); "
                "ops notices go only to sinks declared in GES_BOT_CONFIG"
            )
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def _sink_value(
    where: str, direct: SecretStr | None, ref: str | None, name: str, env: Mapping[str, str]
) -> SecretStr | None:
    if direct is not None and ref is not None:
        raise ConfigError(f"{where}: give either {name} or {name}_env, not both")
    if ref is not None:
        value = env.get(ref)
        if not value:
            raise ConfigError(f"{where}: {name}_env names ${ref}, which is not set; export it or fix the name")
        return SecretStr(value)
    return direct


def _build_sinks(path: Path | None, tables: list[_SinkTable], env: Mapping[str, str]) -> tuple[SinkSettings, ...]:
    """Validate ``[[sinks]]``: unique names, a URL of the platform's shape, a secret only where
    the platform signs. Messages name the sink, never its URL or secret."""
    sinks: list[SinkSettings] = []
    for i, t in enumerate(tables):
        where = f"{path} [[sinks]] #{i + 1} ({t.name!r})"
        if not SINK_NAME.match(t.name):
            raise ConfigError(
                f"{where}: name must be lower-case letters, digits, '-', '_' or '.', at most 58 characters"
            )
        if any(s.name == t.name for s in sinks):
            raise ConfigError(f"{where}: name {t.name!r} is used twice; sink names must be unique")
        url = _sink_value(where, t.url, t.url_env, "url", env)
        if url is None:
            raise ConfigError(
                f"{where}: no webhook URL; set url_env (recommended: the URL holds the bot's token) or url"
            )
        problem = url_problem(t.type, url.get_secret_value())
        if problem:
            raise ConfigError(f"{where}: {problem}")
        secret = _sink_value(where, t.secret, t.secret_env, "secret", env)
        problem = secret_problem(t.type, secret.get_secret_value() if secret is not None else None)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        sinks.append(SinkSettings(name=t.name, type=t.type, url=url, secret=secret, locale=t.locale))
    return tuple(sinks)
