"""JobCenterClient over real loopback HTTP: paging, dedup, concurrency, retries, error mapping.

The job center here is a small Starlette app of this module (``FakeGes``): it can cap ``limit``,
omit ``job_count``, shift its list between requests, and answer a script of failures first —
behaviours the emulator is not built to produce on cue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ges_bot.config import ProjectSettings
from ges_bot.domain import QueryStatus
from ges_bot.errors import ApiError, AuthError, QueryError, ResponseError, TransportError, UnusableAnswerError
from ges_bot.jobcenter.client import JobCenterClient, ListQuery
from tests.support.asgi import free_port, serve
from tests.support.emulator import run_emulator

PROJECT_ID = "0123456789abcdef0123456789abcdef"
TOKEN = "token-value-that-must-never-be-logged"


def wire_job(i: int, status: str = "success") -> dict[str, Any]:
    return {
        "job_id": f"job-{i:05d}",
        "status": status,
        "job_type": "GraphManagement",
        "job_name": "ImportGraph",
        "related_graph": f"g{i % 7}",
        "begin_time": "2026-01-01T00:00:00",
        "end_time": "2026-01-01 00:01:00",
        "job_progress": 0,
    }


class Truncated(Response):
    """Promises 1000 bytes, sends 30, and hangs up."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"job_count": 5, "job_list": [', "more_body": True})


def ges_error(status: int, code: str, msg: str, request_id: str = "req-1") -> Callable[[], Response]:
    return lambda: JSONResponse({"error_code": code, "error_msg": msg}, status, headers={"X-Request-Id": request_id})


class FakeGes:
    def __init__(
        self,
        n: int = 0,
        *,
        cap: int | None = None,
        omit_count: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.jobs = [wire_job(i) for i in range(n)]
        self.cap = cap
        self.omit_count = omit_count
        #: A job_count to claim instead of the real one (a hostile or broken GES).
        self.claimed_count: int | None = None
        self.delay = delay
        #: Answers given (in order) before the normal ones: factories of Starlette responses.
        self.script: list[Callable[[], Response]] = []
        self.requests: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        #: Called after each list request is answered with the request's number (1-based).
        self.after: Callable[[int], None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v2/{project_id}/graphs/jobs", self.list_jobs),
                Route("/v2/{project_id}/graphs/{graph_id}/jobs/{job_id}/status", self.status),
            ]
        )

    async def list_jobs(self, request: Request) -> Response:
        self.requests.append(dict(request.query_params))
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.script:
                return self.script.pop(0)()
            assert request.path_params["project_id"] == PROJECT_ID
            offset = int(request.query_params.get("offset", "0"))
            limit = int(request.query_params.get("limit", "10"))
            if self.cap:
                limit = min(limit, self.cap)
            body: dict[str, Any] = {"job_list": self.jobs[offset : offset + limit]}
            if not self.omit_count:
                body["job_count"] = len(self.jobs) if self.claimed_count is None else self.claimed_count
            return JSONResponse(body, headers={"X-Request-Id": f"req-{len(self.requests)}"})
        finally:
            self.in_flight -= 1
            if self.after:
                self.after(len(self.requests))

    async def status(self, request: Request) -> Response:
        if self.script:
            return self.script.pop(0)()
        job_id = request.path_params["job_id"]
        for job in self.jobs:
            if job["job_id"] == job_id:
                return JSONResponse({k: v for k, v in job.items() if k != "job_id"})
        return ges_error(400, "GES.7007", "The job does not exist.")()


def project(url: str, **extra: Any) -> ProjectSettings:
    return ProjectSettings(
        alias="test",
        project_id=PROJECT_ID,
        endpoint=url,
        region=None,
        auth="token",
        token=SecretStr(TOKEN),
        **extra,
    )


@pytest.fixture
async def ges() -> AsyncIterator[tuple[FakeGes, str]]:
    fake = FakeGes()
    async with serve(fake.app) as url:
        yield fake, url


def client_for(url: str, **kwargs: Any) -> JobCenterClient:
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("backoff_cap", 0.01)
    return JobCenterClient(project(url), **kwargs)


