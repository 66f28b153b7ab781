"""The /gesjobs parser: what users type → what the bot understands, or a message that helps."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ges_bot.domain import EventKind, kinds_from_words
from ges_bot.slackapp.commands import (
    DEFAULT_LIMIT,
    HELP_TEXT,
    HELP_TOPICS,
    MAX_LIMIT,
    Command,
    Help,
    JobDetail,
    ListSubscriptions,
    Mute,
    Query,
    Status,
    Subscribe,
    TimeRange,
    Unmute,
    Unsubscribe,
    UsageError,
    command_text,
    ges_date_window,
    help_text,
    parse,
    resolve,
)

TODAY = TimeRange.today()


# ---------------------------------------------------------------------------------------------
# Accepted commands
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help()),
        ("   ", Help()),
        ("help", Help()),
        ("HELP Mute", Help("mute")),
        ("help unsubscribe", Help("subscribe")),
        ("help dates", Help("times")),
        ("failed", Query(frozenset({"failed"}), TODAY)),
        ("Failed TODAY", Query(frozenset({"failed"}), TODAY)),
        ("failed yesterday", Query(frozenset({"failed"}), TimeRange.yesterday())),
        ("partial", Query(frozenset({"partiallyFailed"}), TODAY)),
        ("partiallyFailed", Query(frozenset({"partiallyFailed"}), TODAY)),
        ("partially-failed", Query(frozenset({"partiallyFailed"}), TODAY)),
        ("partially_failed", Query(frozenset({"partiallyFailed"}), TODAY)),
        ("partially failed", Query(frozenset({"partiallyFailed"}), TODAY)),
        ("succeeded this week", Query(frozenset({"success"}), TimeRange.this_week())),
        ("success THIS week", Query(frozenset({"success"}), TimeRange.this_week())),
        ("failed partial", Query(frozenset({"failed", "partiallyFailed"}), TODAY)),
        ("all", Query(frozenset(), TODAY)),
        ("jobs", Query(frozenset(), TODAY)),
        ("all failed jobs today", Query(frozenset({"failed"}), TODAY)),
        # Running and pending alone mean "active now", whenever the job started.
        ("running", Query(frozenset({"running"}), None)),
        ("pending", Query(frozenset({"pending"}), None)),
        ("waiting running", Query(frozenset({"pending", "running"}), None)),
        ("running today", Query(frozenset({"running"}), TODAY)),
        ("running failed", Query(frozenset({"running", "failed"}), TODAY)),
        ("failed anytime", Query(frozenset({"failed"}), None)),
        ("failed last 24h", Query(frozenset({"failed"}), TimeRange.last(timedelta(hours=24)))),
        ("failed last 7d", Query(frozenset({"failed"}), TimeRange.last(timedelta(days=7)))),
        ("failed last 2h", Query(frozenset({"failed"}), TimeRange.last(timedelta(hours=2)))),
        ("failed last 30m", Query(frozenset({"failed"}), TimeRange.last(timedelta(minutes=30)))),
        ("failed last 3d", Query(frozenset({"failed"}), TimeRange.last(timedelta(days=3)))),
        ("failed last week", Query(frozenset({"failed"}), TimeRange.last(timedelta(days=7)))),
        ("failed past 2 hours", Query(frozenset({"failed"}), TimeRange.last(timedelta(hours=2)))),
        ("failed 6h", Query(frozenset({"failed"}), TimeRange.last(timedelta(hours=6)))),
        ("failed since 2026-11-01", Query(frozenset({"failed"}), TimeRange.since(date(2026, 11, 1)))),
        ("failed since 3h", Query(frozenset({"failed"}), TimeRange.last(timedelta(hours=3)))),
        (
            "failed 2026-11-01..2026-11-07",
            Query(frozenset({"failed"}), TimeRange.between(date(2026, 11, 1), date(2026, 11, 7))),
        ),
        (
            "failed 2026-11-01 .. 2026-11-07",
            Query(frozenset({"failed"}), TimeRange.between(date(2026, 11, 1), date(2026, 11, 7))),
        ),
        ("2026-11-01", Query(frozenset(), TimeRange.between(date(2026, 11, 1), date(2026, 11, 1)))),
        (
            "failed today graph prod-* type ImportGraph project prod limit 50 public",
            Query(frozenset({"failed"}), TODAY, "prod-*", "ImportGraph", "prod", 50, True),
        ),
        (
            "public limit 50 project prod type ImportGraph graph prod-* today failed",
            Query(frozenset({"failed"}), TODAY, "prod-*", "ImportGraph", "prod", 50, True),
        ),
        ("failed graph:Movies_2 project=prod", Query(frozenset({"failed"}), TODAY, "Movies_2", project="prod")),
        # A bare word that is no keyword is the graph; graph names keep their case.
        ("failed Movies_v2.1", Query(frozenset({"failed"}), TODAY, "Movies_v2.1")),
        ("prod-* failed", Query(frozenset({"failed"}), TODAY, "prod-*")),
        # A graph named like a keyword needs `graph`.
        ("failed graph today", Query(frozenset({"failed"}), TODAY, "today")),
        ("job ff80808167bb90340167bc3c7b5b022a", JobDetail("ff80808167bb90340167bc3c7b5b022a")),
        ("JOB abc-123 project prod public", JobDetail("abc-123", "prod", True)),
        ("job public abc-123", JobDetail("abc-123", None, True)),
        ("subscribe prod-*", Subscribe("prod-*")),
        ("subscribe to prod-*", Subscribe("prod-*")),
        ("Subscribe movies failed succeeded stuck", Subscribe("movies", ("failed", "succeeded", "stuck"))),
        ("subscribe failed movies project prod", Subscribe("movies", ("failed",), "prod")),
        ("subscribe * all", Subscribe("*", ("all",))),
        ("subscribe graph failed partially failed", Subscribe("failed", ("partially-failed",))),
        ("sub movies", Subscribe("movies")),
        ("unsubscribe prod-*", Unsubscribe("prod-*")),
        ("unsubscribe from prod-* project prod", Unsubscribe("prod-*", "prod")),
        ("subscriptions", ListSubscriptions()),
        ("subs", ListSubscriptions()),
        ("mute prod-* 2h", Mute("prod-*", timedelta(hours=2))),
        ("mute 30m prod-*", Mute("prod-*", timedelta(minutes=30))),
        ("mute prod-* for 1d", Mute("prod-*", timedelta(days=1))),
        ("mute prod-* 2 hours", Mute("prod-*", timedelta(hours=2))),
        ("mute prod-* 30d", Mute("prod-*", timedelta(days=30))),
        ("mute graph 2h 1w", Mute("2h", timedelta(weeks=1))),
        ("unmute prod-*", Unmute("prod-*")),
        ("status", Status()),
        ("STATUS", Status()),
    ],
)
def test_accepted(text: str, expected: object) -> None:
    assert parse(text) == expected


def test_query_defaults() -> None:
    q = parse("failed")
    assert isinstance(q, Query)
    assert q.limit == DEFAULT_LIMIT == 20
    assert not q.public
    assert (q.graph, q.job_name, q.project) == (None, None, None)


def test_slack_escapes_are_undone_before_parsing() -> None:
    # should_escape is false, but Slack still sends &, < and > as entities.
    assert parse("failed graph a&amp;b") == UsageError(
        "`a&b` can't be a graph name: use letters, digits, `_`, `-` and `.`, with `*` and `?` as wildcards (e.g. `prod-*`).",
        topic="jobs",
    )


@pytest.mark.parametrize("text", ["failed &lt;@U0123ABC&gt;", "subscribe <#C012AB|alerts>", "failed <!here>"])
def test_mentions_and_links_are_refused_politely(text: str) -> None:
    result = parse(text)
    assert isinstance(result, UsageError)
    assert "is a Slack mention or link, not a graph name" in result.message
    assert "type the name as plain text" in result.message


def test_subscription_words_are_the_config_vocabulary() -> None:
    sub = parse("subscribe movies partial recovered")
    assert isinstance(sub, Subscribe)
    assert (
        sub.kinds
        == kinds_from_words(["partial", "recovered"])
        == {
            EventKind.PARTIALLY_FAILED,
            EventKind.RECOVERED,
        }
    )
    default = parse("subscribe movies")
    assert isinstance(default, Subscribe)
    # Unknown outcomes are in the default set: a new GES status may be a failure.
    assert default.kinds == {EventKind.FAILED, EventKind.PARTIALLY_FAILED, EventKind.UNKNOWN_OUTCOME}
    unknown = parse("subscribe movies unknown")
    assert isinstance(unknown, Subscribe)
    assert unknown.kinds == {EventKind.UNKNOWN_OUTCOME}
    without = parse("subscribe movies failed partial")
    assert isinstance(without, Subscribe)
    assert EventKind.UNKNOWN_OUTCOME not in without.kinds


# ---------------------------------------------------------------------------------------------
# Refused commands: the message says what to do
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "suggestion"),
    [
        (
            "faild today",
            "unknown word `faild` — did you mean `failed`? (If `faild` is a graph, write `graph faild`.)",
            "failed today",
        ),
        (
            "failed yesterdy",
            "unknown word `yesterdy` — did you mean `yesterday`? (If `yesterdy` is a graph, write `graph yesterdy`.)",
            "failed yesterday",
        ),
        (
            "subscibe prod-*",
            "unknown word `subscibe` — did you mean `subscribe`? (If `subscibe` is a graph, write `graph subscibe`.)",
            "subscribe prod-*",
        ),
        (
            "subscribe prod-* faild",
            "unknown word `faild` — did you mean `failed`? (If `faild` is a graph, write `graph faild`.)",
            "subscribe prod-* failed",
        ),
        (
            "help mtue",
            "no help on `mtue` — did you mean `mute`? Topics: `jobs`, `times`, `job`, `subscribe`, `mute`, `stats`, `digest`, `status`.",
            "help mute",
        ),
        (
            "failed lmit 5",
            "unknown word `lmit` — did you mean `limit`? (If `lmit` is a graph, write `graph lmit`.)",
            "failed limit 5",
        ),
        ("failed today yesterday", "two time ranges, `today` and `yesterday`; give one.", None),
        ("failed last", "`last` needs a duration, e.g. `last 24h`, `last 7d` or `last week`.", None),
        ("failed last 0h", "that time range is empty; give a positive duration, e.g. `last 2h`.", None),
        ("failed last 400d", "that time range is too long; at most 366 days (`last 366d`).", None),
        (
            "failed this month",
            "`this` works only as `this week`; for other spans try `last 30d` or `since 2026-11-01`.",
            None,
        ),
        ("failed since", "`since` needs a day, e.g. `since 2026-11-01`.", None),
        ("failed since monday", "`since` needs a day like `2026-11-01` (got `monday`).", None),
        ("failed 2026-02-30", "`2026-02-30` is not a date; write days as `2026-11-01`", None),
        (
            "failed 2026-11-07..2026-11-01",
            "`2026-11-07..2026-11-01` ends before it starts; write the earlier day first.",
            None,
        ),
        ("failed since 0001-01-01", "`0001-01-01`: the year must be between 1970 and 9998", None),
        ("failed limit 0", "`limit` takes a number from 1 to 100 (got `0`).", None),
        ("failed limit 101", "`limit` takes a number from 1 to 100 (got `101`).", None),
        ("failed limit lots", "`limit` takes a number from 1 to 100 (got `lots`).", None),
        ("failed limit", "`limit` needs a value, e.g. `limit 50`.", None),
        ("failed limit 5 limit 6", "`limit` is given twice; give it once.", None),
        ("failed graph", "`graph` needs a value, e.g. `graph prod-*`.", None),
        ("failed graph a graph b", "give one graph name or pattern, not `a` and another.", None),
        ("failed movies music", "two graphs, `movies` and `music`; give one name or a pattern like `prod-*`.", None),
        (
            "failed prod/movies",
            "I don't understand `prod/movies`. Graph names use letters, digits, `_`, `-` and `.`, with `*` and `?` as wildcards. Try `/gesjobs help`.",
            None,
        ),
        (
            "failed @alice",
            "I don't understand `@alice`. Graph names use letters, digits, `_`, `-` and `.`, with `*` and `?` as wildcards. Try `/gesjobs help`.",
            None,
        ),
        (
            "failed type Import/Graph",
            "`Import/Graph` can't be a job name: use letters, digits, `_`, `-` and `.` (e.g. `type ImportGraph`).",
            None,
        ),
        (
            "failed mute",
            "`mute` must come first, as in `/gesjobs mute …`. (If `mute` is a graph, write `graph mute`.)",
            None,
        ),
        ("job", "which job? Write `/gesjobs job <job id>`, e.g. `/gesjobs job ff80808167bb9034`.", None),
        ("job a b", "`job` shows one job; got `a` and `b`. To list jobs, write e.g. `/gesjobs failed today`.", None),
        (
            "job failed",
            "`failed` isn't a job id; job ids look like `ff80808167bb9034`. To list jobs, write e.g. `/gesjobs failed today`.",
            None,
        ),
        ("subscribe", "`subscribe` needs a graph name or pattern, e.g. `/gesjobs subscribe prod-*`.", None),
        (
            "subscribe movies running",
            "alerts come when a job ends or gets stuck, so `running` can't be subscribed to; choose from `failed`, `partial`, `unknown`, `succeeded`, `recovered`, `stuck`, `all`.",
            None,
        ),
        (
            "subscribe movies music",
            "`subscribe` takes one graph name or pattern; got `movies` and `music`. Use a pattern such as `prod-*` for several graphs.",
            None,
        ),
        (
            "subscribe movies today",
            "`today` doesn't go with `subscribe`. (If `today` is a graph, write `graph today`.)",
            None,
        ),
        ("unsubscribe", "`unsubscribe` needs a graph name or pattern, e.g. `/gesjobs unsubscribe prod-*`.", None),
        ("mute prod-*", "for how long? e.g. `/gesjobs mute prod-* 2h` (`30m`, `2h`, `1d`, up to 30d).", None),
        ("mute 2h", "`mute` needs a graph name or pattern and a duration, e.g. `/gesjobs mute prod-* 2h`.", None),
        ("mute prod-* 31d", "a mute lasts at most 30 days (`30d`); unsubscribe to stop alerts for good.", None),
        ("mute prod-* 0m", "a mute must last a while; give e.g. `30m` or `2h`.", None),
        ("mute prod-* 2h 3h", "`mute` takes one duration, e.g. `/gesjobs mute prod-* 2h`.", None),
        ("unmute", "`unmute` needs a graph name or pattern, e.g. `/gesjobs unmute prod-*`.", None),
        ("status please", "`status` takes no other words (got `please`).", None),
        ("subscriptions all", "`subscriptions` takes no other words (got `all`).", None),
        (
            "help me",
            "no help on `me`. Topics: `jobs`, `times`, `job`, `subscribe`, `mute`, `stats`, `digest`, `status`.",
            None,
        ),
    ],
)
def test_refused_with_a_helpful_message(text: str, message: str, suggestion: str | None) -> None:
    result = parse(text)
    assert isinstance(result, UsageError), result
    assert result.message == message
    assert result.suggestion == suggestion
    if suggestion is not None:
        assert not isinstance(parse(suggestion), UsageError)


def test_error_names_the_help_topic() -> None:
    assert parse("mute prod-*") == UsageError(
        "for how long? e.g. `/gesjobs mute prod-* 2h` (`30m`, `2h`, `1d`, up to 30d).", topic="mute"
    )
    err = parse("failed lmit 5")
    assert isinstance(err, UsageError)
    assert err.topic == "jobs"
    assert "limit" in help_text(err.topic)


def test_echoed_words_cannot_break_out_of_a_code_span() -> None:
    result = parse("failed a`b`c")
    assert isinstance(result, UsageError)
    assert "a'b'c" in result.message
    assert result.message.count("`") % 2 == 0


def test_overlong_text_is_refused_cheaply() -> None:
    result = parse("failed " * 500)
    assert isinstance(result, UsageError)
    assert "at most 1000" in result.message


def test_max_limit_is_accepted() -> None:
    q = parse(f"limit {MAX_LIMIT}")
    assert isinstance(q, Query)
    assert q.limit == MAX_LIMIT


# ---------------------------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------------------------


def _examples(text: str) -> list[str]:
    return re.findall(r"`/gesjobs ([^`]*)`", text)


def test_every_help_example_parses() -> None:
    examples = _examples(HELP_TEXT)
    assert len(examples) >= 12
    for example in examples:
        assert not isinstance(parse(example), UsageError), example


def test_help_has_an_example_of_every_command() -> None:
    kinds = {type(parse(e)) for e in _examples(HELP_TEXT)}
    assert kinds >= {Query, JobDetail, Subscribe, Unsubscribe, ListSubscriptions, Mute, Unmute, Status, Help}


def test_help_documents_the_default_time_range() -> None:
    assert "Without a time, `running` and `pending` show the jobs active now" in HELP_TEXT
    assert "every other query shows today's jobs" in HELP_TEXT


def test_help_fits_slack_limits() -> None:
    # A section's text is at most 3000 characters; each topic must fit one section.
    for topic, text in HELP_TOPICS.items():
        assert len(text) <= 3000, topic
        assert help_text(topic) == text
        assert parse(f"help {topic}") == Help(topic)
    assert help_text(None) == HELP_TEXT


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

WORDS = [
    "failed", "faild", "partial", "partiallyFailed", "partially", "success", "succeeded", "running",
    "pending", "waiting", "all", "today", "yesterday", "last", "past", "this", "week", "since",
    "anytime", "graph", "type", "project", "limit", "public", "jobs", "job", "subscribe", "unsubscribe",
    "subscriptions", "mute", "unmute", "status", "help", "for", "to", "recovered", "stuck", "prod-*",
    "movies", "Movies", "ImportGraph", "2h", "30m", "7d", "1w", "2", "hours", "0", "101", "50",
    "2026-11-01", "2026-11-07", "2026-11-01..2026-11-07", "2026-13-40", "..", "<@U1>", "&lt;", "&amp;",
    "&gt;", "graph:x", "limit=5", "`", "*", "?", "İ", "²", "٣", "\u00a0", "abc123",
]  # fmt: skip

any_words = st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=10).map(" ".join)


@given(st.text())
def test_any_text_parses_to_a_command_or_usage_error(text: str) -> None:
    result = parse(text)
    assert isinstance(
        result,
        Query | JobDetail | Subscribe | Unsubscribe | ListSubscriptions | Mute | Unmute | Status | Help | UsageError,
    )
    if isinstance(result, UsageError):
        assert result.message


@settings(max_examples=400)
@given(any_words)
def test_vocabulary_soup_never_raises_and_round_trips(text: str) -> None:
    result = parse(text)
    if isinstance(result, UsageError):
        assert result.message
        if result.suggestion is not None:
            assert not isinstance(parse(result.suggestion), UsageError)
    else:
        assert parse(command_text(result)) == result


patterns = st.from_regex(r"[A-Za-z0-9_.*?\-]{1,20}", fullmatch=True)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True)
days = st.dates(min_value=date(1970, 1, 1), max_value=date(9998, 12, 31))


@st.composite
def range_clauses(draw: st.DrawFn) -> tuple[list[str], TimeRange | None]:
    kind = draw(st.sampled_from(["today", "yesterday", "this week", "last", "since", "between", "anytime"]))
    if kind == "today":
        return ["today"], TimeRange.today()
    if kind == "yesterday":
        return ["yesterday"], TimeRange.yesterday()
    if kind == "this week":
        return ["this", "week"], TimeRange.this_week()
    if kind == "anytime":
        return ["anytime"], None
    if kind == "last":
        n = draw(st.integers(1, 300))
        unit, size = draw(
            st.sampled_from([("m", timedelta(minutes=1)), ("h", timedelta(hours=1)), ("d", timedelta(days=1))])
        )
        return ["last", f"{n}{unit}"], TimeRange.last(n * size)
    a = draw(days)
    if kind == "since":
        return ["since", a.isoformat()], TimeRange.since(a)
    b = draw(days.filter(lambda d: d >= a))
    return [f"{a.isoformat()}..{b.isoformat()}"], TimeRange.between(a, b)


STATUS_SPELLINGS = {
    "failed": "failed",
    "partial": "partiallyFailed",
    "partiallyFailed": "partiallyFailed",
    "partially_failed": "partiallyFailed",
    "success": "success",
    "succeeded": "success",
    "running": "running",
    "pending": "pending",
    "waiting": "pending",
}


def _random_case(word: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(word, flips + [False] * len(word), strict=False))


@settings(max_examples=200)
@given(
    statuses=st.lists(st.sampled_from(sorted(STATUS_SPELLINGS)), max_size=3, unique=True),
    time_range=st.none() | range_clauses(),
    graph=st.none() | patterns,
    job_name=st.none() | names,
    project=st.none() | names,
    limit=st.none() | st.integers(1, MAX_LIMIT),
    public=st.booleans(),
    order=st.randoms(use_true_random=False),
    flips=st.lists(st.booleans(), max_size=20),
)
def test_query_clauses_in_any_order_and_case(
    statuses: list[str],
    time_range: tuple[list[str], TimeRange | None] | None,
    graph: str | None,
    job_name: str | None,
    project: str | None,
    limit: int | None,
    public: bool,
    order: object,
    flips: list[bool],
) -> None:
    clauses: list[list[str]] = [[_random_case(s, flips)] for s in statuses]
    if time_range is not None:
        clauses.append([_random_case(w, flips) for w in time_range[0]])
    for keyword, value in (("graph", graph), ("type", job_name), ("project", project)):
        if value is not None:
            clauses.append([_random_case(keyword, flips), value])
    if limit is not None:
        clauses.append(["limit", str(limit)])
    if public:
        clauses.append([_random_case("public", flips)])
    if not clauses:
        clauses.append(["all"])
    order.shuffle(clauses)  # type: ignore[attr-defined]
    text = " ".join(w for clause in clauses for w in clause)

    wanted = frozenset(STATUS_SPELLINGS[s] for s in statuses)
    if time_range is not None:
        expected_range = time_range[1]
    elif wanted and wanted <= {"running", "pending"}:
        expected_range = None
    else:
        expected_range = TODAY
    expected = Query(wanted, expected_range, graph, job_name, project, limit or DEFAULT_LIMIT, public)
    assert parse(text) == expected
    assert parse(command_text(expected)) == expected


@given(
    pattern=patterns,
    words=st.lists(st.sampled_from(["failed", "partial", "succeeded", "recovered", "stuck", "all"]), unique=True),
    project=st.none() | names,
    order=st.randoms(use_true_random=False),
)
def test_subscribe_clauses_in_any_order(pattern: str, words: list[str], project: str | None, order: object) -> None:
    clauses = [["graph", pattern], *([w] for w in words)]
    if project is not None:
        clauses.append(["project", project])
    order.shuffle(clauses)  # type: ignore[attr-defined]
    expected_words = tuple(w for clause in clauses for w in clause if len(clause) == 1)
    result = parse("subscribe " + " ".join(w for clause in clauses for w in clause))
    assert result == Subscribe(pattern, expected_words, project)
    assert parse(command_text(result)) == result


@pytest.mark.parametrize(
    "command",
    [
        Subscribe("faild", ("failed",)),
        Subscribe("today"),
        Subscribe("2h"),
        Unsubscribe("stauts", "prod"),
        Mute("todya", timedelta(hours=2)),
        Mute("12", timedelta(minutes=90)),
        Unmute("mute"),
        JobDetail("ff80808167bb9034", "prod", public=True),
        Query(frozenset({"failed"}), None, graph="today", job_name="ImportGraph", limit=7),
    ],
)
def test_patterns_like_keywords_round_trip(command: Command) -> None:
    assert parse(command_text(command)) == command


@given(pattern=patterns, minutes=st.integers(1, 30 * 24 * 60))
def test_mute_round_trips(pattern: str, minutes: int) -> None:
    command = Mute(pattern, timedelta(minutes=minutes))
    assert parse(command_text(command)) == command
    assert parse(command_text(Unmute(pattern))) == Unmute(pattern)
    assert parse(command_text(Unsubscribe(pattern))) == Unsubscribe(pattern)


# ---------------------------------------------------------------------------------------------
# Time ranges in the asker's zone
# ---------------------------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # DST starts at midnight: some days begin at 01:00
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Pacific/Kiritimati",  # UTC+14
    "Etc/GMT+12",  # UTC-12
    "Asia/Shanghai",
]


def test_today_is_the_askers_local_day() -> None:
    now = datetime(2026, 11, 3, 23, 30, tzinfo=UTC)
    assert resolve(TODAY, now, ZoneInfo("UTC")) == (
        datetime(2026, 11, 3, tzinfo=UTC),
        datetime(2026, 11, 4, tzinfo=UTC),
    )
    # Already 4 November in Shanghai (UTC+8): its day began at 16:00 UTC on the 3rd.
    assert resolve(TODAY, now, ZoneInfo("Asia/Shanghai")) == (
        datetime(2026, 11, 3, 16, tzinfo=UTC),
        datetime(2026, 11, 4, 16, tzinfo=UTC),
    )
    assert resolve(TimeRange.yesterday(), now, ZoneInfo("Asia/Shanghai")) == (
        datetime(2026, 11, 2, 16, tzinfo=UTC),
        datetime(2026, 11, 3, 16, tzinfo=UTC),
    )


def test_dst_days_are_23_and_25_hours_long() -> None:
    spring = resolve(TODAY, datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN)
    assert spring == (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))
    autumn = resolve(TODAY, datetime(2026, 10, 25, 12, tzinfo=UTC), BERLIN)
    assert autumn == (datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC))


def test_a_day_without_midnight_starts_at_the_transition() -> None:
    santiago = ZoneInfo("America/Santiago")
    start, end = resolve(TODAY, datetime(2026, 9, 6, 15, tzinfo=UTC), santiago)
    assert start == datetime(2026, 9, 6, 4, tzinfo=UTC)  # 01:00 -03, as 00:00 -04 never happened
    assert end - start == timedelta(hours=23)


def test_this_week_starts_monday_local() -> None:
    # Sunday 8 November 2026, 23:30 UTC is already Monday the 9th in Berlin.
    now = datetime(2026, 11, 8, 23, 30, tzinfo=UTC)
    assert resolve(TimeRange.this_week(), now, BERLIN) == (
        datetime(2026, 11, 8, 23, tzinfo=UTC),
        datetime(2026, 11, 15, 23, tzinfo=UTC),
    )
    assert resolve(TimeRange.this_week(), now, ZoneInfo("UTC"))[0] == datetime(2026, 11, 2, tzinfo=UTC)


def test_last_since_and_between() -> None:
    now = datetime(2026, 11, 3, 10, tzinfo=UTC)
    assert resolve(TimeRange.last(timedelta(hours=24)), now, BERLIN) == (now - timedelta(hours=24), now)
    assert resolve(TimeRange.since(date(2026, 11, 1)), now, BERLIN) == (datetime(2026, 10, 31, 23, tzinfo=UTC), now)
    future = resolve(TimeRange.since(date(2026, 12, 1)), now, BERLIN)
    assert future[0] == future[1]  # empty, not inverted
    assert resolve(TimeRange.between(date(2026, 10, 24), date(2026, 10, 25)), now, BERLIN) == (
        datetime(2026, 10, 23, 22, tzinfo=UTC),
        datetime(2026, 10, 25, 23, tzinfo=UTC),
    )


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve(TODAY, datetime(2026, 11, 3), BERLIN)


def test_time_range_rejects_impossible_specs() -> None:
    with pytest.raises(ValueError, match="positive span"):
        TimeRange.last(timedelta(0))
    with pytest.raises(ValueError, match="on or after"):
        TimeRange.between(date(2026, 1, 2), date(2026, 1, 1))


utc_now = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


@settings(max_examples=200)
@given(now=utc_now, zone=st.sampled_from(ZONES))
def test_today_is_exactly_one_local_day(now: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    local = now.astimezone(tz).date()
    tick = timedelta(microseconds=1)
    start, end = resolve(TODAY, now, tz)
    assert start.tzinfo is UTC
    assert start <= now < end
    # start is the first instant of the local day, end the first instant of the next one.
    assert start.astimezone(tz).date() == local
    assert (start - tick).astimezone(tz).date() == local - timedelta(days=1)
    assert end.astimezone(tz).date() == local + timedelta(days=1)
    assert (end - tick).astimezone(tz).date() == local
    assert resolve(TimeRange.yesterday(), now, tz)[1] == start
    week_start, week_end = resolve(TimeRange.this_week(), now, tz)
    assert week_start <= start
    assert week_start.astimezone(tz).weekday() == 0
    assert week_end.astimezone(tz).weekday() == 0
    assert timedelta(days=7) - timedelta(hours=2) <= week_end - week_start <= timedelta(days=7, hours=2)


@settings(max_examples=200)
@given(now=utc_now, zone=st.sampled_from(ZONES), spec=range_clauses())
def test_ges_date_window_covers_the_range_in_any_zone(
    now: datetime, zone: str, spec: tuple[list[str], TimeRange | None]
) -> None:
    time_range = spec[1]
    if time_range is None:
        return
    start, end = resolve(time_range, now, ZoneInfo(zone))
    first, last = ges_date_window(start, end)
    assert first <= last
    instants = [start, max(start, end - timedelta(microseconds=1))]
    # Whatever zone GES reads dates in (UTC-12 … UTC+14), every instant's day is in the window.
    for minutes in range(-12 * 60, 14 * 60 + 1, 15):
        offset = timedelta(minutes=minutes)
        for instant in instants:
            assert first <= (instant.astimezone(UTC) + offset).date() <= last
    # ...and it is no wider than one day each side of the UTC days.
    assert first == start.astimezone(UTC).date() - timedelta(days=1)


def test_ges_date_window_example() -> None:
    start, end = resolve(TODAY, datetime(2026, 11, 3, 10, tzinfo=UTC), BERLIN)  # 2 Nov 23:00 → 3 Nov 23:00 UTC
    assert ges_date_window(start, end) == (date(2026, 11, 1), date(2026, 11, 4))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("subscribe prod-* lang zh-CN", Subscribe("prod-*", locale="zh-CN")),
        ("subscribe prod-* failed lang zh project prod", Subscribe("prod-*", ("failed",), "prod", "zh-CN")),
        ("subscribe lang 中文 prod-*", Subscribe("prod-*", locale="zh-CN")),
        ("subscribe prod-* lang en", Subscribe("prod-*")),
        ("subscribe graph lang", Subscribe("lang")),
    ],
)
def test_subscribe_takes_a_language(text: str, expected: Subscribe) -> None:
    assert parse(text) == expected
    assert parse(command_text(expected)) == expected


def test_digest_takes_a_language() -> None:
    from ges_bot.slackapp.commands import Digest

    command = parse("digest daily 09:00 lang zh-CN")
    assert isinstance(command, Digest)
    assert (command.schedule, command.always, command.locale) == ("daily 09:00", False, "zh-CN")
    assert command_text(command) == "digest daily 09:00 lang zh-CN"
    assert parse("digest weekly mon 09:00 always lang zh-cn") == Digest(command.at, 0, True, "zh-CN")


@pytest.mark.parametrize("text", ["subscribe prod-* lang fr", "subscribe prod-* lang", "digest daily 09:00 lang ja"])
def test_an_unknown_language_lists_the_ones_there_are(text: str) -> None:
    error = parse(text)
    assert isinstance(error, UsageError)
    assert "`en`" in error.message and "`zh-CN`" in error.message


def test_help_tells_of_chinese() -> None:
    assert "lang zh-CN" in HELP_TOPICS["subscribe"]
    assert "lang zh-CN" in HELP_TEXT
