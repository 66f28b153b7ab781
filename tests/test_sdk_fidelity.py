"""Huawei's official SDK (``huaweicloudsdkges`` v2) against the emulator: it must not tell the
difference. The SDK is aimed at the emulator through its documented per-region endpoint override
(``HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4``), signs with AK/SK itself, and runs in a thread (it is
synchronous) while the emulator serves in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServerResponseException
from huaweicloudsdkges.v2 import GesClient, ListJobs2Request, ShowJob2Request
from huaweicloudsdkges.v2.region.ges_region import GesRegion

from tests.support.emulator import LIST_ROUTE, EmulatorHandle, run_emulator

T = TypeVar("T")
TEN_FIELDS = (
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

IMPORT_DETAIL: dict[str, Any] = {
    "schema_path": [
        {
            "path": "obs://ges-demo/movies/schema.xml",
            "log": None,
            "status": "success",
            "cause": None,
            "total_lines": -1,
            "failed_lines": -1,
            "successful_lines": -1,
        }
    ],
    "vertexset_path": [
        {
            "path": "obs://ges-demo/movies/vertices/person.csv",
            "log": "obs://ges-logs/movies/logs/import-1/person.log",
            "status": "partFailed",
            "cause": "Line 1882: vertex label 'Person' not in schema",
            "total_lines": 120000,
            "failed_lines": 12,
            "successful_lines": 119988,
        },
        None,
    ],
    "edgeset_path": None,
}


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EmulatorHandle]:
    async with run_emulator() as handle:
        monkeypatch.setenv("HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4", handle.url)
        yield handle


@pytest.fixture
def sdk(emu: EmulatorHandle) -> Iterator[Callable[..., GesClient]]:
    """Build official GesClients for cn-north-4 (→ the emulator), closed after the test."""
    clients: list[GesClient] = []

    def build(ak: str | None = None, sk: str | None = None) -> GesClient:
        credentials = BasicCredentials(ak or emu.ak, sk or emu.sk, emu.project_id)
        client = (
            GesClient.new_builder().with_credentials(credentials).with_region(GesRegion.value_of("cn-north-4")).build()
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


# The jobs the tests put in, and — written out literally, never derived from the emulator's echo —
# what the SDK must give back for them, so a renamed or dropped wire field fails here.
IMPORTED: dict[str, Any] = {
    "job_id": "ff80808167bb90340167bc3c7b5b026a",
    "status": "partiallyFailed",
    "job_name": "ImportGraph",
    "related_graph": "movies",
    "begin_time": "2024-05-01T01:00:00",
    "end_time": "2024-05-01T01:09:30",
    "job_detail": IMPORT_DETAIL,
    "fail_reason": None,
    "job_progress": 100,
}
DELETED: dict[str, Any] = {
    "job_id": "ff80808167bb90340167bc5d0b1d0358",
    "status": "failed",
    "job_type": "GraphManagement",
    "job_name": "DeleteGraph",
    "related_graph": "prod-social",
    "begin_time": "2024-05-01T02:00:00",
    "end_time": "2024-05-01T02:00:40",
    "fail_reason": "The graph is locked by a running import job.",
    "job_progress": 40.5,
}
RUNNING: dict[str, Any] = {
    "job_id": "0000000000000000000000000000abcd",
    "status": "running",
    "job_name": "StartGraph",
    "related_graph": "my graph",
    "begin_time": "2024-05-02T03:00:00",
}
SDK_IMPORTED: dict[str, Any] = {
    "job_id": "ff80808167bb90340167bc3c7b5b026a",
    "status": "partiallyFailed",
    "job_type": "GraphManagement",
    "job_name": "ImportGraph",
    "related_graph": "movies",
    "begin_time": "2024-05-01T01:00:00",
    "end_time": "2024-05-01T01:09:30",
    "job_detail": {
        "schema_path": [
            {
                "path": "obs://ges-demo/movies/schema.xml",
                "log": None,
                "status": "success",
                "cause": None,
                "total_lines": -1,
                "failed_lines": -1,
                "successful_lines": -1,
            }
        ],
        "vertexset_path": [
            {
                "path": "obs://ges-demo/movies/vertices/person.csv",
                "log": "obs://ges-logs/movies/logs/import-1/person.log",
                "status": "partFailed",
                "cause": "Line 1882: vertex label 'Person' not in schema",
                "total_lines": 120000,
                "failed_lines": 12,
                "successful_lines": 119988,
            },
            None,
        ],
        "edgeset_path": None,
    },
    "fail_reason": None,
    "job_progress": 100,
}
SDK_DELETED: dict[str, Any] = {
    "job_id": "ff80808167bb90340167bc5d0b1d0358",
    "status": "failed",
    "job_type": "GraphManagement",
    "job_name": "DeleteGraph",
    "related_graph": "prod-social",
    "begin_time": "2024-05-01T02:00:00",
    "end_time": "2024-05-01T02:00:40",
    "job_detail": None,
    "fail_reason": "The graph is locked by a running import job.",
    "job_progress": 40.5,
}
SDK_RUNNING: dict[str, Any] = {
    "job_id": "0000000000000000000000000000abcd",
    "status": "running",
    "job_type": "GraphManagement",
    "job_name": "StartGraph",
    "related_graph": "my graph",
    "begin_time": "2024-05-02T03:00:00",
    "end_time": None,
    "job_detail": None,
    "fail_reason": None,
    "job_progress": 0,
}


async def test_sdk_lists_exactly_our_jobs(emu: EmulatorHandle, sdk: Callable[..., GesClient]) -> None:
    for job in (IMPORTED, DELETED, RUNNING):
        await emu.add_job(**job)
    client = sdk()

    response = await in_thread(client.list_jobs2, ListJobs2Request(offset="0", limit="10"))

    assert response.status_code == 200
    assert response.job_count == 3
    assert [job.to_dict() for job in response.job_list] == [SDK_IMPORTED, SDK_DELETED, SDK_RUNNING]
    # The SDK's own model objects carry the details, -1 counts and nulls as sent.
    person = response.job_list[0].job_detail.vertexset_path[0]
    assert (person.status, person.failed_lines, person.cause) == (
        "partFailed",
        12,
        "Line 1882: vertex label 'Person' not in schema",
    )
    assert response.job_list[0].job_detail.schema_path[0].total_lines == -1
    assert response.job_list[0].job_detail.edgeset_path is None
    assert response.job_list[2].end_time is None


async def test_sdk_filters_and_pages(emu: EmulatorHandle, sdk: Callable[..., GesClient]) -> None:
    await emu.add_jobs(
        [
            {"job_id": "p1", "status": "pending", "related_graph": "my graph", "begin_time": "2024-05-01T00:00:00"},
            {"job_id": "p2", "status": "pending", "related_graph": "my graph", "begin_time": "2024-05-02T00:00:00"},
            {"job_id": "p3", "status": "pending", "related_graph": "other", "begin_time": "2024-05-02T00:00:00"},
            {"job_id": "s4", "status": "success", "related_graph": "my graph", "begin_time": "2024-05-03T00:00:00"},
            {"job_id": "p5", "status": "pending", "related_graph": "my graph", "begin_time": "2024-05-04T00:00:00"},
        ]
    )
    client = sdk()
    query = {"status": "waiting", "graph_name": "my graph", "start_time": "2024-05-01", "end_time": "2024-05-03"}

    page1 = await in_thread(client.list_jobs2, ListJobs2Request(offset="0", limit="1", **query))
    page2 = await in_thread(client.list_jobs2, ListJobs2Request(offset="1", limit="1", **query))
    page3 = await in_thread(client.list_jobs2, ListJobs2Request(offset="2", limit="1", **query))

    assert (page1.job_count, page2.job_count, page3.job_count) == (2, 2, 2)
    assert [(j.job_id, j.status) for j in page1.job_list + page2.job_list] == [("p1", "pending"), ("p2", "pending")]
    assert page3.job_list == []
    recent = (await emu.stats())["recent"]
    # The SDK's query string (space in the graph name and all) reached us signed and intact.
    assert all(r["status"] == 200 for r in recent)
    assert "graph_name=my%20graph" in recent[0]["query"]


async def test_sdk_reads_one_job_status(emu: EmulatorHandle, sdk: Callable[..., GesClient]) -> None:
    job = await emu.add_job(**IMPORTED)
    client = sdk()

    shown = await in_thread(client.show_job2, ShowJob2Request(graph_id=job["graph_id"], job_id=IMPORTED["job_id"]))

    assert {name: getattr(shown, name) for name in TEN_FIELDS} | {"job_detail": shown.job_detail.to_dict()} == (
        SDK_IMPORTED
    )


async def test_sdk_sees_our_errors(emu: EmulatorHandle, sdk: Callable[..., GesClient]) -> None:
    client = sdk()

    with pytest.raises(ClientRequestException) as bad_status:
        await in_thread(client.list_jobs2, ListJobs2Request(status="pending"))
    bad_request_id = (await emu.stats())["recent"][-1]["request_id"]
    with pytest.raises(ClientRequestException) as bad_key:
        await in_thread(sdk(sk=emu.sk + "-wrong").list_jobs2, ListJobs2Request())
    await emu.fault(status=503)
    with pytest.raises(ServerResponseException) as outage:
        await in_thread(client.list_jobs2, ListJobs2Request())

    assert bad_status.value.status_code == 400
    assert bad_status.value.error_code == "GES.0001"
    assert "status" in bad_status.value.error_msg
    assert bad_status.value.request_id == bad_request_id
    assert len(bad_request_id) == 32
    assert bad_key.value.status_code == 401
    assert bad_key.value.error_code == "APIG.0301"
    assert bad_key.value.error_msg == "Incorrect IAM authentication information: verify aksk signature fail"
    assert outage.value.status_code == 503
    assert outage.value.error_code == "GES.9999"
    assert (await emu.stats())["requests"][LIST_ROUTE] == 3
