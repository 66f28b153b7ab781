"""Block Kit for alerts: deliveries, recovery replies, acknowledgements and the job-detail modal.

This module owns how an alert looks in Slack: the Slack renderer of
:class:`~ges_bot.notify.document.AlertDocument` (what the alert says is decided there; how Slack
shows it, here). It is pure: domain objects and ``now`` in, Slack payloads out; it must not read
the database, the clock or the network. Blocks, looks and guards come from
:mod:`ges_bot.notify.blockkit`, shared with the Slack app's answers. Untrusted text (fail
reasons, causes, graph names, paths, job names, types and ids) reaches Slack only through
:mod:`ges_bot.notify.mrkdwn`; no payload sets ``link_names`` or ``parse``.

Every payload it returns passes :mod:`ges_bot.notify.limits` whatever the input: an import of
300 files, a 20 kB cause or a 40-failure tick is summarised ("…and 37 more files", causes cut
with "…"), and what does not fit the alert goes into ``thread_replies``, each valid on its own.

Each event kind has its own look (:data:`~ges_bot.notify.blockkit.KIND_LOOKS`). An alert carries an actions block (:data:`ACTION_DETAILS`, :data:`ACTION_MUTE_1H`,
:data:`ACTION_MUTE_24H`, :data:`ACTION_ACK`) that ``slackapp`` wires up; button values are
built and parsed by :func:`job_ref` / :func:`parse_job_ref` (``project|job_id``) and, for mutes,
are the graph name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ges_bot.domain import Delivery, EventKind, FileImport, Job, JobEvent, ProjectInfo
from ges_bot.notify import limits
from ges_bot.notify.blockkit import (
    CHANNEL_FIXES,
    DEFAULT_CHANNEL_FIX,
    FILE_STATUS_WORDS,
    STATUS_EMOJI,
    TEXT_LIMIT,
    UNKNOWN_STATUS_EMOJI,
    SlackMessage,
    button,
    context,
    count,
    divider,
    file_emoji,
    guard,
    header,
    kind_look,
    label,
    modal,
    one_line,
    pack,
    section,
)
from ges_bot.notify.document import (
    MUTE_SPANS,
    Action,
    ActionKind,
    AlertDocument,
    AlertItem,
    Field,
    FieldKey,
    FileTally,
    Headline,
    alert_document,
    file_tally,
    graph_name,
    job_fields,
    problems_first,
)
from ges_bot.notify.mrkdwn import (
    NOTHING,
    Mrkdwn,
    channel_link,
    code,
    code_block,
    date_token,
    duration,
    escape,
    fit,
    mention,
    slack_len,
    truncate,
    trusted,
)

__all__ = [
    "ACTION_ACK",
    "ACTION_DETAILS",
    "ACTION_DETAIL_NEXT",
    "ACTION_DETAIL_PREV",
    "ACTION_MUTE_1H",
    "ACTION_MUTE_24H",
    "ALERT_ACTIONS_BLOCK_ID",
    "DETAIL_MODAL_CALLBACK_ID",
    "MUTE_ACTIONS",
    "RenderedAlert",
    "SlackMessage",
    "job_ref",
    "page_ref",
    "parse_job_ref",
    "parse_page_ref",
    "render_acknowledged",
    "render_alert",
    "render_broken_channel_notice",
    "render_document",
    "render_job_detail_blocks",
    "render_job_detail_modal",
    "render_notice",
    "render_recovered_original",
    "render_recovery_reply",
]

#: "Details": opens the job-detail modal. Value: :func:`job_ref`.
ACTION_DETAILS = "gesjobs_details"
#: "Mute 1h" / "Mute 24h" for the graph in this channel. Value: the graph name.
ACTION_MUTE_1H = "gesjobs_mute_1h"
ACTION_MUTE_24H = "gesjobs_mute_24h"
#: "Acknowledge": the app re-renders the message with :func:`render_acknowledged`. Value: :func:`job_ref`.
ACTION_ACK = "gesjobs_ack"
#: Paging through the files of the job-detail modal. Value: :func:`page_ref` of the page to show.
ACTION_DETAIL_PREV = "gesjobs_detail_prev"
ACTION_DETAIL_NEXT = "gesjobs_detail_next"
MUTE_ACTIONS: dict[str, timedelta] = dict(zip((ACTION_MUTE_1H, ACTION_MUTE_24H), MUTE_SPANS, strict=True))
ALERT_ACTIONS_BLOCK_ID = "gesjobs_alert_actions"
DETAIL_MODAL_CALLBACK_ID = "gesjobs_job_detail"
DETAIL_MODAL_TITLE = "GES job details"

#: How much of a delivery the alert itself shows; the rest goes to thread replies.
MAX_EVENTS_INLINE = 5
MAX_FILES_INLINE = 3
#: Thread replies per alert, and blocks per reply (below Slack's 50, room for a closing note).
MAX_THREAD_REPLIES = 10
REPLY_BLOCKS = 45
#: Budgets (in escaped units) for untrusted text. Per-entry budgets add up to well under a
#: section's 3000, so an entry never needs cutting after it is built.
_PATH_BUDGET = 400
_LOG_BUDGET = 400
_NAME_BUDGET = 200
_CAUSE_INLINE = 1000
_CAUSE_THREAD = 600
_CAUSE_MODAL = 1200
_REASON_INLINE = 1500
_REASON_FULL = 2900
_FIELD_BUDGET = 300
_SHORT_ID = 12


@dataclass(frozen=True)
class RenderedAlert:
    """An alert and the replies to post in its thread (what did not fit the alert itself)."""

    message: SlackMessage
    thread_replies: tuple[SlackMessage, ...] = ()


# -- button values ---------------------------------------------------------------------------


def job_ref(project: str, job_id: str) -> str:
    """A button value naming a job: ``project|job_id`` (project aliases hold no ``|``)."""
    return f"{project}|{job_id}"


def parse_job_ref(value: str) -> tuple[str, str]:
    """``(project, job_id)`` from :func:`job_ref`'s value. Raises ``ValueError`` on anything else."""
    project, sep, job_id = value.partition("|")
    if not sep or not project or not job_id:
        raise ValueError(f"not a job reference: {value[:80]!r}")
    return project, job_id


