"""Group-bot renderings (ges_bot.sinks.*): golden bodies per platform and language, each platform's
limits on adversarial sizes, and hostile text that neither pings anyone nor forms markup or links.

Goldens live in ``tests/fixtures/sinks/*.json``; after an intended change of look run
``GES_BOT_UPDATE_GOLDEN=1 pytest -n0 tests/test_sink_render.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ges_bot.domain import Delivery, EventKind, FileImport, FileKind, Job, JobEvent, ProjectInfo
from ges_bot.notify.document import alert_document
from ges_bot.sinks import dingtalk, lark, teams, wecom
from ges_bot.sinks.common import WJ
from ges_bot.sinks.compose import LEVELS
from ges_bot.sinks.render import render_alert
from ges_bot.standin.webhooks import Platform, pings_everyone
from tests.support import jobs
from tests.support.jobs import JOB_ID, NOW, import_files
from tests.support.jobs import hostile_job as job_of_hostile_text

GOLDEN = Path(__file__).parent / "fixtures" / "sinks"
PROJECT = ProjectInfo(alias="prod", project_id="0123456789abcdef0123456789abcdef", region="cn-north-4")
PLATFORMS: tuple[Platform, ...] = ("lark", "dingtalk", "wecom", "teams")
CHECKS = {"lark": lark.check, "dingtalk": dingtalk.check, "wecom": wecom.check, "teams": teams.check}
HOSTILE = (
    '@all <at user_id="all"></at> <at id=all></at> <@all> @everyone @13800000000 '
    "[click](https://evil.example) https://evil.example www.evil.example **bold** <font color=red>x</font> "
    "```\n# heading\n> quote & `tick`"
)


def partial_files() -> tuple[FileImport, ...]:
    return import_files("partFailed")


def import_job(**changes: Any) -> Job:
    return jobs.import_job(**{"status": "partiallyFailed", "files": partial_files(), **changes})


def doc_of(*jobs: Job, kind: EventKind = EventKind.PARTIALLY_FAILED, graph: str = "movies", **kw: Any):  # type: ignore[no-untyped-def]
    events = tuple(JobEvent(project="prod", kind=kind, job=j, at=NOW, **kw) for j in jobs)
    return alert_document(Delivery(channel="sink:x", project="prod", graph=graph, events=events), PROJECT, NOW)


def assert_golden(name: str, payload: Any) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("GES_BOT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert payload == json.loads(path.read_text(encoding="utf-8")), f"payload differs from {path}"


def visible(body: dict[str, Any]) -> str:
    """The body's strings as a reader sees them (word joiners are invisible)."""
    return json.dumps(body, ensure_ascii=False).replace(WJ, "")


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_partial_failure_import_golden(platform: Platform, locale: str) -> None:
    rendered = render_alert(platform, doc_of(import_job()), locale)
    assert rendered.level == 0
    assert CHECKS[platform](rendered.body) == []
    assert_golden(f"partial_failure_{platform}_{locale}", rendered.body)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_what_the_reader_sees(platform: Platform) -> None:
    text = visible(render_alert(platform, doc_of(import_job()), "en").body)
    for shown in (
        "ImportGraph partially failed · movies",
        "person.csv",
        "120 of 5,000 lines failed",
        "Line 17: column 'age' is not an integer: 'forty'",
        "vertex 'm-42' does not exist",
        "2 files imported OK",
        "64 minutes",
    ):
        assert shown in text.replace("\\", ""), (platform, shown)


def test_lark_header_colour_follows_severity() -> None:
    assert (
        lark.render(doc_of(import_job(), kind=EventKind.FAILED), words("en")).body["card"]["header"]["template"]
        == "red"
    )
    assert lark.render(doc_of(import_job()), words("en")).body["card"]["header"]["template"] == "orange"
    ok = import_job(status="success", files=())
    recovered = doc_of(ok, kind=EventKind.RECOVERED, recovers_job_id="f-1")
    assert lark.render(recovered, words("en")).body["card"]["header"]["template"] == "green"


def words(locale: str):  # type: ignore[no-untyped-def]
    from ges_bot.words import words_for

    return words_for(locale)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_recovery_names_the_failure_it_recovers(platform: Platform) -> None:
    ok = import_job(job_id="ok-2", status="success", files=(), fail_reason=None)
    text = visible(render_alert(platform, doc_of(ok, kind=EventKind.RECOVERED, recovers_job_id=JOB_ID), "en").body)
    assert "recovers the failure of job" in text
    assert JOB_ID in text
    assert "recovered" in text


def many_files(n: int, cause: str) -> tuple[FileImport, ...]:
    return tuple(
        FileImport(
            FileKind.VERTEX if i % 3 else FileKind.EDGE,
            f"obs://bucket/movies/part-{i:04d}.csv",
            "failed" if i % 2 == 0 else "success",
            cause if i % 2 == 0 else None,
            f"obs://bucket/logs/part-{i:04d}.log",
            1000,
            10 if i % 2 == 0 else 0,
            990,
        )
        for i in range(n)
    )


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_300_files_with_20kb_causes_fit_and_say_what_is_left_out(platform: Platform, locale: str) -> None:
    cause = "java.lang.IllegalStateException: " + "数据 x" * 5_000 + " END"
    job = import_job(fail_reason=cause, files=many_files(300, cause))
    rendered = render_alert(platform, doc_of(job, job, job), locale)
    assert CHECKS[platform](rendered.body) == []
    text = visible(rendered.body)
    assert "part-0000.csv" in text  # the first problem file is always shown
    if locale == "en":
        assert re.search(r"\+ 1\d\d more files with problems", text)
        assert "150 files imported OK" in text


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_level_fits_a_small_alert_and_the_last_fits_anything(platform: Platform) -> None:
    huge = "x" * 50_000
    job = import_job(graph=huge, job_name=huge, fail_reason=huge, files=many_files(300, huge))
    doc = doc_of(*(replace(job, job_id=f"j{i}") for i in range(40)), graph=huge)
    rendered = render_alert(platform, doc, "en", start=len(LEVELS) - 1)
    assert CHECKS[platform](rendered.body) == []


