"""Tolerant GES job-center JSON ↔ domain types (v2, snake_case).

This module owns the wire format of the job center's v2 API: a ``job_list`` item becomes a
:class:`~ges_bot.domain.Job`, a list response becomes ``(job_count, jobs)``, an error body becomes
``(error_code, error_msg)``, and :func:`job_to_wire` goes back the other way (the emulator and the
benchmarks serve what it returns). It is pure — no I/O, no clock, no logging — and knows nothing of
HTTP, paging or auth.

Tolerance, as the job center's documentation and the official SDK require:

- times in ``yyyy-MM-ddTHH:mm:ss`` or ``yyyy-MM-dd HH:mm:ss`` (optional fractional seconds, an
  optional ``Z`` or offset; without one, UTC or the ``naive_offset`` the caller learnt, see
  :func:`naive_times`) or epoch milliseconds (a number or a string of digits); null or absent
  → ``None``;
- ``job_detail`` only on imports, and any part of it may be null, empty or contain nulls;
- line counts of ``-1`` ("not returned by this version"), null or absent → ``None``;
- statuses are kept exactly as sent — a status GES adds tomorrow, or a synonym (``Failed``,
  ``partFailed``, ``complete``) that :func:`ges_bot.domain.outcome_of` reads as an outcome, is never
  rewritten, so alerts show what GES said; unknown extra fields are ignored;
- control characters in any text are replaced with U+FFFD (tab and newline survive only in
  free text such as ``fail_reason``), so GES text cannot drive a terminal or forge a log line;
- text is bounded here, once (:data:`TEXT_LIMITS`): a longer ``fail_reason``, cause, path or name
  keeps its head and ends with ``… [truncated, N bytes]``, so a 10 MB reason is never stored,
  copied into events and outbox rows, or rendered whole.

What is *not* tolerated, because no reading of it is safe, raises
:class:`~ges_bot.errors.ResponseError` naming the problem: a body that is not an object, a
``job_list`` that is not a list, an item without a ``job_id`` or ``status``, a time in no known form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ges_bot.domain import FileImport, FileKind, Job
from ges_bot.errors import ResponseError

__all__ = [
    "TEXT_LIMITS",
    "TimeFormat",
    "clean_line",
    "clean_text",
    "job_to_wire",
    "naive_times",
    "parse_error_body",
    "parse_job",
    "parse_job_list",
    "parse_time",
]

#: ``job_detail`` keys, in the order files are read and written.
_DETAIL_KEYS: tuple[tuple[str, FileKind], ...] = (
    ("schema_path", FileKind.SCHEMA),
    ("vertexset_path", FileKind.VERTEX),
    ("edgeset_path", FileKind.EDGE),
)

_TIME_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?\s*(?P<zone>Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)

#: Characters kept of each text field (Slack shows at most 3000 per block; the job-detail modal
#: pages files, not text). Past its limit a value keeps its head and a marker with the full size.
TEXT_LIMITS: dict[str, int] = {
    "job_id": 200,
    "status": 100,
    "job_type": 200,
    "job_name": 500,
    "related_graph": 500,
    "fail_reason": 4000,
    "path": 1000,
    "cause": 2000,
    "log": 1000,
}


def clip(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters and marked, or ``value`` itself when it fits."""
    if value is None or len(value) <= limit:
        return value
    return f"{value[:limit]} … [truncated, {len(value.encode('utf-8', 'surrogatepass')):,} bytes]"


#: ``"T"`` → ``2018-12-17T12:55:40`` (the SDK's form), ``" "`` → ``2018-12-17 12:55:40`` (the
#: reference table's form), ``"ms"`` → epoch milliseconds (other GES APIs' form).
TimeFormat = Literal["T", " ", "ms"]


_NO_OFFSET = timedelta(0)