def page_ref(project: str, job_id: str, page: int) -> str:
    """A button value naming a page of a job's files in the detail modal: ``project|job_id|page``."""
    return f"{job_ref(project, job_id)}|{page}"


def parse_page_ref(value: str) -> tuple[str, str, int]:
    """``(project, job_id, page)`` from :func:`page_ref`'s value. Raises ``ValueError`` on anything else."""
    ref, sep, page = value.rpartition("|")
    if not sep or not page.isdigit():
        raise ValueError(f"not a page reference: {value[:80]!r}")
    project, job_id = parse_job_ref(ref)
    return project, job_id, int(page)


# -- blocks ----------------------------------------------------------------------------------


def _details_button(project: ProjectInfo, job: Job) -> dict[str, Any] | None:
    """A "Details" button, or ``None`` when the job id is too long to fit a button value."""
    value = job_ref(project.alias, job.job_id)
    if slack_len(value) > limits.MAX_BUTTON_VALUE:
        return None
    return button("Details", ACTION_DETAILS, value)


# -- shared pieces of text -------------------------------------------------------------------


def _when(dt: datetime | None) -> str:
    return date_token(dt) if dt is not None else NOTHING


def _field_value(f: Field) -> str:
    """A field's value as mrkdwn: identifiers as inert code, words escaped, times as date tokens."""
    key = f.key
    if key is FieldKey.TYPE:
        return fit(f.text, _FIELD_BUDGET) if f.text else NOTHING
    if key is FieldKey.PROJECT:
        text: str = fit(f.text or "", _NAME_BUDGET)
        return text + f" · {fit(f.detail, 100)}" if f.detail else text
    if key is FieldKey.STATUS:
        return code(f.text or "", 100)
    if key in (FieldKey.BEGAN, FieldKey.ENDED):
        return _when(f.at)
    if key in (FieldKey.RUNNING_FOR, FieldKey.WAITING_FOR):
        running = duration(f.span) if f.span is not None else NOTHING
        return f"{running} (at {_when(f.at)})"
    if key is FieldKey.DURATION:
        return duration(f.span) if f.span is not None else NOTHING
    return code(f.text or "", _FIELD_BUDGET)  # graph, job id, the recovered job's id


