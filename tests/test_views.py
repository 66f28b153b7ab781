"""ges_bot.slackapp.views: whole payloads for the short answers, Slack's limits and inertness on
hostile and arbitrary input for every view, and the acknowledgement transform of a real alert."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ges_bot.domain import (
    ALERTABLE_KINDS,
    Delivery,
    EventKind,
    FileImport,
    FileKind,
    Job,
    JobEvent,
    Mute,
    ProjectInfo,
    Subscription,
)
from ges_bot.notify import render
from ges_bot.notify.limits import check_message, check_view
from ges_bot.notify.render import SlackMessage
from ges_bot.slackapp import views
from ges_bot.slackapp.commands import HELP_TEXT, HELP_TOPICS, Query, TimeRange, UsageError, parse, resolve
from ges_bot.slackapp.queries import FoundJob, JobLookup, JobsAnswer, QueryProblem, Source, SourceKind
from ges_bot.store.api import Health, PollState

NOW = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
PROJECT = ProjectInfo(alias="prod", project_id="0123456789abcdef0123456789abcdef", region="cn-north-4")
EVIL = "<!channel> <@U123> <https://evil.example|click> & `tick` *b* <#C0GENERAL> <!subteam^S1>"
_DATE_TOKEN = re.compile(r"<!date\^-?\d+\^\{[a-z_]+\}(?: \{[a-z_]+\})*\|[0-9: -]+ UTC>")
_BAD_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def mrkdwn_texts(obj: Any) -> list[str]:
    found: list[str] = []
    if isinstance(obj, dict):
        if obj.get("type") == "mrkdwn" and isinstance(obj.get("text"), str):
            found.append(obj["text"])
        for value in obj.values():
            found.extend(mrkdwn_texts(value))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(mrkdwn_texts(item))
    return found


def assert_inert(payload: dict[str, Any], *, live: tuple[str, ...] = ()) -> None:
    """Nothing opens a ``<`` in what Slack parses except date tokens and the ``live`` tokens we meant."""
    texts = mrkdwn_texts(payload.get("blocks", []))
    if "text" in payload:
        texts.append(payload["text"])
    for text in texts:
        rest = _DATE_TOKEN.sub("", text)
        for token in live:
            rest = rest.replace(token, "")
        assert "<" not in rest, text
        assert ">" not in rest, text
        assert not _BAD_ENTITY.search(rest), text


def assert_valid(message: SlackMessage, *, live: tuple[str, ...] = ()) -> None:
    assert check_message(message.payload()) == []
    assert_inert(message.payload(), live=live)


def seen(payload: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(payload.get("blocks", [])))


def job(i: int = 1, **changes: Any) -> Job:
    base = Job(
        job_id=f"ff8080816{i:023d}",
        status="failed",
        job_type="GraphManagement",
        job_name="ImportGraph",
        graph="movies",
        begin_time=NOW - timedelta(minutes=30 + i),
        end_time=NOW - timedelta(minutes=20 + i),
        fail_reason="2 of 4 files failed to import",
    )
    return replace(base, **changes)


def evil_job(i: int = 1) -> Job:
    files = tuple(FileImport(FileKind.VERTEX, EVIL, "failed", cause=EVIL, log=EVIL) for _ in range(3))
    return Job(
        job_id=f"{EVIL}{i}",
        status=EVIL,
        job_type=EVIL,
        job_name=EVIL,
        graph=EVIL,
        begin_time=NOW - timedelta(hours=1),
        end_time=None,
        fail_reason=EVIL,
        files=files,
    )


def answer_for(jobs: list[Job], *, query: Query | None = None, sources: tuple[Source, ...] | None = None) -> JobsAnswer:
    query = query or Query(statuses=frozenset({"failed"}), range=TimeRange.today())
    zone = "Europe/Berlin"
    from zoneinfo import ZoneInfo

    start, end = resolve(query.range, NOW, ZoneInfo(zone)) if query.range else (None, None)
    return JobsAnswer(
        query=query,
        zone=zone,
        start=start,
        end=end,
        jobs=tuple(FoundJob("prod", j) for j in jobs),
        sources=sources or (Source("prod", SourceKind.LIVE),),
    )


# -- whole payloads of the short answers -------------------------------------------------------


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def test_subscribed_message() -> None:
    sub = Subscription(
        id=1,
        channel="C0GENERAL",
        graph_pattern="prod-*",
        kinds=frozenset({EventKind.FAILED, EventKind.STUCK}),
        project="prod",
        created_by="U0BOB",
        created_at=NOW,
    )
    assert views.subscribed_message(sub, "C0GENERAL").payload() == {
        "text": "Subscribed to prod-*: failed, stuck",
        "blocks": [
            section(
                "✅ <#C0GENERAL> will hear when a job of a graph matching `prod-*` in project prod fails or gets stuck.\n"
                "Silence it for a while with `/gesjobs mute prod-* 2h`; stop with `/gesjobs unsubscribe prod-*`."
            )
        ],
    }


def test_muted_and_unmuted_messages() -> None:
    mute = Mute(id=1, channel="C0GENERAL", graph_pattern="prod-*", until=NOW + timedelta(hours=2), created_by="U0BOB")
    assert views.muted_message(mute, NOW).payload() == {
        "text": "Muted prod-* for 2h 00m",
        "blocks": [
            section(
                "🔇 No alerts for graphs matching `prod-*` in this channel until "
                "<!date^1773192600^{date_short_pretty} {time}|2026-03-11 01:30 UTC> (2h 00m). "
                "`/gesjobs unmute prod-*` ends it sooner."
            )
        ],
    }
    assert views.unmuted_message("prod-*", 1).payload() == {
        "text": "Unmute prod-*: done",
        "blocks": [section("🔔 Alerts for graphs matching `prod-*` are back on in this channel.")],
    }
    assert views.unmuted_message("a<b", 0).payload() == {
        "text": "Unmute a&lt;b: nothing to unmute",
        "blocks": [section("No mute for `a&lt;b` in this channel. `/gesjobs subscriptions` lists the mutes in force.")],
    }


def test_refusal_names_the_admins_and_mentions_only_real_ids() -> None:
    message = views.not_allowed_message({"U0BOB", "W0ANNA", "<!here>"}, "change subscriptions and mutes")
    assert message.payload() == {
        "text": "Only the bot's admins may change subscriptions and mutes",
        "blocks": [
            section(
                "🙏 Sorry — in this workspace only `&lt;!here&gt;`, <@U0BOB>, <@W0ANNA> may change subscriptions "
                "and mutes. Ask one of them; anyone may still ask about jobs."
            )
        ],
    }
    assert_valid(message, live=("<@U0BOB>", "<@W0ANNA>"))


def test_usage_error_with_suggestion_and_topic_help() -> None:
    error = parse("faild today")
    assert isinstance(error, UsageError)
    message = views.usage_message(error)
    assert_valid(message)
    blocks = message.blocks
    assert blocks[0] == section(
        "🤔 unknown word `faild` — did you mean `failed`? (If `faild` is a graph, write `graph faild`.)\n"
        "Try `/gesjobs failed today`."
    )
    assert blocks[-1] == {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": "`/gesjobs help` shows everything the bot understands.", "verbatim": True}
        ],
    }
    assert "`graph &lt;name or pattern&gt;`" in seen(message.payload())


def test_usage_error_echoing_hostile_text_stays_inert() -> None:
    for text in (EVIL, "job <!channel>", "subscribe <@U123>", "mute <https://x|y> 2h", "x" * 5000):
        result = parse(text)
        assert isinstance(result, UsageError), text
        assert_valid(views.usage_message(result))
    assert_valid(views.usage_message(UsageError(EVIL, suggestion=EVIL, topic="jobs")))


def test_help_shows_every_line_and_every_topic() -> None:
    message = views.help_message()
    assert_valid(message)
    text = seen(message.payload())
    for line in HELP_TEXT.split("\n"):
        if line.strip():
            assert line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text
    assert len(message.blocks) == HELP_TEXT.count("\n\n") + 1  # one section per paragraph
    for topic in HELP_TOPICS:
        assert_valid(views.help_message(topic))


def test_problem_message_escapes_ges_words() -> None:
    message = views.problem_message(QueryProblem(f"GES (project prod) rejected the query: {EVIL}."))
    assert_valid(message)
    assert "&lt;!channel&gt;" in seen(message.payload())


# -- job lists --------------------------------------------------------------------------------


def test_jobs_answer_counts_then_newest_jobs_then_hint() -> None:
    jobs = [job(i) for i in range(30)] + [job(100 + i, status="partiallyFailed") for i in range(4)]
    message = views.jobs_message(answer_for(jobs), NOW)
    assert_valid(message)
    blocks = message.blocks
    assert blocks[0]["text"]["text"] == (
        "*34 jobs* match `failed today` (today in Europe/Berlin: "
        "<!date^1773183600^{date_short_pretty} {time}|2026-03-10 23:00 UTC> – "
        "<!date^1773270000^{date_short_pretty} {time}|2026-03-11 23:00 UTC>)\n"
        "🔴 30 failed · 🟠 4 partially failed"
    )
    assert blocks[1] == {"type": "divider"}
    assert blocks[2]["text"]["text"].split("\n")[:3] == [
        "🔴 *ImportGraph* on graph `movies` · failed",
        "ended <!date^1773184200^{date_short_pretty} {time}|2026-03-10 23:10 UTC> · took 10m 00s · "
        f"job `{job(0).job_id}`",
        "Reason: `2 of 4 files failed to import`",
    ]
    listed = "\n\n".join(b["text"]["text"] for b in blocks[2:-1])
    assert listed.count("🔴 *ImportGraph*") == 20  # newest 20, several to a section, a blank line apart
    assert len(blocks) < 10
    assert blocks[-1]["elements"][0]["text"] == (
        "Showing 20 of 34 — narrow it with `graph &lt;name or pattern&gt;` or `type &lt;job name&gt;`, "
        "or raise `limit` (up to 100). `/gesjobs job &lt;id&gt;` shows one job with every file."
    )
    assert message.text == "34 jobs match /gesjobs failed today: 30 failed, 4 partially failed"


def test_jobs_answer_entries() -> None:
    running = job(1, status="running", end_time=None, begin_time=NOW - timedelta(hours=5), fail_reason=None)
    message = views.jobs_message(answer_for([running], query=Query(statuses=frozenset({"running"}))), NOW)
    assert_valid(message)
    text = seen(message.payload())
    assert "*1 job* match `running` (active now)" in text
    assert (
        "🔵 *ImportGraph* on graph `movies` · running\n"
        "began <!date^1773167400^{date_short_pretty} {time}|2026-03-10 18:30 UTC> (5h 00m ago) · "
        f"job `{running.job_id}`"
    ) in text
    assert "Showing" not in text


def test_empty_answer() -> None:
    message = views.jobs_message(answer_for([]), NOW)
    assert_valid(message)
    assert seen(message.payload()).startswith("No jobs match `failed today` (today in Europe/Berlin:")


def test_answer_from_snapshots_says_so_and_how_old() -> None:
    source = Source(
        "prod",
        SourceKind.SNAPSHOTS,
        reason="GES (project prod) is unreachable: GES answered HTTP 503 GES.7005",
        as_of=NOW - timedelta(minutes=4),
        truncated=True,
    )
    message = views.jobs_message(answer_for([job()], sources=(source,)), NOW)
    assert_valid(message)
    assert message.blocks[1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "⚠️ GES (project prod) is unreachable: GES answered HTTP 503 GES.7005 — answering from the "
                "bot's snapshots as of the last successful poll "
                "<!date^1773185160^{date_short_pretty} {time}|2026-03-10 23:26 UTC> (4m 00s ago); "
                "only the newest snapshots were searched",
                "verbatim": True,
            }
        ],
    }
    assert message.text.endswith("(from snapshots: GES is unreachable)")


def test_answer_from_a_recent_poll_says_how_recent_without_a_warning() -> None:
    source = Source("prod", SourceKind.RECENT, as_of=NOW - timedelta(seconds=25))
    message = views.jobs_message(answer_for([job()], sources=(source,)), NOW)
    assert_valid(message)
    assert message.blocks[1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "From the bot's records of project prod, as of its last poll "
                "<!date^1773185375^{date_short_pretty} {time}|2026-03-10 23:29 UTC> (25s ago)",
                "verbatim": True,
            }
        ],
    }
    assert message.text.endswith("(as of the bot's last poll)")
    assert "⚠️" not in seen(message.payload())


def test_answer_when_every_project_failed_is_the_reason() -> None:
    source = Source("prod", SourceKind.ERROR, reason=f"GES refused the bot's credentials for project prod ({EVIL}).")
    message = views.jobs_message(answer_for([], sources=(source,)), NOW)
    assert_valid(message)
    assert seen(message.payload()).startswith("No answer to `failed today`:\n⚠️ GES refused the bot's credentials")


def test_several_projects_name_the_project_of_each_job() -> None:
    sources = (Source("prod", SourceKind.LIVE), Source("staging", SourceKind.ERROR, reason="GES (project staging) …"))
    message = views.jobs_message(answer_for([job()], sources=sources), NOW)
    assert_valid(message)
    text = seen(message.payload())
    assert "· project prod" in text
    assert "⚠️ GES (project staging) …" in text


def test_hostile_jobs_in_a_list_stay_inert() -> None:
    query = Query(statuses=frozenset({EVIL}), range=None, graph=EVIL, job_name=EVIL, project=EVIL, limit=100)
    message = views.jobs_message(answer_for([evil_job(i) for i in range(120)], query=query), NOW)
    assert_valid(message)
    assert "&lt;!channel&gt; &lt;@U123&gt;" in seen(message.payload())


# -- one job, modals --------------------------------------------------------------------------


def test_job_detail_live_is_renders_and_snapshot_gets_a_note() -> None:
    detail = job(files=(FileImport(FileKind.EDGE, "obs://b/e.csv", "failed", cause="line 3: bad vertex"),))
    live = views.job_message(JobLookup("prod", detail, Source("prod", SourceKind.LIVE)), PROJECT, NOW)
    assert live == render.render_job_detail_blocks(detail, PROJECT, NOW)
    old = JobLookup(
        "prod",
        detail,
        Source("prod", SourceKind.SNAPSHOTS, reason="GES did not answer within 8s", as_of=NOW - timedelta(hours=1)),
    )
    message = views.job_message(old, PROJECT, NOW)
    assert_valid(message)
    assert message.blocks[0]["type"] == "header"
    assert message.blocks[1]["elements"][0]["text"].startswith(
        "⚠️ GES did not answer within 8s — showing the bot's snapshot (last seen <!date^"
    )
    recent = JobLookup("prod", detail, Source("prod", SourceKind.RECENT, as_of=NOW - timedelta(seconds=25)))
    message = views.job_message(recent, PROJECT, NOW)
    assert_valid(message)
    note = message.blocks[1]["elements"][0]["text"]
    assert note.startswith("From the bot's records of project prod, as of its last poll")
    assert "⚠️" not in note  # not a warning: the records are moments old


def test_snapshot_note_survives_a_full_message() -> None:
    files = tuple(FileImport(FileKind.VERTEX, f"obs://b/{i}.csv", "failed", cause="c" * 900) for i in range(300))
    detail = job(files=files)
    full = render.render_job_detail_blocks(detail, PROJECT, NOW)
    assert len(full.blocks) == 50
    old = JobLookup("prod", detail, Source("prod", SourceKind.SNAPSHOTS, reason="GES down"))
    message = views.job_message(old, PROJECT, NOW)
    assert_valid(message)
    assert "⚠️ GES down" in message.blocks[0]["elements"][0]["text"]


def test_missing_job_modal() -> None:
    view = views.missing_job_modal(EVIL)
    assert check_view(view) == []
    assert_inert(view)


# -- subscriptions, status, home -------------------------------------------------------------


def subs(n: int, **changes: Any) -> list[Subscription]:
    return [
        replace(
            Subscription(
                id=i + 1,
                channel="C0ALERTS",
                graph_pattern=f"graph-{i:03d}",
                kinds=ALERTABLE_KINDS,
                created_by="U0BOB",
                created_at=NOW,
            ),
            **changes,
        )
        for i in range(n)
    ]


def test_subscriptions_list_marks_config_and_broken() -> None:
    listed = [
        *subs(1, broken="channel_not_found"),
        Subscription(id=-1, channel="#alerts", graph_pattern="nightly-*", source="config", created_by="config"),
    ]
    mutes = [
        Mute(id=1, channel="C0ALERTS", graph_pattern="movies", until=NOW + timedelta(minutes=30), created_by="U0BOB")
    ]
    message = views.subscriptions_message("C0ALERTS", listed, mutes, NOW)
    assert_valid(message, live=("<#C0ALERTS>", "<@U0BOB>"))
    text = seen(message.payload())
    assert "*Subscriptions of <#C0ALERTS>* (2)" in text
    assert (
        "• `graph-000` — failed, partially failed, unknown outcome, stuck, succeeded, recovered · by <@U0BOB> "
        "<!date^1773185400^{date_short_pretty}|2026-03-10 23:30 UTC>\n"
        "   ⚠️ *broken*: Slack answered `channel_not_found` — the channel is gone, or private without the bot in it: "
        "invite the bot or subscribe another channel, then `/gesjobs subscribe graph-000` here again to resume."
    ) in text
    assert (
        "• `nightly-*` — failed, partially failed, unknown outcome · 🔒 from the config file (read-only here)" in text
    )
    assert (
        "• 🔇 `movies` until <!date^1773187200^{date_short_pretty} {time}|2026-03-11 00:00 UTC> (30m 00s left)" in text
    )
    assert message.text == "2 subscriptions here, 1 broken"


def test_many_hostile_subscriptions_fit_one_message() -> None:
    listed = subs(400, graph_pattern=EVIL * 3, created_by=EVIL, broken=EVIL, job_names=frozenset({EVIL}))
    message = views.subscriptions_message("not-a-channel-id", listed, [], NOW)
    assert_valid(message)


def health(**changes: Any) -> Health:
    base = Health(
        polls=(
            PollState("prod", last_success_at=NOW - timedelta(minutes=2)),
            PollState("lagging", last_success_at=NOW - timedelta(minutes=5), last_error=EVIL, consecutive_failures=3),
            PollState("down", last_success_at=NOW - timedelta(hours=2)),
            PollState("new", last_error="GES refused", consecutive_failures=1),
        ),
        outbox_pending=3,
        outbox_dead=1,
        oldest_pending_at=NOW - timedelta(minutes=1),
        broken_subscriptions=tuple(subs(1, broken="is_archived")),
    )
    return replace(base, **changes)


def test_status_message() -> None:
    message = views.status_message(
        health(), ["prod", "never"], NOW, poll_interval_s=60, notes={"slack": "Slack rejects the bot token"}
    )
    assert_valid(message, live=("<#C0ALERTS>",))
    text = seen(message.payload())
    assert (
        "🟢 *prod* · last successful poll <!date^1773185280^{date_short_pretty} {time}|2026-03-10 23:28 UTC> (2m 00s ago)"
        in text
    )
    assert "⚪ *never* · no successful poll yet" in text
    assert "🟠 *lagging* · last successful poll" in text
    assert "last error (3 failures in a row): `&lt;!channel&gt;" in text
    assert "🔴 *down* · last successful poll" in text
    assert "🔴 *new* · no successful poll yet\n   last error: `GES refused`" in text
    assert "📬 Alerts waiting to be delivered: 3 (oldest <!date^" in text
    assert "· given up: 1 (see the bot's log)" in text
    assert "⚠️ `graph-000` in <#C0ALERTS> is broken: Slack answered `is_archived`" in text
    assert "⚠️ Slack rejects the bot token" in text
    assert message.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "ges-bot status", "emoji": True},
    }


def event(i: int, j: Job | None = None) -> JobEvent:
    return JobEvent(project="prod", kind=EventKind.FAILED, job=j or job(i), at=NOW - timedelta(minutes=i))


def test_home_view_within_100_blocks_whatever_the_numbers() -> None:
    data = views.HomeData(
        subscriptions=subs(500, graph_pattern=EVIL, broken=EVIL),
        events=[event(i, evil_job(i)) for i in range(200)],
        health=health(broken_subscriptions=tuple(subs(300, broken=EVIL))),
        projects=[f"p{i}" for i in range(100)],
        poll_interval_s=60,
        notes={str(i): EVIL for i in range(50)},
        events_since=NOW - timedelta(hours=24),
    )
    view = views.home_view(data, NOW)
    assert view["type"] == "home"
    assert check_view(view) == []
    assert len(view["blocks"]) <= 100
    assert_inert(view, live=("<#C0ALERTS>", "<@U0BOB>"))
    assert "…and 460 more" in seen(view)


def test_home_view_empty() -> None:
    data = views.HomeData(
        subscriptions=[],
        events=[],
        health=Health(polls=(), outbox_pending=0, outbox_dead=0, oldest_pending_at=None, broken_subscriptions=()),
        projects=["prod"],
        poll_interval_s=60,
        notes={},
        events_since=NOW - timedelta(hours=24),
    )
    view = views.home_view(data, NOW)
    assert check_view(view) == []
    text = seen(view)
    assert "*Subscriptions* (0)" in text
    assert "No failures. 🎉" in text
    assert "⚪ *prod* · no successful poll yet" in text


# -- acknowledgement --------------------------------------------------------------------------


def alert(j: Job) -> SlackMessage:
    delivery = Delivery(
        channel="C0ALERTS",
        project="prod",
        graph=j.graph or "",
        events=(JobEvent(project="prod", kind=EventKind.FAILED, job=j, at=NOW),),
    )
    return render.render_alert(delivery, PROJECT, NOW).message


def test_acknowledge_replaces_the_ack_button_with_who_and_when() -> None:
    original = alert(job())
    updated = views.acknowledged(original.text, original.blocks, "U0BOB", NOW + timedelta(minutes=3))
    assert updated is not None
    assert_valid(updated, live=("<@U0BOB>",))
    assert updated.text == f"👀 Acknowledged: {original.text}"
    index = next(i for i, b in enumerate(original.blocks) if b.get("block_id") == render.ALERT_ACTIONS_BLOCK_ID)
    assert updated.blocks[:index] == original.blocks[:index]
    assert updated.blocks[index] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "👀 Acknowledged by <@U0BOB> at <!date^1773185580^{date_short_pretty} {time}|2026-03-10 23:33 UTC>",
                "verbatim": True,
            }
        ],
    }
    kept = updated.blocks[index + 1]
    assert [e["action_id"] for e in kept["elements"]] == [
        render.ACTION_DETAILS,
        render.ACTION_MUTE_1H,
        render.ACTION_MUTE_24H,
    ]
    # Acknowledged twice: nothing left to replace.
    assert views.acknowledged(updated.text, updated.blocks, "U0ANNA", NOW) is None


@pytest.mark.parametrize("user", ["<!channel>", "U0bob", "", "C0GENERAL", "U0BOB> <!here", "@U0BOB"])
def test_acknowledge_by_something_that_is_not_a_user_id_does_nothing(user: str) -> None:
    original = alert(job())
    assert views.acknowledged(original.text, original.blocks, user, NOW) is None


def test_acknowledge_of_a_message_without_buttons_does_nothing() -> None:
    assert views.acknowledged("x", [section("hello")], "U0BOB", NOW) is None


# -- property: arbitrary jobs ------------------------------------------------------------------

_PIECES = [*"<>&`*_~|@!#^ \n", "a", "é", "😀", "<!channel>", "<@U123>", "&amp;", "```", "obs://x/y.csv"]
text = st.builds(
    lambda parts, times: "".join(parts) * times,
    st.lists(st.sampled_from(_PIECES) | st.text(max_size=3), max_size=12),
    st.sampled_from([1, 1, 1, 50, 400]),
)
maybe_text = st.none() | text
times = st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
jobs = st.builds(
    Job,
    job_id=text.filter(bool),
    status=st.sampled_from(["pending", "running", "success", "failed", "partiallyFailed"]) | text,
    job_type=maybe_text,
    job_name=maybe_text,
    graph=maybe_text,
    begin_time=times,
    end_time=times,
    fail_reason=maybe_text,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(jobs, max_size=120), st.integers(min_value=1, max_value=100), maybe_text, maybe_text)
def test_any_jobs_answer_is_valid_and_inert(
    found: list[Job], limit: int, graph: str | None, reason: str | None
) -> None:
    query = Query(
        statuses=frozenset({"failed", "running"}), range=TimeRange.last(timedelta(days=3)), graph=graph, limit=limit
    )
    sources = (
        Source("prod", SourceKind.SNAPSHOTS, reason=reason, as_of=NOW - timedelta(minutes=3)),
        Source("other", SourceKind.ERROR, reason=reason),
    )
    message = views.jobs_message(answer_for(found, query=query, sources=sources), NOW)
    assert_valid(message)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(text, min_size=1, max_size=50), text)
def test_any_subscriptions_and_mutes_are_valid_and_inert(patterns: list[str], user: str) -> None:
    listed = [
        Subscription(id=i, channel="C0ALERTS", graph_pattern=p, created_by=user, broken=p or None)
        for i, p in enumerate(patterns)
    ]
    mutes = [
        Mute(id=i, channel="C0ALERTS", graph_pattern=p, until=NOW + timedelta(hours=1), created_by=user)
        for i, p in enumerate(patterns)
    ]
    assert_valid(views.subscriptions_message("C0ALERTS", listed, mutes, NOW), live=("<#C0ALERTS>",))
    for p in patterns[:3]:
        assert_valid(views.subscribed_message(listed[0], "C0ALERTS"), live=("<#C0ALERTS>",))
        assert_valid(views.unsubscribed_message(p, 0, in_config=True))
        assert_valid(views.muted_message(mutes[0], NOW))
        assert_valid(views.mute_button_message(mutes[0], timedelta(hours=1), user))
        assert_valid(views.unmuted_message(p, 1))


def test_status_shows_a_project_the_ops_watch_calls_blind_in_red_with_its_cause_and_fix() -> None:
    blind = "project prod is blind: GES refuses the bot's credentials. Fix: check HUAWEICLOUD_SDK_AK"
    message = views.status_message(health(), ["prod"], NOW, poll_interval_s=60, notes={"ops:blind:prod": blind})
    text = seen(message.payload())
    assert "🔴 *prod* · last successful poll" in text
    assert f"⚠️ {blind}" in text
    assert "🟢 *prod*" in seen(views.status_message(health(), ["prod"], NOW, poll_interval_s=60).payload())
