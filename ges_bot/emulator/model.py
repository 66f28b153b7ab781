"""The emulator's job record and its conversion to and from the v2 wire format.

Owns :class:`EmuJob` (what the emulator stores) and the three GES time formats. Input from the
control API is tolerant (any of the three time formats, extra fields kept and echoed, any status
string); output follows the reference page: snake_case keys in the page's order, ``end_time``
``null`` while a job runs, ``fail_reason`` only when set, ``job_detail`` only for ``ImportGraph``
jobs. ``job_detail`` is kept and returned exactly as given (nulls, ``-1`` counts and all).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ges_bot.emulator.settings import TimeFormat, TimeZoneSuffix

__all__ = [
    "ACTIVE",
    "CONTROL_FIELDS",
    "TERMINAL",
    "WIRE_FIELDS",
    "EmuJob",
    "JobInputError",
    "format_time",
    "graph_id_for",
    "new_job_id",
    "parse_time",
]

WIRE_FIELDS: tuple[str, ...] = (
    "job_id",
    "status",
    "job_type",
    "job_name",
    "related_graph",
    "begin_time",
    "end_time",
    "job_detail",
    "fail_reason",
    "job_progress",
)
#: Bookkeeping fields the control API accepts and returns besides the wire fields.
CONTROL_FIELDS: tuple[str, ...] = ("project_id", "graph_id")
TERMINAL: frozenset[str] = frozenset({"success", "failed", "partiallyFailed"})
ACTIVE: frozenset[str] = frozenset({"pending", "running"})
_GRAPH_NS = uuid.UUID("6b1f3c52-9a57-4c1e-8f53-2a3e0c7d9b10")


class JobInputError(ValueError):
    """A control-API job body that cannot be stored (message says which field and why)."""


def new_job_id() -> str:
    """32 lower-case hex digits, like ``ff80808167bb90340167bc3c7b5b026a``."""
    return uuid.uuid4().hex


def graph_id_for(project_id: str, graph_name: str) -> str:
    """A stable graph id per (project, graph name), UUID-shaped like GES graph ids."""
    return str(uuid.uuid5(_GRAPH_NS, f"{project_id}/{graph_name}"))


def parse_time(value: object, name: str) -> datetime | None:
    """Any GES time form → aware UTC: ISO with ``T`` or space (zone optional, naive = UTC), epoch
    milliseconds (int or digit string), or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise JobInputError(f"{name} must be a time, not {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise JobInputError(f"{name} {value!r} is not a time (use 2024-01-02T03:04:05 or epoch ms)") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise JobInputError(f"{name} must be a time string, epoch milliseconds or null")


_UTC8 = timezone(timedelta(hours=8))


def format_time(value: datetime | None, fmt: TimeFormat, suffix: TimeZoneSuffix = "none-utc") -> str | int | None:
    """A time as answers write it: ``fmt`` (``T``, ``space``, epoch ms) and, for text, ``suffix``:
    ``none-utc`` (UTC, no zone: the reference page's form), ``utc`` (UTC with a ``Z``) or
    ``none-utc+8`` (the UTC+8 wall time, no zone — a console in China's zone)."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    if fmt == "epoch":
        return int(utc.timestamp() * 1000)
    shown = utc.astimezone(_UTC8) if suffix == "none-utc+8" else utc
    text = shown.strftime("%Y-%m-%d %H:%M:%S" if fmt == "space" else "%Y-%m-%dT%H:%M:%S")
    return text + "Z" if suffix == "utc" else text


def _opt_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise JobInputError(f"{name} must be a string or null")


@dataclass(slots=True)
class EmuJob:
    """One job as the emulator stores it. Times are aware UTC."""

    job_id: str
    project_id: str
    status: str = "running"
    job_type: str | None = "GraphManagement"
    job_name: str | None = None
    related_graph: str | None = None
    begin_time: datetime | None = None
    end_time: datetime | None = None
    job_detail: dict[str, Any] | None = None
    fail_reason: str | None = None
    job_progress: float | None = 0
    graph_id: str | None = None
    #: Unknown fields: stored and echoed as given (the real API may add fields).
    extra: dict[str, Any] = field(default_factory=dict)
    #: Insertion sequence (tie-break of the list order).
    seq: int = 0

    @classmethod
    def from_input(cls, data: dict[str, Any], *, project_id: str, now: datetime) -> EmuJob:
        """A new job from a control-API body (wire fields plus optional ``project_id``/``graph_id``).

        Missing ``job_id`` → generated; ``begin_time`` → ``now``; ``status`` → ``running``; a
        terminal job without an ``end_time`` key ends ``now`` (an explicit ``null`` stays null).
        """
        if not isinstance(data, dict):
            raise JobInputError("a job must be a JSON object")
        job_id = data.get("job_id") or new_job_id()
        if not isinstance(job_id, str):
            raise JobInputError("job_id must be a string")
        pid = data.get("project_id") or project_id
        if not isinstance(pid, str) or not pid.isalnum():
            raise JobInputError("project_id must be letters and digits")
        job = cls(job_id=job_id, project_id=pid, begin_time=now)
        job.apply({k: v for k, v in data.items() if k not in ("job_id", "project_id")}, now=now, creating=True)
        return job

    def apply(self, changes: dict[str, Any], *, now: datetime, creating: bool = False) -> None:
        """Apply wire-field ``changes`` (a PATCH). A move to any status other than ``pending`` or
        ``running`` (one outside the documented enum too, such as ``cancelled``) without an
        ``end_time`` in ``changes`` ends the job ``now``; a move back to an active status clears it."""
        if "job_id" in changes and changes["job_id"] != self.job_id:
            raise JobInputError("job_id cannot be changed")
        if "project_id" in changes and changes["project_id"] != self.project_id:
            raise JobInputError("project_id cannot be changed")
        if "status" in changes:
            status = changes["status"]
            if not isinstance(status, str) or not status:
                raise JobInputError("status must be a non-empty string")
            self.status = status
        for name in ("job_type", "job_name", "fail_reason"):
            if name in changes:
                setattr(self, name, _opt_str(changes, name))
        if "related_graph" in changes:
            self.related_graph = _opt_str(changes, "related_graph")
            if "graph_id" not in changes:
                self.graph_id = graph_id_for(self.project_id, self.related_graph) if self.related_graph else None
        if "graph_id" in changes:
            self.graph_id = _opt_str(changes, "graph_id")
        if "begin_time" in changes:
            self.begin_time = parse_time(changes["begin_time"], "begin_time")
        if "end_time" in changes:
            self.end_time = parse_time(changes["end_time"], "end_time")
        elif "status" in changes:
            if self.status not in ACTIVE and self.end_time is None:
                self.end_time = max(now, self.begin_time) if self.begin_time else now
            elif self.status in ACTIVE:
                self.end_time = None
        if "job_detail" in changes:
            detail = changes["job_detail"]
            if detail is not None and not isinstance(detail, dict):
                raise JobInputError("job_detail must be an object or null")
            self.job_detail = detail
        if "job_progress" in changes:
            progress = changes["job_progress"]
            if progress is not None and (isinstance(progress, bool) or not isinstance(progress, int | float)):
                raise JobInputError("job_progress must be a number or null")
            self.job_progress = progress
        for name, value in changes.items():
            if name not in WIRE_FIELDS and name not in CONTROL_FIELDS:
                self.extra[name] = value
        if creating and self.graph_id is None and self.related_graph:
            self.graph_id = graph_id_for(self.project_id, self.related_graph)

    def to_wire(self, fmt: TimeFormat = "T", suffix: TimeZoneSuffix = "none-utc") -> dict[str, Any]:
        """The job exactly as ``GET …/graphs/jobs`` lists it."""
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "job_type": self.job_type,
            "job_name": self.job_name,
            "related_graph": self.related_graph,
            "begin_time": format_time(self.begin_time, fmt, suffix),
            "end_time": format_time(self.end_time, fmt, suffix),
        }
        if self.job_name == "ImportGraph" and self.job_detail is not None:
            out["job_detail"] = self.job_detail
        if self.fail_reason is not None:
            out["fail_reason"] = self.fail_reason
        out["job_progress"] = self.job_progress
        for name, value in self.extra.items():
            out.setdefault(name, value)
        return out

    def to_control(self) -> dict[str, Any]:
        """The wire form (``T`` times) plus ``project_id`` and ``graph_id`` (control API only)."""
        out = self.to_wire("T")
        if self.job_detail is not None:
            out.setdefault("job_detail", self.job_detail)
        out["project_id"] = self.project_id
        out["graph_id"] = self.graph_id
        return out
