"""Digests and ops notices as group bots show them (ges_bot.sinks.digest, ges_bot.sinks.notice):
goldens per platform and language, each platform's limits on a big digest with long hostile names,
and hostile text that neither pings anyone nor forms markup or links.

Goldens live in ``tests/fixtures/sinks/digest_*.json`` and ``ops_*.json``; after an intended change
of look run ``GES_BOT_UPDATE_GOLDEN=1 pytest -n0 tests/test_sink_digest_render.py`` and review it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from ges_bot import stats
from ges_bot.domain import EventKind, Job, JobEvent
from ges_bot.notify.digest import Attention, DigestContent
from ges_bot.notify.ops_channel import said_everywhere
from ges_bot.schedule import DigestSchedule
from ges_bot.sinks.digest import DIGEST_LEVELS, render_digest, wecom_chart
from ges_bot.sinks.notice import render_ops_notice
from ges_bot.slackapp.statsview import ChartScope
from ges_bot.standin.webhooks import Platform, pings_everyone
from ges_bot.store.api import OpsNotice
from ges_bot.watch.blindness import Sentence
from tests.test_sink_render import CHECKS, HOSTILE, PLATFORMS, assert_golden, visible

SHANGHAI = "Asia/Shanghai"
DUE = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
SINCE = DUE - timedelta(days=1)


def job(job_id: str, status: str, begin: datetime, *, graph: str = "prod-fraud", name: str = "ImportGraph") -> Job:
    end = None if status == "running" else begin + timedelta(minutes=30)
    return Job(job_id, status, job_name=name, graph=graph, begin_time=begin, end_time=end)


def content(
    jobs: list[Job], attention: list[JobEvent], *, patterns: tuple[str, ...] | None = ("prod-*",)
) -> DigestContent:
    zone = ZoneInfo(SHANGHAI)
    rows = [stats.StatsRow("prod", j) for j in jobs]
    schedule = DigestSchedule(channel="sink:grp", at=time(9, 0), tz=SHANGHAI, source="config")
    chart_start, chart_end = stats.chart_window(DUE - timedelta(days=7), DUE, DUE, zone)
    return DigestContent(
        schedule=schedule,
        due_at=DUE,
        since=SINCE,
        period=stats.aggregate(rows, zone, SINCE, DUE),
        attention=[Attention(e) for e in attention],
        flaky=stats.flaky_graphs(rows),
        scope=ChartScope(patterns, subscribed=patterns is not None),
        chart_stats=stats.aggregate(rows, zone, chart_start, chart_end),
    )


def night() -> DigestContent:
    """A night of imports: two good, a failure and a partial failure on prod-fraud."""
    start = DUE - timedelta(hours=8)
    jobs = [
        job("ok-1", "success", start),
        job("ok-2", "success", start + timedelta(hours=1), graph="prod-movies"),
        job("bad-1", "failed", start + timedelta(hours=2)),
        job("bad-2", "partiallyFailed", start + timedelta(hours=3)),
        job("old-bad", "failed", start - timedelta(days=2)),
    ]
    events = [
        JobEvent("prod", EventKind.FAILED, jobs[2], start + timedelta(hours=2, minutes=30)),
        JobEvent("prod", EventKind.PARTIALLY_FAILED, jobs[3], start + timedelta(hours=3, minutes=30)),
    ]
    return content(jobs, events)


def hostile_big() -> DigestContent:
    """Sixty failures on graphs with long hostile names; everything a digest lists is hostile."""
    start = DUE - timedelta(hours=20)
    jobs: list[Job] = []
    events: list[JobEvent] = []
    for i in range(60):
        graph = f"g{i}-{HOSTILE.replace(chr(10), ' ')}" + "x" * 300
        j = job(f"{HOSTILE[:40]}-{i}", "failed", start + timedelta(minutes=10 * i), graph=graph, name=HOSTILE)
        jobs.append(j)
        jobs.append(job(f"again-{i}", "failed", start + timedelta(minutes=10 * i + 5), graph=graph))
        events.append(JobEvent("prod", EventKind.FAILED, j, start + timedelta(minutes=10 * i + 1)))
    return content(jobs, events, patterns=tuple(f"{HOSTILE[:30]}-{i}*" for i in range(8)))


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_digest_golden(platform: Platform, locale: str) -> None:
    rendered = render_digest(platform, night(), locale, DUE + timedelta(minutes=1), zone=SHANGHAI)
    assert rendered.level == 0
    assert CHECKS[platform](rendered.body) == []
    assert_golden(f"digest_{platform}_{locale}", rendered.body)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_what_a_reader_of_the_digest_sees(platform: Platform) -> None:
    body = visible(render_digest(platform, night(), "en", DUE + timedelta(minutes=1)).body)
    assert "Daily digest · Mon, Nov 30, 2026 09:00 (Asia/Shanghai)" in body
    assert "5 jobs" not in body  # the period is the last day: the job two days ago is not in it
    assert "4 jobs" in body and "2 succeeded" in body and "1 failed" in body and "1 partially failed" in body
    assert "Failure rate" in body and "50.0%" in body
    assert "Needs attention" in body and "ImportGraph failed on graph" in body and "prod-fraud" in body
    assert "Jobs per day, last 7 days:" in body
    assert "cannot post pictures" in body  # no chart here, and it says so


def test_the_zh_cn_digest_reads_in_chinese() -> None:
    body = visible(render_digest("dingtalk", night(), "zh-CN", DUE + timedelta(minutes=1)).body)
    assert "每日摘要 · 2026年11月30日周一 09:00" in body
    assert "4 个任务" in body and "需要关注" in body and "导入图失败" in body and "失败率" in body
    assert "50.0%" in body


def test_a_late_digest_says_so_in_both_languages() -> None:
    late = DUE + timedelta(hours=3)
    assert "Late: this digest was due" in visible(render_digest("lark", night(), "en", late).body)
    assert "延迟发送" in visible(render_digest("wecom", night(), "zh-CN", late).body)
    assert "Late" not in visible(render_digest("lark", night(), "en", DUE + timedelta(minutes=2)).body)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_big_hostile_digest_fits_and_pings_nobody(platform: Platform, locale: str) -> None:
    rendered = render_digest(platform, hostile_big(), locale, DUE + timedelta(minutes=1))
    assert CHECKS[platform](rendered.body) == []
    assert not pings_everyone(platform, rendered.body)
    assert "…" in visible(rendered.body)  # what does not fit is counted, not dropped silently


def _raw(body: dict[str, object]) -> str:
    """The strings a client parses (word joiners included: they are what defuses a token)."""
    return json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_hostile_names_never_form_a_mention_or_link(platform: Platform) -> None:
    raw = _raw(render_digest(platform, hostile_big(), "en", DUE + timedelta(minutes=1), start=0).body)
    assert "@all" not in raw and "@everyone" not in raw and "@13800000000" not in raw
    assert "https://evil" not in raw and "www.evil" not in raw
    assert not re.search(r"<at[ >]", raw)
    assert "<font color=red>" not in raw
    assert "[click](" not in raw


def test_wecom_steps_down_to_fit_4096_bytes() -> None:
    rendered = render_digest("wecom", hostile_big(), "zh-CN", DUE)
    assert rendered.level > 0
    assert len(rendered.body["markdown"]["content"].encode()) <= 4096
    # The last level always fits, whatever the data.
    last = render_digest("wecom", hostile_big(), "en", DUE, start=len(DIGEST_LEVELS) - 1)
    assert CHECKS["wecom"](last.body) == []


def test_wecom_chart_is_an_image_message_with_its_md5() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    body = wecom_chart(png)
    assert body is not None and body["msgtype"] == "image"
    import base64
    import hashlib

    assert base64.b64decode(body["image"]["base64"]) == png
    assert body["image"]["md5"] == hashlib.md5(png, usedforsecurity=False).hexdigest()
    assert wecom_chart(b"x" * (2 * 1024 * 1024 + 1)) is None


def test_the_slack_incoming_webhook_gets_the_house_digest_without_a_chart() -> None:
    body = render_digest("slack", night(), "en", DUE).body
    assert body["blocks"] and not any(b.get("type") == "image" for b in body["blocks"])
    assert "Daily digest" in body["text"]
    assert "/gesjobs digest off" not in json.dumps(body)  # a webhook's channel cannot run it


# --- ops notices ---------------------------------------------------------------------------------

#: As ``watch.blindness`` says it, and the incident record keeps it: in every language.
CAUSE = Sentence(
    "its polls of GES keep failing ({failures} in a row; last: {error}); failures of its jobs are not being alerted.",
    {"failures": "7", "error": "GES answered HTTP 503"},
)
FIX = Sentence(
    "GES itself is failing: check Huawei Cloud's service health for GES in this region. Nothing to do on the "
    "bot's side; it retries every interval and alerts what it missed once GES answers."
)
OPEN = OpsNotice(
    phase="open",
    kind="blind",
    subject="prod",
    since=datetime(2026, 11, 29, 6, 0, tzinfo=UTC),
    cause=CAUSE.english,
    fix=FIX.english,
    said={"cause": said_everywhere(CAUSE), "fix": said_everywhere(FIX)},
)
RESOLVED = OpsNotice(
    phase="resolved",
    kind="blind",
    subject="prod",
    since=OPEN.since,
    cause=OPEN.cause,
    fix=OPEN.fix,
    resolved_at=OPEN.since + timedelta(minutes=12),
    resolution="GES answers again; caught up: 3 failures alerted.",
    said={
        **OPEN.said,
        "resolution": {
            "en": "GES answers again; caught up: 3 failures alerted.",
            "zh-CN": "GES 已恢复响应；已补查：已告警 3 次失败。",
        },
    },
)


def test_a_notice_without_the_words_of_its_language_shows_the_english_ones() -> None:
    """Outbox rows written before incidents kept their sentences in every language still render."""
    bare = OpsNotice("open", "blind", "prod", OPEN.since, OPEN.cause, OPEN.fix)
    text = _raw(render_ops_notice("dingtalk", bare, "zh-CN"))
    assert "项目 prod" in text and "its polls of GES keep failing" in text


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_ops_notice_golden(platform: Platform, locale: str) -> None:
    bodies = {
        phase: render_ops_notice(platform, notice, locale, zone=SHANGHAI)
        for phase, notice in (("open", OPEN), ("resolved", RESOLVED))
    }
    for body in bodies.values():
        assert CHECKS[platform](body) == []
    assert_golden(f"ops_{platform}_{locale}", bodies)


def test_a_resolution_names_the_incident_it_follows_up() -> None:
    en = visible(render_ops_notice("dingtalk", RESOLVED, "en"))
    assert "Resolved: ges-bot: project prod is blind" in en
    assert "Follow-up: the incident that began" in en and "caught up: 3 failures alerted" in en
    zh = visible(render_ops_notice("dingtalk", RESOLVED, "zh-CN"))
    assert "已恢复" in zh and "后续通知" in zh


@pytest.mark.parametrize("platform", [*PLATFORMS, "slack"])
def test_a_hostile_cause_in_an_ops_notice_pings_nobody(platform: Platform) -> None:
    notice = OpsNotice("open", "sink", HOSTILE, OPEN.since, f"the platform said: {HOSTILE}", HOSTILE)
    body = render_ops_notice(platform, notice, "en")
    raw = _raw(body)
    assert not pings_everyone(platform, body)
    if platform == "slack":
        # Slack reads mentions and links only as <…> tokens, and the text is sent verbatim.
        assert "<https://evil" not in raw and "<!" not in raw
        assert all(b["text"].get("verbatim") for b in body["blocks"])
    else:
        assert "@all" not in raw and "https://evil" not in raw and not re.search(r"<at[ >]", raw)
