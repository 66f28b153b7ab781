"""The house style of every Slack payload: Block Kit builders, packing under limits, guards, looks.

Alerts (:mod:`ges_bot.notify.render`), ``/gesjobs`` answers, the Home tab and modals
(:mod:`ges_bot.slackapp.views`) are all drawn from this kit, so an emoji, a word for a status or
the fix for a broken channel is written once. It owns:

- the builders (:func:`header`, :func:`section`, :func:`context`, :func:`divider`,
  :func:`button`) — every mrkdwn object goes through :func:`~ges_bot.notify.mrkdwn.mrkdwn_text`
  (``verbatim``), every plain text through :func:`~ges_bot.notify.mrkdwn.plain_text` (capped);
- small text helpers (:func:`one_line`, :func:`label`, :func:`count`);
- packing entries into as few sections as Slack's limits allow (:func:`pack`), cutting our own
  over-long entries at a line (:func:`fit_mrkdwn`);
- the guards that swap in a minimal payload when a budget was wrong (:func:`guard`,
  :func:`guard_view`): a mistake costs detail, never the message;
- the look tables: event kinds (:data:`KIND_LOOKS`), job statuses (:data:`STATUS_EMOJI`,
  :data:`STATUS_WORDS`), import files (:func:`file_emoji`, :data:`FILE_STATUS_WORDS`) and what a person can do about
  a channel Slack refuses (:data:`CHANNEL_FIXES`).

It is pure (text in, dicts out) and knows nothing of alerts or commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ges_bot.domain import EventKind, FileImport, FileStatus, Job, JobStatus
from ges_bot.notify import limits
from ges_bot.notify.mrkdwn import NOTHING, escape, mrkdwn_text, plain_text, slack_len, truncate

__all__ = [
    "CHANNEL_FIXES",
    "DEFAULT_CHANNEL_FIX",
    "FILE_STATUS_WORDS",
    "KIND_LOOKS",
    "STATUS_EMOJI",
    "STATUS_ORDER",
    "STATUS_WORDS",
    "TEXT_LIMIT",
    "UNKNOWN_STATUS_EMOJI",
    "ChannelFix",
    "KindLook",
    "SlackMessage",
    "button",
    "context",
    "count",
    "divider",
    "file_emoji",
    "fit_mrkdwn",
    "guard",
    "guard_view",
    "header",
    "kind_look",
    "label",
    "modal",
    "one_line",
    "pack",
    "section",
]

#: Budget of a message's fallback ``text`` (notifications and screen readers: keep it short).
TEXT_LIMIT = 1000


@dataclass(frozen=True)
class SlackMessage:
    """A message payload. ``text`` is the plain fallback (notifications, screen readers): always set."""

    text: str
    blocks: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        """``text`` and ``blocks``, ready for ``chat.postMessage`` / ``chat.update`` keyword arguments."""
        return {"text": self.text, "blocks": self.blocks}


# -- looks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindLook:
    """How an event kind is shown: its emoji, what happened ("failed") and what a subscription
    hears about ("fails")."""

    emoji: str
    verb: str
    present: str
    #: How a list of subscribed kinds names it, when that is not ``verb``.
    listed: str = ""

    @property
    def word(self) -> str:
        return self.listed or self.verb


KIND_LOOKS: dict[EventKind, KindLook] = {
    EventKind.FAILED: KindLook("🔴", "failed", "fails"),
    EventKind.PARTIALLY_FAILED: KindLook("🟠", "partially failed", "partially fails"),
    # A one-event alert names the raw status instead (render._verb); so does the Status field.
    EventKind.UNKNOWN_OUTCOME: KindLook(
        "❓", "ended in an unknown status", "ends in an unknown status", listed="unknown outcome"
    ),
    EventKind.STUCK: KindLook("⏳", "stuck", "gets stuck"),
    EventKind.RECOVERED: KindLook("✅", "recovered", "recovers"),
    EventKind.SUCCEEDED: KindLook("🟢", "succeeded", "succeeds"),
    EventKind.STATUS_CHANGED: KindLook("🔵", "changed status", "changes status"),
}


def kind_look(kind: EventKind) -> KindLook:
    """The look of ``kind``; a kind without one of its own looks like a plain status change."""
    return KIND_LOOKS.get(kind, KIND_LOOKS[EventKind.STATUS_CHANGED])


#: Job statuses as GES answers them. Unknown statuses get :data:`UNKNOWN_STATUS_EMOJI` and are
#: shown as GES sent them.
STATUS_EMOJI: dict[str, str] = {
    JobStatus.FAILED: "🔴",
    JobStatus.PARTIALLY_FAILED: "🟠",
    JobStatus.SUCCESS: "🟢",
    JobStatus.RUNNING: "🔵",
    JobStatus.PENDING: "⚪",
}
UNKNOWN_STATUS_EMOJI = "❔"
STATUS_WORDS: dict[str, str] = {
    JobStatus.FAILED: "failed",
    JobStatus.PARTIALLY_FAILED: "partially failed",
    JobStatus.SUCCESS: "succeeded",
    JobStatus.RUNNING: "running",
    JobStatus.PENDING: "pending",
}
#: The order statuses are counted in: the worst first.
STATUS_ORDER: tuple[str, ...] = (
    JobStatus.FAILED,
    JobStatus.PARTIALLY_FAILED,
    JobStatus.RUNNING,
    JobStatus.PENDING,
    JobStatus.SUCCESS,
)
#: Per-file statuses of an import as people say them; unknown ones are shown as GES sent them.
FILE_STATUS_WORDS: dict[str, str] = {
    FileStatus.FAILED: "failed",
    FileStatus.PART_FAILED: "partly failed",
    FileStatus.SUCCESS: "imported",
}


def file_emoji(f: FileImport) -> str:
    """The look of one import file: failed, partly failed, imported, or unknown (a problem or not)."""
    if f.status == FileStatus.FAILED:
        return "🔴"
    if f.status == FileStatus.PART_FAILED or (f.status == FileStatus.SUCCESS and f.is_problem):
        return "🟠"  # "success" with failed lines is a partial failure in all but name
    if f.status == FileStatus.SUCCESS:
        return "🟢"
    return "⚠️" if f.is_problem else "⚪"


@dataclass(frozen=True)
class ChannelFix:
    """What a person can do about a Slack error that breaks a channel: as a sentence of its own
    (a direct message) and as a clause after a dash (a line of a list)."""

    sentence: str
    clause: str


CHANNEL_FIXES: dict[str, ChannelFix] = {
    "not_in_channel": ChannelFix(
        "Invite the bot to the channel (`/invite @ges-bot`).",
        "invite the bot (`/invite @ges-bot`)",
    ),
    "channel_not_found": ChannelFix(
        "The channel was deleted, or it is private and the bot is not in it: invite the bot, or subscribe another channel.",
        "the channel is gone, or private without the bot in it: invite the bot or subscribe another channel",
    ),
    "is_archived": ChannelFix(
        "The channel is archived: unarchive it, or subscribe another channel.",
        "unarchive the channel, or subscribe another one",
    ),
}
DEFAULT_CHANNEL_FIX = ChannelFix(
    "Check the channel and the bot's access to it.",
    "check the channel and the bot's access to it",
)


# -- blocks ----------------------------------------------------------------------------------


def header(text: str) -> dict[str, Any]:
    """A header block; ``text`` is plain (Slack shows it as typed) and capped at Slack's 150."""
    return {"type": "header", "text": plain_text(text, limits.MAX_HEADER_TEXT)}


