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

Alerts speak the delivery's language (``Delivery.locale``: ``en`` or ``zh-CN``, chosen by routing
and kept in the outbox row) through :mod:`ges_bot.words` — the group-bot sinks' gettext
catalogue, with GES's console terms (导入图, 部分失败 …). English sentences are the catalogue's
message ids, so an English alert is exactly what it was before there were languages. Numbers and
durations are written for the locale; times stay Slack date tokens (each reader sees their own
zone and Slack's own date words), with the fallback written for the locale. Only alerts, recovery
replies and the edits of an alert speak Chinese; answers to ``/gesjobs`` and modals stay English.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ges_bot.domain import LANGUAGES, Delivery, EventKind, FileImport, Job, JobEvent, ProjectInfo
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
    escape,
    fit,
    mention,
    slack_len,
    truncate,
    trusted,
)
from ges_bot.words import Words, words_for

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
    "acknowledgement",
    "duration_words",
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


#: English: the catalogue's source language (its message ids are the words).
EN = words_for("en")


def _words(locale: str) -> Words:
    return words_for(locale)


def _count(w: Words, n: int, one: str, many: str | None = None) -> str:
    """ "1 file", "1,204 files" — or the locale's words for it ("1,204 个文件", message id ``{n} files``)."""
    if w.locale == "en":
        return count(n, one, many)
    return w(f"{{n}} {many or one + 's'}", n=w.number(n))


def duration_words(w: Words, span: timedelta) -> str:
    """:func:`~ges_bot.notify.mrkdwn.duration` in the locale's words ("1h 04m", "1小时04分")."""
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return w("{d}d {h}h", d=days, h=hours)
    if hours:
        return w("{h}h {m}m", h=hours, m=f"{minutes:02d}")
    if minutes:
        return w("{m}m {s}s", m=minutes, s=f"{secs:02d}")
    return w("{s}s", s=secs)


def _date(w: Words, dt: datetime) -> str:
    """A Slack date token; its fallback written for the locale (English keeps Slack's ISO-ish one)."""
    return date_token(dt) if w.locale == "en" else date_token(dt, fallback=w.when(dt))


def _job_label(w: Words, job: Job) -> str:
    """What people call the job, in the console's words when it has some (导入图 for ImportGraph)."""
    return w.job(label(job))


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


def _details_button(project: ProjectInfo, job: Job, w: Words = EN) -> dict[str, Any] | None:
    """A "Details" button, or ``None`` when the job id is too long to fit a button value."""
    value = job_ref(project.alias, job.job_id)
    if slack_len(value) > limits.MAX_BUTTON_VALUE:
        return None
    return button(w("Details"), ACTION_DETAILS, value)


# -- shared pieces of text -------------------------------------------------------------------


def _when(dt: datetime | None, w: Words = EN) -> str:
    return _date(w, dt) if dt is not None else NOTHING


def _field_value(f: Field, w: Words = EN) -> str:
    """A field's value as mrkdwn: identifiers as inert code, words escaped, times as date tokens."""
    key = f.key
    if key is FieldKey.TYPE:
        return fit(f.text, _FIELD_BUDGET) if f.text else NOTHING
    if key is FieldKey.PROJECT:
        text: str = fit(f.text or "", _NAME_BUDGET)
        return text + f" · {fit(f.detail, 100)}" if f.detail else text
    if key is FieldKey.STATUS:
        # A status the console names is said in its words, with what GES sent beside it.
        word = w.job_status(f.text or "") if w.locale != "en" else None
        return f"{word} {code(f.text or '', 100)}" if word else code(f.text or "", 100)
    if key in (FieldKey.BEGAN, FieldKey.ENDED):
        return _when(f.at, w)
    if key in (FieldKey.RUNNING_FOR, FieldKey.WAITING_FOR):
        running = duration_words(w, f.span) if f.span is not None else NOTHING
        return w("{span} (at {when})", span=running, when=_when(f.at, w))
    if key is FieldKey.DURATION:
        return duration_words(w, f.span) if f.span is not None else NOTHING
    return code(f.text or "", _FIELD_BUDGET)  # graph, job id, the recovered job's id


