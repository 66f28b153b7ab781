"""The dead man's switch, decided: which of the bot's own health problems are open right now.

This module is pure (no I/O, no clock: ``now`` is passed in). It owns *what counts as a problem*,
the sentence that says what is wrong and the sentence that says how to fix it; ``notify.ops``
owns telling people (the ops channel, the log, the notes that ``/gesjobs status``, the Home tab
and ``/healthz`` show), and the store owns the figures it reads (poll state, outbox, broken
subscriptions).

Problems (:class:`Finding`), each keyed by (kind, subject):

- ``blind`` / project alias — the project's polls have failed for longer than ``blind_after``
  (since the first failure of the run), GES refuses the credentials (at once: retrying cannot
  help), or no poll has completed for ``blind_after`` although none failed (no replica polls).
  Polls of a replica that just started get ``blind_after`` from its start before a project that
  has not been polled since counts as blind, so a restart after a long stop is not an incident.
- ``channel`` / channel id — Slack refuses the channel (subscriptions marked broken, or a
  config-file channel the delivery worker could not post to).
- ``slack`` / ``installation`` — Slack refuses the bot's token: delivery is paused everywhere.
- ``backlog`` / ``outbox`` — an alert has waited longer than ``blind_after`` to be delivered.
- ``dead`` / ``outbox`` — alerts were given up (dead rows) since the last such incident ended; it
  ends once no further alert has been given up for ``blind_after``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ges_bot.errors import (
    ApiError,
    AuthError,
    ConfigError,
    GesBotError,
    QueryError,
    ResponseError,
    StoreError,
    TransportError,
)
from ges_bot.store.api import PollState

__all__ = [
    "ErrorKind",
    "Finding",
    "IncidentKind",
    "Observation",
    "PriorIncident",
    "Sentence",
    "assess",
    "error_kind",
]


class ErrorKind(StrEnum):
    """What a failed poll ran into, as recorded in the poll state (``last_error_kind``)."""

    AUTH = "auth"  # 401/403: the credentials are refused
    REFUSED = "refused"  # another 4xx: GES refuses the query itself
    SERVER = "server"  # 408/429/5xx: GES (or its gateway) is in trouble
    UNREACHABLE = "unreachable"  # timeouts, refused or reset connections
    UNREADABLE = "unreadable"  # GES answered something we cannot read
    DATABASE = "database"  # our own database
    CONFIG = "config"
    BUG = "bug"  # anything else: a bug of ours


def error_kind(exc: BaseException) -> ErrorKind:
    """The :class:`ErrorKind` of an exception a tick raised."""
    if isinstance(exc, AuthError):
        return ErrorKind.AUTH
    if isinstance(exc, ApiError):
        return ErrorKind.SERVER if exc.retryable else ErrorKind.REFUSED
    if isinstance(exc, QueryError):
        return ErrorKind.REFUSED
    if isinstance(exc, TransportError):
        return ErrorKind.UNREACHABLE
    if isinstance(exc, ResponseError):
        return ErrorKind.UNREADABLE
    if isinstance(exc, StoreError):
        return ErrorKind.DATABASE
    if isinstance(exc, ConfigError):
        return ErrorKind.CONFIG
    if isinstance(exc, GesBotError):
        return ErrorKind.BUG
    return ErrorKind.BUG


class IncidentKind(StrEnum):
    BLIND = "blind"
    CHANNEL = "channel"
    SLACK = "slack"
    BACKLOG = "backlog"
    DEAD = "dead"
    #: A group-bot sink (``[[sinks]]``) refuses the alerts: signature, keyword, IP, invalid webhook.
    SINK = "sink"


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence as the message catalogue knows it: its English ``msgid`` and the values put in
    (already words), so the ops messages can say it in the language of whoever reads them."""

    msgid: str
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def english(self) -> str:
        return self.msgid.format(**self.values) if self.values else self.msgid


@dataclass(frozen=True, slots=True)
class Finding:
    """One open problem: what is wrong (a sentence), how to fix it (a sentence), since when."""

    kind: IncidentKind
    subject: str
    cause: str
    fix: str
    since: datetime
    #: Figures to keep until the next round (e.g. the dead-row count); stored with the incident.
    detail: Mapping[str, Any] = field(default_factory=dict)
    #: ``cause`` and ``fix`` as catalogue sentences, to be said in another language.
    said: Mapping[str, Sentence] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.subject)

    @property
    def title(self) -> str:
        """A few words naming the problem, for headers and log lines."""
        return {
            IncidentKind.BLIND: f"project {self.subject} is blind",
            IncidentKind.CHANNEL: f"alerts cannot reach channel {self.subject}",
            IncidentKind.SLACK: "Slack refuses the bot",
            IncidentKind.BACKLOG: "alerts are not going out",
            IncidentKind.DEAD: "alerts were given up",
            IncidentKind.SINK: f"alerts cannot reach sink {self.subject}",
        }[self.kind]

    @property
    def sentence(self) -> str:
        """The whole problem in one line (plain text: the log, notes, ``/healthz``)."""
        return f"{self.title}: {self.cause} Fix: {self.fix}"