def ids(n: int) -> list[str]:
    return [f"job-{i:05d}" for i in range(n)]


# --- paging ------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_every_page_is_fetched(ges: tuple[FakeGes, str], concurrency: int) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(1050)]
    async with client_for(url, page_size=100, concurrency=concurrency) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 11
    assert result.job_count == 1050
    assert sorted(j.job_id for j in result.jobs) == ids(1050)
    assert sorted(int(r["offset"]) for r in fake.requests) == list(range(0, 1100, 100))
    assert {r["limit"] for r in fake.requests} == {"100"}
    assert fake.headers[0]["x-auth-token"] == TOKEN


async def test_concurrency_bounds_pages_in_flight(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(1000)]
    fake.delay = 0.05
    async with client_for(url, page_size=100, concurrency=4) as client:
        concurrent = await client.list_jobs()
    assert fake.max_in_flight == 4
    fake.max_in_flight = 0
    async with client_for(url, page_size=100, concurrency=1) as client:
        sequential = await client.list_jobs()
    assert fake.max_in_flight == 1
    assert {j.job_id for j in concurrent.jobs} == {j.job_id for j in sequential.jobs} == set(ids(1000))


async def test_short_list_is_one_request(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(7)]
    async with client_for(url, page_size=100) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 1
    assert len(result.jobs) == 7


async def test_empty_job_center(ges: tuple[FakeGes, str]) -> None:
    _, url = ges
    async with client_for(url) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 1
    assert (result.job_count, result.jobs) == (0, [])


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_list_growing_at_the_front_while_paging_is_deduplicated_and_complete(
    ges: tuple[FakeGes, str], concurrency: int
) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(200)]

    def grow(n: int) -> None:
        if n == 1:  # after page 1: three new jobs arrive, newest first, pushing the rest along
            fake.jobs[:0] = [wire_job(900 + i, "running") for i in range(3)]

    fake.after = grow
    async with client_for(url, page_size=100, concurrency=concurrency) as client:
        result = await client.list_jobs()
        # page 1, page 2 (shifted by 3), then past the end: the 3 pushed out, then an empty page
        assert client.requests_sent == 4
    got = [j.job_id for j in result.jobs]
    assert len(got) == len(set(got))
    assert sorted(got) == ids(200)
    assert result.job_count == 203


async def test_list_shrinking_while_paging_stops_cleanly(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(300)]

    def shrink(n: int) -> None:
        if n == 1:
            del fake.jobs[150:]

    fake.after = shrink
    async with client_for(url, page_size=100, concurrency=1) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 3
    assert sorted(j.job_id for j in result.jobs) == ids(150)
    assert result.job_count == 150


async def test_server_capping_limit_is_followed(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(95)]
    fake.cap = 30
    async with client_for(url, page_size=100) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 4
    assert sorted(j.job_id for j in result.jobs) == ids(95)
    assert fake.requests[0]["offset"] == "0"
    assert sorted(int(r["offset"]) for r in fake.requests[1:]) == [30, 60, 90]


async def test_without_job_count_pages_until_an_empty_one(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(250)]
    fake.omit_count = True
    async with client_for(url, page_size=100) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 4  # 100 + 100 + 50 + empty
    assert result.job_count is None
    assert sorted(j.job_id for j in result.jobs) == ids(250)