def _fields(fields: Sequence[Field]) -> list[str]:
    """The facts of a job as section fields (≤ 10, each well under 2000 units)."""
    return [f"*{f.label}*\n{_field_value(f)}" for f in fields]


def _reason_block(reason: str | None, budget: int) -> dict[str, Any] | None:
    if not reason or not reason.strip():
        return None
    return section(f"*Reason*\n{code_block(reason, budget)}")


def _lines_text(f: FileImport) -> str:
    failed = f.failed_lines if f.failed_lines is not None and f.failed_lines >= 0 else None
    total = f.total_lines if f.total_lines is not None and f.total_lines >= 0 else None
    if failed is not None and total is not None:
        return f" · {failed:,} of {count(total, 'line')} failed"
    if failed is not None:
        return f" · {count(failed, 'line')} failed"
    if total is not None:
        return f" · {count(total, 'line')}"
    return ""


def _file_entry(f: FileImport, cause_budget: int) -> str:
    """One import file: kind, path, status, lines, cause and log (≤ ~2200 units by construction)."""
    status = FILE_STATUS_WORDS.get(f.status or "") or (fit(f.status, 60) if f.status else "status unknown")
    text = f"{file_emoji(f)} *{f.kind.value}* {code(f.path, _PATH_BUDGET)} · {status}{_lines_text(f)}"
    if f.cause and f.cause.strip():
        text += f"\n{code_block(f.cause, cause_budget)}"
    if f.log and f.log.strip():
        text += f"\nLog: {code(f.log, _LOG_BUDGET)}"
    return text


def _ok_summary(tally: FileTally) -> str | None:
    """The "+ 12 files imported OK" note (and files of no known status), or ``None`` for no such files."""
    parts = []
    if tally.ok:
        parts.append(f"+ {count(tally.ok, 'file')} imported OK")
    if tally.other:
        parts.append(f"+ {count(tally.other, 'other file')} (no failure reported)")
    return " · ".join(parts) or None


def _short_id(job_id: str) -> str:
    return truncate(job_id, _SHORT_ID)


# -- alerts ----------------------------------------------------------------------------------


def _verb(item: AlertItem, *, mrkdwn: bool) -> str:
    """What happened to the job, said once: an unknown outcome names the status GES sent."""
    if item.kind is not EventKind.UNKNOWN_OUTCOME:
        return kind_look(item.kind).verb
    status = one_line(item.job.status)
    return f"ended as “{fit(status, 60) if mrkdwn else truncate(status, 60)}” (a status ges-bot does not know)"


def _summary(headline: Headline) -> str:
    """Counts by kind, most severe first: "2 failed, 1 stuck"."""
    return ", ".join(f"{n} {kind_look(k).verb}" for k, n in headline.counts)


def _graph(doc: AlertDocument) -> str:
    return one_line(graph_name(doc.graph))


def _alert_header(doc: AlertDocument) -> dict[str, Any]:
    items = doc.items
    if not items or doc.headline.lead is None:  # the store drops recorded events from deliveries
        title = f"GES jobs · {_graph(doc)}"
    elif len(items) == 1:
        look = kind_look(items[0].kind)
        title = f"{look.emoji} {label(items[0].job)} {_verb(items[0], mrkdwn=False)} · {_graph(doc)}"
    else:
        title = f"{kind_look(doc.headline.lead).emoji} {_summary(doc.headline)} · {_graph(doc)}"
    return header(title)