def _fields(fields: Sequence[Field], w: Words = EN) -> list[str]:
    """The facts of a job as section fields (≤ 10, each well under 2000 units)."""
    return [f"*{w.label(f.key)}*\n{_field_value(f, w)}" for f in fields]


def _reason_block(reason: str | None, budget: int, w: Words = EN) -> dict[str, Any] | None:
    if not reason or not reason.strip():
        return None
    return section(f"*{w('Reason')}*\n{code_block(reason, budget)}")


def _lines_text(f: FileImport, w: Words = EN) -> str:
    failed = f.failed_lines if f.failed_lines is not None and f.failed_lines >= 0 else None
    total = f.total_lines if f.total_lines is not None and f.total_lines >= 0 else None
    if failed is not None and total is not None:
        if w.locale == "en":
            return f" · {failed:,} of {count(total, 'line')} failed"
        return " · " + w("{failed} of {total} lines failed", failed=w.number(failed), total=w.number(total))
    if failed is not None:
        return " · " + w("{lines} failed", lines=_count(w, failed, "line"))
    if total is not None:
        return f" · {_count(w, total, 'line')}"
    return ""


def _file_entry(f: FileImport, cause_budget: int, w: Words = EN) -> str:
    """One import file: kind, path, status, lines, cause and log (≤ ~2200 units by construction)."""
    # The house words ("partly failed") are message ids of their own, apart from the group bots'.
    known = FILE_STATUS_WORDS.get(f.status or "")
    status = w(known) if known else (fit(f.status, 60) if f.status else w("status unknown"))
    text = f"{file_emoji(f)} *{w(f.kind.value)}* {code(f.path, _PATH_BUDGET)} · {status}{_lines_text(f, w)}"
    if f.cause and f.cause.strip():
        text += f"\n{code_block(f.cause, cause_budget)}"
    if f.log and f.log.strip():
        text += "\n" + w("Log: {path}", path=code(f.log, _LOG_BUDGET))
    return text


def _ok_summary(tally: FileTally, w: Words = EN) -> str | None:
    """The "+ 12 files imported OK" note (and files of no known status), or ``None`` for no such files."""
    parts = []
    if tally.ok:
        parts.append(w("+ {files} imported OK", files=_count(w, tally.ok, "file")))
    if tally.other:
        parts.append(w("+ {files} (no failure reported)", files=_count(w, tally.other, "other file")))
    return " · ".join(parts) or None


def _short_id(job_id: str) -> str:
    return truncate(job_id, _SHORT_ID)


# -- alerts ----------------------------------------------------------------------------------


def _verb(item: AlertItem, *, mrkdwn: bool, w: Words = EN) -> str:
    """What happened to the job, said once: an unknown outcome names the status GES sent."""
    if item.kind is not EventKind.UNKNOWN_OUTCOME:
        return w.kind(item.kind)
    status = one_line(item.job.status)
    return w(
        "ended as “{status}” (a status ges-bot does not know)",
        status=fit(status, 60) if mrkdwn else truncate(status, 60),
    )


def _summary(headline: Headline, w: Words = EN) -> str:
    """Counts by kind, most severe first: "2 failed, 1 stuck" ("失败 2 个，运行超时 1 个")."""
    return w(", ").join(w("{n} {kind}", n=n, kind=w.kind(k)) for k, n in headline.counts)


def _graph(doc: AlertDocument) -> str:
    return one_line(graph_name(doc.graph))


def _alert_header(doc: AlertDocument, w: Words = EN) -> dict[str, Any]:
    items = doc.items
    if not items or doc.headline.lead is None:  # the store drops recorded events from deliveries
        title = w("GES jobs · {graph}", graph=_graph(doc))
    elif len(items) == 1:
        look = kind_look(items[0].kind)
        said = w(
            "{job} {verb} · {graph}",
            job=_job_label(w, items[0].job),
            verb=_verb(items[0], mrkdwn=False, w=w),
            graph=_graph(doc),
        )
        title = f"{look.emoji} {said}"
    else:
        title = f"{kind_look(doc.headline.lead).emoji} {_summary(doc.headline, w)} · {_graph(doc)}"
    return header(title)