async def test_server_ignoring_offset_does_not_loop_forever(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    page = {"job_count": 500, "job_list": [wire_job(i) for i in range(100)]}
    fake.script = [lambda: JSONResponse(page)] * 50
    async with client_for(url, page_size=100, concurrency=4) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 6  # 5 pages + one past the end that brought nothing new
    assert sorted(j.job_id for j in result.jobs) == ids(100)


async def test_iter_pages_reports_offsets(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(25)]
    async with client_for(url, page_size=10, concurrency=1) as client:
        pages = [p async for p in client.iter_pages(ListQuery())]
    assert [(p.offset, p.limit, len(p.jobs), p.job_count) for p in pages] == [
        (0, 10, 10, 25),
        (10, 10, 10, 25),
        (20, 10, 5, 25),
    ]


async def test_closing_iter_pages_early_cancels_pages_in_flight(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(2000)]
    fake.delay = 0.05
    async with client_for(url, page_size=100, concurrency=2) as client:
        pages = client.iter_pages()
        first = await anext(pages)
        second = await anext(pages)
        await pages.aclose()
        sent = client.requests_sent
        await asyncio.sleep(0.3)  # long enough for several more pages, were any still running
        # Nothing more is sent once closed; before that, page 1 plus at most a couple of
        # concurrency windows (how many depends on scheduling) — far from the 20 pages there are.
        assert client.requests_sent == sent
        assert sent <= 1 + 2 * 2
    assert (first.offset, second.offset % 100) == (0, 0)


async def test_query_parameters_on_the_wire(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    query = ListQuery.build(status="pending", graph_name="my graph", start="2026-11-01", end=date(2026, 11, 3))
    async with client_for(url) as client:
        await client.list_page(query, 20, 5)
    assert fake.requests == [
        {
            "status": "waiting",
            "graph_name": "my graph",
            "start_time": "2026-11-01",
            "end_time": "2026-11-03",
            "offset": "20",
            "limit": "5",
        }
    ]


def test_list_query_validation() -> None:
    assert ListQuery(status="partially_failed").status == QueryStatus.PARTIALLY_FAILED
    assert ListQuery.build(status="FAILED").status == "failed"
    assert ListQuery(status=QueryStatus.RUNNING).params() == [("status", "running")]
    assert ListQuery.build(graph="g1") == ListQuery(graph_name="g1")
    assert ListQuery.build(graph_name="", start="").params() == []
    with pytest.raises(QueryError, match=r"'done'.*running, waiting \(or pending\), success, partiallyFailed, failed"):
        ListQuery.build(status="done")
    with pytest.raises(QueryError, match=r"start date '2026-13-01' is not a date in the form yyyy-MM-dd"):
        ListQuery.build(start="2026-13-01")
    with pytest.raises(QueryError, match=r"end date '11/03/2026'"):
        ListQuery.build(end="11/03/2026")
    with pytest.raises(QueryError, match="start date 2026-11-05 is after end date 2026-11-01"):
        ListQuery.build(start="2026-11-05", end="2026-11-01")


async def test_job_status(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(3)]
    async with client_for(url) as client:
        job = await client.job_status("graph-id-1", "job-00002")
        assert job.job_id == "job-00002"
        assert job.graph == "g2"
        with pytest.raises(ApiError, match=r"GES\.7007") as err:
            await client.job_status("graph-id-1", "nope")
        assert client.requests_sent == 2
    assert err.value.http_status == 400


# --- retries and errors ------------------------------------------------------------------


async def test_503_then_success_is_retried_and_logged(
    ges: tuple[FakeGes, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(3)]
    fake.script = [ges_error(503, "GES.7005", "engine unavailable")] * 3
    caplog.set_level(logging.DEBUG)
    async with client_for(url, max_retries=4) as client:
        result = await client.list_jobs()
        assert client.requests_sent == 4
    assert len(result.jobs) == 3
    retries = [r for r in caplog.records if r.name == "ges_bot.jobcenter.client" and r.levelno == logging.WARNING]
    assert len(retries) == 3
    assert "HTTP 503 GES.7005: engine unavailable" in retries[0].getMessage()
    assert "attempt 1 of 5" in retries[0].getMessage()
    assert TOKEN not in caplog.text


async def test_retries_are_capped_and_the_last_error_is_raised(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [ges_error(503, "GES.7005", f"down {i}", f"r{i}") for i in range(10)]
    async with client_for(url, max_retries=2) as client:
        with pytest.raises(ApiError) as err:
            await client.list_jobs()
        assert client.requests_sent == 3
    assert (err.value.http_status, err.value.error_code, err.value.request_id) == (503, "GES.7005", "r2")
    assert str(err.value) == "GES answered HTTP 503 GES.7005: down 2 (request id r2)"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 504])
async def test_retryable_statuses(ges: tuple[FakeGes, str], status: int) -> None:
    fake, url = ges
    fake.jobs = [wire_job(0)]
    fake.script = [lambda: Response("busy", status)]
    async with client_for(url) as client:
        assert len((await client.list_jobs()).jobs) == 1
        assert client.requests_sent == 2


async def test_400_with_ges_body_is_not_retried(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [ges_error(400, "GES.0001", "Incorrect parameter: limit", "abc-123")] * 5
    async with client_for(url) as client:
        with pytest.raises(ApiError) as err:
            await client.list_jobs()
        assert client.requests_sent == 1
    assert not isinstance(err.value, AuthError)
    assert (err.value.http_status, err.value.error_code, err.value.error_msg, err.value.request_id) == (
        400,
        "GES.0001",
        "Incorrect parameter: limit",
        "abc-123",
    )


async def test_v1_error_body_is_understood(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [lambda: JSONResponse({"errorCode": "GES.0016", "errorMessage": "project mismatch"}, 400)]
    async with client_for(url) as client:
        with pytest.raises(ApiError, match=r"GES\.0016: project mismatch"):
            await client.list_jobs()


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_auth_errors_and_not_retried(ges: tuple[FakeGes, str], status: int) -> None:
    fake, url = ges
    fake.script = [ges_error(status, "APIG.0301", "Incorrect IAM authentication information: decrypt token fail")] * 3
    async with client_for(url) as client:
        with pytest.raises(AuthError, match=r"APIG\.0301") as err:
            await client.list_jobs()
        assert client.requests_sent == 1
    assert err.value.http_status == status
    assert TOKEN not in str(err.value)


async def test_404_without_body_is_not_retried(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [lambda: Response("<html>nope</html>", 404, media_type="text/html")] * 3
    async with client_for(url) as client:
        with pytest.raises(ApiError, match="HTTP 404: Not Found") as err:
            await client.list_jobs()
        assert client.requests_sent == 1
    assert err.value.error_code is None


async def test_non_json_body_is_retried_then_reported_clearly(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [lambda: Response("<html>maintenance</html>", 200, media_type="text/html")] * 10
    async with client_for(url, max_retries=1) as client:
        with pytest.raises(ResponseError) as err:
            await client.list_jobs()
        assert client.requests_sent == 2
    message = str(err.value)
    assert "HTTP 200 but a body that is not JSON" in message
    assert "text/html" in message
    assert "<html>maintenance" in message
    assert err.value.http_status == 200


async def test_non_json_once_then_good(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(0)]
    fake.script = [lambda: Response("", 200)]
    async with client_for(url) as client:
        assert len((await client.list_jobs()).jobs) == 1
        assert client.requests_sent == 2


async def test_malformed_json_is_reported_as_cut_short(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [lambda: Response('{"job_count": 5, "job_list": [{"job_id": "a"', 200)] * 3
    async with client_for(url, max_retries=2) as client:
        with pytest.raises(ResponseError, match="JSON that is cut short or malformed"):
            await client.list_jobs()
        assert client.requests_sent == 3


async def test_connection_dropped_mid_body_is_a_clear_response_error(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [Truncated] * 3
    async with client_for(url, max_retries=1) as client:
        with pytest.raises(ResponseError, match=r"\(HTTP 200\) was cut short") as err:
            await client.list_jobs()
        assert client.requests_sent == 2
    assert err.value.http_status == 200


async def test_wrong_shape_is_not_retried(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.script = [lambda: JSONResponse({"error_code": "GES.9999", "error_msg": "failed"})] * 3
    async with client_for(url) as client:
        with pytest.raises(ResponseError, match=r"job list \(offset 0\) could not be read: .*neither job_list"):
            await client.list_jobs()
        assert client.requests_sent == 1


async def test_timeouts_are_retried_then_reported(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.delay = 0.5
    async with client_for(url, timeout=0.1, max_retries=1) as client:
        with pytest.raises(TransportError, match=r"did not answer GET /v2/.*/graphs/jobs within 0.1s"):
            await client.list_jobs()
        assert client.requests_sent == 2


async def test_a_timeout_then_an_answer() -> None:
    fake = FakeGes(1)

    async def slow_first(request: Request) -> Response:
        if len(fake.requests) == 0:
            fake.requests.append({})
            await asyncio.sleep(1.0)
        return await fake.list_jobs(request)

    app = Starlette(routes=[Route("/v2/{project_id}/graphs/jobs", slow_first)])
    async with serve(app) as slow_url, client_for(slow_url, timeout=0.3) as client:
        assert len((await client.list_jobs()).jobs) == 1
        assert client.requests_sent == 2


async def test_connection_refused_is_a_transport_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with client_for(url, max_retries=1) as client:
        with pytest.raises(TransportError, match=f"could not reach GES at {url}"):
            await client.list_jobs()
        assert client.requests_sent == 2


async def test_backoff_is_capped_and_jittered(ges: tuple[FakeGes, str], caplog: pytest.LogCaptureFixture) -> None:
    fake, url = ges
    fake.script = [ges_error(503, "GES.7005", "down")] * 6
    caplog.set_level(logging.WARNING)
    async with client_for(url, max_retries=5, backoff_base=0.01, backoff_cap=0.02) as client:
        with pytest.raises(ApiError):
            await client.list_jobs()
    delays = [float(r.getMessage().rsplit("retrying in ", 1)[1].rstrip("s")) for r in caplog.records]
    assert len(delays) == 5
    assert all(0 <= d <= 0.02 for d in delays)


async def test_endpoint_with_a_path_prefix() -> None:
    fake = FakeGes(3)
    outer = Starlette()
    outer.mount("/ges", fake.app)
    async with serve(outer) as url, client_for(url + "/ges") as client:
        assert len((await client.list_jobs()).jobs) == 3


async def test_clients_of_several_projects_are_independent(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(5)]
    other = FakeGes(2)
    async with serve(other.app) as other_url, client_for(url) as a, client_for(other_url) as b:
        ra, rb = await asyncio.gather(a.list_jobs(), b.list_jobs())
        assert (a.requests_sent, b.requests_sent) == (1, 1)
    assert (len(ra.jobs), len(rb.jobs)) == (5, 2)


def test_constructor_rejects_nonsense() -> None:
    for kwargs in ({"page_size": 0}, {"concurrency": 0}, {"max_retries": -1}, {"timeout": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            JobCenterClient(project("http://127.0.0.1:1"), **kwargs)  # type: ignore[arg-type]


async def test_list_page_rejects_bad_offset_and_limit(ges: tuple[FakeGes, str]) -> None:
    _, url = ges
    async with client_for(url) as client:
        with pytest.raises(QueryError, match="offset -1"):
            await client.list_page(ListQuery(), -1, 10)
        with pytest.raises(QueryError, match="limit 0"):
            await client.list_page(ListQuery(), 0, 0)
        assert client.requests_sent == 0


# --- against the GES emulator --------------------------------------------------------------


async def test_emulator_every_job_with_the_emulator_defaults() -> None:
    async with run_emulator() as emu:
        added = await emu.add_jobs(
            [{"status": "success", "job_name": "ImportGraph", "related_graph": f"g{i % 5}"} for i in range(1050)]
        )
        async with JobCenterClient(emu.project_settings("aksk"), page_size=100, concurrency=4) as client:
            result = await client.list_jobs()
            assert client.requests_sent == 11
        assert await emu.list_calls() == 11
    assert result.job_count == 1050
    assert sorted(j.job_id for j in result.jobs) == sorted(added)


async def test_emulator_faults_are_survived() -> None:
    async with run_emulator() as emu:
        await emu.add_jobs([{"status": "running", "related_graph": "g"} for _ in range(250)])
        await emu.fault(status=503, count=2)
        await emu.fault(malformed=True)
        await emu.fault(truncated=True)
        async with JobCenterClient(
            emu.project_settings("token"), page_size=100, backoff_base=0.001, backoff_cap=0.01
        ) as client:
            result = await client.list_jobs()
            assert client.requests_sent == 3 + 4  # three pages, four failed attempts
    assert len({j.job_id for j in result.jobs}) == 250


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_emulator_list_shifting_while_paging(order: str) -> None:
    async with run_emulator(order=order) as emu:
        added = await emu.add_jobs([{"status": "success", "related_graph": "g"} for _ in range(300)])
        await emu.fault(shift=True)  # a new job is inserted at the head after page 1
        async with JobCenterClient(emu.project_settings(), page_size=100, concurrency=1) as client:
            result = await client.list_jobs()
    got = [j.job_id for j in result.jobs]
    assert len(got) == len(set(got))
    assert set(added) <= set(got)
    assert result.job_count == 301


async def test_emulator_rejected_limit_is_a_400_not_retried() -> None:
    async with run_emulator(max_limit=50) as emu, JobCenterClient(emu.project_settings(), page_size=100) as client:
        with pytest.raises(ApiError, match=r"HTTP 400 GES\.0001") as err:
            await client.list_jobs()
        assert client.requests_sent == 1
    assert err.value.request_id


# --- bounded reads ----------------------------------------------------------------------------


class Endless:
    """A 200 answer of ``total`` bytes in 1 MiB chunks (a JSON object whose one string never
    ends soon), counting what was actually sent before the reader hung up."""

    def __init__(self, total: int, *, announce: bool = False) -> None:
        self.total = total
        self.announce = announce
        self.sent = 0

    def __call__(self) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"job_count": 1, "job_list": [], "pad": "'
            chunk = b"x" * (1 << 20)
            while self.sent < self.total:
                self.sent += len(chunk)
                yield chunk
            yield b'"}'

        headers = {"Content-Length": str(self.total + 45)} if self.announce else {}
        return StreamingResponse(chunks(), media_type="application/json", headers=headers)


@pytest.mark.parametrize("announce", [False, True], ids=["chunked", "content-length"])
async def test_a_100_mb_answer_is_abandoned_at_the_cap_and_not_retried(
    ges: tuple[FakeGes, str], announce: bool
) -> None:
    fake, url = ges
    huge = Endless(100 << 20, announce=announce)
    fake.script = [huge, huge, huge]
    async with client_for(url, max_answer_bytes=4 << 20, max_retries=2) as client:
        with pytest.raises(UnusableAnswerError, match=r"too large: .*the cap is 4,194,304") as err:
            await client.list_jobs()
        assert client.requests_sent == 1
    assert err.value.http_status == 200
    # The reader hung up at the cap: the server never got to send the hundred megabytes.
    assert huge.sent < 40 << 20


async def test_an_answer_just_under_the_cap_is_read(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [{**wire_job(0, "failed"), "fail_reason": "r" * (1 << 20)}]
    async with client_for(url, max_answer_bytes=2 << 20) as client:
        result = await client.list_jobs()
    assert [j.job_id for j in result.jobs] == ["job-00000"]


async def test_deeply_nested_json_is_a_bad_answer_not_a_crash(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    depth = 200_000
    nested = b'{"job_count": 1, "job_list": [' + b"[" * depth + b"]" * depth + b"]}"
    fake.script = [lambda: Response(nested, media_type="application/json")] * 3
    async with client_for(url, max_retries=2) as client:
        with pytest.raises(UnusableAnswerError, match="nested too deep"):
            await client.list_jobs()
        assert client.requests_sent == 1


async def test_a_nested_error_body_is_still_an_api_error(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    nested = b"[" * 100_000 + b"]" * 100_000
    fake.script = [lambda: Response(nested, 400, media_type="application/json")]
    async with client_for(url) as client:
        with pytest.raises(ApiError) as err:
            await client.list_jobs()
    assert err.value.http_status == 400


async def test_a_job_count_of_a_million_does_not_page_a_million(ges: tuple[FakeGes, str]) -> None:
    fake, url = ges
    fake.jobs = [wire_job(i) for i in range(250)]
    fake.claimed_count = 1_000_000
    async with client_for(url, page_size=100, concurrency=4) as client:
        result = await client.list_jobs()
        # Pages 1-3 hold the jobs; page 4 is empty, and with it the paging stops (plus the pages
        # in flight when it landed, and one read past the end).
        assert client.requests_sent <= 10
    assert len(result.jobs) == 250
    assert fake.max_in_flight <= 4