def _alert_text(doc: AlertDocument) -> str:
    """The plain fallback: "🔴 ImportGraph failed on graph movies (job ff80808167b…): reason"."""
    items = doc.items
    graph = fit(_graph(doc), _NAME_BUDGET)
    if not items or doc.headline.lead is None:
        return f"ges-bot: nothing to report on graph {graph}"
    if len(items) == 1:
        item = items[0]
        look = kind_look(item.kind)
        job = item.job
        text = f"{look.emoji} {fit(label(job), 100)} {_verb(item, mrkdwn=True)} on graph {graph} (job {escape(_short_id(job.job_id))})"
        if job.fail_reason and job.fail_reason.strip():
            text += f": {fit(one_line(job.fail_reason), 300)}"
        return text
    listed = "; ".join(
        f"{fit(label(i.job), 60)} {_verb(i, mrkdwn=True)} (job {escape(_short_id(i.job.job_id))})"
        for i in items[:MAX_EVENTS_INLINE]
    )
    more = f"; …and {len(items) - MAX_EVENTS_INLINE} more" if len(items) > MAX_EVENTS_INLINE else ""
    return f"{kind_look(doc.headline.lead).emoji} {_summary(doc.headline)} on graph {graph}: {listed}{more}"


def _item_headline(item: AlertItem) -> str:
    look = kind_look(item.kind)
    return f"{look.emoji} *{fit(label(item.job), _NAME_BUDGET)}* {_verb(item, mrkdwn=True)}"


def _item_blocks(
    item: AlertItem,
    project: ProjectInfo,
    *,
    headline: bool,
    accessory: bool,
    reason_budget: int,
    max_files: int | None,
    cause_budget: int,
    pack_files: bool,
) -> tuple[list[dict[str, Any]], tuple[FileImport, ...]]:
    """An item's blocks, and the problem files that did not fit (``max_files``).

    Without ``headline`` the facts stand alone (a one-event alert: its header already says it).
    """
    details = _details_button(project, item.job) if accessory else None
    text = _item_headline(item) if headline else None
    blocks = [section(text, fields=_fields(item.fields), accessory=details)]
    reason = _reason_block(item.reason, reason_budget)
    if reason is not None:
        blocks.append(reason)
    problems = item.problem_files
    shown = problems if max_files is None else problems[:max_files]
    rest = problems[len(shown) :]
    entries = [_file_entry(f, cause_budget) for f in shown]
    if pack_files:
        blocks.extend(section(text) for text, _ in pack(entries, sep="\n\n"))
    else:
        blocks.extend(section(entry) for entry in entries)
    notes = []
    ok = _ok_summary(item.tally)
    if ok:
        notes.append(ok)
    if rest:
        notes.append(f"…and {count(len(rest), 'more file')} with problems, listed in the thread")
    if notes:
        blocks.append(context(" · ".join(notes)))
    return blocks, rest


#: Mute span → (action id, button text).
_MUTE_BUTTONS: dict[timedelta, tuple[str, str]] = {
    MUTE_ACTIONS[ACTION_MUTE_1H]: (ACTION_MUTE_1H, "Mute 1h"),
    MUTE_ACTIONS[ACTION_MUTE_24H]: (ACTION_MUTE_24H, "Mute 24h"),
}


def _action_button(action: Action, doc: AlertDocument) -> dict[str, Any] | None:
    """The Slack button for an action, or ``None`` when its value cannot fit a button."""
    alias = doc.project.alias
    if action.kind is ActionKind.DETAILS and action.job_id is not None:
        value = job_ref(alias, action.job_id)
        return button("Details", ACTION_DETAILS, value) if slack_len(value) <= limits.MAX_BUTTON_VALUE else None
    if action.kind is ActionKind.MUTE and action.graph and action.span in _MUTE_BUTTONS:
        if slack_len(action.graph) > limits.MAX_BUTTON_VALUE:
            return None
        action_id, text = _MUTE_BUTTONS[action.span]
        return button(text, action_id, action.graph)
    if action.kind is ActionKind.ACKNOWLEDGE:
        ref = job_ref(alias, action.job_id) if action.job_id is not None else None
        return button(
            "Acknowledge", ACTION_ACK, ref if ref is None or slack_len(ref) <= limits.MAX_BUTTON_VALUE else None
        )
    return None