def _alert_text(doc: AlertDocument, w: Words = EN) -> str:
    """The plain fallback: "🔴 ImportGraph failed on graph movies (job ff80808167b…): reason"."""
    items = doc.items
    graph = fit(_graph(doc), _NAME_BUDGET)
    if not items or doc.headline.lead is None:
        return w("ges-bot: nothing to report on graph {graph}", graph=graph)
    if len(items) == 1:
        item = items[0]
        look = kind_look(item.kind)
        job = item.job
        said = w(
            "{job} {verb} on graph {graph} (job {id})",
            job=fit(_job_label(w, job), 100),
            verb=_verb(item, mrkdwn=True, w=w),
            graph=graph,
            id=escape(_short_id(job.job_id)),
        )
        text = f"{look.emoji} {said}"
        if job.fail_reason and job.fail_reason.strip():
            text = w("{text}: {reason}", text=text, reason=fit(one_line(job.fail_reason), 300))
        return text
    listed = w("; ").join(
        w(
            "{job} {verb} (job {id})",
            job=fit(_job_label(w, i.job), 60),
            verb=_verb(i, mrkdwn=True, w=w),
            id=escape(_short_id(i.job.job_id)),
        )
        for i in items[:MAX_EVENTS_INLINE]
    )
    hidden = len(items) - MAX_EVENTS_INLINE
    more = w("; …and {n} more", n=hidden) if hidden > 0 else ""
    said = w("{summary} on graph {graph}: {listed}", summary=_summary(doc.headline, w), graph=graph, listed=listed)
    return f"{kind_look(doc.headline.lead).emoji} {said}{more}"


def _item_headline(item: AlertItem, w: Words = EN) -> str:
    look = kind_look(item.kind)
    # Bold needs a space after its closing ``*`` in Slack, in Chinese too: its own message id.
    said = w("*{job}* {verb}", job=fit(_job_label(w, item.job), _NAME_BUDGET), verb=_verb(item, mrkdwn=True, w=w))
    return f"{look.emoji} {said}"


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
    w: Words = EN,
) -> tuple[list[dict[str, Any]], tuple[FileImport, ...]]:
    """An item's blocks, and the problem files that did not fit (``max_files``).

    Without ``headline`` the facts stand alone (a one-event alert: its header already says it).
    """
    details = _details_button(project, item.job, w) if accessory else None
    text = _item_headline(item, w) if headline else None
    blocks = [section(text, fields=_fields(item.fields, w), accessory=details)]
    reason = _reason_block(item.reason, reason_budget, w)
    if reason is not None:
        blocks.append(reason)
    problems = item.problem_files
    shown = problems if max_files is None else problems[:max_files]
    rest = problems[len(shown) :]
    entries = [_file_entry(f, cause_budget, w) for f in shown]
    if pack_files:
        blocks.extend(section(text) for text, _ in pack(entries, sep="\n\n"))
    else:
        blocks.extend(section(entry) for entry in entries)
    notes = []
    ok = _ok_summary(item.tally, w)
    if ok:
        notes.append(ok)
    if rest:
        notes.append(w("…and {files} with problems, listed in the thread", files=_count(w, len(rest), "more file")))
    if notes:
        blocks.append(context(" · ".join(notes)))
    return blocks, rest


#: Mute span → (action id, button text).
_MUTE_BUTTONS: dict[timedelta, tuple[str, str]] = {
    MUTE_ACTIONS[ACTION_MUTE_1H]: (ACTION_MUTE_1H, "Mute 1h"),
    MUTE_ACTIONS[ACTION_MUTE_24H]: (ACTION_MUTE_24H, "Mute 24h"),
}


