"""The ``/gesjobs`` command language: text → a typed command, or a :class:`UsageError` that says how
to fix it.

Owns the grammar, the help text, time-range specs (:class:`TimeRange`), their resolution in the
asker's time zone (:func:`resolve`) and the GES day-granular filter window that covers a range
(:func:`ges_date_window`). Pure: no clock (``now`` is an argument), no I/O, no Slack, no database.
:func:`parse` never raises on any text; every problem becomes a :class:`UsageError` value.

Must not: render Block Kit (``slackapp.views`` does), query GES, or know which projects are
configured (the handler checks ``project`` aliases against the configuration).

Grammar in short (case-insensitive; words in any order where that is unambiguous)::

    (empty) | help [topic]
    [jobs] {status} {time} [graph P] [type NAME] [project A] [limit N] [public] [P]
    job ID [project A] [public]
    subscribe P {sub-status} [project A] [lang L]   |  unsubscribe P [project A]  |  subscriptions
    mute P DURATION  |  unmute P  |  status
    stats [time] [graph P] [project A] [by graph | duration] [public]
    digest daily HH:MM [always] [lang L]  |  digest weekly DAY HH:MM [always] [lang L]  |  digest off  |  digest

A bare word that is not a keyword is read as the graph ``P`` — unless it is close to a keyword,
in which case it is far more likely a typo and the answer suggests the keyword. ``graph P``
always means a graph, even one named like a keyword.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

# kinds_from_words keeps one vocabulary of subscription words: config-file subscriptions and
# Slack subscriptions must accept exactly the same words.
from ges_bot.domain import ACTIVE_STATUSES, LANGUAGES, EventKind, JobStatus, kinds_from_words, language_of

__all__ = [
    "DEFAULT_LIMIT",
    "HELP_TEXT",
    "HELP_TOPICS",
    "MAX_LAST",
    "MAX_LIMIT",
    "MAX_MUTE",
    "ChartKind",
    "Command",
    "Digest",
    "DigestOff",
    "DigestShow",
    "Help",
    "JobDetail",
    "ListSubscriptions",
    "Mute",
    "Query",
    "RangeKind",
    "Stats",
    "Status",
    "Subscribe",
    "TimeRange",
    "Unmute",
    "Unsubscribe",
    "UsageError",
    "command_text",
    "ges_date_window",
    "help_text",
    "parse",
    "resolve",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
#: Longest ``mute``: a forgotten mute must not silence a graph for ever.
MAX_MUTE = timedelta(days=30)
#: Longest ``last …`` range; GES does not document how long it keeps jobs.
MAX_LAST = timedelta(days=366)
#: Longer text is refused before parsing, which bounds the work done on any input.
MAX_TEXT = 1000

RangeKind: TypeAlias = Literal["today", "yesterday", "last", "this_week", "since", "between"]
#: ``stats`` charts: jobs per day by outcome; failure rate per graph; duration percentiles per job type.
ChartKind: TypeAlias = Literal["daily", "graphs", "durations"]
#: ``stats`` without a time: the last 7 days.
DEFAULT_STATS_SPAN = timedelta(days=7)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK_RE = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A time range as the user said it, resolved later with :func:`resolve` in the asker's zone.

    ``span`` is set for ``last``; ``start_day`` for ``since`` and ``between``; ``end_day`` (the
    last day, inclusive) for ``between``.
    """

    kind: RangeKind
    span: timedelta | None = None
    start_day: date | None = None
    end_day: date | None = None

    def __post_init__(self) -> None:
        if self.kind == "last" and (self.span is None or self.span <= timedelta(0)):
            raise ValueError("a 'last' range needs a positive span")
        if self.kind in ("since", "between") and self.start_day is None:
            raise ValueError(f"a {self.kind!r} range needs start_day")
        if self.kind == "between" and (self.end_day is None or self.start_day is None or self.end_day < self.start_day):
            raise ValueError("a 'between' range needs end_day on or after start_day")

    @classmethod
    def today(cls) -> TimeRange:
        return cls("today")

    @classmethod
    def yesterday(cls) -> TimeRange:
        return cls("yesterday")

    @classmethod
    def this_week(cls) -> TimeRange:
        return cls("this_week")

    @classmethod
    def last(cls, span: timedelta) -> TimeRange:
        return cls("last", span=span)

    @classmethod
    def since(cls, day: date) -> TimeRange:
        return cls("since", start_day=day)

    @classmethod
    def between(cls, first: date, last: date) -> TimeRange:
        return cls("between", start_day=first, end_day=last)

    def describe(self) -> str:
        """The words that say this range (``parse`` reads them back to an equal range)."""
        if self.kind == "today":
            return "today"
        if self.kind == "yesterday":
            return "yesterday"
        if self.kind == "this_week":
            return "this week"
        if self.kind == "last":
            assert self.span is not None
            return f"last {_duration_text(self.span)}"
        if self.kind == "since":
            assert self.start_day is not None
            return f"since {self.start_day.isoformat()}"
        assert self.start_day is not None
        assert self.end_day is not None
        return f"{self.start_day.isoformat()}..{self.end_day.isoformat()}"


@dataclass(frozen=True, slots=True)
class Query:
    """List jobs. ``statuses`` uses the response vocabulary (:class:`JobStatus`); empty means all.
    ``range`` ``None`` means no time restriction (the default for ``running``/``pending``)."""

    statuses: frozenset[str] = frozenset()
    range: TimeRange | None = None
    graph: str | None = None
    job_name: str | None = None
    project: str | None = None
    limit: int = DEFAULT_LIMIT
    public: bool = False


