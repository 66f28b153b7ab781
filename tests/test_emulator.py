"""The GES emulator over real HTTP: the job list and its rules, the gateway's token and AK/SK
checks, IAM tokens, one job's status, the control API, faults, clock, settings, scenarios and CLI."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ges_bot.emulator import EmulatorSettings, EmulatorState, create_app
from ges_bot.emulator.cli import add_parser, banner, settings_from_args
from ges_bot.emulator.clock import EmulatedClock
from ges_bot.emulator.scenarios import start_scenario
from ges_bot.emulator.settings import AkSk, IamUser, StaticToken
from tests.support.asgi import serve
from tests.support.emulator import LIST_ROUTE, EmulatorHandle, run_emulator, sign

HEX32 = re.compile(r"[0-9a-f]{32}")
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # Plain HTTP on loopback: verify=False only skips loading CA certificates (~0.1 s per client).
    async with httpx.AsyncClient(timeout=10, verify=False) as client:  # noqa: S501
        yield client


async def list_jobs(http: httpx.AsyncClient, emu: EmulatorHandle, **params: Any) -> httpx.Response:
    return await http.get(emu.list_url, params=params, headers={"X-Auth-Token": emu.token})


def ids(response: httpx.Response) -> list[str]:
    return [j["job_id"] for j in response.json()["job_list"]]


def iam_body(domain: str, user: str, password: str, scope: dict[str, Any] | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"domain": {"name": domain}, "name": user, "password": password}},
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


# --- the job list --------------------------------------------------------------------------------


async def test_list_answers_the_v2_wire_format(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    detail = {
        "schema_path": [
            {
                "path": "hkmovie/schema.xml",
                "log": None,
                "status": "success",
                "cause": None,
                "total_lines": -1,
                "failed_lines": -1,
                "successful_lines": -1,
            }
        ],
        "vertexset_path": None,
        "edgeset_path": [
            None,
            {
                "path": "obs://bucket/hkmovie/edge.csv",
                "log": "obs://bucket/logs/edge.log",
                "status": "partFailed",
                "cause": "Line 1882: vertex label 'Person' not in schema",
                "total_lines": 5000,
                "failed_lines": 3,
                "successful_lines": 4997,
            },
        ],
    }
    await emu.add_job(
        job_id="ff80808167bb90340167bc3c7b5b026a",
        status="partiallyFailed",
        job_name="ImportGraph",
        related_graph="test1217",
        begin_time="2018-12-17T12:55:40",
        end_time="2018-12-17 12:56:32",
        job_detail=detail,
    )
    end_ms = int(datetime(2018, 12, 17, 13, 34, 48, tzinfo=UTC).timestamp() * 1000)
    await emu.add_job(
        job_id="ff80808167bb90340167bc5d0b1d0358",
        status="failed",
        job_name="DeleteGraph",
        related_graph="test1218",
        begin_time="2018-12-17T21:31:14+08:00",
        end_time=end_ms,
        fail_reason="The graph is locked by a running import job.",
        job_detail={"schema_path": []},  # not an import: never listed
    )
    await emu.add_job(
        job_id="0" * 32,
        status="running",
        job_name="StartGraph",
        related_graph="test1219",
        begin_time="2018-12-17T14:00:00Z",
        shard="az-2",  # unknown fields are echoed
    )

    response = await list_jobs(http, emu, limit="100", offset="0")

    assert response.status_code == 200
    assert HEX32.fullmatch(response.headers["x-request-id"])
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "job_count": 3,
        "job_list": [
            {
                "job_id": "ff80808167bb90340167bc3c7b5b026a",
                "status": "partiallyFailed",
                "job_type": "GraphManagement",
                "job_name": "ImportGraph",
                "related_graph": "test1217",
                "begin_time": "2018-12-17T12:55:40",
                "end_time": "2018-12-17T12:56:32",
                "job_detail": detail,
                "job_progress": 0,
            },
            {
                "job_id": "ff80808167bb90340167bc5d0b1d0358",
                "status": "failed",
                "job_type": "GraphManagement",
                "job_name": "DeleteGraph",
                "related_graph": "test1218",
                "begin_time": "2018-12-17T13:31:14",
                "end_time": "2018-12-17T13:34:48",
                "fail_reason": "The graph is locked by a running import job.",
                "job_progress": 0,
            },
            {
                "job_id": "0" * 32,
                "status": "running",
                "job_type": "GraphManagement",
                "job_name": "StartGraph",
                "related_graph": "test1219",
                "begin_time": "2018-12-17T14:00:00",
                "end_time": None,
                "job_progress": 0,
                "shard": "az-2",
            },
        ],
    }


async def test_default_page_is_ten_and_offset_pages(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    job_ids = await emu.add_jobs(
        [{"status": "success", "begin_time": (start + timedelta(minutes=i)).isoformat()} for i in range(25)]
    )

    first = await list_jobs(http, emu)
    last = await list_jobs(http, emu, offset="20", limit="10")
    beyond = await list_jobs(http, emu, offset="30")

    assert first.json()["job_count"] == 25
    assert ids(first) == job_ids[:10]
    assert ids(last) == job_ids[20:]
    assert beyond.json() == {"job_count": 25, "job_list": []}


async def test_status_filter_uses_the_request_vocabulary(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    pending = await emu.add_job(status="pending")
    running = await emu.add_job(status="running")
    partial = await emu.add_job(status="partiallyFailed")
    await emu.add_job(status="success")

    assert ids(await list_jobs(http, emu, status="waiting")) == [pending["job_id"]]
    assert ids(await list_jobs(http, emu, status="running")) == [running["job_id"]]
    assert ids(await list_jobs(http, emu, status="partiallyFailed")) == [partial["job_id"]]
    refused = await list_jobs(http, emu, status="pending")
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "GES.0001"


async def test_graph_name_filter_is_exact(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    mine = await emu.add_job(related_graph="my graph")
    await emu.add_job(related_graph="my graph 2")
    await emu.add_job(related_graph="My Graph")

    response = await list_jobs(http, emu, graph_name="my graph")

    assert ids(response) == [mine["job_id"]]
    assert response.json()["job_count"] == 1


async def _dated_jobs(emu: EmulatorHandle) -> dict[str, str]:
    """Jobs around the 2024-03-10 / 2024-03-11 boundaries (UTC)."""
    specs = {
        "before": ("2024-03-09T23:59:59", "2024-03-10T00:10:00"),
        "first": ("2024-03-10T00:00:00", "2024-03-12T00:00:00"),
        "last": ("2024-03-11T23:59:59", None),
        "after": ("2024-03-12T00:00:00", "2024-03-12T01:00:00"),
        "late_cn": ("2024-03-11T17:30:00", "2024-03-11T18:00:00"),  # 01:30 on the 12th at +08:00
    }
    out = {}
    for name, (begin, end) in specs.items():
        status = "running" if end is None else "success"
        job = await emu.add_job(status=status, begin_time=begin, end_time=end, related_graph=name)
        out[job["job_id"]] = name
    return out


async def test_date_filters_select_begin_time_within_whole_days(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    names = await _dated_jobs(emu)

    both = await list_jobs(http, emu, start_time="2024-03-10", end_time="2024-03-11", limit="100")
    only_start = await list_jobs(http, emu, start_time="2024-03-12", limit="100")
    only_end = await list_jobs(http, emu, end_time="2024-03-09", limit="100")
    backwards = await list_jobs(http, emu, start_time="2024-03-11", end_time="2024-03-10")

    assert sorted(names[i] for i in ids(both)) == ["first", "last", "late_cn"]
    assert [names[i] for i in ids(only_start)] == ["after"]
    assert [names[i] for i in ids(only_end)] == ["before"]
    assert backwards.json() == {"job_count": 0, "job_list": []}


async def test_date_filters_on_end_time_exclude_jobs_without_one(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    names = await _dated_jobs(emu)
    await emu.configure(date_filter_field="end_time")

    response = await list_jobs(http, emu, start_time="2024-03-10", end_time="2024-03-11", limit="100")

    # "last" is running (end_time null): excluded once a date filter is given.
    assert sorted(names[i] for i in ids(response)) == ["before", "late_cn"]
    assert (await list_jobs(http, emu)).json()["job_count"] == 5


async def test_date_filters_read_dates_in_the_configured_zone(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    names = await _dated_jobs(emu)

    in_utc = await list_jobs(http, emu, start_time="2024-03-12", end_time="2024-03-12", limit="100")
    await emu.configure(date_filter_tz="+08:00")
    in_cn = await list_jobs(http, emu, start_time="2024-03-12", end_time="2024-03-12", limit="100")

    assert [names[i] for i in ids(in_utc)] == ["after"]
    # 2024-03-12 at +08:00 is [2024-03-11T16:00Z, 2024-03-12T16:00Z).
    assert sorted(names[i] for i in ids(in_cn)) == ["after", "last", "late_cn"]


BAD_PARAMETERS = [
    ("offset", "-1"),
    ("offset", "abc"),
    ("offset", "1.5"),
    ("offset", ""),
    ("limit", "0"),
    ("limit", "1001"),
    ("limit", "ten"),
    ("limit", "-5"),
    ("start_time", "2024-1-02"),
    ("start_time", "2024/01/02"),
    ("end_time", "2024-02-30"),
    ("end_time", "2024-01-02T00:00:00"),
    ("status", "Running"),
    ("status", "complete"),
]


async def test_bad_parameters_get_a_ges_400(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    for param, value in BAD_PARAMETERS:
        response = await list_jobs(http, emu, **{param: value})

        assert response.status_code == 400, (param, value)
        body = response.json()
        assert body["error_code"] == "GES.0001"
        assert param in body["error_msg"]
        assert HEX32.fullmatch(response.headers["x-request-id"])
    assert (await list_jobs(http, emu, offset="0", limit="1000", start_time="2024-02-29")).status_code == 200


async def test_max_limit_is_a_setting(http: httpx.AsyncClient) -> None:
    async with run_emulator(max_limit=50) as emu:
        assert (await list_jobs(http, emu, limit="50")).status_code == 200
        assert (await list_jobs(http, emu, limit="51")).status_code == 400
        await emu.configure(max_limit=500)
        assert (await list_jobs(http, emu, limit="500")).status_code == 200


async def test_list_order_is_a_setting(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    # Added out of time order, so insertion order is not begin_time order.
    offsets = [3, 0, 4, 1, 2, 7, 5, 6]
    job_ids = await emu.add_jobs([{"begin_time": (base + timedelta(hours=h)).isoformat()} for h in offsets])
    by_time = [job_ids[offsets.index(h)] for h in sorted(offsets)]

    asc = ids(await list_jobs(http, emu))
    await emu.configure(order="desc")
    desc = ids(await list_jobs(http, emu))
    await emu.configure(order="random")
    shuffled = ids(await list_jobs(http, emu))
    again = ids(await list_jobs(http, emu))
    paged = ids(await list_jobs(http, emu, limit="3")) + ids(await list_jobs(http, emu, offset="3", limit="5"))

    assert asc == by_time
    assert desc == by_time[::-1]
    assert sorted(shuffled) == sorted(job_ids)
    assert shuffled not in (asc, desc)
    assert again == shuffled == paged  # stable between requests, so pages stay consistent


async def test_time_format_is_a_setting(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await emu.add_job(begin_time="2024-06-01T08:09:10Z", status="running")
    seen = {}
    for fmt in ("T", "space", "epoch"):
        await emu.configure(time_format=fmt)
        job = (await list_jobs(http, emu)).json()["job_list"][0]
        seen[fmt] = (job["begin_time"], job["end_time"])

    assert seen == {
        "T": ("2024-06-01T08:09:10", None),
        "space": ("2024-06-01 08:09:10", None),
        "epoch": (1717229350000, None),
    }


async def test_retention_drops_old_finished_jobs(http: httpx.AsyncClient) -> None:
    async with run_emulator(retention_s=3600) as emu:
        now = await emu.now()
        old = await emu.add_job(status="success", begin_time=(now - timedelta(hours=3)).isoformat(), end_time=None)
        old_running = await emu.add_job(status="running", begin_time=(now - timedelta(hours=3)).isoformat())
        fresh = await emu.add_job(status="failed", begin_time=(now - timedelta(minutes=5)).isoformat())
        listed = ids(await list_jobs(http, emu))
        await emu.advance(3600)
        later = ids(await list_jobs(http, emu))

    assert old["job_id"] not in listed
    assert set(listed) == {old_running["job_id"], fresh["job_id"]}
    assert later == [old_running["job_id"]]


# --- the gateway: tokens and AK/SK ------------------------------------------------------------


async def test_missing_credentials_get_the_gateways_401(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    response = await http.get(emu.list_url)

    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "APIG.0301"
    assert body["error_msg"] == "Incorrect IAM authentication information: x-auth-token not found"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_unknown_and_expired_tokens_are_refused(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    forged = await http.get(emu.list_url, headers={"X-Auth-Token": "MIIforged"})
    assert forged.status_code == 401
    assert forged.json()["error_msg"].endswith("decrypt token fail")

    assert (await list_jobs(http, emu)).status_code == 200
    await emu.expire_tokens()
    expired = await list_jobs(http, emu)

    assert expired.status_code == 401
    assert expired.json()["error_code"] == "APIG.0301"
    assert re.fullmatch(
        r"Incorrect IAM authentication information: token expires, expires_at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z",
        expired.json()["error_msg"],
    )


async def test_aksk_signed_requests_are_verified(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    job = await emu.add_job(related_graph="my graph", status="running")
    params = [("offset", "0"), ("limit", "10"), ("status", "running"), ("graph_name", "my graph")]
    headers = sign(emu.ak, emu.sk, "GET", emu.list_url, params=params, headers={"X-Project-Id": emu.project_id})

    ok = await http.get(emu.list_url, params=params, headers=headers)
    tampered = await http.get(emu.list_url, params=[*params[:3], ("graph_name", "other")], headers=headers)
    wrong_sk = await http.get(
        emu.list_url, params=params, headers=sign(emu.ak, emu.sk + "x", "GET", emu.list_url, params=params)
    )
    unknown_ak = await http.get(
        emu.list_url, params=params, headers=sign("NOSUCHAK000000000000", emu.sk, "GET", emu.list_url, params=params)
    )

    assert ok.status_code == 200
    assert ids(ok) == [job["job_id"]]
    for refused in (tampered, wrong_sk):
        assert refused.status_code == 401
        assert refused.json()["error_msg"] == "Incorrect IAM authentication information: verify aksk signature fail"
    assert unknown_ak.status_code == 401
    assert unknown_ak.json()["error_msg"] == (
        "Incorrect IAM authentication information: Get secretKey failed,ak:NOSU******,err:ak not exist"
    )


async def test_aksk_verifies_exactly_the_signed_headers(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    headers = sign(emu.ak, emu.sk, "GET", emu.list_url, headers={"X-Custom": "a"})
    assert "x-custom" in headers["Authorization"]

    unsigned_extra = await http.get(emu.list_url, headers={**headers, "X-Unsigned": "anything"})
    changed_signed = await http.get(emu.list_url, headers={**headers, "X-Custom": "b"})
    dropped_signed = await http.get(emu.list_url, headers={k: v for k, v in headers.items() if k != "X-Custom"})

    assert unsigned_extra.status_code == 200
    assert changed_signed.status_code == 401
    assert dropped_signed.status_code == 401
    assert "x-custom" in dropped_signed.json()["error_msg"]


async def test_aksk_clock_skew_limit_is_fifteen_minutes(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)

    fine = await http.get(
        emu.list_url, headers=sign(emu.ak, emu.sk, "GET", emu.list_url, when=now - timedelta(minutes=14))
    )
    stale = await http.get(
        emu.list_url, headers=sign(emu.ak, emu.sk, "GET", emu.list_url, when=now - timedelta(minutes=16))
    )
    early = await http.get(
        emu.list_url, headers=sign(emu.ak, emu.sk, "GET", emu.list_url, when=now + timedelta(minutes=16))
    )

    assert fine.status_code == 200
    assert stale.status_code == early.status_code == 401
    assert "15 minutes" in stale.json()["error_msg"]


async def test_aksk_skew_ignores_the_emulated_clock(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await emu.advance(7 * 3600)

    response = await http.get(emu.list_url, headers=sign(emu.ak, emu.sk, "GET", emu.list_url))

    assert response.status_code == 200


async def test_project_not_covered_by_the_credentials_is_refused(http: httpx.AsyncClient) -> None:
    other_key = AkSk("OTHERPROJECTAK000001", "other-secret", project_ids=(OTHER_PROJECT,))
    async with run_emulator(extra_aksk=(other_key,)) as emu:
        other_url = f"{emu.url}/v2/{OTHER_PROJECT}/graphs/jobs"
        await emu.add_job(project_id=OTHER_PROJECT, related_graph="elsewhere")
        by_token = await http.get(other_url, headers={"X-Auth-Token": emu.token})
        by_aksk = await http.get(other_url, headers=sign(emu.ak, emu.sk, "GET", other_url))
        header_mismatch = await http.get(
            emu.list_url, headers=sign(emu.ak, emu.sk, "GET", emu.list_url, headers={"X-Project-Id": OTHER_PROJECT})
        )
        other_key_ok = await http.get(other_url, headers=sign(other_key.ak, other_key.sk, "GET", other_url))
        mine = await list_jobs(http, emu)
        await emu.configure(project_mismatch_status=403)
        forbidden = await http.get(other_url, headers={"X-Auth-Token": emu.token})

    for refused in (by_token, by_aksk, header_mismatch):
        assert refused.status_code == 400
        assert refused.json()["error_code"] == "GES.0016"
    assert forbidden.status_code == 403
    assert other_key_ok.status_code == 200
    assert [j["related_graph"] for j in other_key_ok.json()["job_list"]] == ["elsewhere"]
    assert mine.json() == {"job_count": 0, "job_list": []}


# --- IAM ------------------------------------------------------------------------------------------


async def test_password_auth_issues_a_token_like_iam(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    body = iam_body(emu.iam_domain, emu.iam_user, emu.iam_password, {"project": {"id": emu.project_id}})

    response = await http.post(f"{emu.url}/v3/auth/tokens", json=body)

    assert response.status_code == 201
    token = response.headers["x-subject-token"]
    assert HEX32.fullmatch(response.headers["x-request-id"])
    data = response.json()["token"]
    issued = datetime.fromisoformat(data["issued_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", data["expires_at"])
    assert expires - issued == timedelta(hours=24)
    assert data["project"]["id"] == emu.project_id
    assert data["project"]["name"] == "cn-north-4"
    assert data["user"]["name"] == emu.iam_user
    assert data["methods"] == ["password"]
    listed = await http.get(emu.list_url, headers={"X-Auth-Token": token})
    assert listed.status_code == 200


async def test_project_name_scope_is_the_region(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    body = iam_body(emu.iam_domain, emu.iam_user, emu.iam_password, {"project": {"name": "cn-north-4"}})

    response = await http.post(f"{emu.url}/v3/auth/tokens", json=body)

    assert response.status_code == 201
    listed = await http.get(emu.list_url, headers={"X-Auth-Token": response.headers["x-subject-token"]})
    assert listed.status_code == 200


async def test_wrong_password_gets_iams_401(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    wrong = await http.post(
        f"{emu.url}/v3/auth/tokens",
        json=iam_body(emu.iam_domain, emu.iam_user, "not-it", {"project": {"id": emu.project_id}}),
    )
    nobody = await http.post(f"{emu.url}/v3/auth/tokens", json=iam_body("ghost-domain", emu.iam_user, emu.iam_password))
    garbage = await http.post(f"{emu.url}/v3/auth/tokens", content=b"{not json")

    for response in (wrong, nobody):
        assert response.status_code == 401
        assert response.json() == {
            "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
        }
        assert "x-subject-token" not in response.headers
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == 400


async def test_issued_tokens_expire_on_the_emulated_clock_and_renew(http: httpx.AsyncClient) -> None:
    async with run_emulator(token_lifetime_s=600) as emu:
        body = iam_body(emu.iam_domain, emu.iam_user, emu.iam_password, {"project": {"id": emu.project_id}})
        first = (await http.post(f"{emu.url}/v3/auth/tokens", json=body)).headers["x-subject-token"]
        before = await http.get(emu.list_url, headers={"X-Auth-Token": first})
        await emu.advance(601)
        after = await http.get(emu.list_url, headers={"X-Auth-Token": first})
        second = (await http.post(f"{emu.url}/v3/auth/tokens", json=body)).headers["x-subject-token"]
        renewed = await http.get(emu.list_url, headers={"X-Auth-Token": second})

    assert before.status_code == 200
    assert after.status_code == 401
    assert "token expires" in after.json()["error_msg"]
    assert second != first
    assert renewed.status_code == 200


async def test_tokens_cover_only_their_projects(http: httpx.AsyncClient) -> None:
    users = (IamUser("acme", "ops", "pw", project_ids=(OTHER_PROJECT,)),)
    tokens = (StaticToken("MIIstatic-other", project_ids=(OTHER_PROJECT,)),)
    async with run_emulator(users=users, static_tokens=tokens) as emu:
        denied_scope = await http.post(
            f"{emu.url}/v3/auth/tokens", json=iam_body("acme", "ops", "pw", {"project": {"id": emu.project_id}})
        )
        granted = await http.post(
            f"{emu.url}/v3/auth/tokens", json=iam_body("acme", "ops", "pw", {"project": {"id": OTHER_PROJECT}})
        )
        token = granted.headers["x-subject-token"]
        other_url = f"{emu.url}/v3/{OTHER_PROJECT}".replace("/v3/", "/v2/") + "/graphs/jobs"
        on_other = await http.get(other_url, headers={"X-Auth-Token": token})
        on_default = await http.get(emu.list_url, headers={"X-Auth-Token": token})
        static_other = await http.get(other_url, headers={"X-Auth-Token": "MIIstatic-other"})
        static_default = await http.get(emu.list_url, headers={"X-Auth-Token": "MIIstatic-other"})

    assert denied_scope.status_code == 401
    assert on_other.status_code == static_other.status_code == 200
    assert on_default.status_code == static_default.status_code == 400
    assert on_default.json()["error_code"] == "GES.0016"


# --- one job's status -------------------------------------------------------------------------------


async def test_job_status_route_answers_the_ten_fields(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    job = await emu.add_job(status="failed", job_name="ExportGraph", related_graph="movies", fail_reason="quota")
    other = await emu.add_job(related_graph="prod-social")
    assert job["graph_id"]
    assert job["graph_id"] != other["graph_id"]
    assert (await emu.add_job(related_graph="movies"))["graph_id"] == job["graph_id"]
    url = f"{emu.url}/v2/{emu.project_id}/graphs/{job['graph_id']}/jobs/{job['job_id']}/status"

    response = await http.get(url, headers={"X-Auth-Token": emu.token})
    wrong_graph = await http.get(url.replace(job["graph_id"], other["graph_id"]), headers={"X-Auth-Token": emu.token})
    unauthenticated = await http.get(url)

    assert response.status_code == 200
    listed = (await list_jobs(http, emu)).json()["job_list"][0]
    assert response.json() == listed
    assert set(listed) <= {
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
    }
    assert wrong_graph.status_code == 400
    assert wrong_graph.json()["error_code"] == "GES.7007"
    assert unauthenticated.status_code == 401
    stats = await emu.stats()
    assert stats["requests"]["GET /v2/{project_id}/graphs/{graph_id}/jobs/{job_id}/status"] == 3


async def test_unknown_paths_get_a_404_error_body(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    unknown = await http.get(f"{emu.url}/v2/{emu.project_id}/graphs/nothing-here")
    wrong_method = await http.post(emu.list_url, headers={"X-Auth-Token": emu.token})
    trailing_slash = await http.get(emu.list_url + "/", headers={"X-Auth-Token": emu.token})
    control = await http.get(f"{emu.url}/_emulator/nothing")

    for response in (unknown, wrong_method, trailing_slash):
        assert response.status_code == 404
        assert response.json()["error_code"] == "APIG.0101"
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert control.status_code == 404
    assert "error" in control.json()
    assert HEX32.fullmatch(control.headers["x-request-id"])


# --- control API -------------------------------------------------------------------------------------


async def test_added_jobs_get_defaults(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    before = await emu.now()
    response = await http.post(f"{emu.url}/_emulator/jobs", json={"related_graph": "movies"})
    after = await emu.now()

    assert response.status_code == 201
    job = response.json()
    assert HEX32.fullmatch(job["job_id"])
    assert job["status"] == "running"
    assert job["end_time"] is None
    assert job["project_id"] == emu.project_id
    begin = datetime.fromisoformat(job["begin_time"]).replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= begin <= after
    duplicate = await http.post(f"{emu.url}/_emulator/jobs", json={"job_id": job["job_id"]})
    assert duplicate.status_code == 409
    bad = await http.post(f"{emu.url}/_emulator/jobs", json={"begin_time": "yesterday"})
    assert bad.status_code == 400
    assert "begin_time" in bad.json()["error"]


async def test_patch_delete_and_bulk(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    job = await emu.add_job(status="running", job_name="ImportGraph", related_graph="movies")

    failed = await emu.patch_job(job["job_id"], status="failed", fail_reason="Line 7: bad", job_progress=0.5)
    back = await emu.patch_job(job["job_id"], status="running")
    odd = await emu.patch_job(job["job_id"], status="complete", end_time=None)
    listed = (await list_jobs(http, emu)).json()["job_list"][0]
    await emu.delete_job(job["job_id"])
    gone = await http.get(f"{emu.url}/_emulator/jobs/{job['job_id']}")
    patch_gone = await http.patch(f"{emu.url}/_emulator/jobs/{job['job_id']}", json={"status": "failed"})
    bulk = await emu.add_jobs([{"status": "success"}, {"job_id": "a" * 32}], project_id=OTHER_PROJECT)

    assert failed["end_time"] is not None
    assert failed["fail_reason"] == "Line 7: bad"
    assert failed["job_progress"] == 0.5
    assert back["end_time"] is None
    assert listed["status"] == "complete"  # unknown statuses are kept as given
    assert odd["end_time"] is None
    assert gone.status_code == patch_gone.status_code == 404
    assert bulk[1] == "a" * 32
    assert {j["project_id"] for j in await emu.jobs()} == {OTHER_PROJECT}
    clash = await http.post(
        f"{emu.url}/_emulator/jobs/bulk", json={"jobs": [{"job_id": "b" * 32}, {"job_id": "a" * 32}]}
    )
    assert clash.status_code == 409
    assert len(await emu.jobs()) == 2  # all or nothing


async def test_status_faults_then_recovery(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await emu.fault(status=503, count=2)
    await emu.fault(status=500, error_code="GES.7005", error_msg="engine down")

    answers = [await list_jobs(http, emu) for _ in range(4)]

    assert [a.status_code for a in answers] == [503, 503, 500, 200]
    assert answers[0].json() == {"error_code": "GES.9999", "error_msg": "Service unavailable. Try again later."}
    assert answers[2].json() == {"error_code": "GES.7005", "error_msg": "engine down"}
    assert all(HEX32.fullmatch(a.headers["x-request-id"]) for a in answers)


async def test_faults_hit_the_job_center_not_iam_by_default(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    body = iam_body(emu.iam_domain, emu.iam_user, emu.iam_password, {"project": {"id": emu.project_id}})
    await emu.fault(status=503)

    token = await http.post(f"{emu.url}/v3/auth/tokens", json=body)
    listed = await list_jobs(http, emu)
    await emu.fault(status=503, target="iam")
    iam_down = await http.post(f"{emu.url}/v3/auth/tokens", json=body)

    assert token.status_code == 201
    assert listed.status_code == 503
    assert iam_down.status_code == 503
    assert iam_down.json()["error"]["code"] == 503


async def test_latency_fault_delays_the_answer(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await emu.fault(latency_ms=300)

    start = time.perf_counter()
    slow = await list_jobs(http, emu)
    slow_s = time.perf_counter() - start
    start = time.perf_counter()
    await list_jobs(http, emu)
    fast_s = time.perf_counter() - start

    assert slow.status_code == 200
    assert slow_s >= 0.3
    assert fast_s < 0.3


async def test_malformed_and_truncated_answers(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await emu.add_jobs([{"status": "success", "related_graph": f"g{i}"} for i in range(5)])
    full = (await list_jobs(http, emu)).text
    await emu.fault(malformed=True)
    await emu.fault(truncated=True)

    malformed = await list_jobs(http, emu)
    truncated = await list_jobs(http, emu)

    assert malformed.status_code == 200
    assert malformed.text.startswith("<html>")
    assert truncated.status_code == 200
    assert 0 < len(truncated.text) < len(full)
    assert full.startswith(truncated.text)
    for response in (malformed, truncated):
        with pytest.raises(ValueError, match=r"."):
            response.json()


async def test_hostile_answers_a_lying_count_a_huge_body_and_deep_nesting(
    emu: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    await emu.add_jobs([{"status": "success", "related_graph": f"g{i}"} for i in range(3)])
    await emu.fault(job_count=1_000_000)
    await emu.fault(huge_bytes=3 << 20)
    await emu.fault(nested=1000)

    lying = (await list_jobs(http, emu)).json()
    huge = await list_jobs(http, emu)
    nested = await list_jobs(http, emu)

    assert lying["job_count"] == 1_000_000
    assert len(lying["job_list"]) == 3  # the real jobs
    assert huge.status_code == 200
    assert len(huge.content) == 3 << 20
    assert huge.json()["job_list"] == []
    assert nested.status_code == 200
    assert nested.content == b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize(
    "spec",
    [{"job_count": -1}, {"huge_bytes": "big"}, {"nested": True}, {"job_count": 5, "nested": 5}],
)
async def test_hostile_fault_specs_are_checked(
    emu: EmulatorHandle, http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    response = await http.post(f"{emu.url}/_emulator/faults", json=spec)
    assert response.status_code == 400


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_shift_fault_inserts_a_job_between_pages(http: httpx.AsyncClient, order: str) -> None:
    async with run_emulator(order=order) as emu:
        base = datetime(2024, 1, 1, tzinfo=UTC)
        await emu.add_jobs([{"begin_time": (base + timedelta(hours=h)).isoformat()} for h in range(4)])
        await emu.fault(shift=True)
        await emu.add_job(status="success")  # a control call does not consume the fault
        page1 = await list_jobs(http, emu, limit="2")
        page2 = await list_jobs(http, emu, offset="2", limit="2")

    assert page1.json()["job_count"] == 5
    assert page2.json()["job_count"] == 6
    assert ids(page2)[0] == ids(page1)[-1]  # the offset shifted by one


async def test_fault_queue_can_be_listed_cleared_and_rejects_nonsense(
    emu: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    await emu.fault(status=503, count=-1)
    assert [(await list_jobs(http, emu)).status_code for _ in range(3)] == [503, 503, 503]
    listed = (await http.get(f"{emu.url}/_emulator/faults")).json()
    await emu.clear_faults()

    assert listed == {"faults": [{"status": 503, "count": -1, "target": "ges"}]}
    assert (await list_jobs(http, emu)).status_code == 200
    for spec in ({"status": 200}, {"flood": True}, {"status": 503, "malformed": True}, {}, {"status": 503, "count": 0}):
        response = await http.post(f"{emu.url}/_emulator/faults", json=spec)
        assert response.status_code == 400, spec


async def test_stats_count_public_requests_by_route(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    await list_jobs(http, emu)
    await list_jobs(http, emu, status="bogus")
    await http.post(f"{emu.url}/v3/auth/tokens", json=iam_body(emu.iam_domain, emu.iam_user, emu.iam_password))
    await http.get(f"{emu.url}/nope")
    await emu.jobs()  # control calls are not counted

    stats = await emu.stats()
    await emu.reset_stats()

    assert stats["requests"] == {LIST_ROUTE: 2, "POST /v3/auth/tokens": 1, "GET (unmatched)": 1}
    assert stats["responses"][f"{LIST_ROUTE} 400"] == 1
    assert [r["query"] for r in stats["recent"][:2]] == ["", "status=bogus"]
    assert await emu.list_calls() == 0
    assert (await emu.stats())["requests"] == {}


async def test_clock_moves_and_is_settable(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    start = await emu.now()
    moved = await emu.advance(3600)
    job = await emu.add_job()
    target = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    set_to = await emu.set_time(target)
    backwards = await http.post(f"{emu.url}/_emulator/clock", json={"advance_s": -5})

    assert timedelta(seconds=3600) <= moved - start < timedelta(seconds=3660)
    assert datetime.fromisoformat(job["begin_time"]).replace(tzinfo=UTC) >= moved.replace(microsecond=0)
    assert abs((set_to - target).total_seconds()) < 5
    assert backwards.status_code == 400
    health = (await http.get(f"{emu.url}/_emulator/health")).json()
    assert (health["ok"], health["jobs"]) == (True, 1)
    assert health["now"].startswith("2030-01-02T03:0")


async def test_settings_change_at_run_time_and_are_validated(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    view = await emu.configure(order="desc", time_format="epoch", retention_s=None)
    bad_value = await http.post(f"{emu.url}/_emulator/settings", json={"order": "sideways"})
    fixed = await http.post(f"{emu.url}/_emulator/settings", json={"project_id": "x"})
    shown = (await http.get(f"{emu.url}/_emulator/settings")).json()

    assert (view["order"], view["time_format"]) == ("desc", "epoch")
    assert bad_value.status_code == fixed.status_code == 400
    assert "project_id" in fixed.json()["error"]
    assert shown == view
    assert emu.sk not in str(shown)


# --- readings of the job list (issue 11: each switch, off by default) ------------------------------


async def _twenty_five(emu: EmulatorHandle) -> list[str]:
    """25 jobs a minute apart; every fifth failed."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    return await emu.add_jobs(
        [
            {"status": "failed" if i % 5 == 0 else "success", "begin_time": (start + timedelta(minutes=i)).isoformat()}
            for i in range(25)
        ]
    )