def _action_button(action: Action, doc: AlertDocument, w: Words = EN) -> dict[str, Any] | None:
    """The Slack button for an action, or ``None`` when its value cannot fit a button."""
    alias = doc.project.alias
    if action.kind is ActionKind.DETAILS and action.job_id is not None:
        value = job_ref(alias, action.job_id)
        return button(w("Details"), ACTION_DETAILS, value) if slack_len(value) <= limits.MAX_BUTTON_VALUE else None
    if action.kind is ActionKind.MUTE and action.graph and action.span in _MUTE_BUTTONS:
        if slack_len(action.graph) > limits.MAX_BUTTON_VALUE:
            return None
        action_id, text = _MUTE_BUTTONS[action.span]
        return button(w(text), action_id, action.graph)
    if action.kind is ActionKind.ACKNOWLEDGE:
        ref = job_ref(alias, action.job_id) if action.job_id is not None else None
        return button(
            w("Acknowledge"), ACTION_ACK, ref if ref is None or slack_len(ref) <= limits.MAX_BUTTON_VALUE else None
        )
    return None


def _alert_actions(doc: AlertDocument, *, with_ack: bool, w: Words = EN) -> dict[str, Any] | None:
    buttons = [
        b
        for a in doc.actions
        if with_ack or a.kind is not ActionKind.ACKNOWLEDGE
        if (b := _action_button(a, doc, w)) is not None
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
    w: Words = EN,
) -> _AlertParts:
    """The alert's blocks (header, banners, up to :data:`MAX_EVENTS_INLINE` items, actions) and
    the blocks that go to the thread instead (further items, further problem files)."""
    blocks: list[dict[str, Any]] = [_alert_header(doc, w), *banners]
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
            w=w,
        )
        blocks.extend(item_blocks)
        if rest:
            name = fit(_job_label(w, item.job), _NAME_BUDGET)
            more = w("More files of *{job}* job {id} with problems:", job=name, id=code(item.job.job_id, _FIELD_BUDGET))
            overflow.append(section(more))
            entries = [_file_entry(f, _CAUSE_THREAD, w) for f in rest]
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
            w=w,
        )
        overflow.extend(item_blocks)
    hidden = len(doc.items) - len(inline)
    if hidden > 0:
        blocks.append(context(w("…and {jobs} on this graph, listed in the thread", jobs=_count(w, hidden, "more job"))))
    if buttons:
        actions = _alert_actions(doc, with_ack=with_ack, w=w)
        if actions is not None:
            blocks.append(actions)
    return _AlertParts(blocks=blocks, overflow=overflow)


def _thread_replies(doc: AlertDocument, overflow: list[dict[str, Any]], w: Words = EN) -> tuple[SlackMessage, ...]:
    if not overflow:
        return ()
    chunks = [overflow[i : i + REPLY_BLOCKS] for i in range(0, len(overflow), REPLY_BLOCKS)]
    if len(chunks) > MAX_THREAD_REPLIES:
        # A thread of dozens of replies helps nobody; the modal and /gesjobs have everything.
        chunks = chunks[:MAX_THREAD_REPLIES]
        chunks[-1] = [
            *chunks[-1][: REPLY_BLOCKS - 1],
            context(w("…and more, too long for this thread: *Details* or `/gesjobs job ID` shows every job and file")),
        ]
    graph = fit(_graph(doc), _NAME_BUDGET)
    emoji = kind_look(doc.headline.lead).emoji if doc.headline.lead is not None else ""
    replies = []
    for number, chunk in enumerate(chunks, start=1):
        # A reply never starts with a divider: it would draw a line under nothing.
        blocks = chunk[1:] if chunk and chunk[0].get("type") == "divider" and len(chunk) > 1 else chunk
        said = w("More of this alert on graph {graph} ({n}/{of})", graph=graph, n=number, of=len(chunks))
        text = f"{emoji} {said}".strip()
        replies.append(_guard(SlackMessage(text=text, blocks=list(blocks)), w))
    return tuple(replies)


def _guard(message: SlackMessage, w: Words = EN) -> SlackMessage:
    return guard(
        message,
        fallback=w("ges-bot alert"),
        note=w("_(This message was too large to show in full; `/gesjobs` shows its jobs.)_"),
    )


def render_document(doc: AlertDocument, *, locale: str = "en") -> RenderedAlert:
    """The Slack message for an alert document, plus the replies to post in its thread, in ``locale``."""
    w = _words(locale)
    parts = _alert_parts(doc, w=w)
    message = _guard(SlackMessage(text=truncate(_alert_text(doc, w), TEXT_LIMIT), blocks=parts.blocks), w)
    return RenderedAlert(message=message, thread_replies=_thread_replies(doc, parts.overflow, w))


