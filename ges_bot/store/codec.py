"""Domain objects ↔ JSON-ready dicts, for the store's JSON columns.

This module owns the stored JSON shape of :class:`Job`, :class:`FileImport`, :class:`JobEvent` and
:class:`Delivery`; decoding gives back equal objects (``decode(encode(x)) == x``), so an event
recorded today can be re-rendered later. It does no I/O and knows no tables.

The shape is additive: decoders tolerate missing optional keys, so a later version may add fields.
Non-finite floats (NaN, ±inf) are stored as ``null`` because PostgreSQL's JSON has no spelling for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ges_bot.domain import Delivery, EventKind, FileImport, FileKind, Job, JobEvent

JsonDict = dict[str, Any]


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def finite(value: float | None) -> float | None:
    """``value``, or ``None`` when it is NaN or infinite (not storable in PostgreSQL JSON)."""
    return value if value is None or math.isfinite(value) else None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def file_to_json(f: FileImport) -> JsonDict:
    return {
        "kind": f.kind.value,
        "path": f.path,
        "status": f.status,
        "cause": f.cause,
        "log": f.log,
        "total_lines": f.total_lines,
        "failed_lines": f.failed_lines,
        "successful_lines": f.successful_lines,
    }


def file_from_json(d: Mapping[str, Any]) -> FileImport:
    return FileImport(
        kind=FileKind(d["kind"]),
        path=_opt_str(d.get("path")),
        status=_opt_str(d.get("status")),
        cause=_opt_str(d.get("cause")),
        log=_opt_str(d.get("log")),
        total_lines=_opt_int(d.get("total_lines")),
        failed_lines=_opt_int(d.get("failed_lines")),
        successful_lines=_opt_int(d.get("successful_lines")),
    )


def files_to_json(files: Sequence[FileImport]) -> list[JsonDict]:
    return [file_to_json(f) for f in files]


def files_from_json(items: Sequence[Mapping[str, Any]] | None) -> tuple[FileImport, ...]:
    return tuple(file_from_json(d) for d in items or ())


def job_to_json(job: Job) -> JsonDict:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "job_type": job.job_type,
        "job_name": job.job_name,
        "graph": job.graph,
        "begin_time": _time(job.begin_time),
        "end_time": _time(job.end_time),
        "fail_reason": job.fail_reason,
        "progress": finite(job.progress),
        "files": files_to_json(job.files),
    }


def job_from_json(d: Mapping[str, Any]) -> Job:
    progress = d.get("progress")
    return Job(
        job_id=str(d["job_id"]),
        status=str(d["status"]),
        job_type=_opt_str(d.get("job_type")),
        job_name=_opt_str(d.get("job_name")),
        graph=_opt_str(d.get("graph")),
        begin_time=_parse_time(d.get("begin_time")),
        end_time=_parse_time(d.get("end_time")),
        fail_reason=_opt_str(d.get("fail_reason")),
        progress=None if progress is None else float(progress),
        files=files_from_json(d.get("files")),
    )


def event_to_json(e: JobEvent) -> JsonDict:
    return {
        "project": e.project,
        "kind": e.kind.value,
        "job": job_to_json(e.job),
        "at": _time(e.at),
        "previous_status": e.previous_status,
        "recovers_job_id": e.recovers_job_id,
    }


def event_from_json(d: Mapping[str, Any]) -> JobEvent:
    at = _parse_time(d["at"])
    assert at is not None
    return JobEvent(
        project=str(d["project"]),
        kind=EventKind(d["kind"]),
        job=job_from_json(d["job"]),
        at=at,
        previous_status=_opt_str(d.get("previous_status")),
        recovers_job_id=_opt_str(d.get("recovers_job_id")),
    )


def events_to_json(events: Sequence[JobEvent]) -> list[JsonDict]:
    return [event_to_json(e) for e in events]


def events_from_json(items: Sequence[Mapping[str, Any]] | None) -> tuple[JobEvent, ...]:
    return tuple(event_from_json(d) for d in items or ())


def delivery_to_json(d: Delivery) -> JsonDict:
    return {
        "channel": d.channel,
        "project": d.project,
        "graph": d.graph,
        "events": events_to_json(d.events),
        "team": d.team,
        "subscription_ids": list(d.subscription_ids),
        "locale": d.locale,
    }


def delivery_from_json(d: Mapping[str, Any]) -> Delivery:
    return Delivery(
        channel=str(d["channel"]),
        project=str(d["project"]),
        graph=str(d["graph"]),
        events=events_from_json(d.get("events")),
        team=_opt_str(d.get("team")),
        subscription_ids=tuple(int(i) for i in d.get("subscription_ids") or ()),
        locale=str(d.get("locale") or "en"),
    )
