"""Run the GES emulator on a loopback port for a test, and drive it over its control API.

Usage::

    async with run_emulator() as emu:                     # any EmulatorSettings field as keyword
        job = await emu.add_job(status="failed", job_name="ImportGraph", related_graph="movies")
        await emu.fault(status=503, count=2)              # next 2 job-center answers: 503
        project = emu.project_settings(auth="aksk")       # a ges_bot.config.ProjectSettings
        ...
        assert (await emu.stats())["requests"]["GET /v2/{project_id}/graphs/jobs"] == 3

The handle's helpers talk HTTP to ``/_emulator/…`` (see ``ges_bot.emulator.app`` for the API);
``emu.state`` is the emulator's in-process state for the rare test that needs more.
Credentials: ``emu.ak``/``emu.sk`` (AK/SK), ``emu.token`` (a static token), and the IAM user
``emu.iam_domain``/``emu.iam_user``/``emu.iam_password`` (token via ``POST /v3/auth/tokens`` on
``emu.url``). :func:`sign` signs a request as the official SDK does, for tests that call the
emulator without the bot's client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from ges_bot.config import ProjectSettings
from ges_bot.emulator import EmulatorSettings, EmulatorState, create_app, emulator_state
from ges_bot.emulator.settings import DEMO_TOKEN
from ges_bot.jobcenter.signing import SDK_DATE_FORMAT, authorization_header, compute_signature
from tests.support.asgi import serve

__all__ = ["LIST_ROUTE", "EmulatorHandle", "run_emulator", "sign"]

#: The stats key of the job list route.
LIST_ROUTE = "GET /v2/{project_id}/graphs/jobs"


def sign(
    ak: str,
    sk: str,
    method: str,
    url: str,
    *,
    params: Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    when: datetime | None = None,
) -> dict[str, str]:
    """Headers (``X-Sdk-Date``, ``Host``, ``Authorization`` and ``headers``) that sign a request the
    way ``huaweicloudsdkcore``'s Signer does; ``url`` has no query string, ``params`` are raw."""
    parts = urlsplit(url)
    out = {"Content-Type": "application/json", **(headers or {})}
    out["X-Sdk-Date"] = (when or datetime.now(UTC)).strftime(SDK_DATE_FORMAT)
    out["Host"] = parts.netloc
    signed = compute_signature(
        sk=sk, method=method, path=parts.path, query=list(params), headers=out, body=body, signed_header_names=None
    )
    out["Authorization"] = authorization_header(ak, signed)
    return out