def render_alert(delivery: Delivery, project: ProjectInfo, now: datetime) -> RenderedAlert:
    """The message for a delivery (all events of one graph from one tick), plus thread replies, in
    the delivery's language."""
    return render_document(alert_document(delivery, project, now), locale=delivery.locale)


def render_recovery_reply(event: JobEvent, project: ProjectInfo, now: datetime, *, locale: str = "en") -> SlackMessage:
    """A reply in the failure's thread: this graph's job succeeded again (in ``locale``)."""
    w = _words(locale)
    job = event.job
    name = fit(_job_label(w, job), _NAME_BUDGET)
    graph, job_id = code(event.graph, _FIELD_BUDGET), code(job.job_id, _FIELD_BUDGET)
    if event.recovers_job_id:
        text = w(
            "✅ *{job}* recovered on graph {graph}: job {id} succeeded after the failure of job {failed}",
            job=name,
            graph=graph,
            id=job_id,
            failed=code(event.recovers_job_id, _FIELD_BUDGET),
        )
    else:
        text = w("✅ *{job}* recovered on graph {graph}: job {id} succeeded", job=name, graph=graph, id=job_id)
    fields = _fields(job_fields(job, project, now), w)
    blocks = [section(text, fields=fields, accessory=_details_button(project, job, w))]
    fallback = w(
        "✅ {job} recovered on graph {graph} (job {id})",
        job=fit(_job_label(w, job), 100),
        graph=fit(one_line(graph_name(event.graph)), _NAME_BUDGET),
        id=escape(_short_id(job.job_id)),
    )
    return _guard(SlackMessage(text=fallback, blocks=blocks), w)


def _recovered_banner(recovery: JobEvent, w: Words = EN) -> dict[str, Any]:
    job = recovery.job
    name = fit(_job_label(w, job), _NAME_BUDGET)
    return section(
        w(
            "✅ *Recovered* by {job} job {id} at {when}",
            job=name,
            id=code(job.job_id, _FIELD_BUDGET),
            when=_date(w, job.end_time or recovery.at),
        )
    )


def _ack_banner(by_user: str, now: datetime, w: Words = EN) -> dict[str, Any]:
    who = mention(by_user) or w("someone")
    return context(w("👀 Acknowledged by {who} at {when}", who=who, when=_date(w, now)))


def acknowledgement(who: str, now: datetime, *, button_text: str) -> tuple[dict[str, Any], str]:
    """The "👀 Acknowledged by …" context line and the fallback's prefix for an alert as Slack sent
    it back with the click, in the language its Acknowledge button was written in (the alert's)."""
    w = next((_words(lang) for lang in LANGUAGES if _words(lang)("Acknowledge") == button_text), EN)
    line = context(w("👀 Acknowledged by {who} at {when}", who=who, when=_date(w, now)))
    return line, w("👀 Acknowledged: {text}", text="")


def render_recovered_original(
    original: Delivery, recovery: JobEvent, project: ProjectInfo, now: datetime
) -> SlackMessage:
    """``chat.update`` of the original failure message: same content under a "✅ Recovered" banner,
    buttons removed (there is nothing left to mute or acknowledge); in the original's language."""
    w = _words(original.locale)
    doc = alert_document(original, project, now)
    parts = _alert_parts(doc, banners=[_recovered_banner(recovery, w)], buttons=False, w=w)
    text = truncate(w("✅ Recovered: {text}", text=_alert_text(doc, w)), TEXT_LIMIT)
    return _guard(SlackMessage(text=text, blocks=parts.blocks), w)


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
    w = _words(original.locale)
    banners = [_ack_banner(by_user, now, w)]
    if recovery is not None:
        banners.insert(0, _recovered_banner(recovery, w))
    doc = alert_document(original, project, now)
    parts = _alert_parts(doc, banners=banners, buttons=recovery is None, with_ack=False, w=w)
    text = truncate(w("👀 Acknowledged: {text}", text=_alert_text(doc, w)), TEXT_LIMIT)
    return _guard(SlackMessage(text=text, blocks=parts.blocks), w)


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