def parse_time(value: Any, naive_offset: timedelta = _NO_OFFSET) -> datetime | None:
    """A GES time as an aware UTC ``datetime``; ``None`` for null, absent or empty.

    A time without a zone is read as ``naive_offset`` east of UTC (default: UTC).
    Raises ``ValueError`` for anything else that is not one of the accepted forms.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"time {value!r} is a boolean")
    if isinstance(value, int | float):
        return _from_epoch_ms(value)
    if not isinstance(value, str):
        raise ValueError(f"time {value!r} is neither text nor a number")
    text = value.strip()
    if not text:
        return None
    if len(text) == 19 and text[10] in "Tt " and text[4] == text[7] == "-" and text[13] == text[16] == ":":
        # The form GES uses, without zone or fraction: the fast path (every job has two times).
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC) - naive_offset
        except ValueError:
            pass  # the general path below says what is wrong
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        return _from_epoch_ms(int(text))
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"time {value!r} is not yyyy-MM-ddTHH:mm:ss, yyyy-MM-dd HH:mm:ss or epoch milliseconds")
    frac = (match["frac"] or "").ljust(6, "0")[:6]
    zone = match["zone"]
    shift = _NO_OFFSET
    if zone is None:
        zone, shift = "+00:00", naive_offset
    elif zone.upper() == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}{zone}")
    except ValueError:
        raise ValueError(f"time {value!r} is not a valid date and time") from None
    return parsed.astimezone(UTC) - shift


def naive_times(body: Any) -> bool | None:
    """Whether a job list answer writes times without a zone: ``True``/``False`` from the first
    time written as text, ``None`` when it holds none (no jobs, only nulls or epoch numbers)."""
    items = body.get("job_list") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        items = [body] if isinstance(body, Mapping) else []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        for name in ("begin_time", "end_time"):
            value = item.get(name)
            if isinstance(value, str) and value.strip() and not value.strip().isdigit():
                match = _TIME_RE.fullmatch(value.strip())
                if match is not None:
                    return match["zone"] is None
    return None


def _from_epoch_ms(value: float) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"time {value!r} is out of range for epoch milliseconds") from None


#: Control characters GES text must not carry further: C0 (but tab and newline, which multi-line
#: failure reasons use), DEL and C1. An escape sequence in a job's text would restyle or rewrite
#: an operator's terminal; a carriage return forge a log line. A NUL also cannot be stored in
#: PostgreSQL text: a job named with one would fail every tick of its project for ever.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: The same plus tab and newline, for one-line texts (error messages, ids, statuses).
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(value: str) -> str:
    """GES text with control characters replaced (tab and newline kept)."""
    # isprintable() is C-fast and true for almost every field; only the rest pay for the regex.
    return value if value.isprintable() else _CONTROL.sub("\ufffd", value)


def clean_line(value: str) -> str:
    """GES text that goes into one line (a log line, an error message): every control character
    and line break replaced, so it can neither forge a second line nor drive a terminal."""
    return value if value.isprintable() else _CONTROL_OR_BREAK.sub("\ufffd", value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    # ``type() is`` before ``isinstance``: this runs for every field of every job of every page.
    if type(value) is str or isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int | float | bool):
        return str(value)
    raise TypeError(f"expected text, got {type(value).__name__}")


def _count(value: Any) -> int | None:
    """A line count; ``-1`` (not returned by this version), other negatives, null and junk → None."""
    if type(value) is int:  # the usual case, first (a bool's type is not ``int``)
        return value if value >= 0 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _progress(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _files(detail: Any, where: str) -> tuple[FileImport, ...]:
    if detail is None:
        return ()
    if type(detail) is not dict and not isinstance(detail, Mapping):
        raise ResponseError(f"{where}: job_detail is a {type(detail).__name__}, not an object")
    files: list[FileImport] = []
    for key, kind in _DETAIL_KEYS:
        items = detail.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ResponseError(f"{where}: job_detail.{key} is a {type(items).__name__}, not a list")
        for i, item in enumerate(items):
            if item is None:
                continue
            # ``type() is dict`` first: JSON gives dicts, and the ABC check is slow (it runs per file).
            if type(item) is not dict and not isinstance(item, Mapping):
                raise ResponseError(f"{where}: job_detail.{key}[{i}] is a {type(item).__name__}, not an object")
            get = item.get
            try:
                files.append(
                    FileImport(
                        kind,
                        clip(_text(get("path")), TEXT_LIMITS["path"]),
                        clip(_text(get("status")), TEXT_LIMITS["status"]),
                        clip(_text(get("cause")), TEXT_LIMITS["cause"]),
                        clip(_text(get("log")), TEXT_LIMITS["log"]),
                        _count(get("total_lines")),
                        _count(get("failed_lines")),
                        _count(get("successful_lines")),
                    )
                )
            except TypeError as exc:
                raise ResponseError(f"{where}: job_detail.{key}[{i}]: {exc}") from None
    return tuple(files)


def parse_job(obj: Mapping[str, Any], naive_offset: timedelta = _NO_OFFSET) -> Job:
    """One ``job_list`` item (or a single-job status answer) as a :class:`Job`; times without a
    zone are read as ``naive_offset`` east of UTC."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise ResponseError(f"a job is a {type(obj).__name__}, not an object")
    raw_id = obj.get("job_id")
    if raw_id is None or isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == "":
        raise ResponseError(f"a job has no usable job_id (got {raw_id!r})")
    job_id = clip(clean_line(str(raw_id)), TEXT_LIMITS["job_id"]) or ""
    where = f"job {job_id}"
    status = obj.get("status")
    if not isinstance(status, str) or not status:
        raise ResponseError(f"{where}: status is {status!r}, not a non-empty string")
    status = clip(clean_line(status), TEXT_LIMITS["status"]) or status
    name = "begin_time"
    try:
        begin_time = parse_time(obj.get(name), naive_offset)
        name = "end_time"
        end_time = parse_time(obj.get(name), naive_offset)
    except ValueError as exc:
        raise ResponseError(f"{where}: {name}: {exc}") from None
    try:
        job_type = clip(_text(obj.get("job_type")), TEXT_LIMITS["job_type"])
        job_name = clip(_text(obj.get("job_name")), TEXT_LIMITS["job_name"])
        graph = clip(_text(obj.get("related_graph")), TEXT_LIMITS["related_graph"])
        fail_reason = clip(_text(obj.get("fail_reason")), TEXT_LIMITS["fail_reason"])
    except TypeError as exc:
        raise ResponseError(f"{where}: {exc}") from None
    return Job(
        job_id=job_id,
        status=status,
        job_type=job_type,
        job_name=job_name,
        graph=graph,
        begin_time=begin_time,
        end_time=end_time,
        fail_reason=fail_reason,
        progress=_progress(obj.get("job_progress")),
        files=_files(obj.get("job_detail"), where),
    )


