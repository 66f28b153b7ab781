"""The failed-import job both the Slack renderer's and the group bots' tests draw (their goldens
depend on these exact values): four files — a schema and an edge that imported, a vertex file and
an edge file with problems; and a job whose every field is one untrusted text."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ges_bot.domain import FileImport, FileKind, Job

__all__ = ["JOB_ID", "NOW", "T0", "hostile_job", "import_files", "import_job"]

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
NOW = T0 + timedelta(hours=3, minutes=10)
JOB_ID = "ff80808167bb90340167bc3c7b5b0166"


def import_files(vertex_status: str = "failed") -> tuple[FileImport, ...]:
    """The four files; ``vertex_status`` is the vertex file's (``failed`` or ``partFailed``)."""
    return (
        FileImport(FileKind.SCHEMA, "obs://bucket/movies/schema.xml", "success", None, None, -1, -1, -1),
        FileImport(
            FileKind.VERTEX,
            "obs://bucket/movies/person.csv",
            vertex_status,
            "Line 17: column 'age' is not an integer: 'forty'",
            "obs://bucket/logs/person.log",
            5000,
            120,
            4880,
        ),
        FileImport(FileKind.EDGE, "obs://bucket/movies/acted_in.csv", "success", None, None, 12000, 0, 12000),
        FileImport(
            FileKind.EDGE,
            "obs://bucket/movies/directed.csv",
            "failed",
            "vertex 'm-42' does not exist",
            "obs://bucket/logs/directed.log",
            800,
            800,
            0,
        ),
    )


def import_job(status: str = "failed", files: tuple[FileImport, ...] | None = None, **changes: Any) -> Job:
    """The import job (``status`` as GES says it), with ``changes`` applied."""
    job = Job(
        job_id=JOB_ID,
        status=status,
        job_type="GraphManagement",
        job_name="ImportGraph",
        graph="movies",
        begin_time=T0,
        end_time=T0 + timedelta(hours=1, minutes=4, seconds=7),
        fail_reason="2 of 4 files failed to import",
        files=import_files() if files is None else files,
    )
    return replace(job, **changes)


def hostile_job(text: str, *, schema: bool = False, **changes: Any) -> Job:
    """A job whose every field — id, status, names, graph, reason, files — is ``text`` (a vertex
    file that failed, an edge file in status ``text``; with ``schema``, a schema that imported),
    with ``changes`` applied."""
    files = (
        FileImport(FileKind.VERTEX, text, "failed", text, text, 10, 5, 5),
        FileImport(FileKind.EDGE, text, text, text, text),
        *((FileImport(FileKind.SCHEMA, text, "success"),) if schema else ()),
    )
    job = Job(
        job_id=text,
        status=text,
        job_type=text,
        job_name=text,
        graph=text,
        begin_time=T0,
        end_time=T0 + timedelta(minutes=1),
        fail_reason=text,
        files=files,
    )
    return replace(job, **changes)
