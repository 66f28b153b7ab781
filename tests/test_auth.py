"""Authentication over real loopback HTTP: token, IAM password → token (cache, renewal, 401), AK/SK.

AK/SK requests are checked by a verifier built on the *official SDK's* ``Signer`` (not on our
``signing`` module), so a shared mistake cannot hide. IAM and GES are one small Starlette app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ges_bot.config import ProjectSettings
from ges_bot.errors import AuthError, ConfigError, TransportError
from ges_bot.jobcenter.auth import AkSkAuth, IamAuthError, IamPasswordAuth, TokenAuth, auth_for
from ges_bot.jobcenter.client import JobCenterClient, ListQuery
from tests.support.asgi import free_port, serve
from tests.support.emulator import run_emulator

PROJECT_ID = "0123456789abcdef0123456789abcdef"
AK = "AKEXAMPLE0123456789"
SK = "SKEXAMPLEsecretkey0123456789abcdefghijkl"
PASSWORD = "Pa55word-never-logged"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def iam_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


@dataclass
class _Creds:
    ak: str
    sk: str


class FakeCloud:
    """IAM (``/v3/auth/tokens``) and a GES job list that accepts IAM tokens or SDK-verified AK/SK."""

    def __init__(self, clock: FakeClock, *, lifetime: timedelta = timedelta(hours=24)) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.iam_delay = 0.0
        self.iam_bodies: list[dict[str, Any]] = []
        self.valid_tokens: set[str] = set()
        self.ges_tokens: list[str | None] = []
        self.ges_headers: list[dict[str, str]] = []
        self.aksk_verdicts: list[bool] = []
        self.iam_answer: Response | None = None
        self.refuse_all = False
        self.app = Starlette(
            routes=[
                Route("/v3/auth/tokens", self.tokens, methods=["POST"]),
                Route("/v2/{project_id}/graphs/jobs", self.jobs),
            ]
        )

    async def tokens(self, request: Request) -> Response:
        body = await request.json()
        self.iam_bodies.append(body)
        if self.iam_delay:
            await asyncio.sleep(self.iam_delay)
        if self.iam_answer is not None:
            return self.iam_answer
        user = body["auth"]["identity"]["password"]["user"]
        if user["password"] != PASSWORD:
            return JSONResponse(
                {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}},
                401,
                headers={"X-Request-Id": "iam-req-7"},
            )
        token = f"tok-{len(self.iam_bodies)}"
        self.valid_tokens.add(token)
        now = self.clock()
        return JSONResponse(
            {
                "token": {
                    "issued_at": iam_time(now),
                    "expires_at": iam_time(now + self.lifetime),
                    "methods": ["password"],
                }
            },
            201,
            headers={"X-Subject-Token": token},
        )

    def verify_aksk(self, request: Request, body: bytes) -> bool:
        """Re-sign what arrived with the official SDK and compare ``Authorization`` headers."""
        received = request.headers.get("authorization", "")
        try:
            names = received.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
        except IndexError:
            return False
        sdk_request = SdkRequest(
            method=request.method,
            schema="http",
            host=request.headers["host"],
            resource_path=request.scope["raw_path"].decode(),
            query_params=parse_qsl(request.scope["query_string"].decode(), keep_blank_values=True),
            header_params={n: request.headers[n] for n in names if n in request.headers},
            body=body,
        )
        access = received.split("Access=", 1)[1].split(",", 1)[0] if "Access=" in received else ""
        Signer(_Creds(access, SK if access == AK else "unknown")).sign(sdk_request)
        return bool(access == AK and sdk_request.header_params["Authorization"] == received)

    async def jobs(self, request: Request) -> Response:
        self.ges_headers.append(dict(request.headers))
        if "authorization" in request.headers:
            ok = self.verify_aksk(request, await request.body())
            self.aksk_verdicts.append(ok)
        else:
            token = request.headers.get("x-auth-token")
            self.ges_tokens.append(token)
            ok = token in self.valid_tokens and not self.refuse_all
        if not ok:
            return JSONResponse(
                {
                    "error_code": "APIG.0301",
                    "error_msg": "Incorrect IAM authentication information: verify aksk signature fail",
                },
                401,
            )
        return JSONResponse({"job_count": 1, "job_list": [{"job_id": "j1", "status": "running"}]})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cloud(clock: FakeClock) -> AsyncIterator[tuple[FakeCloud, str]]:
    fake = FakeCloud(clock)
    async with serve(fake.app) as url:
        yield fake, url


def password_project(url: str, password: str = PASSWORD, iam_url: str | None = None) -> ProjectSettings:
    return ProjectSettings(
        alias="iam",
        project_id=PROJECT_ID,
        endpoint=url,
        region=None,
        auth="password",
        iam_endpoint=iam_url or url,
        iam_domain="my-account",
        iam_user="bot-user",
        iam_password=SecretStr(password),
    )


def aksk_project(url: str, sk: str = SK) -> ProjectSettings:
    return ProjectSettings(
        alias="aksk",
        project_id=PROJECT_ID,
        endpoint=url,
        region=None,
        auth="aksk",
        ak=SecretStr(AK),
        sk=SecretStr(sk),
    )


def make_client(settings: ProjectSettings, clock: FakeClock, **kwargs: Any) -> JobCenterClient:
    return JobCenterClient(settings, clock=clock, backoff_base=0.001, backoff_cap=0.01, **kwargs)


# --- IAM password → token ------------------------------------------------------------------


async def test_iam_token_is_requested_as_documented_and_cached(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    async with make_client(password_project(url), clock) as client:
        for _ in range(3):
            await client.list_page(ListQuery(), 0, 10)
        assert client.requests_sent == 3
    assert fake.iam_bodies == [
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"domain": {"name": "my-account"}, "name": "bot-user", "password": PASSWORD}},
                },
                "scope": {"project": {"id": PROJECT_ID}},
            }
        }
    ]
    assert fake.ges_tokens == ["tok-1"] * 3


async def test_token_is_renewed_before_it_expires(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    async with make_client(password_project(url), clock) as client:
        auth = client.auth
        assert isinstance(auth, IamPasswordAuth)
        await client.list_page(ListQuery(), 0, 10)
        assert auth.token is not None
        assert auth.token.expires_at == T0 + timedelta(hours=24)
        # min(10 % of 24 h, 1 h) = 1 h before expiry
        assert auth.token.renew_at == T0 + timedelta(hours=23)
        clock.advance(timedelta(hours=22, minutes=59))
        await client.list_page(ListQuery(), 0, 10)
        clock.advance(timedelta(minutes=2))
        await client.list_page(ListQuery(), 0, 10)
        assert auth.tokens_issued == 2
    assert fake.ges_tokens == ["tok-1", "tok-1", "tok-2"]


async def test_short_lived_token_renews_at_ten_percent(clock: FakeClock) -> None:
    fake = FakeCloud(clock, lifetime=timedelta(minutes=10))
    async with serve(fake.app) as url, make_client(password_project(url), clock) as client:
        await client.list_page(ListQuery(), 0, 10)
        clock.advance(timedelta(minutes=8, seconds=59))
        await client.list_page(ListQuery(), 0, 10)
        clock.advance(timedelta(seconds=2))  # 9:01 — inside the last minute
        await client.list_page(ListQuery(), 0, 10)
    assert fake.ges_tokens == ["tok-1", "tok-1", "tok-2"]


async def test_401_from_ges_renews_once_and_retries(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    async with make_client(password_project(url), clock) as client:
        await client.list_page(ListQuery(), 0, 10)
        fake.valid_tokens.clear()  # e.g. the password was changed: old tokens are revoked
        page = await client.list_page(ListQuery(), 0, 10)
        assert client.requests_sent == 3
    assert [j.job_id for j in page.jobs] == ["j1"]
    assert fake.ges_tokens == ["tok-1", "tok-1", "tok-2"]


async def test_a_401_that_persists_is_an_auth_error_after_one_renewal(
    cloud: tuple[FakeCloud, str], clock: FakeClock
) -> None:
    fake, url = cloud
    async with make_client(password_project(url), clock) as client:
        await client.list_page(ListQuery(), 0, 10)
        fake.refuse_all = True  # IAM still issues tokens, GES refuses every one
        with pytest.raises(AuthError, match=r"HTTP 401 APIG\.0301"):
            await client.list_page(ListQuery(), 0, 10)
        assert client.requests_sent == 3
    assert len(fake.iam_bodies) == 2


async def test_concurrent_requests_share_one_token_request(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    fake.iam_delay = 0.05
    async with make_client(password_project(url), clock) as client:
        pages = await asyncio.gather(*(client.list_page(ListQuery(), 0, 10) for _ in range(12)))
        assert len(pages) == 12
        assert len(fake.iam_bodies) == 1
        # Expiry and a revocation hit all of them at once: still one renewal each time.
        clock.advance(timedelta(hours=23, minutes=30))
        await asyncio.gather(*(client.list_page(ListQuery(), 0, 10) for _ in range(12)))
        assert len(fake.iam_bodies) == 2
        fake.valid_tokens.clear()
        before = len(fake.ges_tokens)
        await asyncio.gather(*(client.list_page(ListQuery(), 0, 10) for _ in range(12)))
        assert len(fake.iam_bodies) == 3
    # Each request is accepted with the one shared renewal; only those already in flight (at most
    # the client's `concurrency` at once) went out with the revoked token first.
    sent = sorted(str(t) for t in fake.ges_tokens[before:])
    refused = sent.count("tok-2")
    assert 1 <= refused <= client.concurrency
    assert sent == ["tok-2"] * refused + ["tok-3"] * 12


async def test_wrong_password_is_a_clear_auth_error_without_the_password(
    cloud: tuple[FakeCloud, str], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = cloud
    caplog.set_level(logging.DEBUG)
    async with make_client(password_project(url, password="wrong-" + PASSWORD), clock) as client:
        with pytest.raises(IamAuthError) as err:
            await client.list_page(ListQuery(), 0, 10)
        assert client.requests_sent == 0
    message = str(err.value)
    assert message == (
        f"IAM at {url} would not issue a token for user 'bot-user' of account 'my-account': HTTP 401: "
        "The username or password is wrong. — check GES_IAM_DOMAIN, GES_IAM_USER, GES_IAM_PASSWORD and the project id "
        "(request id iam-req-7)"
    )
    assert isinstance(err.value, AuthError)
    assert len(fake.iam_bodies) == 1  # not retried
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(client.auth)


async def test_iam_answer_without_subject_token(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    fake.iam_answer = JSONResponse({"token": {"expires_at": iam_time(T0)}}, 201)
    async with make_client(password_project(url), clock) as client:
        with pytest.raises(AuthError, match="has no X-Subject-Token header"):
            await client.list_page(ListQuery(), 0, 10)


async def test_iam_without_expiry_is_trusted_for_an_hour(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    fake.iam_answer = JSONResponse({"token": {}}, 201, headers={"X-Subject-Token": "tok-x"})
    fake.valid_tokens.add("tok-x")
    async with make_client(password_project(url), clock) as client:
        await client.list_page(ListQuery(), 0, 10)
        auth = client.auth
        assert isinstance(auth, IamPasswordAuth)
        assert auth.token is not None
        assert auth.token.expires_at == T0 + timedelta(hours=1)


async def test_iam_unreachable_is_a_transport_error_and_retried(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    _, url = cloud
    dead = f"http://127.0.0.1:{free_port()}"
    async with make_client(password_project(url, iam_url=dead), clock, max_retries=1) as client:
        with pytest.raises(TransportError, match=f"could not reach IAM at {dead}"):
            await client.list_page(ListQuery(), 0, 10)


async def test_iam_server_error_is_retryable(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    fake.iam_answer = JSONResponse({"error": {"code": 503, "message": "busy"}}, 503)
    async with make_client(password_project(url), clock, max_retries=0) as client:
        with pytest.raises(IamAuthError, match="HTTP 503") as err:
            await client.list_page(ListQuery(), 0, 10)
        assert err.value.retryable
        fake.iam_answer = None
        await client.list_page(ListQuery(), 0, 10)
    assert len(fake.iam_bodies) == 2


# --- AK/SK -----------------------------------------------------------------------------------


async def test_aksk_requests_are_accepted_by_the_official_sdk_signer(
    cloud: tuple[FakeCloud, str], clock: FakeClock
) -> None:
    fake, url = cloud
    query = ListQuery.build(status="running", graph_name="my graph/é+&=", start="2026-02-28")
    async with make_client(aksk_project(url), clock) as client:
        page = await client.list_page(query, 0, 10)
    assert [j.job_id for j in page.jobs] == ["j1"]
    assert fake.aksk_verdicts == [True]
    headers = fake.ges_headers[0]
    assert headers["x-sdk-date"] == "20260301T120000Z"
    assert headers["x-project-id"] == PROJECT_ID
    assert headers["content-type"] == "application/json"
    assert "SignedHeaders=content-type;host;x-project-id;x-sdk-date," in headers["authorization"]
    assert "x-auth-token" not in headers


async def test_aksk_with_a_wrong_sk_is_refused(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    async with make_client(aksk_project(url, sk="not-the-sk"), clock) as client:
        with pytest.raises(AuthError, match="verify aksk signature fail"):
            await client.list_page(ListQuery(), 0, 10)
        assert client.requests_sent == 1
    assert fake.aksk_verdicts == [False]


async def test_aksk_retries_are_re_signed_with_a_fresh_date(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    auth = AkSkAuth(SecretStr(AK), SecretStr(SK), PROJECT_ID, clock=clock)
    async with httpx.AsyncClient(auth=auth, base_url=url) as http:
        first = await http.get(f"/v2/{PROJECT_ID}/graphs/jobs", params={"offset": 0})
        clock.advance(timedelta(minutes=5))
        second = await http.get(f"/v2/{PROJECT_ID}/graphs/jobs", params={"offset": 0})
    assert (first.status_code, second.status_code) == (200, 200)
    assert [h["x-sdk-date"] for h in fake.ges_headers] == ["20260301T120000Z", "20260301T120500Z"]
    assert fake.aksk_verdicts == [True, True]


async def test_aksk_signs_a_body(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    # GES list calls have no body, but the auth must sign one correctly when there is.
    fake, url = cloud
    auth = AkSkAuth(SecretStr(AK), SecretStr(SK), PROJECT_ID, clock=clock)
    async with httpx.AsyncClient(auth=auth, base_url=url) as http:
        response = await http.request("GET", f"/v2/{PROJECT_ID}/graphs/jobs", content=b'{"x": 1}')
    assert response.status_code == 200
    assert fake.aksk_verdicts == [True]


# --- token, selection, hygiene --------------------------------------------------------------


async def test_static_token_401_is_not_retried(cloud: tuple[FakeCloud, str], clock: FakeClock) -> None:
    fake, url = cloud
    settings = ProjectSettings(
        alias="t", project_id=PROJECT_ID, endpoint=url, region=None, auth="token", token=SecretStr("expired")
    )
    async with make_client(settings, clock) as client:
        with pytest.raises(AuthError, match="HTTP 401"):
            await client.list_page(ListQuery(), 0, 10)
        assert client.requests_sent == 1
    assert fake.ges_tokens == ["expired"]


def test_auth_for_picks_by_method() -> None:
    url = "http://127.0.0.1:1"
    token = ProjectSettings(alias="t", project_id="p", endpoint=url, region=None, auth="token", token=SecretStr("x"))
    assert isinstance(auth_for(token), TokenAuth)
    assert isinstance(auth_for(aksk_project(url)), AkSkAuth)
    assert isinstance(auth_for(password_project(url)), IamPasswordAuth)
    broken = ProjectSettings(alias="b", project_id="p", endpoint=url, region=None, auth="aksk", ak=SecretStr("a"))
    with pytest.raises(ConfigError, match="project 'b'"):
        auth_for(broken)


def test_reprs_hide_secrets() -> None:
    url = "http://127.0.0.1:1"
    for auth in (TokenAuth(SecretStr("tok-secret")), auth_for(aksk_project(url)), auth_for(password_project(url))):
        text = repr(auth)
        assert "tok-secret" not in text
        assert SK not in text
        assert AK not in text
        assert PASSWORD not in text


def test_sync_clients_are_refused() -> None:
    with httpx.Client(auth=TokenAuth(SecretStr("x"))) as http, pytest.raises(RuntimeError, match="AsyncClient only"):
        http.get("http://127.0.0.1:1/")


# --- against the GES emulator's gateway and IAM ----------------------------------------------


@pytest.mark.parametrize("method", ["aksk", "token", "password"])
async def test_emulator_accepts_every_auth_method(method: str) -> None:
    async with run_emulator() as emu:
        await emu.add_job(status="failed", job_name="ImportGraph", related_graph="movies")
        settings = emu.project_settings(method)  # type: ignore[arg-type]
        async with JobCenterClient(settings) as client:
            page = await client.list_page(ListQuery.build(graph_name="movies", status="failed"), 0, 10)
            assert client.requests_sent == 1
    assert [j.graph for j in page.jobs] == ["movies"]


async def test_emulator_expired_tokens_are_renewed_once() -> None:
    async with run_emulator() as emu:
        async with JobCenterClient(emu.project_settings("password")) as client:
            await client.list_page(ListQuery(), 0, 10)
            await emu.expire_tokens()
            await client.list_page(ListQuery(), 0, 10)
            assert client.requests_sent == 3
            auth = client.auth
            assert isinstance(auth, IamPasswordAuth)
            assert auth.tokens_issued == 2
        async with JobCenterClient(emu.project_settings("token")) as client:
            with pytest.raises(AuthError, match="token expires"):
                await client.list_page(ListQuery(), 0, 10)
        stats = await emu.stats()
    assert stats["requests"]["POST /v3/auth/tokens"] == 2


async def test_emulator_refuses_a_wrong_sk() -> None:
    async with run_emulator() as emu:
        settings = emu.project_settings("aksk")
        wrong = ProjectSettings(
            alias="x",
            project_id=settings.project_id,
            endpoint=settings.endpoint,
            region=None,
            auth="aksk",
            ak=settings.ak,
            sk=SecretStr("wrong-secret-key"),
        )
        async with JobCenterClient(wrong) as client:
            with pytest.raises(AuthError) as err:
                await client.list_page(ListQuery(), 0, 10)
    assert err.value.http_status == 401
    assert "wrong-secret-key" not in str(err.value)