@dataclass
class EmulatorHandle:
    """A running emulator: its URL, credentials and control helpers."""

    url: str
    settings: EmulatorSettings
    state: EmulatorState
    control: httpx.AsyncClient

    @property
    def project_id(self) -> str:
        return self.settings.project_id

    @property
    def ak(self) -> str:
        return self.settings.ak

    @property
    def sk(self) -> str:
        return self.settings.sk

    @property
    def token(self) -> str:
        """The first static token (a ``GES_TOKEN`` user's token)."""
        return self.settings.static_tokens[0].token if self.settings.static_tokens else DEMO_TOKEN

    @property
    def iam_domain(self) -> str:
        return self.settings.users[0].domain

    @property
    def iam_user(self) -> str:
        return self.settings.users[0].name

    @property
    def iam_password(self) -> str:
        return self.settings.users[0].password

    @property
    def list_url(self) -> str:
        return f"{self.url}/v2/{self.project_id}/graphs/jobs"

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = await self.control.request(method, path, json=json)
        if response.status_code >= 400:
            raise AssertionError(f"emulator control {method} {path} → {response.status_code}: {response.text}")
        return response.json() if response.content else None

    # --- jobs ------------------------------------------------------------------------------
    async def add_job(self, **wire_fields: Any) -> dict[str, Any]:
        """Add one job (wire fields; ``project_id``/``graph_id`` optional). Returns it as stored
        (wire form with ``T`` times, plus ``project_id`` and ``graph_id``)."""
        job: dict[str, Any] = await self._call("POST", "/_emulator/jobs", wire_fields)
        return job

    async def add_jobs(self, jobs: Sequence[Mapping[str, Any]], *, project_id: str | None = None) -> list[str]:
        """Add many jobs at once; returns their job ids in order."""
        body: dict[str, Any] = {"jobs": [dict(j) for j in jobs]}
        if project_id is not None:
            body["project_id"] = project_id
        result = await self._call("POST", "/_emulator/jobs/bulk", body)
        return list(result["job_ids"])

    async def patch_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Change wire fields of a job (a move to a terminal status sets ``end_time`` to now)."""
        job: dict[str, Any] = await self._call("PATCH", f"/_emulator/jobs/{job_id}", fields)
        return job

    async def delete_job(self, job_id: str) -> None:
        await self._call("DELETE", f"/_emulator/jobs/{job_id}")

    async def jobs(self) -> list[dict[str, Any]]:
        """Every job the emulator holds (control form)."""
        return list((await self._call("GET", "/_emulator/jobs"))["jobs"])

    # --- faults, stats, clock, settings --------------------------------------------------------
    async def fault(self, **spec: Any) -> None:
        """Queue a fault, e.g. ``fault(status=503, count=2)``, ``fault(latency_ms=500)``,
        ``fault(malformed=True)``, ``fault(truncated=True)``, ``fault(shift=True)``."""
        await self._call("POST", "/_emulator/faults", spec)

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_emulator/faults")

    async def expire_tokens(self) -> None:
        """Make every token issued so far (and the static ones) expired."""
        await self._call("POST", "/_emulator/faults", {"expire_tokens": True})

    async def stats(self) -> dict[str, Any]:
        """``{"requests": {"GET /v2/{project_id}/graphs/jobs": n, …}, "responses": {…}, "recent": […]}``."""
        stats: dict[str, Any] = await self._call("GET", "/_emulator/stats")
        return stats

    async def list_calls(self) -> int:
        """How many job-list requests the emulator has answered (since the last reset)."""
        return int((await self.stats())["requests"].get(LIST_ROUTE, 0))

    async def reset_stats(self) -> None:
        await self._call("DELETE", "/_emulator/stats")

    async def advance(self, seconds: float) -> datetime:
        """Move the emulated clock forward (scenarios progress; tokens may expire). Returns now."""
        return _now((await self._call("POST", "/_emulator/clock", {"advance_s": seconds}))["now"])

    async def set_time(self, when: datetime) -> datetime:
        return _now((await self._call("POST", "/_emulator/clock", {"now": when.isoformat()}))["now"])

    async def now(self) -> datetime:
        return _now((await self._call("GET", "/_emulator/clock"))["now"])

    async def configure(self, **changes: Any) -> dict[str, Any]:
        """Change run-time settings (order, max_limit, time_format, date_filter_field, …)."""
        view: dict[str, Any] = await self._call("POST", "/_emulator/settings", changes)
        return view

    # --- pointing the bot at it ------------------------------------------------------------
    def project_settings(
        self, auth: Literal["aksk", "token", "password"] = "aksk", alias: str = "default"
    ) -> ProjectSettings:
        """A :class:`ProjectSettings` for this emulator with one auth method."""
        common: dict[str, Any] = {"alias": alias, "project_id": self.project_id, "endpoint": self.url, "region": None}
        if auth == "aksk":
            return ProjectSettings(auth="aksk", ak=SecretStr(self.ak), sk=SecretStr(self.sk), **common)
        if auth == "token":
            return ProjectSettings(auth="token", token=SecretStr(self.token), **common)
        return ProjectSettings(
            auth="password",
            iam_endpoint=self.url,
            iam_domain=self.iam_domain,
            iam_user=self.iam_user,
            iam_password=SecretStr(self.iam_password),
            **common,
        )


def _now(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextlib.asynccontextmanager
async def run_emulator(**settings: Any) -> AsyncIterator[EmulatorHandle]:
    """Serve a fresh emulator (``EmulatorSettings(**settings)``) on a free loopback port."""
    emu_settings = EmulatorSettings(**settings)
    app = create_app(emu_settings)
    # Plain HTTP on loopback: verify=False only skips loading CA certificates (~0.1 s per client).
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10, verify=False) as control:  # noqa: S501
        yield EmulatorHandle(url=url, settings=emu_settings, state=emulator_state(app), control=control)