@dataclass(frozen=True, slots=True)
class JobDetail:
    """Show one job."""

    job_id: str
    project: str | None = None
    public: bool = False


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Alert this channel about graphs matching ``pattern``. ``statuses`` are the user's words
    (lower-cased, as typed); empty means the default (failed, partially failed and unknown
    outcomes). ``locale``: the language of the alerts (``en`` or ``zh-CN``)."""

    pattern: str
    statuses: tuple[str, ...] = ()
    project: str | None = None
    locale: str = "en"

    @property
    def kinds(self) -> frozenset[EventKind]:
        return kinds_from_words(self.statuses)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    pattern: str
    project: str | None = None


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    pass


@dataclass(frozen=True, slots=True)
class Mute:
    pattern: str
    duration: timedelta


@dataclass(frozen=True, slots=True)
class Unmute:
    pattern: str


@dataclass(frozen=True, slots=True)
class Status:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    """Show help; ``topic`` is one of :data:`HELP_TOPICS` or ``None`` for everything."""

    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """Chart and summarise jobs from the store: ``chart`` picks the picture (jobs per day by
    outcome by default; ``by graph``: failure rate per graph; ``duration``: p50/p95 per job type)."""

    range: TimeRange = TimeRange("last", span=DEFAULT_STATS_SPAN)
    graph: str | None = None
    project: str | None = None
    chart: ChartKind = "daily"
    public: bool = False


@dataclass(frozen=True, slots=True)
class Digest:
    """Post a digest to this channel every day (``weekday`` ``None``) or every week on
    ``weekday`` (0 = Monday) at ``at`` in the subscriber's zone; ``always`` posts even when
    nothing ran; ``locale`` is its language (``en`` or ``zh-CN``)."""

    at: time
    weekday: int | None = None
    always: bool = False
    locale: str = "en"

    @property
    def schedule(self) -> str:
        """The schedule in words that :func:`parse` reads back (``daily 09:00``, ``weekly mon 09:00``)."""
        clock = f"{self.at.hour:02d}:{self.at.minute:02d}"
        if self.weekday is None:
            return f"daily {clock}"
        return f"weekly {_WEEKDAYS[self.weekday]} {clock}"


@dataclass(frozen=True, slots=True)
class DigestOff:
    pass


@dataclass(frozen=True, slots=True)
class DigestShow:
    pass


Command: TypeAlias = (
    Query
    | JobDetail
    | Subscribe
    | Unsubscribe
    | ListSubscriptions
    | Mute
    | Unmute
    | Status
    | Help
    | Stats
    | Digest
    | DigestOff
    | DigestShow
)


@dataclass(frozen=True, slots=True)
class UsageError:
    """What was wrong with the text, as a sentence for the user (mrkdwn with code spans; untrusted
    parts are echoed but not escaped — rendering escapes). ``suggestion`` is a corrected command
    text that parses, when one is known; ``topic`` names the help section that applies."""

    message: str
    suggestion: str | None = None
    topic: str | None = None


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

_QUERY_STATUS: dict[str, str] = {
    "failed": JobStatus.FAILED.value,
    "partiallyfailed": JobStatus.PARTIALLY_FAILED.value,
    "partially-failed": JobStatus.PARTIALLY_FAILED.value,
    "partially_failed": JobStatus.PARTIALLY_FAILED.value,
    "partial": JobStatus.PARTIALLY_FAILED.value,
    "success": JobStatus.SUCCESS.value,
    "succeeded": JobStatus.SUCCESS.value,
    "running": JobStatus.RUNNING.value,
    "pending": JobStatus.PENDING.value,
    "waiting": JobStatus.PENDING.value,
}
# Subscription words; the same as ges_bot.config accepts (kinds_from_words validates them).
_SUB_STATUS = (
    "failed",
    "partial",
    "partiallyfailed",
    "partially_failed",
    "partially-failed",
    "succeeded",
    "success",
    "recovered",
    "stuck",
    "unknown",
    "unknown_outcome",
    "unknown-outcome",
    "all",
)
#: ``lang zh-CN`` after a subscription or a digest.
_LANG_WORDS = ("lang", "language")
_ANYTIME = ("anytime", "ever")
_RANGE_WORDS = ("today", "yesterday", "last", "past", "this", "week", "since", *_ANYTIME)
_CLAUSES = ("graph", "graphs", "type", "project", "limit", "public")
_QUERY_FILLERS = ("jobs", "show")
_HELP_WORDS = ("help", "?", "-h", "--help", "usage")
_VERBS = ("job", "subscribe", "unsubscribe", "subscriptions", "mute", "unmute", "status", "stats", "digest")
_VERB_ALIASES = {"sub": "subscribe", "unsub": "unsubscribe", "subs": "subscriptions"}

#: Every word with a meaning somewhere; a pattern spelled like one needs ``graph`` before it.
_KEYWORDS: frozenset[str] = frozenset(
    {
        *_QUERY_STATUS,
        *_SUB_STATUS,
        *_LANG_WORDS,
        *_RANGE_WORDS,
        *_CLAUSES,
        *_QUERY_FILLERS,
        *_HELP_WORDS,
        *_VERBS,
        *_VERB_ALIASES,
        "partially",
        "to",
        "from",
        "for",
        "all",
    }
)
_ALL_KEYWORDS = sorted(_KEYWORDS)
_QUERY_VOCAB = sorted({*_QUERY_STATUS, "all", *_RANGE_WORDS, *_CLAUSES, *_QUERY_FILLERS, *_VERBS, "help"})

_HELP_ALIASES: dict[str, str] = {
    "jobs": "jobs",
    "query": "jobs",
    "queries": "jobs",
    "find": "jobs",
    "list": "jobs",
    "job": "job",
    "detail": "job",
    "subscribe": "subscribe",
    "sub": "subscribe",
    "unsubscribe": "subscribe",
    "subscriptions": "subscribe",
    "alerts": "subscribe",
    "mute": "mute",
    "unmute": "mute",
    "times": "times",
    "time": "times",
    "ranges": "times",
    "dates": "times",
    "status": "status",
    "stats": "stats",
    "chart": "stats",
    "charts": "stats",
    "digest": "digest",
    "digests": "digest",
}

_PATTERN_RE = re.compile(r"[A-Za-z0-9_.*?\-]{1,128}", re.ASCII)
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,128}", re.ASCII)
_NUMBER_RE = re.compile(r"[0-9]{1,6}", re.ASCII)
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", re.ASCII)
_UNITS: dict[str, timedelta] = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), timedelta(weeks=1)),
}
_DURATION_RE = re.compile(r"([0-9]{1,5})(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + ")", re.ASCII)
_SLACK_MARKUP_RE = re.compile(r"<[^<>]*>")
_SPACED_DAYS_RE = re.compile(r"([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})\s*\.\.\s*([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})", re.ASCII)
_KEY_VALUE_RE = re.compile(r"(graph|type|project|limit)[:=](.+)", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Help
# --------------------------------------------------------------------------------------------

_HELP_JOBS = """\
*Find jobs* — only you see the answer; add `public` to post it in the channel.
• `/gesjobs failed today` — today's failed jobs
• `/gesjobs partial yesterday graph prod-*` — partially failed jobs of graphs matching `prod-*`
• `/gesjobs running` — jobs running right now
• `/gesjobs failed last 7d type ImportGraph project prod limit 50 public`
• `/gesjobs all since 2026-11-01` · `/gesjobs success 2026-11-01..2026-11-07`
Statuses: `failed`, `partial` (or `partiallyFailed`), `success` (or `succeeded`), `running`, `pending` (or `waiting`), `all`.
Also: `graph <name or pattern>`, `type <job name>`, `project <alias>`, `limit <1–100>` (default 20), `public`. Words may come in any order."""

_HELP_TIMES = """\
*Times* are in your Slack time zone: `today`, `yesterday`, `this week` (since Monday), `last 30m`, `last 24h`, `last 7d`, `last week`, `since 2026-11-01`, `2026-11-01..2026-11-07` (both days included), `anytime`.
Without a time, `running` and `pending` show the jobs active now, whenever they started; every other query shows today's jobs."""