def _alert_actions(doc: AlertDocument, *, with_ack: bool) -> dict[str, Any] | None:
    buttons = [
        b
        for a in doc.actions
        if with_ack or a.kind is not ActionKind.ACKNOWLEDGE
        if (b := _action_button(a, doc)) is not None
    ]
    if not buttons:
        return None
    return {"type": "actions", "block_id": ALERT_ACTIONS_BLOCK_ID, "elements": buttons}


@dataclass(frozen=True)
class _AlertParts:
    blocks: list[dict[str, Any]]
    overflow: list[dict[str, Any]]


def _alert_parts(
    doc: AlertDocument,
    *,
    banners: Sequence[dict[str, Any]] = (),
    buttons: bool = True,
    with_ack: bool = True,
) -> _AlertParts:
    """The alert's blocks (header, banners, up to :data:`MAX_EVENTS_INLINE` items, actions) and
    the blocks that go to the thread instead (further items, further problem files)."""
    blocks: list[dict[str, Any]] = [_alert_header(doc), *banners]
    overflow: list[dict[str, Any]] = []
    inline = doc.items[:MAX_EVENTS_INLINE]
    many = len(doc.items) > 1
    for index, item in enumerate(inline):
        if many:
            blocks.append(divider())
        # The first item's Details button sits in the actions block; later ones get their own.
        item_blocks, rest = _item_blocks(
            item,
            doc.project,
            headline=many,
            accessory=buttons and index > 0,
            reason_budget=_REASON_INLINE,
            max_files=MAX_FILES_INLINE,
            cause_budget=_CAUSE_INLINE,
            pack_files=False,
        )
        blocks.extend(item_blocks)
        if rest:
            name = fit(label(item.job), _NAME_BUDGET)
            overflow.append(
                section(f"More files of *{name}* job {code(item.job.job_id, _FIELD_BUDGET)} with problems:")
            )
            entries = [_file_entry(f, _CAUSE_THREAD) for f in rest]
            overflow.extend(section(text) for text, _ in pack(entries, sep="\n\n"))
    for item in doc.items[MAX_EVENTS_INLINE:]:
        overflow.append(divider())
        item_blocks, _ = _item_blocks(
            item,
            doc.project,
            headline=True,
            accessory=buttons,
            reason_budget=_REASON_INLINE,
            max_files=None,
            cause_budget=_CAUSE_THREAD,
            pack_files=True,
        )
        overflow.extend(item_blocks)
    hidden = len(doc.items) - len(inline)
    if hidden > 0:
        blocks.append(context(f"…and {count(hidden, 'more job')} on this graph, listed in the thread"))
    if buttons:
        actions = _alert_actions(doc, with_ack=with_ack)
        if actions is not None:
            blocks.append(actions)
    return _AlertParts(blocks=blocks, overflow=overflow)


def _thread_replies(doc: AlertDocument, overflow: list[dict[str, Any]]) -> tuple[SlackMessage, ...]:
    if not overflow:
        return ()
    chunks = [overflow[i : i + REPLY_BLOCKS] for i in range(0, len(overflow), REPLY_BLOCKS)]
    if len(chunks) > MAX_THREAD_REPLIES:
        # A thread of dozens of replies helps nobody; the modal and /gesjobs have everything.
        chunks = chunks[:MAX_THREAD_REPLIES]
        chunks[-1] = [
            *chunks[-1][: REPLY_BLOCKS - 1],
            context("…and more, too long for this thread: *Details* or `/gesjobs job ID` shows every job and file"),
        ]
    graph = fit(_graph(doc), _NAME_BUDGET)
    emoji = kind_look(doc.headline.lead).emoji if doc.headline.lead is not None else ""
    replies = []
    for number, chunk in enumerate(chunks, start=1):
        # A reply never starts with a divider: it would draw a line under nothing.
        blocks = chunk[1:] if chunk and chunk[0].get("type") == "divider" and len(chunk) > 1 else chunk
        text = f"{emoji} More of this alert on graph {graph} ({number}/{len(chunks)})".strip()
        replies.append(_guard(SlackMessage(text=text, blocks=list(blocks))))
    return tuple(replies)


