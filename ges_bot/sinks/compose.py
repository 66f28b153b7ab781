"""What every group-bot rendering says, in the sink's words, before a platform lays it out (pure).

Owns the parts of an alert the four platforms share — the title, the severity (a header colour),
the facts of a job, the fail reason, one entry per problem file, the tally of the rest, the line
naming the failure a recovery recovers — and the :data:`LEVELS` of detail a renderer steps down
through until its platform's limits hold (the last level always fits: a title and one short line).

It never escapes: each platform module passes its :class:`Markup`, the one place that platform's
untrusted text is escaped and clipped. Values go into sentences already escaped, so a translation
cannot un-escape them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from ges_bot.domain import EventKind, FileImport
from ges_bot.notify.document import AlertDocument, AlertItem, Field, FieldKey, ThreadKind, graph_name
from ges_bot.words import Words

__all__ = [
    "LEVELS",
    "Budget",
    "Markup",
    "Rendered",
    "Severity",
    "clip",
    "facts",
    "file_entries",
    "fit",
    "item_headline",
    "one_line",
    "reason",
    "recovery_lead",
    "severity",
    "tally_note",
    "title",
]


class Markup(Protocol):
    """A platform's escaping of untrusted text (each method clips to ``limit`` characters first)."""

    def text(self, value: str, limit: int) -> str:
        """Words on one line, inert: no markup, mention or link can come out of them."""
        ...

    def code(self, value: str, limit: int) -> str:
        """An identifier (graph, job id, path) as inline code, inert."""
        ...

    def block(self, value: str, limit: int) -> str:
        """Several lines (a cause, a reason) as a code block, inert."""
        ...

    def bold(self, trusted: str) -> str:
        """Emphasis around text that is already safe (a label, an escaped value)."""
        ...


@dataclass(frozen=True, slots=True)
class Budget:
    """How much of an alert one rendering shows."""

    items: int
    files: int
    cause: int
    reason: int
    facts: bool = True


#: Most detail first; a renderer uses the first level its platform accepts. The last always fits.
LEVELS: tuple[Budget, ...] = (
    Budget(items=10, files=10, cause=1500, reason=2000),
    Budget(items=5, files=3, cause=400, reason=600),
    Budget(items=3, files=1, cause=150, reason=200),
    Budget(items=2, files=1, cause=120, reason=150),
    # Always fits (WeCom's 4,096 bytes included): a title, one job, its first problem file.
    Budget(items=1, files=1, cause=80, reason=120, facts=False),
)


class Severity(StrEnum):
    DANGER = "danger"
    WARNING = "warning"
    GOOD = "good"
    INFO = "info"


_SEVERITY: dict[EventKind, Severity] = {
    EventKind.FAILED: Severity.DANGER,
    EventKind.UNKNOWN_OUTCOME: Severity.DANGER,
    EventKind.PARTIALLY_FAILED: Severity.WARNING,
    EventKind.STUCK: Severity.WARNING,
    EventKind.RECOVERED: Severity.GOOD,
    EventKind.SUCCEEDED: Severity.GOOD,
}

EMOJI: dict[EventKind, str] = {
    EventKind.FAILED: "🔴",
    EventKind.PARTIALLY_FAILED: "🟠",
    EventKind.UNKNOWN_OUTCOME: "❓",
    EventKind.STUCK: "⏳",
    EventKind.RECOVERED: "✅",
    EventKind.SUCCEEDED: "🟢",
}


def clip(value: str, limit: int) -> str:
    """At most ``limit`` characters, an ellipsis marking a cut."""
    if limit <= 0:
        return ""
    return value if len(value) <= limit else value[: max(0, limit - 1)] + "…"


def one_line(value: str | None) -> str:
    return " ".join((value or "").split())


def severity(doc: AlertDocument) -> Severity:
    return _SEVERITY.get(doc.headline.lead, Severity.INFO) if doc.headline.lead is not None else Severity.INFO


def _job_label(item: AlertItem, w: Words) -> str:
    return w.job(one_line(item.job.job_name) or one_line(item.job.job_type)) or w("Job")


def _verb(item: AlertItem, w: Words, m: Markup) -> str:
    if item.kind is EventKind.UNKNOWN_OUTCOME:
        return w("ended as “{status}” (a status ges-bot does not know)", status=m.text(one_line(item.job.status), 60))
    return w.kind(item.kind)


def title(doc: AlertDocument, w: Words, m: Markup) -> str:
    """ "🔴 ImportGraph failed · movies" / "🔴 2 failed, 1 stuck · movies" (escaped by ``m``)."""
    graph = m.text(one_line(doc.graph), 80) if doc.graph.strip() else w(graph_name(doc.graph))
    if not doc.items or doc.headline.lead is None:
        return w("GES jobs · {graph}", graph=graph)
    emoji = EMOJI.get(doc.headline.lead, "🔵")
    if len(doc.items) == 1:
        item = doc.items[0]
        return f"{emoji} " + w(
            "{job} {verb} · {graph}", job=m.text(_job_label(item, w), 60), verb=_verb(item, w, m), graph=graph
        )
    counts = w(", ").join(w("{n} {kind}", n=w.number(n), kind=w.kind(k)) for k, n in doc.headline.counts)
    return f"{emoji} {counts} · {graph}"


