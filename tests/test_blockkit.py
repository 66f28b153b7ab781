"""The house style kit: builders, packing, guards and looks shared by alerts and answers."""

from __future__ import annotations

from ges_bot.domain import EventKind, Job
from ges_bot.notify import blockkit as kit
from ges_bot.notify.limits import MAX_CONTEXT_ELEMENTS, MAX_SECTION_TEXT, check_message
from ges_bot.notify.mrkdwn import slack_len


def test_label_is_one_line_and_falls_back() -> None:
    job = Job(job_id="j", status="failed", job_name="  Import\nGraph ", job_type="T")
    assert kit.label(job) == "Import Graph"
    assert kit.label(Job(job_id="j", status="failed", job_name=" \n", job_type="Graph\tManagement")) == (
        "Graph Management"
    )
    assert kit.label(Job(job_id="j", status="failed")) == "Job"


def test_context_keeps_at_most_slacks_ten_elements() -> None:
    block = kit.context(*[f"t{i}" for i in range(MAX_CONTEXT_ELEMENTS + 3)])
    assert len(block["elements"]) == MAX_CONTEXT_ELEMENTS


def test_section_text_fields_and_empty_text() -> None:
    assert kit.section(None, fields=["*a*\nb"]) == {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": "*a*\nb", "verbatim": True}],
    }
    assert kit.section("")["text"]["text"] == "—"


def test_pack_fills_sections_and_cuts_an_entry_too_long_alone() -> None:
    entries = ["x" * 1000] * 5 + ["line\n" * 1000]
    packed = kit.pack(entries, sep="\n\n")
    assert all(slack_len(text) <= MAX_SECTION_TEXT for text, _ in packed)
    assert sum(n for _, n in packed) == len(entries)
    assert [n for _, n in packed] == [2, 2, 1, 1]
    assert packed[-1][0].endswith(" …")


def test_guard_keeps_a_valid_message_and_replaces_an_invalid_one() -> None:
    good = kit.SlackMessage(text="hello", blocks=[kit.section("hello")])
    assert kit.guard(good, fallback="fb", note="_note_") is good
    bad = kit.SlackMessage(text="", blocks=[kit.section("x")] * 60)
    fixed = kit.guard(bad, fallback="fb", note="_note_")
    assert fixed.text == "fb"
    assert check_message(fixed.payload()) == []
    assert fixed.blocks[0]["text"]["text"] == "fb\n_note_"


def test_every_event_kind_has_a_look_and_every_fix_both_forms() -> None:
    assert set(kit.KIND_LOOKS) == set(EventKind)
    assert kit.kind_look(EventKind.FAILED).emoji == "🔴"
    for fix in [*kit.CHANNEL_FIXES.values(), kit.DEFAULT_CHANNEL_FIX]:
        assert fix.sentence[0].isupper() and fix.sentence.endswith(".")
        assert fix.clause[0].islower() and not fix.clause.endswith(".")