def _guard(message: SlackMessage) -> SlackMessage:
    return guard(
        message,
        fallback="ges-bot alert",
        note="_(This message was too large to show in full; `/gesjobs` shows its jobs.)_",
    )


def render_document(doc: AlertDocument) -> RenderedAlert:
    """The Slack message for an alert document, plus the replies to post in its thread."""
    parts = _alert_parts(doc)
    message = _guard(SlackMessage(text=truncate(_alert_text(doc), TEXT_LIMIT), blocks=parts.blocks))
    return RenderedAlert(message=message, thread_replies=_thread_replies(doc, parts.overflow))


def render_alert(delivery: Delivery, project: ProjectInfo, now: datetime) -> RenderedAlert:
    """The message for a delivery (all events of one graph from one tick), plus thread replies."""
    return render_document(alert_document(delivery, project, now))


def render_recovery_reply(event: JobEvent, project: ProjectInfo, now: datetime) -> SlackMessage:
    """A reply in the failure's thread: this graph's job succeeded again."""
    job = event.job
    name = fit(label(job), _NAME_BUDGET)
    text = f"✅ *{name}* recovered on graph {code(event.graph, _FIELD_BUDGET)}: job {code(job.job_id, _FIELD_BUDGET)} succeeded"
    if event.recovers_job_id:
        text += f" after the failure of job {code(event.recovers_job_id, _FIELD_BUDGET)}"
    fields = _fields(job_fields(job, project, now))
    blocks = [section(text, fields=fields, accessory=_details_button(project, job))]
    fallback = (
        f"✅ {fit(label(job), 100)} recovered on graph "
        f"{fit(one_line(graph_name(event.graph)), _NAME_BUDGET)} (job {escape(_short_id(job.job_id))})"
    )
    return _guard(SlackMessage(text=fallback, blocks=blocks))


def _recovered_banner(recovery: JobEvent) -> dict[str, Any]:
    job = recovery.job
    name = fit(label(job), _NAME_BUDGET)
    return section(
        f"✅ *Recovered* by {name} job {code(job.job_id, _FIELD_BUDGET)} at {date_token(job.end_time or recovery.at)}"
    )


def _ack_banner(by_user: str, now: datetime) -> dict[str, Any]:
    who = mention(by_user) or "someone"
    return context(f"👀 Acknowledged by {who} at {date_token(now)}")


def render_recovered_original(
    original: Delivery, recovery: JobEvent, project: ProjectInfo, now: datetime
) -> SlackMessage:
    """``chat.update`` of the original failure message: same content under a "✅ Recovered" banner,
    buttons removed (there is nothing left to mute or acknowledge)."""
    doc = alert_document(original, project, now)
    parts = _alert_parts(doc, banners=[_recovered_banner(recovery)], buttons=False)
    text = truncate(f"✅ Recovered: {_alert_text(doc)}", TEXT_LIMIT)
    return _guard(SlackMessage(text=text, blocks=parts.blocks))


def render_acknowledged(
    original: Delivery,
    project: ProjectInfo,
    now: datetime,
    *,
    by_user: str,
    recovery: JobEvent | None = None,
) -> SlackMessage:
    """The original alert with "👀 Acknowledged by <@U…>" and no Acknowledge button.

    ``by_user`` is Slack's user id; it becomes a mention only if it looks like one. Pass
    ``recovery`` when the alert had already been marked recovered (then no buttons remain).
    """
    banners = [_ack_banner(by_user, now)]
    if recovery is not None:
        banners.insert(0, _recovered_banner(recovery))
    doc = alert_document(original, project, now)
    parts = _alert_parts(doc, banners=banners, buttons=recovery is None, with_ack=False)
    text = truncate(f"👀 Acknowledged: {_alert_text(doc)}", TEXT_LIMIT)
    return _guard(SlackMessage(text=text, blocks=parts.blocks))


