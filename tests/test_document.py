"""The neutral alert document: what an alert says, with no Slack in it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from ges_bot.domain import Delivery, EventKind, FileImport, FileKind, Job, JobEvent, ProjectInfo
from ges_bot.notify.document import (
    Action,
    ActionKind,
    AlertDocument,
    Field,
    FieldKey,
    FileTally,
    ThreadKind,
    alert_document,
)

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
NOW = T0 + timedelta(hours=3)
PROJECT = ProjectInfo(alias="prod", project_id="0123456789abcdef0123456789abcdef", region="cn-north-4")
EVIL = "<!channel> *b* `x` @here"


def job(job_id: str, status: str = "failed", **kw: Any) -> Job:
    base = Job(
        job_id=job_id,
        status=status,
        job_type="GraphManagement",
        job_name="ImportGraph",
        graph="movies",
        begin_time=T0,
        end_time=T0 + timedelta(minutes=7),
        fail_reason=EVIL,
        files=(
            FileImport(FileKind.VERTEX, "obs://b/ok.csv", "success", None, None, 10, 0, 10),
            FileImport(FileKind.EDGE, "obs://b/part.csv", "partFailed", "cause 1", None, 10, 3, 7),
            FileImport(FileKind.VERTEX, "obs://b/bad.csv", "failed", EVIL, "obs://b/bad.log", 10, 10, 0),
        ),
    )
    return dataclasses.replace(base, **kw)


def ev(j: Job, kind: EventKind, **kw: Any) -> JobEvent:
    return JobEvent(project="prod", kind=kind, job=j, at=T0, **kw)


def doc(*events: JobEvent, graph: str = "movies") -> AlertDocument:
    return alert_document(Delivery(channel="C1", project="prod", graph=graph, events=events), PROJECT, NOW)


def test_headline_leads_with_the_most_severe_kind_and_counts_each() -> None:
    d = doc(
        ev(job("a", "success"), EventKind.SUCCEEDED), ev(job("b"), EventKind.FAILED), ev(job("c"), EventKind.FAILED)
    )
    assert d.headline.lead is EventKind.FAILED
    assert d.headline.counts == ((EventKind.FAILED, 2), (EventKind.SUCCEEDED, 1))
    assert [i.job.job_id for i in d.items] == ["a", "b", "c"]  # as routing gave them


def test_items_carry_values_not_markup() -> None:
    item = doc(ev(job("a"), EventKind.FAILED)).items[0]
    assert item.reason == EVIL  # as GES sent it: escaping is the renderer's
    assert [f.kind for f in item.problem_files] == [FileKind.VERTEX, FileKind.EDGE]  # failed, then partly
    assert item.problem_files[0].cause == EVIL
    assert item.tally == FileTally(failed=1, partly=1, ok=1, other=0)
    keys = [f.key for f in item.fields]
    assert keys == [
        FieldKey.GRAPH,
        FieldKey.JOB_ID,
        FieldKey.TYPE,
        FieldKey.PROJECT,
        FieldKey.STATUS,
        FieldKey.BEGAN,
        FieldKey.ENDED,
        FieldKey.DURATION,
    ]
    assert item.fields[3] == Field(FieldKey.PROJECT, text="prod", detail="cn-north-4")
    assert item.fields[-1].span == timedelta(minutes=7)


def test_a_running_job_is_measured_at_now() -> None:
    item = doc(ev(job("a", "running", end_time=None), EventKind.STUCK)).items[0]
    running = item.fields[-1]
    assert (running.key, running.at, running.span) == (FieldKey.RUNNING_FOR, NOW, NOW - T0)
    waiting = doc(ev(job("b", "pending", end_time=None), EventKind.STUCK)).items[0].fields[-1]
    assert waiting.key is FieldKey.WAITING_FOR


def test_actions_and_thread() -> None:
    d = doc(ev(job("a"), EventKind.FAILED))
    assert d.actions == (
        Action(ActionKind.DETAILS, job_id="a"),
        Action(ActionKind.MUTE, graph="movies", span=timedelta(hours=1)),
        Action(ActionKind.MUTE, graph="movies", span=timedelta(hours=24)),
        Action(ActionKind.ACKNOWLEDGE, job_id="a"),
    )
    assert d.thread.kind is ThreadKind.NEW
    no_graph = doc(ev(job("a", graph=""), EventKind.FAILED), graph="")
    assert [a.kind for a in no_graph.actions] == [ActionKind.DETAILS, ActionKind.ACKNOWLEDGE]

    recovered = doc(ev(job("ok", "success", fail_reason=None), EventKind.RECOVERED, recovers_job_id="a"))
    assert (recovered.thread.kind, recovered.thread.recovers) == (ThreadKind.RECOVERY, ("a",))
    assert recovered.items[0].fields[-1] == Field(FieldKey.RECOVERS, text="a")
    assert recovered.items[0].reason is None


def test_a_second_renderer_needs_only_the_document() -> None:
    """A plain-text renderer (as a Lark or Teams one would be) written against the document alone."""

    def plain(d: AlertDocument) -> str:
        lines = [f"{d.headline.lead} · {d.graph}"]
        for item in d.items:
            lines.append(" | ".join(f"{f.label}: {f.text or f.at or f.span}" for f in item.fields))
            lines.extend(f"  {f.kind.value} {f.path}: {f.cause}" for f in item.problem_files)
        lines.append(" ".join(a.kind.value for a in d.actions))
        return "\n".join(lines)

    text = plain(doc(ev(job("a"), EventKind.FAILED)))
    assert text.splitlines()[0] == "failed · movies"
    assert "Job id: a" in text
    assert f"vertex obs://b/bad.csv: {EVIL}" in text
    assert text.endswith("details mute mute acknowledge")