_HELP_JOB = """\
*One job*
• `/gesjobs job ff80808167bb90340167bc3c7b5b022a` — its status, reason and every file of an import (add `project <alias>` when you watch several projects)"""

_HELP_SUBSCRIBE = """\
*Alerts in this channel*
• `/gesjobs subscribe prod-*` — alert here when a job of a graph matching `prod-*` fails, partially fails or ends in a status the bot does not know (`unknown`: it may be a failure)
• `/gesjobs subscribe movies failed succeeded stuck project prod` — choose what to hear about: `failed`, `partial`, `unknown`, `succeeded`, `recovered`, `stuck`, `all`
• `/gesjobs subscribe prod-* lang zh-CN` — the alerts in Chinese (`lang en`: English, the default)
• `/gesjobs unsubscribe prod-*`
• `/gesjobs subscriptions` — this channel's subscriptions"""

_HELP_MUTE = """\
*Quiet time*
• `/gesjobs mute prod-* 2h` — no alerts for graphs matching `prod-*` in this channel for a while (`30m`, `2h`, `1d`, up to 30d)
• `/gesjobs unmute prod-*`"""

_HELP_STATS = """\
*Charts*
• `/gesjobs stats` — jobs per day by outcome over the last 7 days, for the graphs this channel subscribes to (or all), with a summary
• `/gesjobs stats last 30d graph prod-* by graph` — failure rate per graph · `/gesjobs stats duration` — p50/p95 duration per job type
Also: any time range, `project <alias>`, `public`."""

_HELP_DIGEST = """\
*Digests in this channel*
• `/gesjobs digest daily 09:00` — every morning (your time zone): failures, stuck jobs, totals, flaky graphs and the chart
• `/gesjobs digest weekly mon 09:00` · add `always` to post even when nothing ran · add `lang zh-CN` for Chinese · `/gesjobs digest off` · `/gesjobs digest` shows it"""

_HELP_STATUS = """\
*The bot*
• `/gesjobs status` — the projects the bot watches and when it last heard from GES
• `/gesjobs help mute` — help on one topic: `jobs`, `times`, `job`, `subscribe`, `mute`, `stats`, `digest`, `status`"""

_HELP_NAMES = """\
Graph names and patterns use letters, digits, `_`, `-` and `.`, with `*` and `?` as wildcards. For a graph named like a keyword (say `today`), write `graph today`."""

#: Help sections by topic (``Help.topic``).
HELP_TOPICS: dict[str, str] = {
    "jobs": _HELP_JOBS + "\n" + _HELP_TIMES,
    "times": _HELP_TIMES,
    "job": _HELP_JOB,
    "subscribe": _HELP_SUBSCRIBE + "\n" + _HELP_NAMES,
    "mute": _HELP_MUTE + "\n" + _HELP_NAMES,
    "stats": _HELP_STATS + "\n" + _HELP_TIMES,
    "digest": _HELP_DIGEST,
    "status": _HELP_STATUS,
}

#: What users see for ``/gesjobs`` alone and ``/gesjobs help``.
HELP_TEXT = "\n\n".join(
    [
        "*`/gesjobs` — GES jobs from Slack*",
        _HELP_JOBS,
        _HELP_TIMES,
        _HELP_JOB,
        _HELP_SUBSCRIBE,
        _HELP_MUTE,
        _HELP_STATS,
        _HELP_DIGEST,
        _HELP_STATUS,
        _HELP_NAMES,
    ]
)


