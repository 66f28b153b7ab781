"""Block Kit for alerts: deliveries, recovery replies, acknowledgements and the job-detail modal.

This module owns how an alert looks in Slack. It is pure: domain objects and ``now`` in, Slack
payloads out; it must not read the database, the clock or the network. Untrusted text (fail
reasons, causes, graph names, paths, job names, types and ids) reaches Slack only through
:mod:`ges_bot.notify.mrkdwn`; no payload sets ``link_names`` or ``parse``.

Every payload it returns passes :mod:`ges_bot.notify.limits` whatever the input: an import of
300 files, a 20 kB cause or a 40-failure tick is summarised ("…and 37 more files", causes cut
with "…"), and what does not fit the alert goes into ``thread_replies``, each valid on its own.

Each event kind has its own look: failed 🔴, partially failed 🟠, stuck ⏳, recovered ✅,
succeeded 🟢. An alert carries an actions block (:data:`ACTION_DETAILS`, :data:`ACTION_MUTE_1H`,
:data:`ACTION_MUTE_24H`, :data:`ACTION_ACK`) that ``slackapp`` wires up; button values are
built and parsed by :func:`job_ref` / :func:`parse_job_ref` (``project|job_id``) and, for mutes,
are the graph name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ges_bot.domain import Delivery, EventKind, FileImport, FileStatus, Job, JobEvent, JobStatus, ProjectInfo
from ges_bot.notify import limits
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
    mrkdwn_text,
    plain_text,
    slack_len,
    truncate,
    trusted,
)
from ges_bot.notify.routing import KIND_SEVERITY

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
MUTE_ACTIONS: dict[str, timedelta] = {ACTION_MUTE_1H: timedelta(hours=1), ACTION_MUTE_24H: timedelta(hours=24)}
ALERT_ACTIONS_BLOCK_ID = "gesjobs_alert_actions"
DETAIL_MODAL_CALLBACK_ID = "gesjobs_job_detail"

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
_TEXT_LIMIT = 1000
_SHORT_ID = 12


@dataclass(frozen=True)
class SlackMessage:
    """A message payload. ``text`` is the plain fallback (notifications, screen readers): always set."""

    text: str
    blocks: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        """``text`` and ``blocks``, ready for ``chat.postMessage`` / ``chat.update`` keyword arguments."""
        return {"text": self.text, "blocks": self.blocks}


@dataclass(frozen=True)
class RenderedAlert:
    """An alert and the replies to post in its thread (what did not fit the alert itself)."""

    message: SlackMessage
    thread_replies: tuple[SlackMessage, ...] = ()


@dataclass(frozen=True)
class _Look:
    emoji: str
    verb: str


_LOOKS: dict[EventKind, _Look] = {
    EventKind.FAILED: _Look("🔴", "failed"),
    EventKind.PARTIALLY_FAILED: _Look("🟠", "partially failed"),
    # The raw status is in the verb of a one-event alert (see _verb) and in the Status field.
    EventKind.UNKNOWN_OUTCOME: _Look("❓", "ended in an unknown status"),
    EventKind.STUCK: _Look("⏳", "stuck"),
    EventKind.RECOVERED: _Look("✅", "recovered"),
    EventKind.SUCCEEDED: _Look("🟢", "succeeded"),
    EventKind.STATUS_CHANGED: _Look("🔵", "changed status"),
}
_STATUS_EMOJI: dict[str, str] = {
    JobStatus.SUCCESS: "🟢",
    JobStatus.FAILED: "🔴",
    JobStatus.PARTIALLY_FAILED: "🟠",
    JobStatus.RUNNING: "🔵",
    JobStatus.PENDING: "⚪",
}
#: Per-file statuses as people say them; unknown ones are shown as GES sent them.
_FILE_STATUS_WORDS: dict[str, str] = {
    FileStatus.FAILED: "failed",
    FileStatus.PART_FAILED: "partly failed",
    FileStatus.SUCCESS: "imported",
}


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


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain_text(text, limits.MAX_HEADER_TEXT)}


def _section(
    text: str | None, *, fields: Sequence[str] = (), accessory: dict[str, Any] | None = None
) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section"}
    if text is not None:
        block["text"] = mrkdwn_text(text)
    if fields:
        block["fields"] = [mrkdwn_text(f) for f in fields]
    if accessory is not None:
        block["accessory"] = accessory
    return block


def _context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn_text(t) for t in texts]}


def _divider() -> dict[str, Any]:
    return {"type": "divider"}


def _button(text: str, action_id: str, value: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": plain_text(text, limits.MAX_BUTTON_TEXT),
        "action_id": action_id,
    }
    if value is not None:
        button["value"] = value
    return button


def _details_button(project: ProjectInfo, job: Job) -> dict[str, Any] | None:
    """A "Details" button, or ``None`` when the job id is too long to fit a button value."""
    value = job_ref(project.alias, job.job_id)
    if slack_len(value) > limits.MAX_BUTTON_VALUE:
        return None
    return _button("Details", ACTION_DETAILS, value)


# -- shared pieces of text -------------------------------------------------------------------


def _look(kind: EventKind) -> _Look:
    return _LOOKS.get(kind, _LOOKS[EventKind.STATUS_CHANGED])


def _verb(event: JobEvent, *, mrkdwn: bool) -> str:
    """What happened to the job, said once: an unknown outcome names the status GES sent."""
    if event.kind is not EventKind.UNKNOWN_OUTCOME:
        return _look(event.kind).verb
    status = _one_line(event.job.status)
    return f"ended as “{fit(status, 60) if mrkdwn else truncate(status, 60)}” (a status ges-bot does not know)"


def _label(job: Job) -> str:
    """What people call the job: its name (``ImportGraph``), else its type, else "Job". Untrusted."""
    return (job.job_name or "").strip() or (job.job_type or "").strip() or "Job"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _project_text(project: ProjectInfo) -> str:
    text: str = fit(project.alias, _NAME_BUDGET)
    if project.region:
        text += f" · {fit(project.region, 100)}"
    return text


def _when(dt: datetime | None) -> str:
    return date_token(dt) if dt is not None else NOTHING


def _job_fields(job: Job, project: ProjectInfo, now: datetime, *, recovers: str | None = None) -> list[str]:
    """The facts of a job as section fields (≤ 10, each well under 2000 units)."""
    fields = [
        f"*Graph*\n{code(job.graph, _FIELD_BUDGET)}",
        f"*Job id*\n{code(job.job_id, _FIELD_BUDGET)}",
        f"*Type*\n{fit(job.job_type, _FIELD_BUDGET) if job.job_type else NOTHING}",
        f"*Project*\n{_project_text(project)}",
        f"*Status*\n{code(job.status, 100)}",
        f"*Began*\n{_when(job.begin_time)}",
    ]
    if job.is_active:
        label = "Waiting for" if job.status == JobStatus.PENDING else "Running for"
        running = duration(now - job.begin_time) if job.begin_time is not None else NOTHING
        fields.append(f"*{label}*\n{running} (at {date_token(now)})")
    else:
        fields.append(f"*Ended*\n{_when(job.end_time)}")
        if job.begin_time is not None and job.end_time is not None:
            fields.append(f"*Duration*\n{duration(job.end_time - job.begin_time)}")
    if recovers:
        fields.append(f"*Recovers failed job*\n{code(recovers, _FIELD_BUDGET)}")
    return fields


def _reason_block(job: Job, budget: int) -> dict[str, Any] | None:
    if not job.fail_reason or not job.fail_reason.strip():
        return None
    return _section(f"*Reason*\n{code_block(job.fail_reason, budget)}")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _lines_text(f: FileImport) -> str:
    failed = f.failed_lines if f.failed_lines is not None and f.failed_lines >= 0 else None
    total = f.total_lines if f.total_lines is not None and f.total_lines >= 0 else None
    if failed is not None and total is not None:
        return f" · {failed:,} of {_count(total, 'line')} failed"
    if failed is not None:
        return f" · {_count(failed, 'line')} failed"
    if total is not None:
        return f" · {_count(total, 'line')}"
    return ""


def _file_emoji(f: FileImport) -> str:
    if f.status == FileStatus.FAILED:
        return "🔴"
    if f.status == FileStatus.PART_FAILED or (f.status == FileStatus.SUCCESS and f.is_problem):
        return "🟠"  # "success" with failed lines is a partial failure in all but name
    if f.status == FileStatus.SUCCESS:
        return "🟢"
    return "⚠️" if f.is_problem else "⚪"


def _file_entry(f: FileImport, cause_budget: int) -> str:
    """One import file: kind, path, status, lines, cause and log (≤ ~2200 units by construction)."""
    status = _FILE_STATUS_WORDS.get(f.status or "") or (fit(f.status, 60) if f.status else "status unknown")
    text = f"{_file_emoji(f)} *{f.kind.value}* {code(f.path, _PATH_BUDGET)} · {status}{_lines_text(f)}"
    if f.cause and f.cause.strip():
        text += f"\n{code_block(f.cause, cause_budget)}"
    if f.log and f.log.strip():
        text += f"\nLog: {code(f.log, _LOG_BUDGET)}"
    return text


def _problem_rank(f: FileImport) -> int:
    if f.status == FileStatus.FAILED:
        return 0
    return 1 if f.is_problem else 2


def _ordered_files(files: Sequence[FileImport]) -> list[FileImport]:
    """Problem files first (failed, then partly failed), the rest after; otherwise as GES listed them."""
    return sorted(files, key=_problem_rank)


def _ok_summary(files: Sequence[FileImport]) -> str | None:
    """The "+ 12 files imported OK" note (and files of no known status), or ``None`` for no such files."""
    ok = sum(1 for f in files if not f.is_problem and f.status == FileStatus.SUCCESS)
    other = sum(1 for f in files if not f.is_problem and f.status != FileStatus.SUCCESS)
    parts = []
    if ok:
        parts.append(f"+ {_count(ok, 'file')} imported OK")
    if other:
        parts.append(f"+ {_count(other, 'other file')} (no failure reported)")
    return " · ".join(parts) or None


def _pack(entries: Sequence[str], limit: int = limits.MAX_SECTION_TEXT) -> list[tuple[str, int]]:
    """Entries joined into as few texts of ≤ ``limit`` units as possible, with how many each holds."""
    packed: list[tuple[str, int]] = []
    current: list[str] = []
    size = 0
    for entry in entries:
        entry_size = slack_len(entry)
        if current and size + 2 + entry_size > limit:
            packed.append(("\n\n".join(current), len(current)))
            current, size = [], 0
        current.append(entry)
        size += entry_size + (2 if len(current) > 1 else 0)
    if current:
        packed.append(("\n\n".join(current), len(current)))
    return packed


def _short_id(job_id: str) -> str:
    return truncate(job_id, _SHORT_ID)


# -- alerts ----------------------------------------------------------------------------------


def _summary(events: Sequence[JobEvent]) -> str:
    """Counts by kind, most severe first: "2 failed, 1 stuck"."""
    counts: dict[EventKind, int] = {}
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    kinds = sorted(counts, key=lambda k: KIND_SEVERITY.get(k, len(KIND_SEVERITY)))
    return ", ".join(f"{counts[k]} {_look(k).verb}" for k in kinds)


def _lead(events: Sequence[JobEvent]) -> EventKind:
    return min((e.kind for e in events), key=lambda k: KIND_SEVERITY.get(k, len(KIND_SEVERITY)))


def _graph_name(graph: str) -> str:
    return graph if graph.strip() else "(no graph)"


def _alert_header(delivery: Delivery) -> dict[str, Any]:
    events = delivery.events
    if not events:  # the store drops recorded events from deliveries; never crash on what is left
        title = f"GES jobs · {_one_line(_graph_name(delivery.graph))}"
    elif len(events) == 1:
        event = events[0]
        look = _look(event.kind)
        verb = _verb(event, mrkdwn=False)
        title = f"{look.emoji} {_one_line(_label(event.job))} {verb} · {_one_line(_graph_name(delivery.graph))}"
    else:
        title = f"{_look(_lead(events)).emoji} {_summary(events)} · {_one_line(_graph_name(delivery.graph))}"
    return _header(title)


def _alert_text(delivery: Delivery) -> str:
    """The plain fallback: "🔴 ImportGraph failed on graph movies (job ff80808167b…): reason"."""
    events = delivery.events
    graph = fit(_one_line(_graph_name(delivery.graph)), _NAME_BUDGET)
    if not events:
        return f"ges-bot: nothing to report on graph {graph}"
    if len(events) == 1:
        event = events[0]
        look = _look(event.kind)
        job = event.job
        text = f"{look.emoji} {fit(_one_line(_label(job)), 100)} {_verb(event, mrkdwn=True)} on graph {graph} (job {escape(_short_id(job.job_id))})"
        if job.fail_reason and job.fail_reason.strip():
            text += f": {fit(_one_line(job.fail_reason), 300)}"
        return text
    listed = "; ".join(
        f"{fit(_one_line(_label(e.job)), 60)} {_verb(e, mrkdwn=True)} (job {escape(_short_id(e.job.job_id))})"
        for e in events[:MAX_EVENTS_INLINE]
    )
    more = f"; …and {len(events) - MAX_EVENTS_INLINE} more" if len(events) > MAX_EVENTS_INLINE else ""
    return f"{_look(_lead(events)).emoji} {_summary(events)} on graph {graph}: {listed}{more}"


def _event_headline(event: JobEvent) -> str:
    look = _look(event.kind)
    return f"{look.emoji} *{fit(_one_line(_label(event.job)), _NAME_BUDGET)}* {_verb(event, mrkdwn=True)}"


def _event_fields(event: JobEvent, project: ProjectInfo, now: datetime) -> list[str]:
    recovers = event.recovers_job_id if event.kind is EventKind.RECOVERED else None
    return _job_fields(event.job, project, now, recovers=recovers)


def _event_blocks(
    event: JobEvent,
    project: ProjectInfo,
    now: datetime,
    *,
    headline: bool,
    accessory: bool,
    reason_budget: int,
    max_files: int | None,
    cause_budget: int,
    pack_files: bool,
) -> tuple[list[dict[str, Any]], list[FileImport]]:
    """An event's blocks, and the problem files that did not fit (``max_files``).

    Without ``headline`` the facts stand alone (a one-event alert: its header already says it).
    """
    job = event.job
    button = _details_button(project, job) if accessory else None
    text = _event_headline(event) if headline else None
    blocks = [_section(text, fields=_event_fields(event, project, now), accessory=button)]
    reason = _reason_block(job, reason_budget)
    if reason is not None:
        blocks.append(reason)
    problems = [f for f in _ordered_files(job.files) if f.is_problem]
    shown = problems if max_files is None else problems[:max_files]
    rest = problems[len(shown) :]
    entries = [_file_entry(f, cause_budget) for f in shown]
    if pack_files:
        blocks.extend(_section(text) for text, _ in _pack(entries))
    else:
        blocks.extend(_section(entry) for entry in entries)
    notes = []
    ok = _ok_summary(job.files)
    if ok:
        notes.append(ok)
    if rest:
        notes.append(f"…and {_count(len(rest), 'more file')} with problems, listed in the thread")
    if notes:
        blocks.append(_context(" · ".join(notes)))
    return blocks, rest


def _alert_actions(delivery: Delivery, project: ProjectInfo, *, with_ack: bool) -> dict[str, Any] | None:
    buttons: list[dict[str, Any]] = []
    primary = delivery.events[0].job if delivery.events else None
    if primary is not None:
        details = _details_button(project, primary)
        if details is not None:
            buttons.append(details)
    if delivery.graph and slack_len(delivery.graph) <= limits.MAX_BUTTON_VALUE:
        buttons.append(_button("Mute 1h", ACTION_MUTE_1H, delivery.graph))
        buttons.append(_button("Mute 24h", ACTION_MUTE_24H, delivery.graph))
    if with_ack:
        value = job_ref(project.alias, primary.job_id) if primary is not None else None
        if value is not None and slack_len(value) > limits.MAX_BUTTON_VALUE:
            value = None
        buttons.append(_button("Acknowledge", ACTION_ACK, value))
    if not buttons:
        return None
    return {"type": "actions", "block_id": ALERT_ACTIONS_BLOCK_ID, "elements": buttons}


@dataclass(frozen=True)
class _AlertParts:
    blocks: list[dict[str, Any]]
    overflow: list[dict[str, Any]]


def _alert_parts(
    delivery: Delivery,
    project: ProjectInfo,
    now: datetime,
    *,
    banners: Sequence[dict[str, Any]] = (),
    buttons: bool = True,
    with_ack: bool = True,
) -> _AlertParts:
    """The alert's blocks (header, banners, up to :data:`MAX_EVENTS_INLINE` events, actions) and
    the blocks that go to the thread instead (further events, further problem files)."""
    blocks: list[dict[str, Any]] = [_alert_header(delivery), *banners]
    overflow: list[dict[str, Any]] = []
    inline = delivery.events[:MAX_EVENTS_INLINE]
    many = len(delivery.events) > 1
    for index, event in enumerate(inline):
        if many:
            blocks.append(_divider())
        # The first event's Details button sits in the actions block; later ones get their own.
        event_blocks, rest = _event_blocks(
            event,
            project,
            now,
            headline=many,
            accessory=buttons and index > 0,
            reason_budget=_REASON_INLINE,
            max_files=MAX_FILES_INLINE,
            cause_budget=_CAUSE_INLINE,
            pack_files=False,
        )
        blocks.extend(event_blocks)
        if rest:
            label = fit(_one_line(_label(event.job)), _NAME_BUDGET)
            overflow.append(
                _section(f"More files of *{label}* job {code(event.job.job_id, _FIELD_BUDGET)} with problems:")
            )
            entries = [_file_entry(f, _CAUSE_THREAD) for f in rest]
            overflow.extend(_section(text) for text, _ in _pack(entries))
    for event in delivery.events[MAX_EVENTS_INLINE:]:
        overflow.append(_divider())
        event_blocks, _ = _event_blocks(
            event,
            project,
            now,
            headline=True,
            accessory=buttons,
            reason_budget=_REASON_INLINE,
            max_files=None,
            cause_budget=_CAUSE_THREAD,
            pack_files=True,
        )
        overflow.extend(event_blocks)
    hidden = len(delivery.events) - len(inline)
    if hidden > 0:
        blocks.append(_context(f"…and {_count(hidden, 'more job')} on this graph, listed in the thread"))
    if buttons:
        actions = _alert_actions(delivery, project, with_ack=with_ack)
        if actions is not None:
            blocks.append(actions)
    return _AlertParts(blocks=blocks, overflow=overflow)


def _thread_replies(delivery: Delivery, overflow: list[dict[str, Any]]) -> tuple[SlackMessage, ...]:
    if not overflow:
        return ()
    chunks = [overflow[i : i + REPLY_BLOCKS] for i in range(0, len(overflow), REPLY_BLOCKS)]
    if len(chunks) > MAX_THREAD_REPLIES:
        # A thread of dozens of replies helps nobody; the modal and /gesjobs have everything.
        chunks = chunks[:MAX_THREAD_REPLIES]
        chunks[-1] = [
            *chunks[-1][: REPLY_BLOCKS - 1],
            _context("…and more, too long for this thread: *Details* or `/gesjobs job ID` shows every job and file"),
        ]
    graph = fit(_one_line(_graph_name(delivery.graph)), _NAME_BUDGET)
    emoji = _look(_lead(delivery.events)).emoji if delivery.events else ""
    replies = []
    for number, chunk in enumerate(chunks, start=1):
        # A reply never starts with a divider: it would draw a line under nothing.
        blocks = chunk[1:] if chunk and chunk[0].get("type") == "divider" and len(chunk) > 1 else chunk
        text = f"{emoji} More of this alert on graph {graph} ({number}/{len(chunks)})".strip()
        replies.append(_guard(SlackMessage(text=text, blocks=list(blocks))))
    return tuple(replies)


def _guard(message: SlackMessage) -> SlackMessage:
    """Return ``message`` if Slack would accept it, else a minimal message that it surely accepts.

    Budgets above make this a should-never-happen path; it exists so that a mistake in them
    costs detail, not the alert (Slack rejects the whole message on one violation).
    """
    if not limits.check_message(message.payload()):
        return message
    text = truncate(message.text, _TEXT_LIMIT) if message.text.strip() else "ges-bot alert"
    return SlackMessage(
        text=text,
        blocks=[
            _section(
                f"{escape(truncate(_one_line(text), 2000))}\n_(This message was too large to show in full; "
                "`/gesjobs` shows its jobs.)_"
            )
        ],
    )


def render_alert(delivery: Delivery, project: ProjectInfo, now: datetime) -> RenderedAlert:
    """The message for a delivery (all events of one graph from one tick), plus thread replies."""
    parts = _alert_parts(delivery, project, now)
    message = _guard(SlackMessage(text=truncate(_alert_text(delivery), _TEXT_LIMIT), blocks=parts.blocks))
    return RenderedAlert(message=message, thread_replies=_thread_replies(delivery, parts.overflow))


def render_recovery_reply(event: JobEvent, project: ProjectInfo, now: datetime) -> SlackMessage:
    """A reply in the failure's thread: this graph's job succeeded again."""
    job = event.job
    label = fit(_one_line(_label(job)), _NAME_BUDGET)
    text = f"✅ *{label}* recovered on graph {code(event.graph, _FIELD_BUDGET)}: job {code(job.job_id, _FIELD_BUDGET)} succeeded"
    if event.recovers_job_id:
        text += f" after the failure of job {code(event.recovers_job_id, _FIELD_BUDGET)}"
    blocks = [_section(text, fields=_job_fields(job, project, now), accessory=_details_button(project, job))]
    fallback = (
        f"✅ {fit(_one_line(_label(job)), 100)} recovered on graph "
        f"{fit(_one_line(_graph_name(event.graph)), _NAME_BUDGET)} (job {escape(_short_id(job.job_id))})"
    )
    return _guard(SlackMessage(text=fallback, blocks=blocks))


def _recovered_banner(recovery: JobEvent) -> dict[str, Any]:
    job = recovery.job
    label = fit(_one_line(_label(job)), _NAME_BUDGET)
    return _section(
        f"✅ *Recovered* by {label} job {code(job.job_id, _FIELD_BUDGET)} at {date_token(job.end_time or recovery.at)}"
    )


def _ack_banner(by_user: str, now: datetime) -> dict[str, Any]:
    who = mention(by_user) or "someone"
    return _context(f"👀 Acknowledged by {who} at {date_token(now)}")


def render_recovered_original(
    original: Delivery, recovery: JobEvent, project: ProjectInfo, now: datetime
) -> SlackMessage:
    """``chat.update`` of the original failure message: same content under a "✅ Recovered" banner,
    buttons removed (there is nothing left to mute or acknowledge)."""
    parts = _alert_parts(original, project, now, banners=[_recovered_banner(recovery)], buttons=False)
    text = truncate(f"✅ Recovered: {_alert_text(original)}", _TEXT_LIMIT)
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
    parts = _alert_parts(original, project, now, banners=banners, buttons=recovery is None, with_ack=False)
    text = truncate(f"👀 Acknowledged: {_alert_text(original)}", _TEXT_LIMIT)
    return _guard(SlackMessage(text=text, blocks=parts.blocks))


# -- job detail ------------------------------------------------------------------------------


def _detail_head(job: Job, project: ProjectInfo, now: datetime) -> list[dict[str, Any]]:
    emoji = _STATUS_EMOJI.get(job.status, "❔")
    blocks = [
        _header(f"{emoji} {_one_line(_label(job))} · {_one_line(job.status) or 'unknown'}"),
        _section(None, fields=_job_fields(job, project, now)),
    ]
    reason = _reason_block(job, _REASON_FULL)
    if reason is not None:
        blocks.append(reason)
    return blocks


def _file_counts(files: Sequence[FileImport]) -> str:
    failed = sum(1 for f in files if f.status == FileStatus.FAILED)
    problems = sum(1 for f in files if f.is_problem) - failed
    ok = sum(1 for f in files if not f.is_problem and f.status == FileStatus.SUCCESS)
    other = len(files) - failed - problems - ok
    parts = [f"{failed:,} failed"] if failed else []
    if problems:
        parts.append(f"{problems:,} partly failed")
    if ok:
        parts.append(f"{ok:,} imported OK")
    if other:
        parts.append(f"{other:,} with no failure reported")
    return f"*{_count(len(files), 'file')}*: " + ", ".join(parts)


def _file_sections(job: Job, cause_budget: int) -> list[tuple[str, int]]:
    return _pack([_file_entry(f, cause_budget) for f in _ordered_files(job.files)])


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
        blocks.append(_section(_file_counts(job.files)))
        blocks.extend(_section(text) for text, _ in pages[page])
    if len(pages) > 1:
        first = sum(n for p in pages[:page] for _, n in p) + 1
        last = first + sum(n for _, n in pages[page]) - 1
        blocks.append(_context(f"Files {first:,}–{last:,} of {len(job.files):,} · page {page + 1} of {len(pages)}"))
        nav = []
        if page > 0:
            nav.append(_button("‹ Previous", ACTION_DETAIL_PREV, page_ref(project.alias, job.job_id, page - 1)))
        if page < len(pages) - 1:
            nav.append(_button("Next ›", ACTION_DETAIL_NEXT, page_ref(project.alias, job.job_id, page + 1)))
        if all(slack_len(b["value"]) <= limits.MAX_BUTTON_VALUE for b in nav):
            blocks.append({"type": "actions", "block_id": "gesjobs_detail_pages", "elements": nav})
    ref = job_ref(project.alias, job.job_id)
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": DETAIL_MODAL_CALLBACK_ID,
        "title": plain_text("GES job details", limits.MAX_MODAL_TITLE),
        "close": plain_text("Close", limits.MAX_MODAL_TITLE),
        "blocks": blocks,
    }
    if slack_len(ref) <= limits.MAX_PRIVATE_METADATA:
        view["private_metadata"] = ref
    if limits.check_view(view):
        # Should never happen (see _guard); keep the modal openable with the facts alone.
        view["blocks"] = [*head[:2], _context("The files of this job are too many to show here.")]
    return view


def render_job_detail_blocks(job: Job, project: ProjectInfo, now: datetime) -> SlackMessage:
    """Full detail of one job for ``/gesjobs job <id>``: as much as one message holds, then a
    "Details" button that opens the modal with every file."""
    head = _detail_head(job, project, now)
    sections = _file_sections(job, _CAUSE_THREAD)
    room = limits.MAX_MESSAGE_BLOCKS - len(head) - 3  # the counts, a "more" note, the Details button
    blocks = list(head)
    if job.files:
        blocks.append(_section(_file_counts(job.files)))
        blocks.extend(_section(text) for text, _ in sections[:room])
    shown = sum(n for _, n in sections[:room])
    if shown < len(job.files):
        blocks.append(_context(f"…and {_count(len(job.files) - shown, 'more file')}: press Details to see them all"))
        details = _details_button(project, job)
        if details is not None:
            blocks.append({"type": "actions", "elements": [details]})
    emoji = _STATUS_EMOJI.get(job.status, "❔")
    text = (
        f"{emoji} {fit(_one_line(_label(job)), 100)} ({escape(_short_id(job.job_id))}) "
        f"on graph {fit(_one_line(_graph_name(job.graph or '')), _NAME_BUDGET)}: {fit(_one_line(job.status), 60)}"
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
        blocks.append(_header(title))
    blocks.append(_section(body))
    text = _join_within(parts, _TEXT_LIMIT) or (title and escape(truncate(title, _TEXT_LIMIT))) or NOTHING
    return _guard(SlackMessage(text=text, blocks=blocks))


#: What a person can do about the Slack errors that break a channel.
_CHANNEL_FIXES: dict[str, str] = {
    "not_in_channel": "Invite the bot to the channel (`/invite @ges-bot`).",
    "channel_not_found": "The channel was deleted, or it is private and the bot is not in it: invite the bot, or subscribe another channel.",
    "is_archived": "The channel is archived: unarchive it, or subscribe another channel.",
}
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
    fix = _CHANNEL_FIXES.get(error, "Check the channel and the bot's access to it.")
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
