"""GES job-center JSON ↔ domain: the reference page's example, every documented quirk, round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ges_bot.domain import FileImport, FileKind, Job
from ges_bot.errors import ResponseError
from ges_bot.jobcenter.wire import TEXT_LIMITS, job_to_wire, parse_error_body, parse_job, parse_job_list, parse_time

# Verbatim from job-center-api.txt ("Example Response", status code 200).
API_PAGE_EXAMPLE = """
{
  "job_count" : 2,
  "job_list" : [ {
    "job_id" : "ff80808167bb90340167bc3c7b5b026a",
    "status" : "success",
    "job_type" : "GraphManagement",
    "job_name" : "ImportGraph",
    "related_graph" : "test1217",
    "begin_time" : "2018-12-17T12:55:40",
    "end_time" : "2018-12-17T12:56:32",
    "job_detail" : {
      "vertexset_path" : null,
      "edgeset_path" : [ {
        "path" : "hkmovie/edge.csv",
        "log" : null,
        "cause" : null,
        "status" : "success"
      } ],
      "schema_path" : [ {
        "path" : "hkmovie/schema.xml",
        "log" : null,
        "cause" : null,
        "status" : "success"
      } ]
    },
    "job_progress" : 0
  }, {
    "job_id" : "ff80808167bb90340167bc5d0b1d0358",
    "status" : "success",
    "job_type" : "GraphManagement",
    "job_name" : "DeleteGraph",
    "related_graph" : "test1218",
    "begin_time" : "2018-12-17T13:31:14",
    "end_time" : "2018-12-17T13:34:48",
    "job_progress" : 0
  } ]
}
"""


def test_api_page_example_parses_field_for_field() -> None:
    count, jobs = parse_job_list(json.loads(API_PAGE_EXAMPLE))
    assert count == 2
    assert jobs == [
        Job(
            job_id="ff80808167bb90340167bc3c7b5b026a",
            status="success",
            job_type="GraphManagement",
            job_name="ImportGraph",
            graph="test1217",
            begin_time=datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC),
            end_time=datetime(2018, 12, 17, 12, 56, 32, tzinfo=UTC),
            fail_reason=None,
            progress=0.0,
            files=(
                FileImport(kind=FileKind.SCHEMA, path="hkmovie/schema.xml", status="success"),
                FileImport(kind=FileKind.EDGE, path="hkmovie/edge.csv", status="success"),
            ),
        ),
        Job(
            job_id="ff80808167bb90340167bc5d0b1d0358",
            status="success",
            job_type="GraphManagement",
            job_name="DeleteGraph",
            graph="test1218",
            begin_time=datetime(2018, 12, 17, 13, 31, 14, tzinfo=UTC),
            end_time=datetime(2018, 12, 17, 13, 34, 48, tzinfo=UTC),
            progress=0.0,
        ),
    ]
    assert all(j.begin_time is not None and j.begin_time.tzinfo is UTC for j in jobs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2018-12-17T12:55:40", datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC)),
        ("2018-12-17 12:55:40", datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC)),
        ("2018-12-17T12:55:40Z", datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC)),
        ("2020-01-04T09:05:22.701000Z", datetime(2020, 1, 4, 9, 5, 22, 701000, tzinfo=UTC)),
        ("2018-12-17 12:55:40.5", datetime(2018, 12, 17, 12, 55, 40, 500000, tzinfo=UTC)),
        ("2018-12-17T12:55:40.123456789Z", datetime(2018, 12, 17, 12, 55, 40, 123456, tzinfo=UTC)),
        ("2018-12-17T20:55:40+08:00", datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC)),
        ("2018-12-17T20:55:40+0800", datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC)),
        (1545051340000, datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC)),
        ("1545051340000", datetime(2018, 12, 17, 12, 55, 40, tzinfo=UTC)),
        (1545051340123, datetime(2018, 12, 17, 12, 55, 40, 123000, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("  ", None),
    ],
)
def test_parse_time_accepts_every_documented_form(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2018-12-17", "2018-13-40T00:00:00", "17/12/2018 12:55:40", True, [1]])
def test_parse_time_rejects_junk(value: object) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_time(value)


def test_a_bad_time_inside_a_job_names_the_job_and_field() -> None:
    with pytest.raises(ResponseError, match=r"job j1: end_time: time 'soon'"):
        parse_job({"job_id": "j1", "status": "running", "end_time": "soon"})


def test_running_job_without_end_time_and_nulls_everywhere() -> None:
    job = parse_job(
        {
            "job_id": "j1",
            "status": "running",
            "job_type": None,
            "job_name": "ImportGraph",
            "related_graph": "g",
            "begin_time": "2024-01-01 00:00:00",
            "end_time": None,
            "fail_reason": None,
            "job_progress": None,
            "job_detail": {
                "schema_path": [],
                "vertexset_path": [None, {"path": None, "status": None, "log": None, "cause": None}],
                "edgeset_path": None,
            },
        }
    )
    assert job.end_time is None
    assert job.progress is None
    assert job.files == (FileImport(kind=FileKind.VERTEX),)


def test_null_job_detail_means_no_files() -> None:
    assert parse_job({"job_id": "j", "status": "success", "job_detail": None}).files == ()


def test_line_counts_minus_one_and_junk_become_none() -> None:
    job = parse_job(
        {
            "job_id": "j",
            "status": "partiallyFailed",
            "job_detail": {
                "edgeset_path": [
                    {"path": "e.csv", "status": "partFailed", "total_lines": -1, "failed_lines": -1},
                    {
                        "path": "f.csv",
                        "status": "partFailed",
                        "total_lines": 100,
                        "failed_lines": "3",
                        "successful_lines": 97.0,
                    },
                    {"path": "g.csv", "status": "failed", "total_lines": "lots", "failed_lines": 1.5},
                ]
            },
        }
    )
    assert [(f.total_lines, f.failed_lines, f.successful_lines) for f in job.files] == [
        (None, None, None),
        (100, 3, 97),
        (None, None, None),
    ]
    assert [f.path for f in job.problem_files] == ["e.csv", "f.csv", "g.csv"]


def test_unknown_status_and_extra_fields_are_kept_and_ignored() -> None:
    job = parse_job(
        {
            "job_id": 12345,
            "status": "complete",
            "brand_new_field": {"nested": [1, 2]},
            "job_detail": {"schema_path": [{"path": "s.xml", "status": "skipped", "extra": 1}], "other_path": [1]},
        }
    )
    assert job.job_id == "12345"
    assert job.status == "complete"
    assert not job.is_known_status
    assert job.files == (FileImport(kind=FileKind.SCHEMA, path="s.xml", status="skipped"),)


@pytest.mark.parametrize(
    ("status", "outcome", "unknown"),
    [
        ("Failed", "failed", False),
        ("FAILED", "failed", False),
        ("partFailed", "partiallyFailed", False),
        ("PartiallyFailed", "partiallyFailed", False),
        ("complete", "success", False),
        ("cancelled", None, True),
        ("Running", None, True),
        ("running", None, False),
    ],
)
def test_statuses_are_kept_raw_and_synonyms_read_as_outcomes(status: str, outcome: str | None, unknown: bool) -> None:
    job = parse_job({"job_id": "j", "status": status})
    assert job.status == status
    assert job.outcome == outcome
    assert job.is_terminal is (outcome is not None)
    assert job.is_unknown_status is unknown
    assert job_to_wire(job)["status"] == status


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "not a JSON object"),
        ("oops", "not a JSON object"),
        ({"error_code": "GES.9999", "error_msg": "failed"}, "neither job_list nor job_count"),
        ({"job_count": 1, "job_list": {"job_id": "x"}}, "job_list is a dict"),
        ({"job_count": "many", "job_list": []}, "job_count is 'many'"),
        ({"job_count": -3, "job_list": []}, "negative"),
        ({"job_count": 1, "job_list": ["x"]}, r"job_list\[0\] is a str"),
        ({"job_count": 1, "job_list": [{"status": "running"}]}, "no usable job_id"),
        ({"job_count": 1, "job_list": [{"job_id": "a", "status": None}]}, "job a: status is None"),
        ({"job_count": 1, "job_list": [{"job_id": "a", "status": "x", "job_detail": []}]}, "job_detail is a list"),
        (
            {"job_count": 1, "job_list": [{"job_id": "a", "status": "x", "job_detail": {"schema_path": "s"}}]},
            "schema_path is a str",
        ),
        ({"job_count": 1, "job_list": [{"job_id": "a", "status": "x", "related_graph": {"g": 1}}]}, "expected text"),
    ],
)
def test_wrong_shapes_raise_a_clear_response_error(body: object, message: str) -> None:
    with pytest.raises(ResponseError, match=message):
        parse_job_list(body)


def test_list_tolerates_null_items_missing_list_and_string_count() -> None:
    assert parse_job_list({"job_count": 0}) == (0, [])
    assert parse_job_list({"job_count": None, "job_list": None}) == (None, [])
    assert parse_job_list({"job_count": "1", "job_list": [None, {"job_id": "a", "status": "pending"}]}) == (
        1,
        [Job(job_id="a", status="pending")],
    )
    assert parse_job_list({"job_list": []}) == (None, [])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error_code": "GES.0001", "error_msg": "incorrect parameter"}, ("GES.0001", "incorrect parameter")),
        ({"errorCode": "GES.7007", "errorMessage": "job does not exist"}, ("GES.7007", "job does not exist")),
        ({"error_code": "APIG.0301", "error_msg": None}, ("APIG.0301", None)),
        (
            {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}},
            ("401", "The username or password is wrong."),
        ),
        ({"job_count": 0}, (None, None)),
        ("<html>Bad Gateway</html>", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_error_body(body: object, expected: tuple[str | None, str | None]) -> None:
    assert parse_error_body(body) == expected


def test_job_to_wire_matches_the_reference_shape() -> None:
    _, jobs = parse_job_list(json.loads(API_PAGE_EXAMPLE))
    wire = job_to_wire(jobs[0])
    assert wire == {
        "job_id": "ff80808167bb90340167bc3c7b5b026a",
        "status": "success",
        "job_type": "GraphManagement",
        "job_name": "ImportGraph",
        "related_graph": "test1217",
        "begin_time": "2018-12-17T12:55:40",
        "end_time": "2018-12-17T12:56:32",
        "fail_reason": None,
        "job_progress": 0.0,
        "job_detail": {
            "schema_path": [
                {
                    "path": "hkmovie/schema.xml",
                    "log": None,
                    "cause": None,
                    "status": "success",
                    "total_lines": -1,
                    "failed_lines": -1,
                    "successful_lines": -1,
                }
            ],
            "vertexset_path": None,
            "edgeset_path": [
                {
                    "path": "hkmovie/edge.csv",
                    "log": None,
                    "cause": None,
                    "status": "success",
                    "total_lines": -1,
                    "failed_lines": -1,
                    "successful_lines": -1,
                }
            ],
        },
    }
    assert "job_detail" not in job_to_wire(jobs[1])
    assert job_to_wire(jobs[1], " ")["begin_time"] == "2018-12-17 13:31:14"
    assert job_to_wire(jobs[1], "ms")["end_time"] == 1545053688000
    with pytest.raises(ValueError, match="time_format"):
        job_to_wire(jobs[1], "iso")  # type: ignore[arg-type]


_times = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC)
    ),
)
# Control characters are replaced on parsing (NUL: PostgreSQL text cannot hold it; the rest could
# drive a terminal or forge a log line; see the tests below), so text that must round-trip exactly
# has none (tab and newline, kept in free text, are checked there).
_plain = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029")
_text = st.text(alphabet=_plain, max_size=20)
_opt_text = st.one_of(st.none(), _text)
_counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10**12))
_files = st.lists(
    st.builds(
        FileImport,
        kind=st.sampled_from(list(FileKind)),
        path=_opt_text,
        status=st.one_of(st.none(), st.sampled_from(["success", "failed", "partFailed", "weird"])),
        cause=_opt_text,
        log=_opt_text,
        total_lines=_counts,
        failed_lines=_counts,
        successful_lines=_counts,
    ),
    max_size=5,
).map(lambda fs: tuple(sorted(fs, key=lambda f: [FileKind.SCHEMA, FileKind.VERTEX, FileKind.EDGE].index(f.kind))))
_jobs = st.builds(
    Job,
    job_id=st.text(alphabet=_plain, min_size=1, max_size=32),
    status=st.sampled_from(["pending", "running", "success", "partiallyFailed", "failed", "complete"]),
    job_type=_opt_text,
    job_name=_opt_text,
    graph=_opt_text,
    begin_time=_times,
    end_time=_times,
    fail_reason=_opt_text,
    progress=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    files=_files,
)


@given(_jobs, st.sampled_from(["T", " ", "ms"]))
def test_job_to_wire_round_trips_through_json(job: Job, time_format: str) -> None:
    wire = json.loads(json.dumps(job_to_wire(job, time_format)))  # type: ignore[arg-type]
    assert parse_job(wire) == job


def test_nul_characters_are_replaced_everywhere() -> None:
    """One job with a NUL in its name once made PostgreSQL refuse every tick of its project."""
    wire = {
        "job_id": "j\x001",
        "status": "failed",
        "job_name": "Import\x00Graph",
        "related_graph": "mo\x00vies",
        "fail_reason": "bad\x00line",
        "job_detail": {
            "vertexset_path": [{"path": "obs://a\x00b", "cause": "c\x00", "log": "l\x00", "status": "failed"}]
        },
    }
    job = parse_job(wire)
    assert (job.job_id, job.job_name, job.graph, job.fail_reason) == (
        "j\ufffd1",
        "Import\ufffdGraph",
        "mo\ufffdvies",
        "bad\ufffdline",
    )
    [file] = job.files
    assert (file.path, file.cause, file.log) == ("obs://a\ufffdb", "c\ufffd", "l\ufffd")


def test_epoch_and_text_agree() -> None:
    moment = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
    job = Job(job_id="j", status="running", begin_time=moment, end_time=moment + timedelta(minutes=1))
    assert {parse_job(job_to_wire(job, f)).begin_time for f in ("T", " ", "ms")} == {moment}


# --- bounded text ------------------------------------------------------------------------------


def test_a_10_mb_fail_reason_and_huge_causes_are_cut_once_with_a_marker() -> None:
    reason = "Import failed: " + "x" * (10 << 20)
    cause = "é" * 50_000
    job = parse_job(
        {
            "job_id": "j1",
            "status": "failed",
            "fail_reason": reason,
            "related_graph": "g" * 5000,
            "job_detail": {"edgeset_path": [{"path": "p" * 9000, "cause": cause, "log": "l" * 9000}]},
        }
    )
    assert job.fail_reason is not None
    assert job.fail_reason.startswith("Import failed: xxx")
    assert job.fail_reason.endswith(f" … [truncated, {len(reason):,} bytes]")
    assert len(job.fail_reason) < TEXT_LIMITS["fail_reason"] + 40
    [file] = job.files
    # Bytes, not characters: 'é' is two bytes in UTF-8.
    assert file.cause is not None and file.cause.endswith(" … [truncated, 100,000 bytes]")
    assert file.path is not None and len(file.path) < TEXT_LIMITS["path"] + 40
    assert file.log is not None and file.log.endswith("[truncated, 9,000 bytes]")
    assert job.graph is not None and job.graph.startswith("g" * 100) and "truncated" in job.graph


def test_text_within_its_limit_is_untouched() -> None:
    reason = "r" * TEXT_LIMITS["fail_reason"]
    job = parse_job({"job_id": "j1", "status": "failed", "fail_reason": reason})
    assert job.fail_reason == reason


def test_a_huge_error_message_is_cut_too() -> None:
    code, msg = parse_error_body({"error_code": "GES.9999", "error_msg": "m" * (1 << 20)})
    assert code == "GES.9999"
    assert msg is not None and msg.endswith(f"[truncated, {1 << 20:,} bytes]") and len(msg) < 5000