def parse_job_list(body: Any, naive_offset: timedelta = _NO_OFFSET) -> tuple[int | None, list[Job]]:
    """A ``GET /v2/{project_id}/graphs/jobs`` answer as ``(job_count, jobs)`` (naive times read as
    ``naive_offset`` east of UTC).

    ``job_count`` is ``None`` when absent or null. A body with neither ``job_list`` nor
    ``job_count`` is not a job list (an error body answered with 200, say) and raises.
    """
    if not isinstance(body, Mapping):
        raise ResponseError(f"the job list answer is a {type(body).__name__}, not a JSON object")
    if "job_list" not in body and "job_count" not in body:
        keys = ", ".join(sorted(clean_line(str(k)) for k in body)[:8]) or "none"
        raise ResponseError(f"the job list answer has neither job_list nor job_count (keys: {keys})")
    raw_count = body.get("job_count")
    count: int | None
    if raw_count is None:
        count = None
    elif isinstance(raw_count, int) and not isinstance(raw_count, bool):
        count = raw_count
    elif isinstance(raw_count, str) and raw_count.strip().isdigit():
        count = int(raw_count)
    else:
        raise ResponseError(f"job_count is {raw_count!r}, not an integer")
    if count is not None and count < 0:
        raise ResponseError(f"job_count is negative ({count})")
    items = body.get("job_list")
    if items is None:
        return count, []
    if not isinstance(items, list):
        raise ResponseError(f"job_list is a {type(items).__name__}, not a list")
    jobs: list[Job] = []
    for i, item in enumerate(items):
        if item is None:
            continue
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ResponseError(f"job_list[{i}] is a {type(item).__name__}, not an object")
        jobs.append(parse_job(item, naive_offset))
    return count, jobs


def parse_error_body(body: Any) -> tuple[str | None, str | None]:
    """``(error_code, error_msg)`` from a GES or API-gateway error body, or ``(None, None)``.

    Accepts v2 ``error_code``/``error_msg``, v1 ``errorCode``/``errorMessage``, and IAM's
    ``{"error": {"code": …, "message": …}}``. Anything else (HTML from a proxy, null) → Nones.
    """
    if not isinstance(body, Mapping):
        return None, None
    for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMessage")):
        if body.get(code_key) is not None or body.get(msg_key) is not None:
            return _plain(body.get(code_key)), _plain(body.get(msg_key))
    nested = body.get("error")
    if isinstance(nested, Mapping):
        return _plain(nested.get("code")), _plain(nested.get("message"))
    return None, None


def _plain(value: Any) -> str | None:
    if value is None:
        return None
    # Error messages are logged and shown in /healthz and status: one clean, bounded line each.
    text = clean_line(str(value)).strip()
    return clip(text, TEXT_LIMITS["fail_reason"]) or None


def _format_time(value: datetime | None, time_format: TimeFormat) -> str | int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if time_format == "ms":
        return round(value.timestamp() * 1000)
    text = value.strftime(f"%Y-%m-%d{time_format}%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text


def job_to_wire(job: Job, time_format: TimeFormat = "T") -> dict[str, Any]:
    """The v2 ``job_list`` item for ``job`` — the inverse of :func:`parse_job`.

    ``parse_job(job_to_wire(job)) == job`` for every job whose times are UTC (to the millisecond
    with ``"ms"``) and whose files are grouped schema, vertex, edge (the order ``parse_job``
    reads them). ``job_detail`` is present only for jobs with files; a kind without files is
    null, as in the reference page's example.
    """
    if time_format not in ("T", " ", "ms"):
        raise ValueError(f"time_format {time_format!r} is not one of 'T', ' ', 'ms'")
    wire: dict[str, Any] = {
        "job_id": job.job_id,
        "status": job.status,
        "job_type": job.job_type,
        "job_name": job.job_name,
        "related_graph": job.graph,
        "begin_time": _format_time(job.begin_time, time_format),
        "end_time": _format_time(job.end_time, time_format),
        "fail_reason": job.fail_reason,
        "job_progress": job.progress,
    }
    if job.files:
        detail: dict[str, list[dict[str, Any]] | None] = {}
        for key, kind in _DETAIL_KEYS:
            items = [_file_to_wire(f) for f in job.files if f.kind == kind]
            detail[key] = items or None
        wire["job_detail"] = detail
    return wire


def _file_to_wire(f: FileImport) -> dict[str, Any]:
    item: dict[str, Any] = {"path": f.path, "log": f.log, "cause": f.cause, "status": f.status}
    for name in ("total_lines", "failed_lines", "successful_lines"):
        value = getattr(f, name)
        item[name] = -1 if value is None else value
    return item