def section(text: str | None, *, fields: Sequence[str] = (), accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    """A section of mrkdwn ``text`` (``None``: fields only; empty: "—"), ``fields`` and an ``accessory``."""
    block: dict[str, Any] = {"type": "section"}
    if text is not None:
        block["text"] = mrkdwn_text(text or NOTHING)
    if fields:
        block["fields"] = [mrkdwn_text(f) for f in fields]
    if accessory is not None:
        block["accessory"] = accessory
    return block


def context(*texts: str) -> dict[str, Any]:
    """A context block of mrkdwn texts (at most Slack's 10; the rest are left out)."""
    return {"type": "context", "elements": [mrkdwn_text(t) for t in texts[: limits.MAX_CONTEXT_ELEMENTS]]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str | None = None) -> dict[str, Any]:
    """A button; ``value`` travels back with the click (callers keep it within Slack's 2000)."""
    block: dict[str, Any] = {
        "type": "button",
        "text": plain_text(text, limits.MAX_BUTTON_TEXT),
        "action_id": action_id,
    }
    if value is not None:
        block["value"] = value
    return block


def modal(callback_id: str, title: str, blocks: list[dict[str, Any]], *, close: str = "Close") -> dict[str, Any]:
    """A ``views.open`` / ``views.update`` modal (title and close button capped at Slack's 24)."""
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain_text(title, limits.MAX_MODAL_TITLE),
        "close": plain_text(close, limits.MAX_MODAL_TITLE),
        "blocks": blocks,
    }


