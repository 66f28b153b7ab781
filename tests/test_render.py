"""ges_bot.notify.render: whole payloads per kind (golden files), Slack limits on adversarial input,
and no untrusted text ever becoming live markup.

Golden payloads live in ``tests/fixtures/render/*.json``. After an intended change of look, run
``GES_BOT_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff of those files.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ges_bot.domain import Delivery, EventKind, FileImport, FileKind, Job, JobEvent, ProjectInfo
from ges_bot.notify.limits import check_message, check_view
from ges_bot.notify.mrkdwn import Mrkdwn, code, trusted
from ges_bot.notify.render import (
    ACTION_ACK,
    ACTION_DETAIL_NEXT,
    ACTION_DETAIL_PREV,
    ACTION_DETAILS,
    ACTION_MUTE_1H,
    ACTION_MUTE_24H,
    MAX_THREAD_REPLIES,
    RenderedAlert,
    SlackMessage,
    job_ref,
    page_ref,
    parse_job_ref,
    parse_page_ref,
    render_acknowledged,
    render_alert,
    render_broken_channel_notice,
    render_job_detail_blocks,
    render_job_detail_modal,
    render_notice,
    render_recovered_original,
    render_recovery_reply,
)
from tests.support.jobs import JOB_ID, NOW, T0, hostile_job, import_files, import_job

GOLDEN = Path(__file__).parent / "fixtures" / "render"
PROJECT = ProjectInfo(alias="prod", project_id="0123456789abcdef0123456789abcdef", region="cn-north-4")
EVIL = "<!channel> <@U123> <https://evil.example|click> & `tick` *b* @here #general"


# -- builders --------------------------------------------------------------------------------


def failed_files() -> tuple[FileImport, ...]:
    return import_files()


def ev(job: Job, kind: EventKind = EventKind.FAILED, **kw: Any) -> JobEvent:
    return JobEvent(project="prod", kind=kind, job=job, at=T0 + timedelta(hours=1, minutes=5), **kw)


def delivery(*events: JobEvent, graph: str = "movies") -> Delivery:
    return Delivery(channel="C0ALERTS", project="prod", graph=graph, events=events, subscription_ids=(1,))


def alert_json(rendered: RenderedAlert) -> dict[str, Any]:
    return {"message": rendered.message.payload(), "thread_replies": [r.payload() for r in rendered.thread_replies]}


def assert_golden(name: str, payload: Any) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("GES_BOT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert payload == json.loads(path.read_text(encoding="utf-8")), f"payload differs from {path}"


# -- what Slack would accept, and what would be live -------------------------------------------

_DATE_TOKEN = re.compile(r"<!date\^-?\d+\^\{[a-z_]+\}(?: \{[a-z_]+\})*\|[0-9: 年月日-]+ UTC>")
_BAD_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def mrkdwn_texts(obj: Any) -> list[str]:
    """Every string Slack would read as mrkdwn: mrkdwn text objects and the top-level fallback."""
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
    """Only our own markup is live: date tokens and the ``live`` tokens we meant (a mention, a
    channel link); nothing else opens a ``<``."""
    texts = mrkdwn_texts(payload)
    if "text" in payload:
        texts.append(payload["text"])
    for text in texts:
        rest = _DATE_TOKEN.sub("", text)
        for token in live:
            rest = rest.replace(token, "")
        assert "<" not in rest, text
        assert ">" not in rest, text
        assert not _BAD_ENTITY.search(rest), text
    assert "link_names" not in payload
    assert "parse" not in payload


def assert_valid(message: SlackMessage, **kw: Any) -> None:
    assert check_message(message.payload()) == []
    assert_inert(message.payload(), **kw)


def assert_valid_alert(rendered: RenderedAlert) -> None:
    assert_valid(rendered.message)
    for reply in rendered.thread_replies:
        assert_valid(reply)


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    ids = []
    for block in blocks:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if isinstance(element, dict) and "action_id" in element:
                ids.append(element["action_id"])
    return ids


def all_text(message: SlackMessage) -> str:
    return json.dumps(message.payload(), ensure_ascii=False)


# -- golden payloads, one per kind --------------------------------------------------------------


def test_failed_import_alert() -> None:
    rendered = render_alert(delivery(ev(import_job())), PROJECT, NOW)
    assert_golden("failed_import", alert_json(rendered))
    assert_valid_alert(rendered)
    message = rendered.message
    assert message.text == "🔴 ImportGraph failed on graph movies (job ff80808167b…): 2 of 4 files failed to import"
    assert rendered.thread_replies == ()
    # Problem files first, in GES order; the OK ones summarised.
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]
    assert texts[0] == "*Reason*\n```2 of 4 files failed to import```"
    assert texts[1].startswith("🔴 *vertex* `obs://bucket/movies/person.csv` · failed · 120 of 5,000 lines failed")
    assert texts[2].startswith("🔴 *edge* `obs://bucket/movies/directed.csv` · failed · 800 of 800 lines failed")
    assert message.blocks[-2]["elements"][0]["text"] == "+ 2 files imported OK"
    assert action_ids(message.blocks) == [ACTION_DETAILS, ACTION_MUTE_1H, ACTION_MUTE_24H, ACTION_ACK]
    assert parse_job_ref(message.blocks[-1]["elements"][0]["value"]) == ("prod", JOB_ID)


def test_partially_failed_alert() -> None:
    files = (
        FileImport(FileKind.VERTEX, "v.csv", "partFailed", "3 bad rows", "v.log", 100, 3, 97),
        FileImport(FileKind.EDGE, "e.csv", "success", None, None, 10, 0, 10),
    )
    job = import_job(status="partiallyFailed", fail_reason=None, files=files)
    rendered = render_alert(delivery(ev(job, EventKind.PARTIALLY_FAILED)), PROJECT, NOW)
    assert_golden("partially_failed", alert_json(rendered))
    assert_valid_alert(rendered)
    assert rendered.message.text == "🟠 ImportGraph partially failed on graph movies (job ff80808167b…)"


def test_unknown_outcome_alert_shows_the_raw_status() -> None:
    job = import_job(status="cancelled", fail_reason=None, files=())
    rendered = render_alert(delivery(ev(job, EventKind.UNKNOWN_OUTCOME, previous_status="running")), PROJECT, NOW)
    assert_golden("unknown_outcome", alert_json(rendered))
    assert_valid_alert(rendered)
    message = rendered.message
    assert message.blocks[0]["text"]["text"] == (
        "❓ ImportGraph ended as “cancelled” (a status ges-bot does not know) · movies"
    )
    assert message.text == (
        "❓ ImportGraph ended as “cancelled” (a status ges-bot does not know) on graph movies (job ff80808167b…)"
    )
    assert "*Status*\n`cancelled`" in [f["text"] for f in message.blocks[1]["fields"]]
    # Like a failure: it can be acknowledged and muted.
    assert action_ids(message.blocks) == [ACTION_DETAILS, ACTION_MUTE_1H, ACTION_MUTE_24H, ACTION_ACK]


def test_unknown_outcome_status_is_inert_and_short() -> None:
    job = import_job(status=EVIL * 5, fail_reason=None, files=())
    other = import_job(job_id="job-2", status="failed")
    single = render_alert(delivery(ev(job, EventKind.UNKNOWN_OUTCOME)), PROJECT, NOW)
    multi = render_alert(delivery(ev(other), ev(job, EventKind.UNKNOWN_OUTCOME)), PROJECT, NOW)

    assert_valid_alert(single)
    assert_valid_alert(multi)
    assert multi.message.blocks[0]["text"]["text"].startswith("🔴 1 failed, 1 ended in an unknown status · movies")


def test_stuck_alert_says_how_long_at_now() -> None:
    job = import_job(status="running", end_time=None, fail_reason=None, files=())
    rendered = render_alert(delivery(ev(job, EventKind.STUCK)), PROJECT, NOW)
    assert_golden("stuck", alert_json(rendered))
    assert_valid_alert(rendered)
    fields = [f["text"] for f in rendered.message.blocks[1]["fields"]]
    assert fields[-1] == (
        "*Running for*\n3h 10m (at <!date^1714990689^{date_short_pretty} {time}|2024-05-06 10:18 UTC>)"
    )


def test_succeeded_alert() -> None:
    job = Job(
        job_id="job-2",
        status="success",
        job_type="GraphManagement",
        job_name="CreateGraph",
        graph="movies",
        begin_time=T0,
        end_time=T0 + timedelta(seconds=42),
    )
    rendered = render_alert(delivery(ev(job, EventKind.SUCCEEDED)), PROJECT, NOW)
    assert_golden("succeeded", alert_json(rendered))
    assert_valid_alert(rendered)
    assert rendered.message.blocks[0]["text"]["text"] == "🟢 CreateGraph succeeded · movies"


def recovery_event() -> JobEvent:
    job = import_job(
        job_id="job-ok",
        status="success",
        fail_reason=None,
        files=(FileImport(FileKind.VERTEX, "obs://bucket/movies/person.csv", "success", None, None, 5000, 0, 5000),),
        begin_time=T0 + timedelta(hours=2),
        end_time=T0 + timedelta(hours=2, minutes=3),
    )
    return ev(job, EventKind.RECOVERED, recovers_job_id=JOB_ID)


def test_recovered_alert_reply_and_updated_original() -> None:
    recovery = recovery_event()
    standalone = render_alert(delivery(recovery), PROJECT, NOW)
    reply = render_recovery_reply(recovery, PROJECT, NOW)
    original = delivery(ev(import_job()))
    updated = render_recovered_original(original, recovery, PROJECT, NOW)
    assert_golden(
        "recovered",
        {"alert": alert_json(standalone), "reply": reply.payload(), "updated_original": updated.payload()},
    )
    for message in (standalone.message, reply, updated):
        assert_valid(message)
    assert reply.text == "✅ ImportGraph recovered on graph movies (job job-ok)"
    # The update keeps the failure's content under a banner, and nothing left to press.
    first = render_alert(original, PROJECT, NOW).message
    assert updated.blocks[1]["text"]["text"].startswith("✅ *Recovered* by ImportGraph job `job-ok` at <!date^")
    assert updated.blocks[0] == first.blocks[0]
    assert updated.blocks[2:] == first.blocks[1:-1]
    assert action_ids(updated.blocks) == []
    assert updated.text.startswith("✅ Recovered: 🔴 ImportGraph failed on graph movies")


def test_acknowledged_original() -> None:
    original = delivery(ev(import_job()))
    acked = render_acknowledged(original, PROJECT, NOW, by_user="U0ABCDEF")
    assert_golden("acknowledged", acked.payload())
    assert_valid(acked, live=("<@U0ABCDEF>",))
    assert acked.blocks[1]["elements"][0]["text"].startswith("👀 Acknowledged by <@U0ABCDEF> at <!date^")
    assert action_ids(acked.blocks) == [ACTION_DETAILS, ACTION_MUTE_1H, ACTION_MUTE_24H]


@pytest.mark.parametrize("user", ["<!channel>", "U1|x", "u123", "", "C123"])
def test_acknowledged_by_something_that_is_not_a_user_id_mentions_no_one(user: str) -> None:
    acked = render_acknowledged(delivery(ev(import_job())), PROJECT, NOW, by_user=user)
    assert_valid(acked)
    assert acked.blocks[1]["elements"][0]["text"].startswith("👀 Acknowledged by someone at ")


def test_acknowledged_after_recovery_keeps_both_banners_and_no_buttons() -> None:
    acked = render_acknowledged(delivery(ev(import_job())), PROJECT, NOW, by_user="W0X", recovery=recovery_event())
    assert_valid(acked, live=("<@W0X>",))
    assert acked.blocks[1]["text"]["text"].startswith("✅ *Recovered*")
    assert acked.blocks[2]["elements"][0]["text"].startswith("👀 Acknowledged by <@W0X>")
    assert action_ids(acked.blocks) == []


def test_one_graph_many_events_is_one_message() -> None:
    stuck = import_job(job_id="job-run", status="running", end_time=None, fail_reason=None, files=(), job_name=None)
    other = import_job(job_id="job-del", job_name="DeleteGraph", files=(), fail_reason="graph is busy")
    rendered = render_alert(
        delivery(ev(import_job()), ev(other), ev(stuck, EventKind.STUCK)),
        PROJECT,
        NOW,
    )
    assert_golden("multi_event", alert_json(rendered))
    assert_valid_alert(rendered)
    assert rendered.message.blocks[0]["text"]["text"] == "🔴 2 failed, 1 stuck · movies"
    assert rendered.message.text == (
        "🔴 2 failed, 1 stuck on graph movies: ImportGraph failed (job ff80808167b…); "
        "DeleteGraph failed (job job-del); GraphManagement stuck (job job-run)"
    )
    # Details for the first job in the actions block, for the others next to their own section.
    assert action_ids(rendered.message.blocks) == [
        ACTION_DETAILS,
        ACTION_DETAILS,
        ACTION_DETAILS,
        ACTION_MUTE_1H,
        ACTION_MUTE_24H,
        ACTION_ACK,
    ]


def test_job_detail_modal_and_blocks() -> None:
    job = import_job()
    modal = render_job_detail_modal(job, PROJECT, NOW)
    blocks = render_job_detail_blocks(job, PROJECT, NOW)
    assert_golden("job_detail", {"modal": modal, "blocks": blocks.payload()})
    assert check_view(modal) == []
    assert_inert(modal)
    assert_valid(blocks)
    assert modal["private_metadata"] == job_ref("prod", JOB_ID)


def test_broken_channel_notice() -> None:
    notice = render_broken_channel_notice("C0ALERTS", "not_in_channel", ["prod-*", "movies", "movies"])
    assert_golden("broken_channel_notice", notice.payload())
    assert_valid(notice, live=("<#C0ALERTS>",))
    body = notice.blocks[1]["text"]["text"]
    assert body.startswith("⚠️ I can no longer post GES job alerts to <#C0ALERTS> — Slack answered `not_in_channel`.")
    assert "Alerts for `movies`, `prod-*` are not delivered" in body
    assert "/invite @ges-bot" in body


def test_broken_channel_notice_with_a_strange_channel_id_links_nothing() -> None:
    notice = render_broken_channel_notice("<!here>", EVIL, [EVIL])
    assert_valid(notice)
    assert "<#" not in all_text(notice)


# -- untrusted text on every field ---------------------------------------------------------------


def evil_job(**changes: Any) -> Job:
    return hostile_job(EVIL, schema=True, **changes)


@pytest.mark.parametrize("kind", list(EventKind))
def test_untrusted_text_never_pings_or_links(kind: EventKind) -> None:
    project = ProjectInfo(alias=EVIL, project_id=EVIL, region=EVIL)
    job = evil_job()
    event = JobEvent(project=EVIL, kind=kind, job=job, at=T0, recovers_job_id=EVIL)
    original = Delivery(channel="C1", project=EVIL, graph=EVIL, events=(event, ev(evil_job(job_id="2"))))
    rendered = render_alert(original, project, NOW)
    assert_valid_alert(rendered)
    for message in (
        render_recovery_reply(event, project, NOW),
        render_recovered_original(original, event, project, NOW),
        render_acknowledged(original, project, NOW, by_user=EVIL),
        render_job_detail_blocks(job, project, NOW),
        render_notice(trusted("Note: "), EVIL, code(EVIL)),
    ):
        assert_valid(message)
    modal = render_job_detail_modal(job, project, NOW)
    assert check_view(modal) == []
    assert_inert(modal)
    # Shown, escaped, not dropped: the reader still sees what GES said.
    assert "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp;" in all_text(rendered.message)


def test_plain_text_header_keeps_untrusted_text_as_typed() -> None:
    rendered = render_alert(delivery(ev(evil_job()), graph=EVIL), PROJECT, NOW)
    header = rendered.message.blocks[0]["text"]
    assert header["type"] == "plain_text"  # plain_text is never parsed: shown literally
    assert header["text"].startswith("🔴 <!channel> <@U123>")


# -- size: whatever the input, valid payloads ----------------------------------------------------


def many_files(n: int, *, cause: str = "bad row", failed_every: int = 2) -> tuple[FileImport, ...]:
    return tuple(
        FileImport(
            FileKind.VERTEX if i % 3 else FileKind.EDGE,
            f"obs://bucket/movies/part-{i:04d}.csv",
            "failed" if i % failed_every == 0 else "success",
            cause if i % failed_every == 0 else None,
            f"obs://bucket/logs/part-{i:04d}.log",
            1000,
            10 if i % failed_every == 0 else 0,
            990,
        )
        for i in range(n)
    )


def test_import_of_300_files_summarises_and_continues_in_the_thread() -> None:
    job = import_job(files=many_files(300))
    rendered = render_alert(delivery(ev(job)), PROJECT, NOW)
    assert_valid_alert(rendered)
    message = rendered.message
    assert len(message.blocks) <= 50
    notes = [b["elements"][0]["text"] for b in message.blocks if b["type"] == "context"]
    assert notes == ["+ 150 files imported OK · …and 147 more files with problems, listed in the thread"]
    # Every problem file appears once: 3 in the alert, the rest in the thread.
    shown = re.findall(r"part-(\d{4})\.csv", "".join(all_text(m) for m in (message, *rendered.thread_replies)))
    assert sorted(int(s) for s in shown) == list(range(0, 300, 2))
    assert 1 <= len(rendered.thread_replies) <= MAX_THREAD_REPLIES


def test_a_20kb_cause_is_cut() -> None:
    cause = "java.lang.IllegalStateException: " + "x" * 20_000 + " END"
    job = import_job(fail_reason=cause, files=(FileImport(FileKind.EDGE, "e.csv", "failed", cause, "e.log"),))
    rendered = render_alert(delivery(ev(job)), PROJECT, NOW)
    assert_valid_alert(rendered)
    text = all_text(rendered.message)
    assert "END" not in text
    assert "x…```" in text
    assert len(rendered.message.text) <= 1000
    modal = render_job_detail_modal(job, PROJECT, NOW)
    assert check_view(modal) == []


def test_a_40_failure_tick_is_one_alert_with_the_rest_in_the_thread() -> None:
    events = [ev(import_job(job_id=f"job-{i:02d}", files=many_files(4))) for i in range(40)]
    rendered = render_alert(delivery(*events), PROJECT, NOW)
    assert_valid_alert(rendered)
    assert rendered.message.blocks[0]["text"]["text"] == "🔴 40 failed · movies"
    assert rendered.message.text.endswith("; …and 35 more")
    assert any(
        b["type"] == "context" and b["elements"][0]["text"] == "…and 35 more jobs on this graph, listed in the thread"
        for b in rendered.message.blocks
    )
    everything = "".join(all_text(m) for m in rendered.thread_replies)
    assert all(f"`job-{i:02d}`" in everything for i in range(5, 40))


def test_thread_replies_are_capped_with_a_pointer_to_the_rest() -> None:
    events = [ev(import_job(job_id=f"job-{i:02d}", files=many_files(300, cause="c" * 500))) for i in range(40)]
    rendered = render_alert(delivery(*events), PROJECT, NOW)
    assert_valid_alert(rendered)
    assert len(rendered.thread_replies) == MAX_THREAD_REPLIES
    last = rendered.thread_replies[-1].blocks[-1]
    assert last["type"] == "context"
    assert last["elements"][0]["text"] == (
        "…and more, too long for this thread: *Details* or `/gesjobs job ID` shows every job and file"
    )


def test_modal_pages_through_every_file() -> None:
    job = import_job(files=many_files(600, cause="c" * 1500, failed_every=1))
    first = render_job_detail_modal(job, PROJECT, NOW)
    pages = [first]
    while True:
        nav = [b for b in pages[-1]["blocks"] if b["type"] == "actions"]
        nexts = [e for e in (nav[0]["elements"] if nav else []) if e["action_id"] == ACTION_DETAIL_NEXT]
        if not nexts:
            break
        project, job_id, page = parse_page_ref(nexts[0]["value"])
        assert (project, job_id) == ("prod", JOB_ID)
        pages.append(render_job_detail_modal(job, PROJECT, NOW, page=page))
    assert len(pages) > 1
    seen: list[int] = []
    for modal in pages:
        assert check_view(modal) == []
        seen += [int(s) for s in re.findall(r"part-(\d{4})\.csv", json.dumps(modal))]
    assert sorted(seen) == list(range(600))  # every file, each on exactly one page
    assert [e["action_id"] for e in pages[1]["blocks"][-1]["elements"]] == [ACTION_DETAIL_PREV, ACTION_DETAIL_NEXT]
    assert pages[0]["blocks"][-2]["elements"][0]["text"].startswith("Files 1–")
    # Out of range asks show the nearest page.
    assert render_job_detail_modal(job, PROJECT, NOW, page=999) == pages[-1]


def test_detail_blocks_point_to_the_modal_when_files_do_not_fit() -> None:
    job = import_job(files=many_files(600, cause="c" * 1500, failed_every=1))
    message = render_job_detail_blocks(job, PROJECT, NOW)
    assert_valid(message)
    assert action_ids(message.blocks) == [ACTION_DETAILS]
    assert message.blocks[-2]["elements"][0]["text"].endswith("more files: press Details to see them all")


def test_notice_escapes_untrusted_parts_and_stays_within_limits() -> None:
    notice = render_notice(trusted("*Heads up:* "), "<!everyone> " * 1000, trusted(" bye"), title="Note")
    assert_valid(notice)
    body = notice.blocks[1]["text"]["text"]
    assert body.startswith("*Heads up:* &lt;!everyone&gt; ")
    assert body.endswith("…")
    assert render_notice(trusted("a "), Mrkdwn("`b`"), " <c>").blocks[0]["text"]["text"] == "a `b` &lt;c&gt;"


def test_a_delivery_without_events_still_renders_a_valid_message() -> None:
    rendered = render_alert(delivery(), PROJECT, NOW)
    assert_valid_alert(rendered)
    assert rendered.message.text == "ges-bot: nothing to report on graph movies"
    assert rendered.message.blocks[0]["text"]["text"] == "GES jobs · movies"


def test_refs_round_trip() -> None:
    assert parse_job_ref(job_ref("prod", "a|b")) == ("prod", "a|b")
    assert parse_page_ref(page_ref("prod", "a|b", 3)) == ("prod", "a|b", 3)
    for bad in ("", "prod", "|x", "prod|"):
        with pytest.raises(ValueError, match="not a job reference"):
            parse_job_ref(bad)
    with pytest.raises(ValueError, match="not a page reference"):
        parse_page_ref("prod|job|x")


# -- property: arbitrary jobs, files and text -----------------------------------------------------

_PIECES = [*"<>&`*_~|@!#^ \n", "a", "é", "😀", "<!channel>", "<@U123>", "&amp;", "```", "obs://x/y.csv"]
# Short random pieces, sometimes repeated many times: long text without slow generation.
text = st.builds(
    lambda parts, times: "".join(parts) * times,
    st.lists(st.sampled_from(_PIECES) | st.text(max_size=3), max_size=12),
    st.sampled_from([1, 1, 1, 50, 400]),
)
maybe_text = st.none() | text
times = st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
lines = st.none() | st.integers(min_value=-1, max_value=10**9)
files = st.builds(
    FileImport,
    kind=st.sampled_from(FileKind),
    path=maybe_text,
    status=st.none() | st.sampled_from(["success", "failed", "partFailed", "complete"]) | text,
    cause=maybe_text,
    log=maybe_text,
    total_lines=lines,
    failed_lines=lines,
    successful_lines=lines,
)
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
    files=st.lists(files, max_size=30).map(tuple),
)
events = st.builds(
    JobEvent,
    project=st.just("prod"),
    kind=st.sampled_from(EventKind),
    job=jobs,
    at=st.just(T0),
    recovers_job_id=maybe_text,
)
projects = st.builds(ProjectInfo, alias=text.filter(bool), project_id=st.just("p"), region=maybe_text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(events, min_size=1, max_size=12), text, projects)
def test_any_delivery_renders_valid_inert_payloads(evs: list[JobEvent], graph: str, project: ProjectInfo) -> None:
    original = Delivery(channel="C1", project="prod", graph=graph, events=tuple(evs))
    rendered = render_alert(original, project, NOW)
    assert_valid_alert(rendered)
    # The real alert, not the guard's stand-in: it still has its buttons.
    assert action_ids(rendered.message.blocks)[-1] == ACTION_ACK
    assert_valid(render_recovered_original(original, evs[0], project, NOW))
    assert_valid(render_acknowledged(original, project, NOW, by_user="U1"), live=("<@U1>",))
    assert_valid(render_recovery_reply(evs[0], project, NOW))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(jobs, projects, st.integers(min_value=0, max_value=3))
def test_any_job_detail_renders_valid_inert_payloads(job: Job, project: ProjectInfo, page: int) -> None:
    modal = render_job_detail_modal(job, project, NOW, page=page)
    assert check_view(modal) == []
    assert_inert(modal)
    assert len(modal["blocks"]) > 2 or not job.files  # the real modal, not the stand-in
    assert_valid(render_job_detail_blocks(job, project, NOW))


# -- the limit checker itself: if it never complained, every check above would be hollow ----------


def _mk(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _pt(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _btn(**kw: Any) -> dict[str, Any]:
    return {"type": "button", "text": _pt("Go"), "action_id": "a", "value": "v", **kw}


_OK_SECTION = {"type": "section", "text": _mk("ok")}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"text": "t", "blocks": [_OK_SECTION] * 51}, "blocks: 51 blocks > 50"),
        (
            {"text": "t", "blocks": [{"type": "section", "text": _mk("x" * 3001)}]},
            "blocks[0].text.text: 3001 units > 3000",
        ),
        # Astral characters count twice: 1501 emoji are 3002 UTF-16 units.
        ({"text": "t", "blocks": [{"type": "section", "text": _mk("😀" * 1501)}]}, "3002 units > 3000"),
        ({"text": "t", "blocks": [{"type": "section", "fields": [_mk("f")] * 11}]}, "blocks[0].fields: 11 items > 10"),
        ({"text": "t", "blocks": [{"type": "section", "fields": [_mk("f" * 2001)]}]}, "2001 units > 2000"),
        ({"text": "t", "blocks": [{"type": "section"}]}, "a section needs text or fields"),
        ({"text": "t", "blocks": [{"type": "section", "text": _mk("")}]}, "must not be empty"),
        ({"text": "t", "blocks": [{"type": "section", "text": "bare string"}]}, "must be a text object"),
        ({"text": "t", "blocks": [{"type": "header", "text": _pt("h" * 151)}]}, "151 units > 150"),
        ({"text": "t", "blocks": [{"type": "header", "text": _mk("h")}]}, "blocks[0].text.type: must be plain_text"),
        ({"text": "t", "blocks": [{"type": "context", "elements": [_mk("c")] * 11}]}, "11 items > 10"),
        ({"text": "t", "blocks": [{"type": "actions", "elements": [_btn(text=_pt("b" * 76))]}]}, "76 units > 75"),
        ({"text": "t", "blocks": [{"type": "actions", "elements": [_btn(value="v" * 2001)]}]}, "2001 units > 2000"),
        ({"text": "t", "blocks": [{"type": "actions", "elements": [_btn(action_id="a" * 256)]}]}, "256 units > 255"),
        (
            {"text": "t", "blocks": [{"type": "actions", "elements": [_btn(action_id=f"a{i}") for i in range(26)]}]},
            "26 items > 25",
        ),
        ({"text": "t", "blocks": [{"type": "actions", "elements": [_btn(), _btn()]}]}, "'a' repeats within its block"),
        ({"text": "t", "blocks": [{**_OK_SECTION, "block_id": "b" * 256}]}, "256 units > 255"),
        ({"text": "t", "blocks": [{**_OK_SECTION, "block_id": "b"}, {**_OK_SECTION, "block_id": "b"}]}, "'b' repeats"),
        ({"text": "t", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}, "verbatim: true"),
        ({"text": "t", "blocks": [{"type": "carousel"}]}, "unknown block type 'carousel'"),
        ({"blocks": [_OK_SECTION]}, "text: missing"),
        ({"text": "", "blocks": [_OK_SECTION]}, "text: must not be empty"),
        ({"text": "x" * 3001}, "text: 3001 units > 3000"),
        ({"text": "t", "link_names": True}, "link_names: must not be sent"),
        ({"text": "t", "parse": "full"}, "parse: must not be sent"),
    ],
)
def test_check_message_names_each_violation(payload: dict[str, Any], problem: str) -> None:
    violations = check_message(payload)
    assert any(problem in v for v in violations), violations


def test_check_message_accepts_a_sound_message() -> None:
    payload = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": _pt("h" * 150)},
            {"type": "section", "text": _mk("x" * 3000), "fields": [_mk("f" * 2000)] * 10, "accessory": _btn()},
            {"type": "context", "elements": [_mk("c")] * 10},
            {"type": "divider"},
            {"type": "actions", "elements": [_btn(action_id=f"a{i}", value="v" * 2000) for i in range(25)]},
            *[_OK_SECTION] * 45,
        ],
    }
    assert check_message(payload) == []
    assert check_message({"text": "x" * 40_000}, max_text=40_000) == []


@pytest.mark.parametrize(
    ("view", "problem"),
    [
        ({"type": "modal", "title": _pt("t" * 25), "blocks": [_OK_SECTION]}, "title.text: 25 units > 24"),
        ({"type": "modal", "title": _pt("t"), "close": _pt("c" * 25), "blocks": [_OK_SECTION]}, "close.text"),
        ({"type": "modal", "blocks": [_OK_SECTION]}, "title: missing"),
        ({"type": "modal", "title": _pt("t"), "blocks": [_OK_SECTION] * 101}, "blocks: 101 blocks > 100"),
        ({"type": "popup", "blocks": [_OK_SECTION]}, "must be modal or home"),
        ({"type": "home", "private_metadata": "m" * 3001, "blocks": [_OK_SECTION]}, "3001 units > 3000"),
        ({"type": "home", "callback_id": "c" * 256, "blocks": [_OK_SECTION]}, "256 units > 255"),
    ],
)
def test_check_view_names_each_violation(view: dict[str, Any], problem: str) -> None:
    violations = check_view(view)
    assert any(problem in v for v in violations), violations


def test_check_view_accepts_a_sound_modal_of_100_blocks() -> None:
    view = {"type": "modal", "title": _pt("t" * 24), "close": _pt("Close"), "blocks": [_OK_SECTION] * 100}
    assert check_view(view) == []
