"""Block Kit for everything the Slack app says: ``/gesjobs`` answers, confirmations, the Home tab.

This module owns how the Slack app's answers look. It is pure: records and ``now`` in, payloads
out — no clock, database, GES or Slack. Alerts and the job-detail modal are ``notify.render``'s;
this module delegates to it for one job's detail rather than drawing jobs twice.

Untrusted text (graph names, patterns, job ids, names and types, fail reasons, GES error
sentences, the user's own words) reaches Slack only through :mod:`ges_bot.notify.mrkdwn`
(escaped, or in inert code spans); mentions only through ``mrkdwn.mention`` on ids that look like
Slack's. Every message passes :func:`ges_bot.notify.limits.check_message` and every view
:func:`~ges_bot.notify.limits.check_view` — a guard swaps in a minimal payload if a budget here is
ever wrong, so a mistake costs detail, never the answer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ges_bot.domain import EventKind, Job, JobEvent, JobStatus, Mute, ProjectInfo, Subscription
from ges_bot.notify import blockkit as kit
from ges_bot.notify import limits, render
from ges_bot.notify.blockkit import SlackMessage
from ges_bot.notify.mrkdwn import (
    NOTHING,
    channel_link,
    code,
    date_token,
    duration,
    escape,
    fit,
    mention,
    truncate,
    trusted,
)
from ges_bot.slackapp.answers import JobLookup, JobsAnswer, QueryProblem, Source, SourceKind, job_time
from ges_bot.slackapp.commands import UsageError, command_text, help_text
from ges_bot.store.api import Health, PollState

__all__ = [
    "HomeData",
    "SlackMessage",
    "acknowledged",
    "help_message",
    "home_view",
    "job_message",
    "jobs_message",
    "loading_job_modal",
    "missing_job_modal",
    "mute_announcement",
    "mute_button_message",
    "muted_message",
    "not_allowed_message",
    "problem_message",
    "status_message",
    "subscribed_message",
    "subscriptions_message",
    "unmute_announcement",
    "unmuted_message",
    "unsubscribed_message",
    "usage_message",
    "wildcard_mute_refused",
]

_NAME = 200
_REASON = 300
_ERROR = 600
# -- blocks ----------------------------------------------------------------------------------


def _guard(message: SlackMessage) -> SlackMessage:
    return kit.guard(message, fallback="ges-bot answer", note="_(The full answer was too large to show.)_")


def _lines(entries: Sequence[str]) -> list[str]:
    """Entries, one a line, packed into as few section texts as fit."""
    return [text for text, _ in kit.pack(entries, sep="\n")]


def _message(fallback: str, blocks: list[dict[str, Any]]) -> SlackMessage:
    """A message with ``fallback`` (plain words, untrusted parts included) as its escaped ``text``."""
    return _guard(SlackMessage(text=fit(kit.one_line(fallback), kit.TEXT_LIMIT) or NOTHING, blocks=blocks))


def _command(words: str) -> str:
    """A command to copy, as an inert code span (a backtick in a pattern cannot break it)."""
    return code(f"/gesjobs {words}", 400)


def _ago(then: datetime, now: datetime) -> str:
    return f"{date_token(then)} ({duration(now - then)} ago)"


def _who(user: str | None) -> str:
    """A mention for a Slack user id, else the value shown inert."""
    if user is None:
        return NOTHING
    return mention(user) or code(user, 60)


#: The kinds a subscription can ask for, in the order they are listed.
_SUBSCRIBABLE: tuple[EventKind, ...] = (
    EventKind.FAILED,
    EventKind.PARTIALLY_FAILED,
    EventKind.UNKNOWN_OUTCOME,
    EventKind.STUCK,
    EventKind.SUCCEEDED,
    EventKind.RECOVERED,
)


def _kinds_phrase(kinds: Iterable[EventKind]) -> str:
    """ "fails, partially fails or gets stuck" """
    chosen = set(kinds)
    verbs = [kit.KIND_LOOKS[k].present for k in _SUBSCRIBABLE if k in chosen]
    if not verbs:
        return "changes"
    return verbs[0] if len(verbs) == 1 else f"{', '.join(verbs[:-1])} or {verbs[-1]}"


def _kinds_text(kinds: Iterable[EventKind]) -> str:
    chosen = set(kinds)
    return ", ".join(kit.KIND_LOOKS[k].word for k in _SUBSCRIBABLE if k in chosen) or "nothing"


# -- help and usage --------------------------------------------------------------------------


def help_message(topic: str | None = None) -> SlackMessage:
    """The help users see for ``/gesjobs``, ``/gesjobs help`` and ``/gesjobs help <topic>``."""
    text = "/gesjobs: failed today · running · job <id> · subscribe <graph> · mute <graph> 2h · status · help"
    return _message(text, _help_sections(help_text(topic)))


def _help_sections(text: str) -> list[dict[str, Any]]:
    """Help text (ours, with ``<placeholders>`` that must not become links): a section per paragraph."""
    return [kit.section(s) for part in text.split("\n\n") if part.strip() for s in _lines([escape(part)])]


def usage_message(error: UsageError) -> SlackMessage:
    """A command that did not parse: what was wrong, the fix when one is known, and the help that applies."""
    lines = [f"🤔 {escape(error.message)}"]
    if error.suggestion:
        lines.append(f"Try {code('/gesjobs ' + error.suggestion, 300)}.")
    blocks = [kit.section(kit.fit_mrkdwn("\n".join(lines), limits.MAX_SECTION_TEXT))]
    if error.topic is not None:
        blocks.extend(_help_sections(help_text(error.topic)))
    blocks.append(kit.context(trusted("`/gesjobs help` shows everything the bot understands.")))
    return _message(f"/gesjobs: {error.message}", blocks)


def problem_message(problem: QueryProblem) -> SlackMessage:
    """A question that could not be answered, as a sentence (GES's words escaped)."""
    return _message(problem.message, [kit.section(f"⚠️ {fit(problem.message, 2900)}")])


# -- job lists --------------------------------------------------------------------------------


def _status_word(status: str) -> str:
    return kit.STATUS_WORDS.get(status) or fit(status, 60)


def _counts_text(counts: Mapping[str, int]) -> str:
    ordered = [s for s in kit.STATUS_ORDER if s in counts] + sorted(s for s in counts if s not in kit.STATUS_ORDER)
    return " · ".join(
        f"{kit.STATUS_EMOJI.get(s, kit.UNKNOWN_STATUS_EMOJI)} {counts[s]:,} {_status_word(s)}" for s in ordered
    )


def _job_entry(job: Job, project: str | None, now: datetime) -> str:
    """One job in a list: what, where, when, why (≈ 900 units at most)."""
    emoji = kit.STATUS_EMOJI.get(job.status, kit.UNKNOWN_STATUS_EMOJI)
    head = f"{emoji} *{fit(kit.label(job), _NAME)}* on graph {code(job.graph, _NAME)} · {_status_word(job.status)}"
    when: list[str] = []
    if job.is_active or job.end_time is None:
        if job.begin_time is not None:
            verb = "waiting since" if job.status == JobStatus.PENDING else "began"
            when.append(f"{verb} {date_token(job.begin_time)} ({duration(now - job.begin_time)} ago)")
    else:
        when.append(f"ended {date_token(job.end_time)}")
        if job.begin_time is not None:
            when.append(f"took {duration(job.end_time - job.begin_time)}")
    when.append(f"job {code(job.job_id, 120)}")
    if project is not None:
        when.append(f"project {fit(project, 60)}")
    text = f"{head}\n{' · '.join(when)}"
    reason = kit.one_line(job.fail_reason)
    if reason:
        text += f"\nReason: {code(reason, _REASON)}"
    return text


def _range_text(answer: JobsAnswer) -> str:
    query = answer.query
    if query.range is None or answer.start is None or answer.end is None:
        return (
            "active now" if query.statuses and all(s in ("running", "pending") for s in query.statuses) else "any time"
        )
    return (
        f"{escape(query.range.describe())} in {escape(answer.zone)}: "
        f"{date_token(answer.start)} – {date_token(answer.end)}"
    )


def _source_note(source: Source, now: datetime) -> str:
    if source.kind is SourceKind.ERROR:
        return f"⚠️ {fit(source.reason or 'GES could not be asked', _ERROR)}"
    if source.kind is SourceKind.RECENT and source.as_of is not None:
        # Not a warning: the bot's records are the job center as of a poll moments ago.
        return (
            f"From the bot's records of project {escape(source.project)}, as of its last poll {_ago(source.as_of, now)}"
        )
    as_of = (
        f"as of the last successful poll {_ago(source.as_of, now)}" if source.as_of else "(never polled successfully)"
    )
    note = f"⚠️ {fit(source.reason or 'GES is unreachable', _ERROR)} — answering from the bot's snapshots {as_of}"
    if source.truncated:
        note += "; only the newest snapshots were searched"
    return note


def jobs_message(answer: JobsAnswer, now: datetime) -> SlackMessage:
    """Counts by status, then the newest jobs (up to the query's ``limit``), then how to narrow it."""
    query = answer.query
    asked = code(command_text(query), 300)
    total = len(answer.jobs)
    several_projects = len(answer.sources) > 1
    notes = [_source_note(s, now) for s in answer.sources if s.kind is not SourceKind.LIVE]
    if total == 0 and answer.sources and all(s.kind is SourceKind.ERROR for s in answer.sources):
        reasons = "\n".join(f"⚠️ {fit(s.reason or 'GES could not be asked', _ERROR)}" for s in answer.sources)
        return _message(
            answer.sources[0].reason or "GES could not be asked",
            [kit.section(kit.fit_mrkdwn(f"No answer to {asked}:\n{reasons}", limits.MAX_SECTION_TEXT))],
        )
    blocks: list[dict[str, Any]] = []
    if total == 0:
        blocks.append(kit.section(f"No jobs match {asked} ({_range_text(answer)})."))
    else:
        blocks.append(
            kit.section(
                f"*{kit.count(total, 'job')}* match {asked} ({_range_text(answer)})\n{_counts_text(answer.counts)}"
            )
        )
    if notes:
        blocks.append(kit.context(*[kit.fit_mrkdwn(n, limits.MAX_TEXT_OBJECT) for n in notes]))
    shown = answer.jobs[: query.limit]
    entries = [_job_entry(f.job, f.project if several_projects else None, now) for f in shown]
    room = limits.MAX_MESSAGE_BLOCKS - len(blocks) - 2
    sections = kit.pack(entries, sep="\n\n")[:room]
    listed = sum(n for _, n in sections)
    if sections:
        blocks.append(kit.divider())
        blocks.extend(kit.section(text) for text, _ in sections)
    footer: list[str] = []
    if listed < total:
        hint = "narrow it with `graph <name or pattern>` or `type <job name>`"
        if query.limit < 100 and listed == len(shown):
            hint += ", or raise `limit` (up to 100)"
        footer.append(f"Showing {listed:,} of {total:,} — {hint}.")
    if total:
        footer.append("`/gesjobs job <id>` shows one job with every file.")
    if footer:
        blocks.append(kit.context(escape(" ".join(footer))))
    counts = ", ".join(f"{n:,} {kit.STATUS_WORDS.get(s, s)}" for s, n in answer.counts.items())
    fallback = f"{total:,} jobs match /gesjobs {command_text(query)}" + (f": {counts}" if counts else "")
    if answer.snapshot_sources:
        fallback += " (from snapshots: GES is unreachable)"
    elif any(s.kind is SourceKind.RECENT for s in answer.sources):
        fallback += " (as of the bot's last poll)"
    return _message(fallback, blocks)


# -- one job ---------------------------------------------------------------------------------


def job_message(lookup: JobLookup, project: ProjectInfo, now: datetime) -> SlackMessage:
    """``/gesjobs job <id>``: the job's detail (from render), with a note when it is not live."""
    rendered = render.render_job_detail_blocks(lookup.job, project, now)
    if lookup.source.kind is SourceKind.LIVE:
        return rendered
    source = lookup.source
    if source.kind is SourceKind.RECENT:
        note = kit.context(_source_note(source, now))
    else:
        when = f"last seen {_ago(source.as_of, now)}" if source.as_of else "state of the last poll"
        note = kit.context(
            f"⚠️ {fit(source.reason or 'GES is unreachable', _ERROR)} — showing the bot's snapshot ({when})"
        )
    blocks = list(rendered.blocks)
    # The note must not be lost: after the header, or instead of it when the message is full.
    if len(blocks) < limits.MAX_MESSAGE_BLOCKS:
        blocks.insert(1 if blocks and blocks[0].get("type") == "header" else 0, note)
    elif blocks and blocks[0].get("type") == "header":
        blocks[0] = note
    return _guard(SlackMessage(text=rendered.text, blocks=blocks))


def _job_modal(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    view = kit.modal(render.DETAIL_MODAL_CALLBACK_ID, render.DETAIL_MODAL_TITLE, blocks)
    return kit.guard_view(view, render.DETAIL_MODAL_TITLE)


def loading_job_modal(job_id: str) -> dict[str, Any]:
    """What the Details button opens at once when the job must be fetched from GES first."""
    return _job_modal([kit.section(f"⏳ Asking GES for job {code(job_id, 300)}…")])


def missing_job_modal(job_id: str, reason: str | None = None) -> dict[str, Any]:
    """The detail modal of a job nobody can show (``reason``: why, as a sentence)."""
    text = f"The bot has no record of job {code(job_id, 300)} any more."
    if reason:
        text = f"⚠️ {fit(reason, 2500)}"
    return _job_modal([kit.section(f"{text}\n{_command('job ' + job_id)} asks GES for it again.")])


# -- subscriptions and mutes -----------------------------------------------------------------


def _project_words(project: str | None) -> str:
    return f" in project {fit(project, 100)}" if project else ""


#: How a subscription's language is named where it is shown; English, the default, is not named.
_LANGUAGE_NOTES = {"zh-CN": "in Chinese (`zh-CN`)"}


def _language_words(locale: str) -> str:
    note = _LANGUAGE_NOTES.get(locale)
    return f" {note}" if note else ""


def subscribed_message(sub: Subscription, channel: str) -> SlackMessage:
    where = channel_link(channel) or "this channel"
    pattern = code(sub.graph_pattern, 300)
    text = (
        f"✅ {where} will hear{_language_words(sub.locale)} when a job of a graph matching {pattern}"
        f"{_project_words(sub.project)} {_kinds_phrase(sub.kinds)}.\n"
        f"Silence it for a while with {_command(f'mute {sub.graph_pattern} 2h')}; "
        f"stop with {_command('unsubscribe ' + sub.graph_pattern)}."
    )
    fallback = f"Subscribed to {sub.graph_pattern}: {_kinds_text(sub.kinds)}"
    return _message(fallback, [kit.section(text)])


def unsubscribed_message(pattern: str, removed: int, *, in_config: bool) -> SlackMessage:
    shown = code(pattern, 300)
    if removed:
        text = f"🔕 This channel no longer hears about graphs matching {shown}."
    elif in_config:
        text = (
            f"The subscription to {shown} here comes from the bot's config file (`GES_BOT_CONFIG`); "
            "whoever runs the bot can remove it there."
        )
    else:
        text = f"This channel has no subscription to {shown}. `/gesjobs subscriptions` lists the ones it has."
    return _message(f"Unsubscribe {pattern}: {'done' if removed else 'nothing to remove'}", [kit.section(text)])


def _sub_entry(sub: Subscription, now: datetime, *, show_channel: bool) -> str:
    parts = [f"• {code(sub.graph_pattern, 300)} — {_kinds_text(sub.kinds)}{_project_words(sub.project)}"]
    if sub.locale != "en":
        parts.append(f" · 🌐 {_LANGUAGE_NOTES.get(sub.locale, escape(sub.locale))}")
    if sub.job_names:
        names = ", ".join(code(n, 100) for n in sorted(sub.job_names)[:5])
        parts.append(f" · jobs {names}")
    if show_channel:
        parts.append(f" · {channel_link(sub.channel) or code(sub.channel, 60)}")
    if sub.source == "config":
        parts.append(" · 🔒 from the config file (read-only here)")
    elif sub.created_by:
        made = f" · by {_who(sub.created_by)}"
        if sub.created_at is not None:
            made += f" {date_token(sub.created_at, '{date_short_pretty}')}"
        parts.append(made)
    text = "".join(parts)
    if sub.broken:
        fix = kit.CHANNEL_FIXES.get(sub.broken, kit.DEFAULT_CHANNEL_FIX).clause
        again = (
            f", then {_command('subscribe ' + sub.graph_pattern)} here again to resume"
            if sub.source != "config"
            else "; alerts resume by themselves once Slack accepts them there"
        )
        text += f"\n   ⚠️ *broken*: Slack answered {code(sub.broken, 100)} — {escape(fix)}{again}."
    return text


def _mute_entry(mute: Mute, now: datetime) -> str:
    what = f"graph {code(mute.graph_pattern, 300)} (this name only)" if mute.exact else code(mute.graph_pattern, 300)
    text = f"• 🔇 {what} until {date_token(mute.until)} ({duration(mute.until - now)} left)"
    if mute.created_by:
        text += f" · by {_who(mute.created_by)}"
    return text


def subscriptions_message(
    channel: str, subscriptions: Sequence[Subscription], mutes: Sequence[Mute], now: datetime
) -> SlackMessage:
    """This channel's subscriptions (database and config file) and its mutes in force."""
    where = channel_link(channel) or "this channel"
    blocks: list[dict[str, Any]] = []
    if subscriptions:
        entries = [_sub_entry(s, now, show_channel=False) for s in subscriptions]
        blocks.append(kit.section(f"*Subscriptions of {where}* ({len(subscriptions)})"))
        blocks.extend(kit.section(s) for s in _lines(entries)[:40])
    else:
        blocks.append(
            kit.section(
                f"{where} has no subscriptions. `/gesjobs subscribe prod-*` alerts here when a job of a `prod-*` graph fails."
            )
        )
    if mutes:
        blocks.append(kit.section(f"*Muted in {where}*"))
        blocks.extend(kit.section(s) for s in _lines([_mute_entry(m, now) for m in mutes])[:5])
    broken = sum(1 for s in subscriptions if s.broken)
    fallback = f"{len(subscriptions)} subscriptions here" + (f", {broken} broken" if broken else "")
    return _message(fallback, blocks[: limits.MAX_MESSAGE_BLOCKS])


def muted_message(mute: Mute, now: datetime) -> SlackMessage:
    pattern = code(mute.graph_pattern, 300)
    text = (
        f"🔇 No alerts for graphs matching {pattern} in this channel until {date_token(mute.until)} "
        f"({duration(mute.until - now)}). {_command('unmute ' + mute.graph_pattern)} ends it sooner."
    )
    return _message(f"Muted {mute.graph_pattern} for {duration(mute.until - now)}", [kit.section(text)])


def mute_button_message(mute: Mute, span: timedelta, by_user: str | None) -> SlackMessage:
    """The ephemeral confirmation of a Mute button on an alert."""
    who = mention(by_user) or "You"
    text = (
        f"🔇 {who} muted alerts for graph {code(mute.graph_pattern, 300)} in this channel for {duration(span)} "
        f"(until {date_token(mute.until)}). {_command('unmute ' + mute.graph_pattern)} ends it sooner."
    )
    return _message(f"Muted {mute.graph_pattern} for {duration(span)}", [kit.section(text)])


def mute_announcement(mute: Mute, now: datetime) -> SlackMessage:
    """What the whole channel sees when someone mutes its alerts: who, what, until when."""
    what = (
        f"graph {code(mute.graph_pattern, 300)}" if mute.exact else f"graphs matching {code(mute.graph_pattern, 300)}"
    )
    text = (
        f"🔇 {_who(mute.created_by)} muted alerts for {what} in this channel until {date_token(mute.until)} "
        f"({duration(mute.until - now)} from now). {_command('unmute ' + mute.graph_pattern)} ends it sooner; "
        f"{_command('subscriptions')} lists the mutes in force."
    )
    return _message(f"Alerts for {mute.graph_pattern} muted until {mute.until:%Y-%m-%d %H:%M} UTC", [kit.section(text)])


def unmute_announcement(pattern: str, by_user: str) -> SlackMessage:
    """What the whole channel sees when someone ends a mute early."""
    text = f"🔔 {_who(by_user)} unmuted alerts for graphs matching {code(pattern, 300)} in this channel."
    return _message(f"Alerts for {pattern} are back on", [kit.section(text)])


def wildcard_mute_refused(pattern: str, limit: timedelta, admins: Iterable[str]) -> SlackMessage:
    """The refusal of a long mute of every graph by someone who is not an admin."""
    people = ", ".join(_who(a) for a in sorted(admins)[:20])
    who = f"an admin ({people})" if people else "an admin (`GES_BOT_ADMINS`)"
    text = (
        f"🙅 {code(pattern, 300)} matches every graph, so this would silence every alert in the channel. "
        f"Without admin rights a mute like that lasts at most {duration(limit)}: try "
        f"{_command(f'mute {pattern} {_span_word(limit)}')}, mute specific graphs instead, or ask {who}."
    )
    return _message(f"Muting every graph is limited to {duration(limit)}", [kit.section(text)])


def _span_word(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{max(1, seconds // 60)}m"


def unmuted_message(pattern: str, removed: int) -> SlackMessage:
    shown = code(pattern, 300)
    if removed:
        text = f"🔔 Alerts for graphs matching {shown} are back on in this channel."
    else:
        text = f"No mute for {shown} in this channel. `/gesjobs subscriptions` lists the mutes in force."
    return _message(f"Unmute {pattern}: {'done' if removed else 'nothing to unmute'}", [kit.section(text)])


def not_allowed_message(admins: Iterable[str], action: str) -> SlackMessage:
    """A polite refusal naming who may manage subscriptions and mutes."""
    people = [_who(a) for a in sorted(admins)][:20]
    listed = ", ".join(people) or "the bot's admins"
    text = (
        f"🙏 Sorry — in this workspace only {listed} may {escape(action)}. "
        "Ask one of them; anyone may still ask about jobs."
    )
    return _message(f"Only the bot's admins may {action}", [kit.section(text)])


# -- status ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PollLook:
    emoji: str
    text: str


def _poll_look(alias: str, state: PollState | None, now: datetime, poll_interval_s: float) -> _PollLook:
    name = f"*{fit(alias, 100)}*"
    if state is None or state.last_success_at is None:
        text = f"{name} · no successful poll yet"
        if state is not None and state.last_error:
            text += f"\n   last error: {code(state.last_error, 500)}"
        return _PollLook("⚪" if state is None or not state.last_error else "🔴", text)
    lag = now - state.last_success_at
    emoji = "🟢"
    if lag > timedelta(seconds=3 * poll_interval_s):
        emoji = "🟠"
    if lag > timedelta(seconds=10 * poll_interval_s):
        emoji = "🔴"
    text = f"{name} · last successful poll {_ago(state.last_success_at, now)}"
    if state.last_error and state.consecutive_failures:
        text += f"\n   last error ({kit.count(state.consecutive_failures, 'failure')} in a row): {code(state.last_error, 500)}"
    return _PollLook(emoji, text)


def _health_entries(
    health: Health, projects: Sequence[str], now: datetime, poll_interval_s: float, notes: Mapping[str, str]
) -> tuple[list[str], list[str], list[str]]:
    """(project lines, delivery lines, problem lines)."""
    states = {p.project: p for p in health.polls}
    names = list(dict.fromkeys([*projects, *states]))
    polls = []
    for alias in names:
        look = _poll_look(alias, states.get(alias), now, poll_interval_s)
        # A project the dead man's switch calls blind (notify.ops notes it as ops:blind:<alias>,
        # with the cause and fix listed under Problems) is red whatever its lag says.
        emoji = "🔴" if f"ops:blind:{alias}" in notes else look.emoji
        polls.append(f"{emoji} {look.text}")
    delivery = f"📬 Alerts waiting to be delivered: {health.outbox_pending:,}"
    if health.oldest_pending_at is not None and health.outbox_pending:
        delivery += f" (oldest {_ago(health.oldest_pending_at, now)})"
    delivery += f" · given up: {health.outbox_dead:,}"
    if health.outbox_dead:
        delivery += " (see the bot's log)"
    problems = [
        f"⚠️ {code(s.graph_pattern, 200)} in {channel_link(s.channel) or code(s.channel, 60)} is broken: "
        f"Slack answered {code(s.broken, 100)}"
        for s in health.broken_subscriptions
    ]
    problems += [f"⚠️ {fit(text, _ERROR)}" for _, text in sorted(notes.items())]
    return polls, [delivery], problems


def status_message(
    health: Health,
    projects: Sequence[str],
    now: datetime,
    *,
    poll_interval_s: float,
    notes: Mapping[str, str] | None = None,
) -> SlackMessage:
    """``/gesjobs status``: each project's last successful poll and lag, delivery, broken subscriptions."""
    polls, delivery, problems = _health_entries(health, projects, now, poll_interval_s, notes or {})
    blocks: list[dict[str, Any]] = [kit.header("ges-bot status")]
    blocks.append(kit.section(trusted("*GES projects*")))
    blocks.extend(kit.section(s) for s in _lines(polls)[:20])
    blocks.extend(kit.section(s) for s in _lines(delivery))
    if problems:
        blocks.append(kit.section(trusted(f"*Problems* ({len(problems)})")))
        blocks.extend(kit.section(s) for s in _lines(problems)[:20])
    else:
        blocks.append(kit.context(trusted("No broken subscriptions.")))
    behind = sum(1 for line in polls if not line.startswith("🟢"))
    fallback = f"ges-bot status: {len(polls)} projects, {behind} not up to date, {health.outbox_pending} alerts waiting, {len(problems)} problems"
    return _message(fallback, blocks[: limits.MAX_MESSAGE_BLOCKS])


# -- Home tab -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HomeData:
    """What the Home tab shows; the app gathers it, this module draws it."""

    subscriptions: Sequence[Subscription]
    events: Sequence[JobEvent]
    health: Health
    projects: Sequence[str]
    poll_interval_s: float
    notes: Mapping[str, str]
    events_since: datetime


_HOME_SUBS = 40
_HOME_EVENTS = 20


def _event_entry(event: JobEvent, now: datetime) -> str:
    job = event.job
    look = kit.KIND_LOOKS.get(event.kind)
    emoji, verb = (look.emoji, look.word) if look is not None else ("🔵", event.kind.value)
    when = job_time(job) or event.at
    return (
        f"{emoji} *{fit(kit.label(job), _NAME)}* {verb} on graph "
        f"{code(event.graph, _NAME)} · {date_token(when)} · job {code(job.job_id, 120)}"
    )


def home_view(data: HomeData, now: datetime) -> dict[str, Any]:
    """The App Home tab: subscriptions in this workspace, recent failures, the bot's health (≤ 100 blocks)."""
    blocks: list[dict[str, Any]] = [
        kit.header("GES jobs"),
        kit.section(
            escape(
                "Alerts for Huawei Cloud GES jobs. Ask with `/gesjobs failed today`, `/gesjobs running` or "
                "`/gesjobs job <id>`; subscribe a channel with `/gesjobs subscribe <graph>`."
            )
        ),
        kit.divider(),
    ]
    subs = list(data.subscriptions)
    blocks.append(kit.section(trusted(f"*Subscriptions* ({len(subs)})")))
    if subs:
        entries = [_sub_entry(s, now, show_channel=True) for s in subs[:_HOME_SUBS]]
        blocks.extend(kit.section(s) for s in _lines(entries)[:25])
        if len(subs) > _HOME_SUBS:
            blocks.append(
                kit.context(
                    trusted(
                        f"…and {len(subs) - _HOME_SUBS:,} more; `/gesjobs subscriptions` in a channel lists its own."
                    )
                )
            )
    else:
        blocks.append(
            kit.context(
                trusted(
                    "None yet: `/gesjobs subscribe prod-*` in a channel alerts it when a `prod-*` graph's job fails."
                )
            )
        )
    blocks.append(kit.divider())
    events = list(data.events)
    blocks.append(kit.section(f"*Recent failures* (since {date_token(data.events_since)})"))
    if events:
        blocks.extend(kit.section(s) for s in _lines([_event_entry(e, now) for e in events[:_HOME_EVENTS]])[:25])
    else:
        blocks.append(kit.context(trusted("No failures. 🎉")))
    blocks.append(kit.divider())
    polls, delivery, problems = _health_entries(data.health, data.projects, now, data.poll_interval_s, data.notes)
    blocks.append(kit.section(trusted("*Bot health*")))
    blocks.extend(kit.section(s) for s in _lines([*polls, *delivery, *problems])[:15])
    blocks.append(kit.context(f"Updated {date_token(now)}"))
    view = {"type": "home", "blocks": blocks[: limits.MAX_VIEW_BLOCKS]}
    return kit.guard_view(view, "GES jobs")


# -- acknowledgement ------------------------------------------------------------------------


def acknowledged(text: str, blocks: Sequence[Mapping[str, Any]], by_user: str, now: datetime) -> SlackMessage | None:
    """An alert, as Slack sent it back with the click, marked "👀 Acknowledged by <@U…>".

    The alert's actions block is replaced by that context line; its other buttons (Details,
    Mute) follow in a new actions block, so only Acknowledge disappears. ``None`` when
    ``by_user`` does not look like a Slack user id (a mention is live markup) or when the message
    has no Acknowledge button left (already acknowledged).
    """
    who = mention(by_user)
    if who is None:
        return None
    out: list[dict[str, Any]] = []
    replaced = False
    prefix = "👀 Acknowledged: "
    for block in blocks:
        if not replaced and _is_alert_actions(block):
            replaced = True
            ack: Mapping[str, Any] = next(
                (e for e in block.get("elements", []) if e.get("action_id") == render.ACTION_ACK), {}
            )
            label = str((ack.get("text") or {}).get("text") or "")
            line, prefix = render.acknowledgement(who, now, button_text=label)
            out.append(line)
            rest = [copy.deepcopy(e) for e in block.get("elements", []) if e.get("action_id") != render.ACTION_ACK]
            if rest:
                kept = {"type": "actions", "elements": rest}
                if block.get("block_id"):
                    kept["block_id"] = block["block_id"]
                out.append(kept)
            continue
        out.append(copy.deepcopy(dict(block)))
    if not replaced:
        return None
    # No mention in the fallback: it is what notifications show. Slack echoes the message's own
    # text (ours, already escaped), so it is kept as it came.
    fallback = f"{prefix}{text}" if text else prefix.rstrip(": ：")
    return SlackMessage(text=truncate(fallback, kit.TEXT_LIMIT), blocks=out)


def _is_alert_actions(block: Mapping[str, Any]) -> bool:
    if block.get("type") != "actions":
        return False
    elements = block.get("elements") or []
    return any(isinstance(e, Mapping) and e.get("action_id") == render.ACTION_ACK for e in elements)