# -- text ------------------------------------------------------------------------------------


def one_line(text: str | None) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join((text or "").split())


def label(job: Job) -> str:
    """What people call the job, on one line: its name (``ImportGraph``), else its type, else "Job".
    Untrusted: escape it."""
    return one_line(job.job_name) or one_line(job.job_type) or "Job"


def count(n: int, one: str, many: str | None = None) -> str:
    """ "1 file", "1,204 files" """
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


# -- packing ---------------------------------------------------------------------------------


def pack(entries: Sequence[str], *, sep: str, limit: int = limits.MAX_SECTION_TEXT) -> list[tuple[str, int]]:
    """Entries joined by ``sep`` into as few texts of ≤ ``limit`` units as possible, with how many
    entries each holds. An entry longer than ``limit`` on its own is cut (:func:`fit_mrkdwn`)."""
    packed: list[tuple[str, int]] = []
    current: list[str] = []
    size = 0
    for raw in entries:
        entry = fit_mrkdwn(raw, limit)
        entry_size = slack_len(entry)
        if current and size + len(sep) + entry_size > limit:
            packed.append((sep.join(current), len(current)))
            current, size = [], 0
        current.append(entry)
        size += entry_size + (len(sep) if len(current) > 1 else 0)
    if current:
        packed.append((sep.join(current), len(current)))
    return packed


def fit_mrkdwn(text: str, limit: int) -> str:
    """Our own (already safe) mrkdwn cut to ``limit`` at a line boundary."""
    if slack_len(text) <= limit:
        return text
    # Only our own entries reach here, built of whole pieces; cutting at a line keeps tokens whole.
    lines = text.split("\n")
    while len(lines) > 1 and slack_len("\n".join(lines)) > limit - 2:
        lines.pop()
    kept = "\n".join(lines)
    return kept + " …" if slack_len(kept) <= limit - 2 else escape(truncate("(too long to show)", limit))


# -- guards ----------------------------------------------------------------------------------


def guard(message: SlackMessage, *, fallback: str, note: str) -> SlackMessage:
    """Return ``message`` if Slack would accept it, else a minimal message that it surely accepts:
    its fallback text (``fallback`` when it has none) and ``note`` (our mrkdwn) saying why.

    Budgets make this a should-never-happen path; it exists so that a mistake in them costs
    detail, not the message (Slack rejects the whole message on one violation).
    """
    if not limits.check_message(message.payload()):
        return message
    text = truncate(message.text, TEXT_LIMIT) if message.text.strip() else fallback
    return SlackMessage(text=text, blocks=[section(f"{escape(truncate(one_line(text), 2000))}\n{note}")])


def guard_view(view: dict[str, Any], title: str) -> dict[str, Any]:
    """``view`` if Slack would open it, else the same view saying that ``title`` is too much to show."""
    if not limits.check_view(view):
        return view
    fallback = {**view, "blocks": [section(escape(f"{title}: too much to show here."))]}
    fallback.pop("private_metadata", None)
    return fallback