@dataclass(frozen=True, slots=True)
class PriorIncident:
    """What the decision needs to remember of an incident between rounds."""

    kind: str
    subject: str
    open: bool
    since: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything :func:`assess` looks at, read by the caller at ``now``."""

    now: datetime
    #: When this process started watching: a project unpolled since then is not blind before
    #: ``blind_after`` has passed from it.
    started_at: datetime
    blind_after: timedelta
    #: Project alias → its auth method (``aksk``, ``password``, ``token``), for the fix.
    projects: Mapping[str, str]
    polls: Sequence[PollState]
    #: Channel id → the Slack error that broke it (broken subscriptions, config-file channels).
    broken_channels: Mapping[str, str]
    outbox_pending: int = 0
    oldest_pending_at: datetime | None = None
    outbox_dead: int = 0
    #: Slack's refusal of the bot token, if delivery is paused for it.
    installation_error: str | None = None
    #: Sink name → why its group bot refuses the alerts (never its URL or secret).
    broken_sinks: Mapping[str, str] = field(default_factory=dict)


_AUTH_FIX: dict[str, Sentence] = {
    "token": Sentence(
        "GES_TOKEN is expired or wrong (tokens last 24 h): set a fresh one, or better switch to "
        "AK/SK (HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK), then restart the bot."
    ),
    "aksk": Sentence(
        "check HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (an access key of a user with GES permissions, "
        "not deleted or disabled) and that the bot's host clock is right (signatures more than 15 min off are "
        "refused), then restart the bot; `ges-bot check` tests them."
    ),
    "password": Sentence(
        "check GES_IAM_DOMAIN (the account name), GES_IAM_USER and GES_IAM_PASSWORD (not expired, "
        "user not locked), then restart the bot; `ges-bot check` tests them."
    ),
}

_POLL_FIX: dict[ErrorKind, Sentence] = {
    ErrorKind.SERVER: Sentence(
        "GES itself is failing: check Huawei Cloud's service health for GES in this region. "
        "Nothing to do on the bot's side; it retries every interval and alerts what it missed once GES answers."
    ),
    ErrorKind.UNREACHABLE: Sentence(
        "check GES_ENDPOINT / GES_REGION, DNS, proxies and firewalls from the bot's host "
        "(`ges-bot check` tests the connection); the bot catches up once GES answers."
    ),
    ErrorKind.REFUSED: Sentence(
        "GES refuses the bot's query: run `ges-bot check` and see the bot's log; "
        "the project id must belong to the endpoint's region."
    ),
    ErrorKind.UNREADABLE: Sentence(
        "GES answers something that is not its job list (a proxy page?): check "
        "GES_ENDPOINT and any proxy in between; see the bot's log."
    ),
    ErrorKind.DATABASE: Sentence(
        "the bot cannot write to its database: check GES_BOT_DATABASE_URL and the database server; see the bot's log."
    ),
    ErrorKind.CONFIG: Sentence("fix the configuration named in the bot's log and restart it."),
    ErrorKind.BUG: Sentence("see the bot's log for the traceback and report it; restarting the bot may help."),
}


def _finding(
    kind: IncidentKind,
    subject: str,
    cause: Sentence,
    fix: Sentence,
    since: datetime,
    detail: Mapping[str, Any] | None = None,
) -> Finding:
    return Finding(kind, subject, cause.english, fix.english, since, dict(detail or {}), {"cause": cause, "fix": fix})


def _blind(obs: Observation, poll: PollState | None, alias: str) -> Finding | None:
    now, after = obs.now, obs.blind_after
    error = (poll.last_error if poll else None) or "no error recorded"
    failing = poll is not None and poll.consecutive_failures > 0
    kind = ErrorKind(poll.last_error_kind) if poll and poll.last_error_kind in set(ErrorKind) else ErrorKind.BUG
    if failing and poll is not None and kind is ErrorKind.AUTH:
        since = poll.failing_since or poll.last_attempt_at or now
        return _finding(
            IncidentKind.BLIND,
            alias,
            Sentence("GES refuses the bot's credentials ({error}); no job is being watched.", {"error": error}),
            _AUTH_FIX.get(obs.projects.get(alias, ""), _AUTH_FIX["aksk"]),
            since,
            {"error_kind": kind.value, "failures": poll.consecutive_failures},
        )
    if failing and poll is not None:
        since = poll.failing_since or poll.last_attempt_at or now
        # A run of failures that began before this process started counts from the start, like
        # an unpolled project: whoever failed before may be long gone.
        if now - max(since, obs.started_at) > after:
            return _finding(
                IncidentKind.BLIND,
                alias,
                Sentence(
                    "its polls of GES keep failing ({failures} in a row; last: {error}); "
                    "failures of its jobs are not being alerted.",
                    {"failures": f"{poll.consecutive_failures:,}", "error": error},
                ),
                _POLL_FIX[kind],
                since,
                {"error_kind": kind.value, "failures": poll.consecutive_failures},
            )
        return None
    last = poll.last_success_at if poll else None
    if now - max(last or obs.started_at, obs.started_at) > after:
        return _finding(
            IncidentKind.BLIND,
            alias,
            Sentence(
                "no poll of GES has completed for longer than GES_BOT_BLIND_AFTER, though none failed: no "
                "replica is polling it (stuck or starved of its lease)."
            ),
            Sentence("see the bot's log and `/healthz` of each replica; restart the bot."),
            last or obs.started_at,
            {"error_kind": None, "failures": 0},
        )
    return None


def assess(obs: Observation, prior: Mapping[tuple[str, str], PriorIncident]) -> list[Finding]:
    """The problems open at ``obs.now``, given what the previous round remembered (``prior``)."""
    findings: list[Finding] = []
    polls = {p.project: p for p in obs.polls}
    for alias in obs.projects:
        blind = _blind(obs, polls.get(alias), alias)
        if blind is not None:
            findings.append(blind)

    def since_of(kind: IncidentKind, subject: str) -> datetime:
        before = prior.get((kind.value, subject))
        return before.since if before is not None and before.open else obs.now

    for channel, error in sorted(obs.broken_channels.items()):
        findings.append(
            _finding(
                IncidentKind.CHANNEL,
                channel,
                Sentence("Slack refuses to post there ({error}); its alerts are given up.", {"error": error}),
                Sentence(
                    "unarchive the channel or `/invite @ges-bot` to it (private channels), or move the "
                    "subscriptions elsewhere; then `/gesjobs subscribe …` there again."
                ),
                since_of(IncidentKind.CHANNEL, channel),
            )
        )
    for sink, why in sorted(obs.broken_sinks.items()):
        findings.append(
            _finding(
                IncidentKind.SINK,
                sink,
                Sentence(
                    "the group bot refuses the alerts ({why}); they wait in the outbox, nothing is lost.", {"why": why}
                ),
                Sentence(
                    "fix the bot's security settings (signature secret, keywords, IP allow-list) or copy its "
                    "webhook URL again into the sink's [[sinks]] table, restart, and run `ges-bot check --send-test`."
                ),
                since_of(IncidentKind.SINK, sink),
            )
        )
    if obs.installation_error:
        findings.append(
            _finding(
                IncidentKind.SLACK,
                "installation",
                Sentence(
                    "Slack refuses the bot's token ({error}); delivery is paused, nothing is lost.",
                    {"error": obs.installation_error},
                ),
                Sentence(
                    "reinstall the app (or grant the missing scope) and set SLACK_BOT_TOKEN to its Bot User OAuth "
                    "Token; delivery resumes by itself once Slack accepts it."
                ),
                since_of(IncidentKind.SLACK, "installation"),
            )
        )
    if obs.outbox_pending and obs.oldest_pending_at is not None and obs.now - obs.oldest_pending_at > obs.blind_after:
        findings.append(
            _finding(
                IncidentKind.BACKLOG,
                "outbox",
                Sentence(
                    "{pending} alert(s) are waiting to be delivered; Slack keeps failing or refusing them.",
                    {"pending": f"{obs.outbox_pending:,}"},
                ),
                Sentence("see the bot's log for Slack's answers; check that Slack is up and reachable from the bot."),
                obs.oldest_pending_at,
                {"pending": obs.outbox_pending},
            )
        )
    dead = _dead(obs, prior.get((IncidentKind.DEAD.value, "outbox")))
    if dead is not None:
        findings.append(dead)
    return findings


def _dead(obs: Observation, before: PriorIncident | None) -> Finding | None:
    detail = dict(before.detail) if before is not None else {}
    baseline = int(detail.get("baseline", 0))
    if before is None or not before.open:
        # Closed (or never seen): only rows given up since it ended count.
        baseline = int(detail.get("dead", 0)) if before is not None else 0
        if obs.outbox_dead <= baseline:
            return None
        since, grew_at = obs.now, obs.now
    else:
        since = before.since
        grew_at = _time(detail.get("grew_at")) or before.since
        if obs.outbox_dead > int(detail.get("dead", 0)):
            grew_at = obs.now
        elif obs.now - grew_at > obs.blind_after:
            return None
    count = obs.outbox_dead - baseline
    return _finding(
        IncidentKind.DEAD,
        "outbox",
        Sentence(
            "{count} alert(s) were given up after failing again and again ({dead} in all).",
            {"count": f"{count:,}", "dead": f"{obs.outbox_dead:,}"},
        ),
        Sentence(
            "see the bot's log (ERROR lines name each alert and Slack's answer); fix the channel or message it names."
        ),
        since,
        {"baseline": baseline, "dead": obs.outbox_dead, "grew_at": grew_at.isoformat()},
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