def help_text(topic: str | None) -> str:
    """The help for ``topic`` (a :data:`HELP_TOPICS` key), or all of it."""
    if topic is None:
        return HELP_TEXT
    return HELP_TOPICS.get(topic, HELP_TEXT)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class _Problem(Exception):
    """Internal: raised inside the parser, turned into a :class:`UsageError` by :func:`parse`."""

    def __init__(self, message: str, *, index: int | None = None, replacement: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.replacement = replacement


def parse(text: str) -> Command | UsageError:
    """Read ``/gesjobs`` text (as Slack sends it, ``&amp;``-escaped or not). Never raises."""
    prepared = _prepare(text)
    if isinstance(prepared, UsageError):
        return prepared
    result = _parse_tokens(prepared)
    if not isinstance(result, _Failure):
        return result
    suggestion = None
    if result.index is not None and result.replacement is not None:
        fixed = list(prepared)
        fixed[result.index] = result.replacement
        retry = _parse_tokens(fixed)
        if not isinstance(retry, _Failure):
            suggestion = " ".join(fixed)
    return UsageError(result.message, suggestion=suggestion, topic=result.topic)


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    topic: str | None
    index: int | None
    replacement: str | None


def _prepare(text: str) -> list[str] | UsageError:
    if len(text) > MAX_TEXT:
        return UsageError(
            f"That is {len(text)} characters; a `/gesjobs` command is at most {MAX_TEXT}. Try `/gesjobs help`.",
            topic=None,
        )
    # should_escape is false, yet Slack still HTML-escapes these three; `&` last so that a
    # literal "&lt;" the user typed (sent as "&amp;lt;") stays "&lt;".
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    markup = _SLACK_MARKUP_RE.search(text)
    if markup:
        return UsageError(
            f"`{_shown(markup.group(0))}` is a Slack mention or link, not a graph name — type the name as plain text, "
            "e.g. `/gesjobs failed graph prod-movies`.",
        )
    # "2026-11-01 .. 2026-11-07" → one token; only between days, so a pattern such as ".." survives.
    text = _SPACED_DAYS_RE.sub(r"\1..\2", text)
    tokens: list[str] = []
    for raw in text.split():
        kv = _KEY_VALUE_RE.fullmatch(raw)
        if kv:
            tokens.extend((kv.group(1), kv.group(2)))
        else:
            tokens.append(raw)
    return tokens


def _parse_tokens(tokens: list[str]) -> Command | _Failure:
    parser = _Parser(tokens)
    try:
        return parser.command()
    except _Problem as problem:
        return _Failure(problem.message, parser.topic, problem.index, problem.replacement)


def _shown(token: str) -> str:
    """A user's word as echoed inside a code span: short, and unable to close the span."""
    token = token.replace("`", "'")
    return token if len(token) <= 40 else token[:39] + "…"


def _closest(word: str, vocabulary: list[str] | tuple[str, ...]) -> str | None:
    matches = difflib.get_close_matches(word.lower(), vocabulary, n=1, cutoff=0.75)
    return matches[0] if matches else None


def _day(token: str) -> date | str | None:
    """A ``yyyy-mm-dd`` token → date; ``None`` if it is not date-shaped; a message if it is but is invalid."""
    m = _DATE_RE.fullmatch(token)
    if not m:
        return None
    year, month, day = (int(g) for g in m.groups())
    if not 1970 <= year <= 9998:
        return f"`{_shown(token)}`: the year must be between 1970 and 9998"
    try:
        return date(year, month, day)
    except ValueError:
        return f"`{_shown(token)}` is not a date; write days as `2026-11-01`"


def _duration_token(token: str) -> timedelta | None:
    m = _DURATION_RE.fullmatch(token.lower())
    if not m:
        return None
    return int(m.group(1)) * _UNITS[m.group(2)]


def _duration_text(span: timedelta) -> str:
    """``2h``, ``7d``, ``90m`` — minutes rounded up; ``parse`` reads it back."""
    minutes = -(-span // timedelta(minutes=1))
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _is_reserved(pattern: str) -> bool:
    """Whether a pattern would be read as something else (or taken for a typo) without ``graph``."""
    low = pattern.lower()
    return (
        low in _KEYWORDS
        or _closest(low, _ALL_KEYWORDS) is not None
        or _duration_token(low) is not None
        or _DATE_RE.fullmatch(low) is not None
        or ".." in low
        or _NUMBER_RE.fullmatch(low) is not None
    )


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.topic: str | None = None

    # -- cursor -------------------------------------------------------------------------------
    def more(self) -> bool:
        return self.pos < len(self.tokens)

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def peek_lower(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.tokens[i].lower() if i < len(self.tokens) else None

    # -- top level ----------------------------------------------------------------------------
    def command(self) -> Command:
        if not self.more():
            return Help()
        first = self.tokens[0].lower()
        first = _VERB_ALIASES.get(first, first)
        if first in _HELP_WORDS:
            self.pos = 1
            return self.help()
        if first in _VERBS:
            self.pos = 1
            self.topic = {"subscriptions": "subscribe", "unsubscribe": "subscribe", "unmute": "mute"}.get(first, first)
            if first == "job":
                return self.job()
            if first == "subscribe":
                return self.subscribe()
            if first == "unsubscribe":
                pattern, project = self.pattern_and_project("unsubscribe", fillers=("from",))
                return Unsubscribe(pattern, project)
            if first == "subscriptions":
                self.nothing_more("subscriptions")
                return ListSubscriptions()
            if first == "mute":
                return self.mute()
            if first == "unmute":
                pattern, _ = self.pattern_and_project("unmute", fillers=(), allow_project=False)
                return Unmute(pattern)
            if first == "stats":
                return self.stats()
            if first == "digest":
                return self.digest()
            self.nothing_more("status")
            return Status()
        self.topic = "jobs"
        return self.query()

    def help(self) -> Help:
        self.topic = None
        if not self.more():
            return Help()
        i = self.pos
        word = self.take()
        topic = _HELP_ALIASES.get(word.lower())
        if topic is None:
            close = _closest(word, list(_HELP_ALIASES))
            topics = ", ".join(f"`{t}`" for t in HELP_TOPICS)
            if close:
                raise _Problem(
                    f"no help on `{_shown(word)}` — did you mean `{close}`? Topics: {topics}.",
                    index=i,
                    replacement=close,
                )
            raise _Problem(f"no help on `{_shown(word)}`. Topics: {topics}.")
        if self.more():
            raise _Problem(f"`help` takes one topic, e.g. `/gesjobs help {topic}`.", index=None)
        return Help(topic)

    def nothing_more(self, verb: str) -> None:
        if self.more():
            extra = " ".join(self.tokens[self.pos :])
            raise _Problem(f"`{verb}` takes no other words (got `{_shown(extra)}`).")

    # -- shared pieces ------------------------------------------------------------------------
    def argument(self, keyword: str, example: str) -> tuple[int, str]:
        if not self.more():
            raise _Problem(f"`{keyword}` needs a value, e.g. `{example}`.")
        i = self.pos
        return i, self.take()

    def pattern_argument(self, keyword: str, current: str | None) -> str:
        if current is not None:
            raise _Problem(f"give one graph name or pattern, not `{_shown(current)}` and another.")
        _, value = self.argument(keyword, f"{keyword} prod-*")
        if not _PATTERN_RE.fullmatch(value):
            raise _Problem(
                f"`{_shown(value)}` can't be a graph name: use letters, digits, `_`, `-` and `.`, "
                "with `*` and `?` as wildcards (e.g. `prod-*`)."
            )
        return value

    def project_argument(self, current: str | None) -> str:
        if current is not None:
            raise _Problem("`project` is given twice; give it once.")
        return self.name_argument("project", "a project alias", "prod")

    def name_argument(self, keyword: str, what: str, example: str) -> str:
        _, value = self.argument(keyword, f"{keyword} {example}")
        if not _NAME_RE.fullmatch(value):
            raise _Problem(
                f"`{_shown(value)}` can't be {what}: use letters, digits, `_`, `-` and `.` (e.g. `{keyword} {example}`)."
            )
        return value

    def bare_word(self, index: int, token: str, vocabulary: list[str] | tuple[str, ...], context: str) -> None:
        """Complain about a word that is neither a keyword here nor usable as a graph pattern."""
        low = token.lower()
        close = _closest(low, vocabulary)
        graph_hint = f" (If `{_shown(token)}` is a graph, write `graph {_shown(token)}`.)"
        if close is not None and close != low:
            raise _Problem(
                f"unknown word `{_shown(token)}` — did you mean `{close}`?"
                + (graph_hint if _PATTERN_RE.fullmatch(token) else ""),
                index=index,
                replacement=close,
            )
        if low in _VERBS or low in _VERB_ALIASES or low in _HELP_WORDS:
            verb = _VERB_ALIASES.get(low, low)
            raise _Problem(
                f"`{_shown(token)}` must come first, as in `/gesjobs {verb} …`." + graph_hint,
            )
        if low in _KEYWORDS:
            raise _Problem(f"`{_shown(token)}` doesn't go with {context}." + graph_hint)
        if not _PATTERN_RE.fullmatch(token):
            raise _Problem(
                f"I don't understand `{_shown(token)}`. Graph names use letters, digits, `_`, `-` and `.`, "
                "with `*` and `?` as wildcards. Try `/gesjobs help`."
            )

    def duration_here(self) -> timedelta | None:
        """Read a duration at the cursor: ``2h``, ``2 hours``; ``None`` (nothing consumed) if absent."""
        low = self.peek_lower()
        if low is None:
            return None
        span = _duration_token(low)
        if span is not None:
            self.pos += 1
            return span
        unit = self.peek_lower(1)
        if _NUMBER_RE.fullmatch(low) and len(low) <= 5 and unit in _UNITS:
            self.pos += 2
            return int(low) * _UNITS[unit]
        return None

    # -- jobs ---------------------------------------------------------------------------------
    def query(self) -> Query:
        statuses: set[str] = set()
        time_range: TimeRange | None = None
        range_words: str | None = None
        graph: str | None = None
        job_name: str | None = None
        project: str | None = None
        limit: int | None = None
        public = False

        def once(name: str, current: object) -> None:
            if current is not None:
                raise _Problem(f"`{name}` is given twice; give it once.")

        while self.more():
            i = self.pos
            token = self.take()
            low = token.lower()
            if low in _QUERY_FILLERS or low == "all":
                # "all" alone means every status; with statuses ("all failed today") it is a quantifier.
                continue
            if low == "partially" and self.peek_lower() in ("failed", "fail"):
                self.pos += 1
                statuses.add(JobStatus.PARTIALLY_FAILED.value)
                continue
            if low in _QUERY_STATUS:
                statuses.add(_QUERY_STATUS[low])
                continue
            found = self.time_range(i, token)
            if found is not None:
                words = " ".join(self.tokens[i : self.pos])
                if range_words is not None:
                    raise _Problem(f"two time ranges, `{_shown(range_words)}` and `{_shown(words)}`; give one.")
                time_range, range_words = found[0], words
                continue
            if low in ("graph", "graphs"):
                graph = self.pattern_argument("graph", graph)
            elif low == "type":
                once("type", job_name)
                job_name = self.name_argument("type", "a job name", "ImportGraph")
            elif low == "project":
                project = self.project_argument(project)
            elif low == "limit":
                once("limit", limit)
                _, value = self.argument("limit", "limit 50")
                if not _NUMBER_RE.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
                    raise _Problem(f"`limit` takes a number from 1 to {MAX_LIMIT} (got `{_shown(value)}`).")
                limit = int(value)
            elif low == "public":
                public = True
            else:
                self.bare_word(i, token, _QUERY_VOCAB, "a job list")
                if graph is not None:
                    raise _Problem(
                        f"two graphs, `{_shown(graph)}` and `{_shown(token)}`; give one name or a pattern like `prod-*`."
                    )
                graph = token
        if range_words is None and not (statuses and statuses <= ACTIVE_STATUSES):
            time_range = TimeRange.today()
        return Query(
            statuses=frozenset(statuses),
            range=time_range,
            graph=graph,
            job_name=job_name,
            project=project,
            limit=DEFAULT_LIMIT if limit is None else limit,
            public=public,
        )

    def time_range(self, index: int, token: str) -> tuple[TimeRange | None] | None:
        """Read a time range that starts with ``token`` (already taken). ``None``: not a range;
        ``(None,)``: explicitly no restriction (``anytime``)."""
        low = token.lower()
        if low in _ANYTIME:
            return (None,)
        if low == "today":
            return (TimeRange.today(),)
        if low == "yesterday":
            return (TimeRange.yesterday(),)
        if low in ("last", "past"):
            span = self.duration_here()
            if span is None:
                unit = self.peek_lower()
                if unit in ("minute", "hour", "day", "week"):
                    self.pos += 1
                    span = _UNITS[unit]
                else:
                    raise _Problem(f"`{low}` needs a duration, e.g. `last 24h`, `last 7d` or `last week`.")
            return (self.last(span),)
        if low == "this":
            if self.peek_lower() == "week":
                self.pos += 1
                return (TimeRange.this_week(),)
            raise _Problem("`this` works only as `this week`; for other spans try `last 30d` or `since 2026-11-01`.")
        if low == "since":
            if not self.more():
                raise _Problem("`since` needs a day, e.g. `since 2026-11-01`.")
            span = self.duration_here()
            if span is not None:
                return (self.last(span),)
            day = _day(self.tokens[self.pos])
            if isinstance(day, str):
                raise _Problem(day)
            if day is None:
                raise _Problem(
                    f"`since` needs a day like `2026-11-01` (got `{_shown(self.tokens[self.pos])}`).",
                )
            self.pos += 1
            return (TimeRange.since(day),)
        if ".." in token:
            first_text, _, last_text = token.partition("..")
            first, last = _day(first_text), _day(last_text)
            for part in (first, last):
                if isinstance(part, str):
                    raise _Problem(part)
            if not isinstance(first, date) or not isinstance(last, date):
                raise _Problem(f"`{_shown(token)}`: write a range of days as `2026-11-01..2026-11-07`.")
            if last < first:
                raise _Problem(f"`{_shown(token)}` ends before it starts; write the earlier day first.")
            return (TimeRange.between(first, last),)
        day = _day(token)
        if isinstance(day, str):
            raise _Problem(day)
        if day is not None:
            return (TimeRange.between(day, day),)
        span = _duration_token(low)
        if span is None and _NUMBER_RE.fullmatch(low) and len(low) <= 5 and self.peek_lower() in _UNITS:
            span = int(low) * _UNITS[self.take().lower()]
        if span is not None:
            return (self.last(span),)
        return None

    def last(self, span: timedelta) -> TimeRange:
        if span <= timedelta(0):
            raise _Problem("that time range is empty; give a positive duration, e.g. `last 2h`.")
        if span > MAX_LAST:
            raise _Problem(f"that time range is too long; at most {MAX_LAST.days} days (`last {MAX_LAST.days}d`).")
        return TimeRange.last(span)

    def job(self) -> JobDetail:
        job_id: str | None = None
        project: str | None = None
        public = False
        while self.more():
            token = self.take()
            low = token.lower()
            if low == "project":
                project = self.project_argument(project)
            elif low == "public":
                public = True
            elif job_id is None:
                if low in _KEYWORDS:
                    raise _Problem(
                        f"`{_shown(token)}` isn't a job id; job ids look like `ff80808167bb9034`. "
                        "To list jobs, write e.g. `/gesjobs failed today`."
                    )
                if not _NAME_RE.fullmatch(token):
                    raise _Problem(
                        f"`{_shown(token)}` doesn't look like a job id; job ids use letters, digits and `-`."
                    )
                job_id = token
            else:
                raise _Problem(
                    f"`job` shows one job; got `{_shown(job_id)}` and `{_shown(token)}`. "
                    "To list jobs, write e.g. `/gesjobs failed today`."
                )
        if job_id is None:
            raise _Problem("which job? Write `/gesjobs job <job id>`, e.g. `/gesjobs job ff80808167bb9034`.")
        return JobDetail(job_id, project, public)

    # -- charts and digests -------------------------------------------------------------------
    def stats(self) -> Stats:
        time_range: TimeRange | None = None
        range_words: str | None = None
        graph: str | None = None
        project: str | None = None
        chart: ChartKind | None = None
        public = False
        vocabulary = ("graph", "project", "by", "duration", "public", "last", "since", "today", "yesterday")

        def set_chart(kind: ChartKind) -> None:
            nonlocal chart
            if chart is not None and chart != kind:
                raise _Problem("one chart at a time: `by graph` or `duration`.")
            chart = kind

        while self.more():
            i = self.pos
            token = self.take()
            low = token.lower()
            if low == "by":
                what = self.peek_lower()
                if what in ("graph", "graphs"):
                    self.pos += 1
                    set_chart("graphs")
                    continue
                if what in ("duration", "durations", "type", "types"):
                    self.pos += 1
                    set_chart("durations")
                    continue
                raise _Problem(
                    "`by` takes `graph` (failure rate per graph) or `duration`, e.g. `/gesjobs stats by graph`."
                )
            if low in ("duration", "durations"):
                set_chart("durations")
                continue
            if low == "public":
                public = True
                continue
            if low in ("graph", "graphs"):
                graph = self.pattern_argument("graph", graph)
                continue
            if low == "project":
                project = self.project_argument(project)
                continue
            found = self.time_range(i, token)
            if found is not None:
                words = " ".join(self.tokens[i : self.pos])
                if range_words is not None:
                    raise _Problem(f"two time ranges, `{_shown(range_words)}` and `{_shown(words)}`; give one.")
                if found[0] is None:
                    raise _Problem("a chart needs a time range, e.g. `last 30d` (at most 366 days).")
                time_range, range_words = found[0], words
                continue
            self.bare_word(i, token, vocabulary, "`stats`")
            if graph is not None:
                raise _Problem(
                    f"two graphs, `{_shown(graph)}` and `{_shown(token)}`; give one name or a pattern like `prod-*`."
                )
            graph = token
        return Stats(
            range=time_range if time_range is not None else TimeRange.last(DEFAULT_STATS_SPAN),
            graph=graph,
            project=project,
            chart=chart or "daily",
            public=public,
        )

    def digest(self) -> Digest | DigestOff | DigestShow:
        if not self.more():
            return DigestShow()
        first = self.take().lower()
        if first in ("off", "stop", "none"):
            self.nothing_more(f"digest {first}")
            return DigestOff()
        example = "e.g. `/gesjobs digest daily 09:00` or `/gesjobs digest weekly mon 09:00`"
        weekday: int | None = None
        if first == "weekly":
            day = (self.peek_lower() or "")[:3]
            if day not in _WEEKDAYS:
                raise _Problem(f"`weekly` needs a day, {example}.")
            self.pos += 1
            weekday = _WEEKDAYS.index(day)
        elif first != "daily":
            raise _Problem(f"a digest is `daily` or `weekly`, {example}; `/gesjobs digest off` stops it.")
        if not self.more():
            raise _Problem(f"at what time? {example}.")
        clock = self.take()
        m = _CLOCK_RE.fullmatch(clock)
        if not m:
            raise _Problem(f"`{_shown(clock)}` isn't a time of day; write it as `09:00` (24-hour, your time zone).")
        always = False
        locale = "en"
        while self.more():
            word = self.take().lower()
            if word in _LANG_WORDS:
                locale = self.language()
                continue
            if word != "always":
                raise _Problem(
                    f"unknown word `{_shown(word)}`; a digest takes only `always` and `lang zh-CN` after its time."
                )
            always = True
        return Digest(time(int(m.group(1)), int(m.group(2))), weekday, always, locale)

    def language(self) -> str:
        """The language after ``lang``: ``en`` or ``zh-CN`` (``zh``, ``中文`` … are read as ``zh-CN``)."""
        choices = " or ".join(f"`{name}`" for name in LANGUAGES)
        if not self.more():
            raise _Problem(f"`lang` needs a language: {choices}, e.g. `lang zh-CN`.")
        word = self.take()
        language = language_of(word)
        if language is None:
            raise _Problem(f"unknown language `{_shown(word)}`; choose {choices}.")
        return language

    # -- subscriptions and mutes --------------------------------------------------------------
    def subscribe(self) -> Subscribe:
        pattern: str | None = None
        words: list[str] = []
        project: str | None = None
        locale = "en"
        vocabulary = (*_SUB_STATUS, "project", "graph", "lang")
        while self.more():
            i = self.pos
            token = self.take()
            low = token.lower()
            if low == "to":
                continue
            if low == "partially" and self.peek_lower() in ("failed", "fail"):
                self.pos += 1
                low = "partially-failed"
            if low in _SUB_STATUS:
                if low not in words:
                    words.append(low)
                continue
            if low in ("graph", "graphs"):
                pattern = self.pattern_argument("graph", pattern)
                continue
            if low == "project":
                project = self.project_argument(project)
                continue
            if low in _LANG_WORDS:
                locale = self.language()
                continue
            if low in ("running", "pending", "waiting"):
                raise _Problem(
                    f"alerts come when a job ends or gets stuck, so `{low}` can't be subscribed to; "
                    "choose from `failed`, `partial`, `unknown`, `succeeded`, `recovered`, `stuck`, `all`."
                )
            self.bare_word(i, token, vocabulary, "`subscribe`")
            if pattern is not None:
                raise _Problem(
                    f"`subscribe` takes one graph name or pattern; got `{_shown(pattern)}` and `{_shown(token)}`. "
                    "Use a pattern such as `prod-*` for several graphs."
                )
            pattern = token
        if pattern is None:
            raise _Problem("`subscribe` needs a graph name or pattern, e.g. `/gesjobs subscribe prod-*`.")
        try:
            kinds_from_words(words)
        except ValueError as exc:
            raise _Problem(str(exc)) from None
        return Subscribe(pattern, tuple(words), project, locale)

    def pattern_and_project(
        self, verb: str, *, fillers: tuple[str, ...], allow_project: bool = True
    ) -> tuple[str, str | None]:
        pattern: str | None = None
        project: str | None = None
        vocabulary = ("graph", "project") if allow_project else ("graph",)
        while self.more():
            i = self.pos
            token = self.take()
            low = token.lower()
            if low in fillers:
                continue
            if low in ("graph", "graphs"):
                pattern = self.pattern_argument("graph", pattern)
                continue
            if low == "project" and allow_project:
                project = self.project_argument(project)
                continue
            self.bare_word(i, token, vocabulary, f"`{verb}`")
            if pattern is not None:
                raise _Problem(
                    f"`{verb}` takes one graph name or pattern; got `{_shown(pattern)}` and `{_shown(token)}`."
                )
            pattern = token
        if pattern is None:
            raise _Problem(f"`{verb}` needs a graph name or pattern, e.g. `/gesjobs {verb} prod-*`.")
        return pattern, project

    def mute(self) -> Mute:
        pattern: str | None = None
        duration: timedelta | None = None
        while self.more():
            i = self.pos
            span = self.duration_here()
            if span is not None:
                if duration is not None:
                    raise _Problem("`mute` takes one duration, e.g. `/gesjobs mute prod-* 2h`.")
                duration = span
                continue
            token = self.take()
            low = token.lower()
            if low == "for":
                continue
            if low in ("graph", "graphs"):
                pattern = self.pattern_argument("graph", pattern)
                continue
            self.bare_word(i, token, ("graph", "for"), "`mute`")
            if pattern is not None:
                raise _Problem(
                    f"`mute` takes one graph name or pattern; got `{_shown(pattern)}` and `{_shown(token)}`."
                )
            pattern = token
        if pattern is None:
            raise _Problem("`mute` needs a graph name or pattern and a duration, e.g. `/gesjobs mute prod-* 2h`.")
        if duration is None:
            raise _Problem(f"for how long? e.g. `/gesjobs mute {_shown(pattern)} 2h` (`30m`, `2h`, `1d`, up to 30d).")
        if duration <= timedelta(0):
            raise _Problem("a mute must last a while; give e.g. `30m` or `2h`.")
        if duration > MAX_MUTE:
            raise _Problem(f"a mute lasts at most {MAX_MUTE.days} days (`30d`); unsubscribe to stop alerts for good.")
        return Mute(pattern, duration)


# --------------------------------------------------------------------------------------------
# Canonical text (the inverse of parse)
# --------------------------------------------------------------------------------------------


def _pattern_text(pattern: str) -> str:
    return f"graph {pattern}" if _is_reserved(pattern) else pattern


_STATUS_ORDER = [
    JobStatus.FAILED.value,
    JobStatus.PARTIALLY_FAILED.value,
    JobStatus.SUCCESS.value,
    JobStatus.RUNNING.value,
    JobStatus.PENDING.value,
]


def command_text(command: Command) -> str:
    """The canonical ``/gesjobs`` text for a command: ``parse(command_text(c)) == c`` for every
    command ``parse`` returns. Handy to echo what was understood ("Showing `failed today`")."""
    if isinstance(command, Query):
        words: list[str] = [s for s in _STATUS_ORDER if s in command.statuses]
        words += sorted(s for s in command.statuses if s not in _STATUS_ORDER)
        if not words:
            words.append("all")
        if command.range is not None:
            words.append(command.range.describe())
        elif not (command.statuses and command.statuses <= ACTIVE_STATUSES):
            words.append("anytime")
        if command.graph is not None:
            words.append(f"graph {command.graph}")
        if command.job_name is not None:
            words.append(f"type {command.job_name}")
        if command.project is not None:
            words.append(f"project {command.project}")
        if command.limit != DEFAULT_LIMIT:
            words.append(f"limit {command.limit}")
        if command.public:
            words.append("public")
        return " ".join(words)
    if isinstance(command, JobDetail):
        text = f"job {command.job_id}"
        if command.project is not None:
            text += f" project {command.project}"
        return text + (" public" if command.public else "")
    if isinstance(command, Subscribe):
        text = " ".join(["subscribe", _pattern_text(command.pattern), *command.statuses])
        text += f" project {command.project}" if command.project is not None else ""
        return text + (f" lang {command.locale}" if command.locale != "en" else "")
    if isinstance(command, Unsubscribe):
        text = f"unsubscribe {_pattern_text(command.pattern)}"
        return text + (f" project {command.project}" if command.project is not None else "")
    if isinstance(command, ListSubscriptions):
        return "subscriptions"
    if isinstance(command, Mute):
        return f"mute {_pattern_text(command.pattern)} {_duration_text(command.duration)}"
    if isinstance(command, Unmute):
        return f"unmute {_pattern_text(command.pattern)}"
    if isinstance(command, Status):
        return "status"
    if isinstance(command, Stats):
        words = ["stats", command.range.describe()]
        if command.graph is not None:
            words.append(f"graph {command.graph}")
        if command.project is not None:
            words.append(f"project {command.project}")
        if command.chart == "graphs":
            words.append("by graph")
        elif command.chart == "durations":
            words.append("duration")
        if command.public:
            words.append("public")
        return " ".join(words)
    if isinstance(command, Digest):
        text = f"digest {command.schedule}" + (" always" if command.always else "")
        return text + (f" lang {command.locale}" if command.locale != "en" else "")
    if isinstance(command, DigestOff):
        return "digest off"
    if isinstance(command, DigestShow):
        return "digest"
    return "help" if command.topic is None else f"help {command.topic}"


# --------------------------------------------------------------------------------------------
# Time ranges → instants
# --------------------------------------------------------------------------------------------


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # Combining a local date with 00:00 lets zoneinfo pick that day's own offset, so DST days are
    # 23 or 25 hours long. Where midnight does not exist (a zone that springs forward at 00:00),
    # fold=0 maps it onto the transition instant, which is exactly when that day begins.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def resolve(time_range: TimeRange, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants ``[start, end)`` (aware UTC) that ``time_range`` means to someone in ``tz`` at
    ``now``. ``today`` is the asker's whole local day; ``this week`` runs from Monday 00:00 local
    to next Monday; ``last`` ends at ``now``; ``since`` runs to ``now`` (empty if the day is in the
    future); ``between`` covers both days in full."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    now = now.astimezone(UTC)
    today = now.astimezone(tz).date()
    one_day = timedelta(days=1)
    if time_range.kind == "today":
        return _local_midnight(today, tz), _local_midnight(today + one_day, tz)
    if time_range.kind == "yesterday":
        return _local_midnight(today - one_day, tz), _local_midnight(today, tz)
    if time_range.kind == "this_week":
        monday = today - timedelta(days=today.weekday())
        return _local_midnight(monday, tz), _local_midnight(monday + timedelta(days=7), tz)
    if time_range.kind == "last":
        assert time_range.span is not None
        return now - time_range.span, now
    assert time_range.start_day is not None
    start = _local_midnight(time_range.start_day, tz)
    if time_range.kind == "since":
        return start, max(start, now)
    assert time_range.end_day is not None
    return start, _local_midnight(time_range.end_day + one_day, tz)


def ges_date_window(start: datetime, end: datetime) -> tuple[date, date]:
    """The ``start_time``/``end_time`` dates (inclusive) for the GES job filter that cover the
    instants ``[start, end)`` whatever zone GES reads its dates in (UTC−12 … UTC+14): the UTC days,
    widened by one day on each side. The caller filters the answer exactly afterwards."""
    first = start.astimezone(UTC).date()
    last_instant = end - timedelta(microseconds=1) if end > start else start
    last = last_instant.astimezone(UTC).date()
    one_day = timedelta(days=1)
    return (first - one_day if first > date.min else first, last + one_day if last < date.max else last)