# -- job detail ------------------------------------------------------------------------------


def _detail_head(job: Job, project: ProjectInfo, now: datetime) -> list[dict[str, Any]]:
    emoji = STATUS_EMOJI.get(job.status, UNKNOWN_STATUS_EMOJI)
    blocks = [
        header(f"{emoji} {label(job)} · {one_line(job.status) or 'unknown'}"),
        section(None, fields=_fields(job_fields(job, project, now))),
    ]
    reason = _reason_block(job.fail_reason, _REASON_FULL)
    if reason is not None:
        blocks.append(reason)
    return blocks


def _file_counts(files: Sequence[FileImport]) -> str:
    tally = file_tally(files)
    parts = [f"{tally.failed:,} failed"] if tally.failed else []
    if tally.partly:
        parts.append(f"{tally.partly:,} partly failed")
    if tally.ok:
        parts.append(f"{tally.ok:,} imported OK")
    if tally.other:
        parts.append(f"{tally.other:,} with no failure reported")
    return f"*{count(len(files), 'file')}*: " + ", ".join(parts)


def _file_sections(job: Job, cause_budget: int) -> list[tuple[str, int]]:
    return pack([_file_entry(f, cause_budget) for f in problems_first(job.files)], sep="\n\n")


def render_job_detail_modal(job: Job, project: ProjectInfo, now: datetime, *, page: int = 0) -> dict[str, Any]:
    """A ``views.open`` / ``views.update`` modal with every file of an import, problems first.

    Files are packed several to a section; if they still need more than the 100 blocks a modal
    allows, they are split into pages with "‹ Previous" / "Next ›" buttons
    (:data:`ACTION_DETAIL_PREV` / :data:`ACTION_DETAIL_NEXT`, value :func:`page_ref`).
    ``page`` outside the range shows the nearest page.
    """
    head = _detail_head(job, project, now)
    sections = _file_sections(job, _CAUSE_MODAL)
    per_page = limits.MAX_VIEW_BLOCKS - len(head) - 3  # a summary, a position note, the page buttons
    pages = [sections[i : i + per_page] for i in range(0, len(sections), per_page)] or [[]]
    page = min(max(page, 0), len(pages) - 1)
    blocks = list(head)
    if job.files:
        blocks.append(section(_file_counts(job.files)))
        blocks.extend(section(text) for text, _ in pages[page])
    if len(pages) > 1:
        first = sum(n for p in pages[:page] for _, n in p) + 1
        last = first + sum(n for _, n in pages[page]) - 1
        blocks.append(context(f"Files {first:,}–{last:,} of {len(job.files):,} · page {page + 1} of {len(pages)}"))
        nav = []
        if page > 0:
            nav.append(button("‹ Previous", ACTION_DETAIL_PREV, page_ref(project.alias, job.job_id, page - 1)))
        if page < len(pages) - 1:
            nav.append(button("Next ›", ACTION_DETAIL_NEXT, page_ref(project.alias, job.job_id, page + 1)))
        if all(slack_len(b["value"]) <= limits.MAX_BUTTON_VALUE for b in nav):
            blocks.append({"type": "actions", "block_id": "gesjobs_detail_pages", "elements": nav})
    ref = job_ref(project.alias, job.job_id)
    view = modal(DETAIL_MODAL_CALLBACK_ID, DETAIL_MODAL_TITLE, blocks)
    if slack_len(ref) <= limits.MAX_PRIVATE_METADATA:
        view["private_metadata"] = ref
    if limits.check_view(view):
        # Should never happen (see _guard); keep the modal openable with the facts alone.
        view["blocks"] = [*head[:2], context("The files of this job are too many to show here.")]
    return view