async def test_job_count_reading_is_a_switch(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    job_ids = await _twenty_five(emu)
    failed = job_ids[::5]

    filtered = (await list_jobs(http, emu, status="failed", limit="2")).json()
    view = await emu.configure(job_count="unfiltered")
    unfiltered = (await list_jobs(http, emu, status="failed", limit="2")).json()
    await emu.configure(job_count="page")
    page = (await list_jobs(http, emu, status="failed", limit="2")).json()
    last_page = (await list_jobs(http, emu, status="failed", limit="2", offset="4")).json()

    assert view["job_count"] == "unfiltered"
    assert (filtered["job_count"], [j["job_id"] for j in filtered["job_list"]]) == (5, failed[:2])
    assert (unfiltered["job_count"], [j["job_id"] for j in unfiltered["job_list"]]) == (25, failed[:2])
    assert (page["job_count"], [j["job_id"] for j in page["job_list"]]) == (2, failed[:2])
    assert (last_page["job_count"], [j["job_id"] for j in last_page["job_list"]]) == (1, failed[4:])


async def test_offset_unit_reading_is_a_switch(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    job_ids = await _twenty_five(emu)

    async def page(offset: int) -> list[str]:
        return ids(await list_jobs(http, emu, offset=str(offset), limit="10"))

    by_item = [await page(0), await page(10), await page(20)]
    await emu.configure(offset_unit="page0")
    by_page0 = [await page(0), await page(1), await page(2), await page(3)]
    await emu.configure(offset_unit="page1")
    by_page1 = [await page(0), await page(1), await page(2), await page(3)]

    assert by_item == [job_ids[:10], job_ids[10:20], job_ids[20:]]
    assert by_page0 == [job_ids[:10], job_ids[10:20], job_ids[20:], []]
    assert by_page1 == [job_ids[:10], job_ids[:10], job_ids[10:20], job_ids[20:]]


async def test_status_filter_can_refuse_partially_failed_or_be_ignored(
    emu: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    failed = await emu.add_job(status="failed")
    partial = await emu.add_job(status="partiallyFailed")
    ok = await emu.add_job(status="success")

    await emu.configure(status_filter="no-partial")
    refused = await list_jobs(http, emu, status="partiallyFailed")
    still_failed = ids(await list_jobs(http, emu, status="failed"))
    await emu.configure(status_filter="ignored")
    ignored = ids(await list_jobs(http, emu, status="failed"))

    assert refused.status_code == 400
    assert refused.json()["error_code"] == "GES.0001"
    assert "partiallyFailed" in refused.json()["error_msg"]
    assert still_failed == [failed["job_id"]]
    assert ignored == [failed["job_id"], partial["job_id"], ok["job_id"]]


async def test_waiting_word_of_the_request_is_a_switch(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    pending = await emu.add_job(status="pending")
    await emu.add_job(status="running")

    await emu.configure(waiting_word="pending")
    pending_word = await list_jobs(http, emu, status="pending")
    waiting_refused = await list_jobs(http, emu, status="waiting")
    await emu.configure(waiting_word="both")
    both = [ids(await list_jobs(http, emu, status=word)) for word in ("waiting", "pending")]

    assert ids(pending_word) == [pending["job_id"]]
    assert waiting_refused.status_code == 400
    assert waiting_refused.json()["error_code"] == "GES.0001"
    assert both == [[pending["job_id"]], [pending["job_id"]]]


async def test_start_and_end_filters_can_use_different_fields(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    names = await _dated_jobs(emu)
    await emu.configure(end_filter_field="end_time")

    both = await list_jobs(http, emu, start_time="2024-03-10", end_time="2024-03-11", limit="100")
    only_start = await list_jobs(http, emu, start_time="2024-03-11", limit="100")
    only_end = await list_jobs(http, emu, end_time="2024-03-10", limit="100")

    # start_time on begin_time, end_time on end_time: "first" ends on the 12th, "last" runs.
    assert [names[i] for i in ids(both)] == ["late_cn"]
    # Only start_time: begin_time alone decides, so the running "last" is in.
    assert sorted(names[i] for i in ids(only_start)) == ["after", "last", "late_cn"]
    assert [names[i] for i in ids(only_end)] == ["before"]


async def test_start_and_end_filters_can_use_different_zones(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    names = await _dated_jobs(emu)

    in_utc = await list_jobs(http, emu, start_time="2024-03-11", end_time="2024-03-11", limit="100")
    await emu.configure(start_filter_tz="+08:00")
    start_cn = await list_jobs(http, emu, start_time="2024-03-12", end_time="2024-03-12", limit="100")
    await emu.configure(start_filter_tz=None, end_filter_tz="+08:00")
    end_cn = await list_jobs(http, emu, start_time="2024-03-11", end_time="2024-03-11", limit="100")

    assert sorted(names[i] for i in ids(in_utc)) == ["last", "late_cn"]
    # start 2024-03-12 at +08:00 = 2024-03-11T16:00Z; end 2024-03-12 in UTC = before 2024-03-13T00:00Z.
    assert sorted(names[i] for i in ids(start_cn)) == ["after", "last", "late_cn"]
    # start 2024-03-11 in UTC; end 2024-03-11 at +08:00 = before 2024-03-11T16:00Z.
    assert end_cn.json() == {"job_count": 0, "job_list": []}


async def test_time_zone_suffix_of_answers_is_a_switch(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    job = await emu.add_job(
        status="failed", related_graph="g", begin_time="2024-05-01T20:00:00Z", end_time="2024-05-01T21:30:00Z"
    )
    status_url = f"{emu.url}/v2/{emu.project_id}/graphs/{job['graph_id']}/jobs/{job['job_id']}/status"

    async def times() -> tuple[Any, Any, Any]:
        listed = (await list_jobs(http, emu)).json()["job_list"][0]
        shown = (await http.get(status_url, headers={"X-Auth-Token": emu.token})).json()
        return listed["begin_time"], listed["end_time"], shown["end_time"]

    default = await times()
    await emu.configure(time_zone_suffix="utc")
    with_z = await times()
    await emu.configure(time_zone_suffix="none-utc+8")
    utc8 = await times()
    await emu.configure(time_format="space")
    utc8_space = await times()
    await emu.configure(time_format="epoch")
    epoch = await times()

    assert default == ("2024-05-01T20:00:00", "2024-05-01T21:30:00", "2024-05-01T21:30:00")
    assert with_z == ("2024-05-01T20:00:00Z", "2024-05-01T21:30:00Z", "2024-05-01T21:30:00Z")
    assert utc8 == ("2024-05-02T04:00:00", "2024-05-02T05:30:00", "2024-05-02T05:30:00")
    assert utc8_space == ("2024-05-02 04:00:00", "2024-05-02 05:30:00", "2024-05-02 05:30:00")
    end_ms = int(datetime(2024, 5, 1, 21, 30, tzinfo=UTC).timestamp() * 1000)
    assert epoch == (end_ms - 90 * 60_000, end_ms, end_ms)


async def test_limit_cap_shortens_pages_silently(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    job_ids = await _twenty_five(emu)
    await emu.configure(limit_cap=7)

    first = await list_jobs(http, emu, limit="10")
    second = await list_jobs(http, emu, offset="7", limit="10")
    small = await list_jobs(http, emu, limit="3")
    await emu.configure(offset_unit="page0")
    page_one = await list_jobs(http, emu, offset="1", limit="10")

    assert first.status_code == 200
    assert (first.json()["job_count"], ids(first)) == (25, job_ids[:7])
    assert ids(second) == job_ids[7:14]
    assert ids(small) == job_ids[:3]
    # Pages count in the size the server really answers.
    assert ids(page_one) == job_ids[7:14]
    assert (await list_jobs(http, emu, limit="1001")).status_code == 400


async def test_jobs_can_end_in_statuses_outside_the_enum(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    running = await emu.add_job(status="running", related_graph="movies", begin_time="2024-05-01T20:00:00Z")
    done = {}
    for word in ("cancelled", "Failed", "partFailed", "complete"):
        job = await emu.add_job(status="running", related_graph="movies")
        done[word] = await emu.patch_job(job["job_id"], status=word)
    ended = await emu.patch_job(running["job_id"], status="cancelled")

    listed = {j["job_id"]: j for j in (await list_jobs(http, emu, limit="100")).json()["job_list"]}
    failed_filter = await list_jobs(http, emu, status="failed")
    back = await emu.patch_job(running["job_id"], status="running")

    assert listed[running["job_id"]]["status"] == "cancelled"
    assert ended["end_time"] is not None
    assert all(j["end_time"] is not None and listed[j["job_id"]]["status"] == w for w, j in done.items())
    assert failed_filter.json() == {"job_count": 0, "job_list": []}
    assert back["end_time"] is None


async def test_nightly_scenario_ends_some_jobs_in_extra_statuses(http: httpx.AsyncClient) -> None:
    extra = ("cancelled", "complete")
    plain = _frozen_nightly(5)
    state = _frozen_nightly(5, extra_statuses=extra)
    token = state.settings.static_tokens[0].token
    async with serve(create_app(state=state)) as url:
        answer = await http.get(
            f"{url}/v2/{state.settings.project_id}/graphs/jobs", params={"limit": 1000}, headers={"X-Auth-Token": token}
        )
        view = (await http.get(f"{url}/_emulator/settings")).json()
    listed = answer.json()["job_list"]

    expected = {j.job_id: j.status for j in plain.all_jobs()}
    odd = [j for j in listed if j["status"] != expected[j["job_id"]]]
    assert view["extra_statuses"] == list(extra)
    assert len(listed) == len(expected)
    assert odd
    assert {j["status"] for j in odd} <= set(extra)
    assert all(expected[j["job_id"]] in ("success", "failed", "partiallyFailed") for j in odd)
    assert all(j["end_time"] is not None for j in odd)


async def test_reading_settings_are_validated(emu: EmulatorHandle, http: httpx.AsyncClient) -> None:
    bad = [
        {"job_count": "all"},
        {"offset_unit": "page2"},
        {"status_filter": "none"},
        {"waiting_word": "queued"},
        {"end_filter_field": "created_time"},
        {"start_filter_tz": "Mars/Olympus"},
        {"time_zone_suffix": "utc+8"},
        {"limit_cap": 0},
        {"limit_cap": "7"},
        {"extra_statuses": ["failed"]},
        {"extra_statuses": "cancelled"},
    ]
    for change in bad:
        response = await http.post(f"{emu.url}/_emulator/settings", json=change)

        assert response.status_code == 400, change
        assert next(iter(change)) in response.json()["error"], change
    shown = (await http.get(f"{emu.url}/_emulator/settings")).json()
    assert {k: shown[k] for k in ("job_count", "offset_unit", "status_filter", "waiting_word")} == {
        "job_count": "filtered",
        "offset_unit": "item",
        "status_filter": "all",
        "waiting_word": "waiting",
    }
    assert (shown["time_zone_suffix"], shown["limit_cap"], shown["extra_statuses"]) == ("none-utc", None, [])
    assert [shown[k] for k in ("start_filter_field", "end_filter_field", "start_filter_tz", "end_filter_tz")] == [
        None
    ] * 4


# --- scenarios -----------------------------------------------------------------------------------


async def test_quiet_scenario_shows_a_few_succeeded_jobs(http: httpx.AsyncClient) -> None:
    async with run_emulator(scenario="quiet") as emu:
        body = (await list_jobs(http, emu, limit="100")).json()

    assert body["job_count"] == 5
    assert {j["status"] for j in body["job_list"]} == {"success"}
    assert any("job_detail" in j for j in body["job_list"])


def _frozen_nightly(seed: int, speed: float = 60.0, extra_statuses: tuple[str, ...] = ()) -> EmulatorState:
    fixed = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)
    state = EmulatorState(
        EmulatorSettings(scenario="nightly-imports", seed=seed, speed=speed, extra_statuses=extra_statuses),
        clock=EmulatedClock(real=lambda: fixed),
    )
    start_scenario(state)
    return state


def test_nightly_scenario_is_reproducible_however_often_it_is_polled() -> None:
    coarse, fine, other = _frozen_nightly(7), _frozen_nightly(7), _frozen_nightly(8)

    coarse.clock.advance(600)
    coarse.tick()
    for _ in range(120):
        fine.clock.advance(5)
        fine.tick()
    other.clock.advance(600)
    other.tick()

    def snapshot(state: EmulatorState) -> list[dict[str, Any]]:
        return [j.to_control() for j in state.all_jobs()]

    assert snapshot(coarse) == snapshot(fine)
    assert snapshot(coarse) != snapshot(other)


async def test_nightly_scenario_jobs_progress_and_fail_soon_at_speed(http: httpx.AsyncClient) -> None:
    async with run_emulator(scenario="nightly-imports", speed=60, seed=3) as emu:
        start = await emu.now()
        history = {j["job_id"]: j for j in await emu.jobs()}
        seen: dict[str, set[str]] = {}
        for _ in range(30):  # 30 emulated seconds = 30 scenario minutes
            await emu.advance(1)
            for job in (await list_jobs(http, emu, limit="1000")).json()["job_list"]:
                seen.setdefault(job["job_id"], set()).add(job["status"])
        final = {j["job_id"]: j for j in await emu.jobs()}

    assert len(history) > 30
    assert all(j["status"] in ("success", "failed", "partiallyFailed", "running", "pending") for j in history.values())
    fresh = [j for i, j in final.items() if i not in history]
    assert fresh
    assert all(
        datetime.fromisoformat(j["begin_time"]).replace(tzinfo=UTC) >= start.replace(microsecond=0) for j in fresh
    )
    assert any(j["status"] in ("failed", "partiallyFailed") for j in fresh)
    # Jobs were seen moving through the lifecycle.
    assert any({"pending", "running"} <= statuses for statuses in seen.values())
    assert any({"running", "success"} <= statuses or {"running", "failed"} <= statuses for statuses in seen.values())


def test_nightly_scenario_speed_can_change_without_time_travel() -> None:
    state = _frozen_nightly(2, speed=60)
    history = len(state)
    state.clock.advance(60)
    state.tick()
    at_60 = len(state) - history
    state.update_settings({"speed": 600})
    state.clock.advance(60)
    state.tick()
    at_600 = len(state) - history - at_60
    now = state.now()

    assert at_60 > 0
    assert at_600 > 5 * at_60  # ten times the pace, roughly
    assert all(j.begin_time is not None and j.begin_time <= now for j in state.all_jobs())
    assert all(j.end_time is None or j.begin_time <= j.end_time <= now for j in state.all_jobs())


def test_nightly_scenario_jobs_look_like_real_ges_jobs() -> None:
    state = _frozen_nightly(1)
    state.clock.advance(3600)  # 60 scenario hours
    state.tick()
    jobs = [j.to_control() for j in state.all_jobs()]

    assert {j["job_name"] for j in jobs} == {
        "ImportGraph",
        "CreateGraph",
        "StartGraph",
        "StopGraph",
        "DeleteGraph",
        "ExportGraph",
        "UpgradeGraph",
        "AddBackup",
    }
    assert {j["related_graph"] for j in jobs} == {"movies", "prod-social", "prod-fraud", "kg-medical"}
    assert {j["status"] for j in jobs} >= {"success", "failed", "partiallyFailed"}
    files = [
        (j["related_graph"], item)
        for j in jobs
        if j["job_name"] == "ImportGraph" and j["status"] != "running" and j.get("job_detail")
        for key in ("schema_path", "vertexset_path", "edgeset_path")
        for item in j["job_detail"][key] or []
    ]
    assert all(item["path"].startswith("obs://") for _, item in files)
    causes = [item["cause"] for _, item in files if item["status"] == "partFailed"]
    assert causes
    assert all(re.match(r"Line \d+: ", c) for c in causes)
    assert any(item["log"] and "/logs/" in item["log"] for _, item in files)
    assert all(item["total_lines"] == -1 for graph, item in files if graph == "kg-medical")
    assert any(item["failed_lines"] > 0 for graph, item in files if graph != "kg-medical")
    failed_others = [j for j in jobs if j["job_name"] != "ImportGraph" and j["status"] == "failed"]
    assert failed_others
    assert all(j["fail_reason"] for j in failed_others)


async def test_large_scenario_pages_through_every_job(http: httpx.AsyncClient) -> None:
    async with run_emulator(scenario="large", large_count=2500, seed=5) as emu:
        pages = [await list_jobs(http, emu, offset=str(o), limit="1000") for o in (0, 1000, 2000)]
        failed = await list_jobs(http, emu, status="failed", limit="1")

    seen = [i for p in pages for i in ids(p)]
    assert pages[0].json()["job_count"] == 2500
    assert len(seen) == len(set(seen)) == 2500
    assert 0 < failed.json()["job_count"] < 2500


# --- CLI -----------------------------------------------------------------------------------------


def _parse(argv: list[str]) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    return parser.parse_args(["emulator", *argv])


def test_cli_flags_become_settings() -> None:
    args = _parse(
        [
            "--project-id",
            OTHER_PROJECT,
            "--ak",
            "MYAK",
            "--sk",
            "MYSK",
            "--user",
            "acme:ops:pw:p1,p2",
            "--token",
            "MIItok",
            "--token-lifetime",
            "15m",
            "--scenario",
            "nightly-imports",
            "--seed",
            "9",
            "--speed",
            "60",
            "--order",
            "desc",
            "--max-limit",
            "200",
            "--date-filter-field",
            "end_time",
            "--date-filter-tz",
            "+08:00",
            "--time-format",
            "epoch",
            "--retention",
            "7d",
        ]
    )

    settings = settings_from_args(args)

    assert settings.project_id == OTHER_PROJECT
    assert (settings.ak, settings.sk) == ("MYAK", "MYSK")
    assert settings.users == (IamUser("acme", "ops", "pw", ("p1", "p2")),)
    assert settings.static_tokens == (StaticToken("MIItok"),)
    assert settings.token_lifetime_s == 900
    assert (settings.scenario, settings.seed, settings.speed) == ("nightly-imports", 9, 60)
    assert (settings.order, settings.max_limit, settings.time_format) == ("desc", 200, "epoch")
    assert (settings.date_filter_field, settings.date_filter_tz, settings.retention_s) == ("end_time", "+08:00", 604800)
    text = banner(settings, "http://127.0.0.1:9")
    assert f"export GES_PROJECT_ID={OTHER_PROJECT}" in text
    assert "export HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4=http://127.0.0.1:9" in text


def test_cli_reading_flags_become_settings_and_are_off_by_default() -> None:
    default = settings_from_args(_parse([]))
    args = _parse(
        [
            "--job-count",
            "page",
            "--offset-unit",
            "page1",
            "--status-filter",
            "no-partial",
            "--waiting-word",
            "both",
            "--date-filter-field",
            "begin_time,end_time",
            "--date-filter-tz",
            "UTC,+08:00",
            "--time-zone-suffix",
            "none-utc+8",
            "--limit-cap",
            "100",
            "--extra-status",
            "cancelled",
            "--extra-status",
            "Failed",
        ]
    )

    settings = settings_from_args(args)

    assert default == EmulatorSettings()
    assert (settings.job_count, settings.offset_unit, settings.status_filter) == ("page", "page1", "no-partial")
    assert (settings.waiting_word, settings.time_zone_suffix, settings.limit_cap) == ("both", "none-utc+8", 100)
    assert (settings.start_field, settings.end_field) == ("begin_time", "end_time")
    assert (settings.date_filter_tz, settings.end_filter_tz) == ("UTC", "+08:00")
    assert settings.extra_statuses == ("cancelled", "Failed")


def test_cli_help_documents_every_reading(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["--help"])
    text = capsys.readouterr().out

    for flag in (
        "--job-count",
        "--offset-unit",
        "--status-filter",
        "--waiting-word",
        "--date-filter-field",
        "--date-filter-tz",
        "--time-zone-suffix",
        "--limit-cap",
        "--extra-status",
        "/_emulator/settings",
    ):
        assert flag in text, flag


def test_cli_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from ges_bot.emulator.cli import run

    assert run(_parse(["--date-filter-tz", "Mars/Olympus"])) == 2
    assert "time zone" in capsys.readouterr().err
    assert run(_parse(["--date-filter-tz", "UTC,Mars/Olympus"])) == 2
    assert "end_filter_tz" in capsys.readouterr().err
    assert run(_parse(["--limit-cap", "0"])) == 2
    assert "limit_cap" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["--date-filter-field", "begin_time,created"])
    assert "not a date filter field" in capsys.readouterr().err


async def test_cli_serves_and_prints_the_environment(http: httpx.AsyncClient) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ges_bot.emulator",
        "--port",
        "0",
        "--scenario",
        "quiet",
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    env: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        while "HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4" not in env:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "the emulator exited before printing its environment"
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                env[name] = value
            if "GES_TOKEN=" in line:
                env["GES_TOKEN"] = line.strip().partition("GES_TOKEN=")[2]
        url = f"{env['GES_ENDPOINT']}/v2/{env['GES_PROJECT_ID']}/graphs/jobs"
        response = None
        for _ in range(100):
            try:
                response = await http.get(
                    url, headers=sign(env["HUAWEICLOUD_SDK_AK"], env["HUAWEICLOUD_SDK_SK"], "GET", url)
                )
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        await proc.communicate()

    assert env["HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4"] == env["GES_ENDPOINT"]
    assert response is not None
    assert response.status_code == 200
    assert response.json()["job_count"] == 5


async def test_app_state_is_reachable_in_process() -> None:
    app = create_app(EmulatorSettings())
    state: EmulatorState = app.state.emulator
    state.add_from_input({"status": "failed", "related_graph": "movies"})

    async with serve(app) as url, httpx.AsyncClient(timeout=10, verify=False) as http:  # noqa: S501
        response = await http.get(
            f"{url}/v2/{state.settings.project_id}/graphs/jobs",
            headers={"X-Auth-Token": state.settings.static_tokens[0].token},
        )

    assert [j["status"] for j in response.json()["job_list"]] == ["failed"]