def item_headline(item: AlertItem, w: Words, m: Markup) -> str:
    return f"{EMOJI.get(item.kind, '🔵')} " + w(
        "{job} {verb}", job=m.bold(m.text(_job_label(item, w), 60)), verb=_verb(item, w, m)
    )


def _value(f: Field, w: Words, m: Markup) -> str:
    key = f.key
    if key in (FieldKey.BEGAN, FieldKey.ENDED):
        return w.when(f.at)
    if key in (FieldKey.RUNNING_FOR, FieldKey.WAITING_FOR, FieldKey.DURATION):
        return w.span(f.span)
    if key is FieldKey.PROJECT:
        alias = m.text(f.text or "", 60)
        return alias + (f" · {m.text(f.detail, 40)}" if f.detail else "")
    if key is FieldKey.STATUS:
        raw = f.text or ""
        known = w.job_status(raw)
        return known if known is not None else m.code(raw, 60)
    if key is FieldKey.TYPE:
        return m.text(w.job(f.text), 60) if f.text else "—"
    return m.code(f.text, 120) if f.text else "—"  # graph, job id, the recovered job's id


def facts(item: AlertItem, w: Words, m: Markup) -> list[tuple[str, str]]:
    """(label, value) pairs in the document's order; values escaped."""
    return [(w.label(f.key), _value(f, w, m)) for f in item.fields]


def reason(item: AlertItem, w: Words, m: Markup, budget: Budget) -> str | None:
    if not item.reason or budget.reason <= 0:
        return None
    return m.block(item.reason, budget.reason)


def _lines(f: FileImport, w: Words) -> str:
    failed = f.failed_lines if f.failed_lines is not None and f.failed_lines >= 0 else None
    total = f.total_lines if f.total_lines is not None and f.total_lines >= 0 else None
    if failed is not None and total is not None:
        return " · " + w("{failed} of {total} lines failed", failed=w.number(failed), total=w.number(total))
    if failed is not None:
        return " · " + w("{failed} lines failed", failed=w.number(failed))
    return ""


_FILE_KIND_WORDS = {"schema": "schema", "vertex": "vertices", "edge": "edges"}


def file_head(f: FileImport, w: Words, m: Markup) -> str:
    """ "vertices `movies.csv` · failed · 3 of 100 lines failed"."""
    status = w.file_status(f.status) or (m.text(f.status, 40) if f.status else w("status unknown"))
    kind = w(_FILE_KIND_WORDS.get(f.kind.value, f.kind.value))
    path = m.code(f.path, 200) if f.path else w("(no path)")
    log = " · " + w("log {path}", path=m.code(f.log, 200)) if f.log and f.log.strip() else ""
    return f"{m.bold(kind)} {path} · {status}{_lines(f, w)}{log}"


def file_entries(item: AlertItem, w: Words, m: Markup, budget: Budget) -> list[tuple[str, str | None]]:
    """Per shown problem file: its head line and its cause as a block (``None`` without one)."""
    shown: list[tuple[str, str | None]] = []
    for f in item.problem_files[: budget.files]:
        cause = m.block(f.cause, budget.cause) if f.cause and f.cause.strip() and budget.cause > 0 else None
        shown.append((file_head(f, w, m), cause))
    return shown


def tally_note(item: AlertItem, w: Words, budget: Budget) -> str | None:
    """ "+ 4 more files with problems · 295 files imported OK" — what the entries do not show."""
    parts = []
    hidden = len(item.problem_files) - min(len(item.problem_files), budget.files)
    if hidden:
        parts.append(w("+ {n} more files with problems", n=w.number(hidden)))
    if item.tally.ok:
        parts.append(w("{n} files imported OK", n=w.number(item.tally.ok)))
    if item.tally.other:
        parts.append(w("{n} other files (no failure reported)", n=w.number(item.tally.other)))
    return " · ".join(parts) or None


def recovery_lead(doc: AlertDocument, item: AlertItem, w: Words, m: Markup) -> str | None:
    """A recovery cannot thread under its failure here, so it names the failure it follows up."""
    if doc.thread.kind is not ThreadKind.RECOVERY or not item.recovers_job_id:
        return None
    return w("Follow-up: recovers the failure of job {job}", job=m.code(item.recovers_job_id, 120))


def more_items(doc: AlertDocument, w: Words, budget: Budget) -> str | None:
    hidden = len(doc.items) - min(len(doc.items), budget.items)
    return w("…and {n} more jobs on this graph", n=w.number(hidden)) if hidden else None


def shown_items(doc: AlertDocument, budget: Budget) -> Sequence[AlertItem]:
    return doc.items[: budget.items]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A platform's body for an alert, and the level of detail it was drawn at."""

    body: dict[str, Any]
    #: Index into :data:`LEVELS`; a shorter rendering (after an "oversized" answer) starts above it.
    level: int


def fit(
    build: Callable[[Budget], dict[str, Any]], check: Callable[[dict[str, Any]], list[str]], start: int = 0
) -> Rendered:
    """The most detailed body from level ``start`` on that ``check`` finds no fault with (the last
    level is returned in any case: it holds a title and one short line)."""
    level = min(max(start, 0), len(LEVELS) - 1)
    while True:
        body = build(LEVELS[level])
        if level == len(LEVELS) - 1 or not check(body):
            return Rendered(body, level)
        level += 1
