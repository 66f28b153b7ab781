"""Slack alerts in Chinese: a delivery routed with ``locale="zh-CN"`` is rendered through the
catalogue with GES console terms (导入图, 失败, 部分失败 …), numbers and durations for the locale, and
stays within Slack's limits however large its input (Chinese text is 3 UTF-8 bytes a character,
one UTF-16 unit: Slack's limits count the units).

Goldens: ``tests/fixtures/render/zh_CN_*.json`` (``GES_BOT_UPDATE_GOLDEN=1`` rewrites them).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ges_bot.domain import Delivery, EventKind, FileImport, FileKind, JobEvent, ProjectInfo
from ges_bot.notify.render import (
    ACTION_ACK,
    ACTION_DETAILS,
    ACTION_MUTE_1H,
    ACTION_MUTE_24H,
    MAX_THREAD_REPLIES,
    render_acknowledged,
    render_alert,
    render_recovered_original,
    render_recovery_reply,
)
from tests.support.jobs import NOW, import_job
from tests.test_render import (
    PROJECT,
    action_ids,
    alert_json,
    all_text,
    assert_golden,
    assert_valid,
    assert_valid_alert,
    delivery,
    ev,
    events,
    many_files,
    projects,
    recovery_event,
    text,
)


def zh(*events: Any, graph: str = "movies") -> Any:
    return replace(delivery(*events, graph=graph), locale="zh-CN")


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["text"]["text"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_failed_import_alert_in_chinese() -> None:
    rendered = render_alert(zh(ev(import_job())), PROJECT, NOW)
    assert_golden("zh_CN_failed_import", alert_json(rendered))
    assert_valid_alert(rendered)
    message = rendered.message
    assert message.blocks[0]["text"]["text"] == "🔴 导入图失败 · movies"
    assert message.text == "🔴 图 movies 的导入图失败（任务 ff80808167b…）：2 of 4 files failed to import"
    fields = [f["text"] for f in message.blocks[1]["fields"]]
    assert "*状态*\n失败 `failed`" in fields
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]
    assert texts[0] == "*失败原因*\n```2 of 4 files failed to import```"
    assert texts[1].startswith("🔴 *点数据* `obs://bucket/movies/person.csv` · 失败 · 5,000 行中 120 行失败")
    assert message.blocks[-2]["elements"][0]["text"] == "+ 2 个文件导入成功"
    assert buttons(message.blocks) == ["详情", "静音 1 小时", "静音 24 小时", "确认"]
    assert action_ids(message.blocks) == [ACTION_DETAILS, ACTION_MUTE_1H, ACTION_MUTE_24H, ACTION_ACK]
    # Times stay Slack date tokens (each reader's zone); the fallback is written the Chinese way.
    assert "|2024年5月6日 08:12:16 UTC>" in all_text(message)
    # The duration in Chinese words.
    assert "*耗时*\n1小时04分" in fields


def test_partial_failure_of_300_files_with_20kb_chinese_causes_stays_within_limits() -> None:
    cause = "第17行：列“年龄”不是整数：" + "数据错误" * 5_000 + "END"  # 20 kB of Chinese
    files = many_files(300, cause=cause)
    job = import_job(status="partiallyFailed", files=files, fail_reason="部分文件导入失败：" + "原因" * 5_000)
    rendered = render_alert(zh(ev(job, EventKind.PARTIALLY_FAILED)), PROJECT, NOW)
    assert_valid_alert(rendered)
    message = rendered.message
    assert message.blocks[0]["text"]["text"] == "🟠 导入图部分失败 · movies"
    notes = [b["elements"][0]["text"] for b in message.blocks if b["type"] == "context"]
    assert notes == ["+ 150 个文件导入成功 · …另有 147 个文件有问题，列在消息列中"]
    shown = re.findall(r"part-(\d{4})\.csv", "".join(all_text(m) for m in (message, *rendered.thread_replies)))
    assert sorted(int(s) for s in shown) == list(range(0, 300, 2))
    assert 1 <= len(rendered.thread_replies) <= MAX_THREAD_REPLIES
    assert rendered.thread_replies[0].text.startswith("🟠 图 movies 告警的更多内容（1/")
    assert "END" not in all_text(message)
    assert len(message.text) <= 1000


def test_partially_failed_golden_in_chinese() -> None:
    files = (
        FileImport(FileKind.VERTEX, "v.csv", "partFailed", "3 行数据格式错误", "v.log", 100, 3, 97),
        FileImport(FileKind.EDGE, "e.csv", "success", None, None, 10, 0, 10),
    )
    job = import_job(status="partiallyFailed", fail_reason=None, files=files)
    rendered = render_alert(zh(ev(job, EventKind.PARTIALLY_FAILED)), PROJECT, NOW)
    assert_golden("zh_CN_partially_failed", alert_json(rendered))
    assert_valid_alert(rendered)
    assert rendered.message.text == "🟠 图 movies 的导入图部分失败（任务 ff80808167b…）"


def test_stuck_and_unknown_outcome_in_chinese() -> None:
    running = import_job(status="running", end_time=None, fail_reason=None, files=())
    stuck = render_alert(zh(ev(running, EventKind.STUCK)), PROJECT, NOW)
    assert_valid_alert(stuck)
    assert stuck.message.blocks[0]["text"]["text"] == "⏳ 导入图运行超时 · movies"
    fields = [f["text"] for f in stuck.message.blocks[1]["fields"]]
    assert fields[-1].startswith("*已运行*\n3小时10分（开始于 <!date^1714990689^{date_short_pretty} {time}|")

    cancelled = import_job(status="cancelled", fail_reason=None, files=())
    unknown = render_alert(zh(ev(cancelled, EventKind.UNKNOWN_OUTCOME)), PROJECT, NOW)
    assert_valid_alert(unknown)
    assert (
        unknown.message.blocks[0]["text"]["text"] == "❓ 导入图以“cancelled”状态结束（ges-bot 无法识别的状态） · movies"
    )

    many = render_alert(zh(ev(import_job()), ev(running, EventKind.STUCK)), PROJECT, NOW)
    assert_valid_alert(many)
    assert many.message.blocks[0]["text"]["text"] == "🔴 失败 1 个，运行超时 1 个 · movies"


def test_recovery_reply_and_the_edit_of_the_original_in_chinese() -> None:
    recovery = recovery_event()
    reply = render_recovery_reply(recovery, PROJECT, NOW, locale="zh-CN")
    original = zh(ev(import_job()))
    updated = render_recovered_original(original, recovery, PROJECT, NOW)
    acked = render_acknowledged(original, PROJECT, NOW, by_user="U0ABCDEF")
    assert_golden("zh_CN_recovered", {"reply": reply.payload(), "updated_original": updated.payload()})
    assert_valid(reply)
    assert_valid(updated)
    assert_valid(acked, live=("<@U0ABCDEF>",))
    assert reply.text == "✅ 图 movies 的导入图已恢复（任务 job-ok）"
    assert reply.blocks[0]["text"]["text"].startswith(
        "✅ 图 `movies` 的 *导入图* 已恢复：任务 `ff80808167bb90340167bc3c7b5b0166` 失败后，任务 `job-ok` 成功"
    )
    assert updated.blocks[1]["text"]["text"].startswith("✅ *已恢复*：导入图任务 `job-ok` 于 <!date^")
    assert updated.text.startswith("✅ 已恢复：🔴 图 movies 的导入图失败")
    assert action_ids(updated.blocks) == []
    assert acked.blocks[1]["elements"][0]["text"].startswith("👀 <@U0ABCDEF> 已于 <!date^")
    assert buttons(acked.blocks) == ["详情", "静音 1 小时", "静音 24 小时"]


def test_english_stays_the_default() -> None:
    english = render_alert(delivery(ev(import_job())), PROJECT, NOW)
    assert json.dumps(alert_json(english), ensure_ascii=False).count("失败") == 0
    assert english.message.blocks[0]["text"]["text"] == "🔴 ImportGraph failed · movies"


def test_a_slack_incoming_webhook_sink_in_chinese_gets_the_chinese_blocks_without_buttons() -> None:
    from ges_bot.notify.document import alert_document
    from ges_bot.sinks.render import render_alert as render_for_sink

    doc = alert_document(delivery(ev(import_job())), PROJECT, NOW)
    body = render_for_sink("slack", doc, "zh-CN").body
    assert body["blocks"][0]["text"]["text"] == "🔴 导入图失败 · movies"
    assert not [b for b in body["blocks"] if b["type"] == "actions"]
    english = render_for_sink("slack", doc, "en").body
    assert english["blocks"][0]["text"]["text"] == "🔴 ImportGraph failed · movies"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(events, min_size=1, max_size=12), text, projects, st.sampled_from(["导入图失败：" * 300, "图"]))
def test_any_chinese_delivery_renders_valid_inert_payloads(
    evs: list[JobEvent], graph: str, project: ProjectInfo, chinese: str
) -> None:
    evs = [replace(e, job=replace(e.job, fail_reason=(e.job.fail_reason or "") + chinese)) for e in evs]
    original = Delivery(channel="C1", project="prod", graph=graph + chinese, events=tuple(evs), locale="zh-CN")
    rendered = render_alert(original, project, NOW)
    assert_valid_alert(rendered)
    assert action_ids(rendered.message.blocks)[-1] == ACTION_ACK
    assert_valid(render_recovered_original(original, evs[0], project, NOW))
    assert_valid(render_acknowledged(original, project, NOW, by_user="U1"), live=("<@U1>",))
    assert_valid(render_recovery_reply(evs[0], project, NOW, locale="zh-CN"))


def test_every_sentence_the_slack_side_says_has_its_chinese() -> None:
    """Each literal message id the Slack renderers hand to their ``Words`` (``w("…")``) is in the
    zh-CN catalogue with a translation that keeps every placeholder."""
    import ast
    from importlib import resources
    from pathlib import Path

    from babel.messages.pofile import read_po

    with resources.files("ges_bot").joinpath("locale/zh_CN/LC_MESSAGES/ges_bot.po").open("rb") as fh:
        catalog = read_po(fh, locale="zh_CN")
    root = Path(__file__).resolve().parents[1] / "ges_bot"
    modules = ["notify/render.py", "notify/digest.py", "notify/ops_channel.py", "slackapp/statsview.py"]
    missing = []
    for module in modules:
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            func = node.func
            named = (isinstance(func, ast.Name) and func.id == "w") or (
                isinstance(func, ast.Attribute) and func.attr == "words"
            )
            msgid = node.args[0].value
            if not named or not isinstance(msgid, str):
                continue
            message = catalog.get(msgid)
            placeholders = set(re.findall(r"\{(\w+)\}", msgid))
            if message is None or not message.string:
                missing.append(f"{module}: {msgid!r}")
            elif set(re.findall(r"\{(\w+)\}", str(message.string))) != placeholders:
                missing.append(f"{module}: {msgid!r} loses or adds a placeholder")
    # Titles and counted nouns are message ids held in tables.
    from ges_bot.notify.ops_channel import _TITLES

    for msgid in _TITLES.values():
        if not (catalog.get(msgid) and catalog.get(msgid).string):
            missing.append(f"ops title {msgid!r}")
    assert missing == []