def hostile_job(**changes: Any) -> Job:
    return job_of_hostile_text(HOSTILE, **changes)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kind", [k for k in EventKind if k is not EventKind.STATUS_CHANGED])
def test_hostile_text_pings_nobody_and_forms_no_markup(platform: Platform, kind: EventKind) -> None:
    project = ProjectInfo(alias=HOSTILE, project_id="p", region=HOSTILE)
    events = tuple(
        JobEvent(project=HOSTILE, kind=kind, job=hostile_job(job_id=f"{HOSTILE}{i}"), at=NOW, recovers_job_id=HOSTILE)
        for i in range(2)
    )
    doc = alert_document(Delivery(channel="sink:x", project=HOSTILE, graph=HOSTILE, events=events), project, NOW)
    for locale in ("en", "zh-CN"):
        body = render_alert(platform, doc, locale).body
        assert not pings_everyone(platform, body)
        raw = json.dumps(body, ensure_ascii=False)
        # No mention, link or emphasis can form: each token is broken where the platform looks.
        for live in (
            "@all",
            "@everyone",
            "@138",
            "](https",
            "https://evil",
            "www.evil",
            "**bold**",
            "<font color=red>",
            "<at ",
            "<@all>",
        ):
            assert live not in raw, (platform, live)
        # …and the reader still sees what GES said.
        assert "evil.example" in visible(body)


def test_lark_entities_and_dingtalk_never_at_all() -> None:
    doc = doc_of(hostile_job(), kind=EventKind.FAILED)
    assert "&lt;at user_id=&quot;" not in visible(lark.render(doc, words("en")).body)  # quotes stay, < does not
    assert "&lt;at user_id=" in visible(lark.render(doc, words("en")).body)
    assert dingtalk.render(doc, words("en")).body["at"] == {"isAtAll": False}


# -- Chinese --------------------------------------------------------------------------------------


def used_msgids() -> set[str]:
    """Every message id the sink modules pass to their ``Words`` (literal first arguments), and
    the words of the look-up tables."""
    from ges_bot import sinks
    from ges_bot import words as words_module
    from ges_bot.notify.document import FieldKey

    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(sinks.__file__).parent.glob("*.py"))
    ids = set(re.findall(r'\bw\(\s*"((?:[^"\\]|\\.)*)"', source))
    ids |= set(words_module.KIND_WORDS.values()) | set(words_module.FILE_STATUS_WORDS.values())
    ids |= set(words_module.JOB_STATUS_WORDS.values()) | set(words_module.JOB_WORDS)
    ids |= {key.label for key in FieldKey} | {"schema", "vertices", "edges", "(no graph)", "Job"}
    return ids


def test_every_message_has_a_chinese_translation_with_the_same_values() -> None:
    from ges_bot.words import _catalog

    catalog = _catalog("zh-CN")
    assert catalog is not None
    ids = used_msgids()
    assert len(ids) > 40
    for msgid in sorted(ids):
        message = catalog.get(msgid)
        assert message is not None and message.string, f"no zh-CN translation for {msgid!r}"
        assert set(re.findall(r"\{\w+\}", msgid)) == set(re.findall(r"\{\w+\}", str(message.string))), msgid


def test_numbers_instants_and_durations_are_written_the_locales_way() -> None:
    en, zh = words("en"), words("zh-CN")
    at = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
    assert (en.number(12345), zh.number(12345)) == ("12,345", "12,345")
    assert en.when(at) == "Mar 1, 2026, 2:05:00\u202fPM UTC"  # CLDR: a narrow no-break space before PM
    assert zh.when(at) == "2026年3月1日 14:05:00 UTC"
    assert (en.span(timedelta(minutes=75)), zh.span(timedelta(minutes=75))) == ("75 minutes", "75分钟")
    assert zh.span(timedelta(hours=30)) == "30小时"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_chinese_alert_uses_the_consoles_words(platform: Platform) -> None:
    text = visible(render_alert(platform, doc_of(import_job()), "zh-CN").body)
    for shown in (
        "导入图部分失败 · movies",
        "图名称",
        "失败原因",
        "5,000 行中 120 行失败",
        "点数据",
        "2 个文件导入成功",
        "64分钟",
    ):
        assert shown in text.replace("\\", ""), (platform, shown)
    assert "partially failed" not in text and "Reason" not in text and "lines failed" not in text


def test_instants_are_written_in_the_bots_zone_with_its_offset() -> None:
    from ges_bot.words import words_for

    at = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
    assert words_for("zh-CN", "Asia/Shanghai").when(at) == "2026年3月1日 22:05:00 UTC+8"
    assert words_for("en", "Asia/Kolkata").when(at).endswith("7:35:00\u202fPM UTC+5:30")
    body = render_alert("dingtalk", doc_of(import_job()), "zh-CN", zone="Asia/Shanghai").body
    assert "开始时间**: 2024年5月6日 15:08:09 UTC+8" in body["markdown"]["text"]