def render_job_detail_blocks(job: Job, project: ProjectInfo, now: datetime) -> SlackMessage:
    """Full detail of one job for ``/gesjobs job <id>``: as much as one message holds, then a
    "Details" button that opens the modal with every file."""
    head = _detail_head(job, project, now)
    sections = _file_sections(job, _CAUSE_THREAD)
    room = limits.MAX_MESSAGE_BLOCKS - len(head) - 3  # the counts, a "more" note, the Details button
    blocks = list(head)
    if job.files:
        blocks.append(section(_file_counts(job.files)))
        blocks.extend(section(text) for text, _ in sections[:room])
    shown = sum(n for _, n in sections[:room])
    if shown < len(job.files):
        blocks.append(context(f"…and {count(len(job.files) - shown, 'more file')}: press Details to see them all"))
        details = _details_button(project, job)
        if details is not None:
            blocks.append({"type": "actions", "elements": [details]})
    emoji = STATUS_EMOJI.get(job.status, UNKNOWN_STATUS_EMOJI)
    text = (
        f"{emoji} {fit(label(job), 100)} ({escape(_short_id(job.job_id))}) "
        f"on graph {fit(one_line(graph_name(job.graph or '')), _NAME_BUDGET)}: {fit(one_line(job.status), 60)}"
    )
    return _guard(SlackMessage(text=text, blocks=blocks))


# -- notices ---------------------------------------------------------------------------------


def _join_within(parts: Sequence[str], limit: int) -> str:
    """Parts joined as mrkdwn within ``limit`` units: :class:`Mrkdwn` parts whole (cutting one
    could break a token such as a date), other parts escaped and cut to what room is left."""
    out: list[str] = []
    room = limit
    for part in parts:
        if isinstance(part, Mrkdwn):
            if slack_len(part) > room:
                out.append(truncate("…", room))
                break
            out.append(part)
            room -= slack_len(part)
            continue
        piece = fit(part, room)
        out.append(piece)
        room -= slack_len(piece)
        if piece != escape(part):
            break  # an untrusted part was cut: nothing after it fits
    return "".join(out)


def render_notice(*parts: str, title: str | None = None) -> SlackMessage:
    """A short message (e.g. a DM that a subscription's channel is broken) from mixed parts.

    :class:`~ges_bot.notify.mrkdwn.Mrkdwn` parts (our own markup, built with ``mrkdwn`` helpers)
    are kept as they are; every other ``str`` is untrusted and escaped::

        render_notice(trusted("Alerts for "), code(graph), trusted(" can no longer reach "),
                      channel_link(channel_id) or channel_id, trusted(": Slack answered "), error)
    """
    body = _join_within(parts, limits.MAX_SECTION_TEXT) or NOTHING
    blocks: list[dict[str, Any]] = []
    if title:
        blocks.append(header(title))
    blocks.append(section(body))
    text = _join_within(parts, TEXT_LIMIT) or (title and escape(truncate(title, TEXT_LIMIT))) or NOTHING
    return _guard(SlackMessage(text=text, blocks=blocks))


_MAX_PATTERNS_LISTED = 10


def render_broken_channel_notice(channel: str, error: str, graph_patterns: Sequence[str]) -> SlackMessage:
    """A DM to the people who subscribed a channel that Slack no longer lets the bot post to."""
    where = channel_link(channel) or code(channel, 100)
    patterns = sorted(set(graph_patterns))
    listed: list[str] = []
    for i, pattern in enumerate(patterns[:_MAX_PATTERNS_LISTED]):
        listed += [trusted(", ") if i else trusted(""), code(pattern, 100)]
    if len(patterns) > _MAX_PATTERNS_LISTED:
        listed.append(trusted(f" and {len(patterns) - _MAX_PATTERNS_LISTED} more"))
    fix = CHANNEL_FIXES.get(error, DEFAULT_CHANNEL_FIX).sentence
    return render_notice(
        trusted("⚠️ I can no longer post GES job alerts to "),
        where,
        trusted(" — Slack answered "),
        code(error, 100),
        trusted(". Alerts for "),
        *(listed or [trusted("its graphs")]),
        trusted(f" are not delivered there until this is fixed. {fix}"),
        title="GES alerts cannot reach a channel",
    )
