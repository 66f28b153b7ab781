"""How requests to GES prove who sends them: ``httpx.Auth`` classes for the three ways.

- :class:`TokenAuth` — a fixed IAM token in ``X-Auth-Token`` (expires after 24 h; for trying).
- :class:`IamPasswordAuth` — IAM user name and password exchanged for a token at
  ``{iam}/v3/auth/tokens``; cached, renewed before it expires and once on a 401, one renewal
  shared by every concurrent request.
- :class:`AkSkAuth` — ``SDK-HMAC-SHA256`` request signing with an access key (recommended);
  the signature itself is :mod:`ges_bot.jobcenter.signing`.

:func:`auth_for` picks one from a :class:`~ges_bot.config.ProjectSettings`. This module owns
credentials in flight and nothing else: no paging, no retries of GES calls (the client owns
those), and it never logs or puts into an error message a token, password, SK or signature.
The flows are async only (the bot is asyncio end to end).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from ges_bot.clock import Clock, utc_now
from ges_bot.config import ProjectSettings
from ges_bot.errors import AuthError, ConfigError, ResponseError, TransportError
from ges_bot.jobcenter.signing import SDK_DATE_FORMAT, authorization_header, compute_signature
from ges_bot.jobcenter.wire import parse_error_body, parse_time

__all__ = [
    "AkSkAuth",
    "IamAuthError",
    "IamPasswordAuth",
    "IamToken",
    "TokenAuth",
    "auth_for",
]

log = logging.getLogger(__name__)

#: Headers :class:`AkSkAuth` signs — the ones it sets itself. Not httpx's ``Accept-Encoding`` or
#: ``Connection``, which a proxy may rewrite on the way and so break a valid signature.
SIGNED_HEADERS: tuple[str, ...] = ("content-type", "host", "x-project-id", "x-sdk-date")

#: How long to trust a token whose IAM answer carried no readable ``expires_at``.
_UNKNOWN_LIFETIME = timedelta(hours=1)
#: Renew when less than this share of the token's lifetime remains …
_RENEW_FRACTION = 0.1
#: … or less than this much, whichever is smaller.
_RENEW_MARGIN_CAP = timedelta(hours=1)


class _AsyncOnly(httpx.Auth):
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError(f"{type(self).__name__} works with httpx.AsyncClient only")
        yield request  # pragma: no cover - makes this a generator


class TokenAuth(_AsyncOnly):
    """A fixed token in ``X-Auth-Token``. A 401 is the caller's to report: nothing can renew it."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "TokenAuth(token=**********)"

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["X-Auth-Token"] = self._token.get_secret_value()
        yield request


class AkSkAuth(_AsyncOnly):
    """Signs each request with AK/SK (``SDK-HMAC-SHA256``), as the official SDK does.

    Adds ``X-Sdk-Date`` (from ``clock``), ``X-Project-Id`` and ``Content-Type: application/json``
    when absent (httpx has already set ``Host``), signs exactly those four headers, and sets
    ``Authorization``. The gateway rejects a date more than 15 minutes off, so the host clock
    matters; a retried request is re-signed with a fresh date.
    """

    requires_request_body = True

    def __init__(self, ak: SecretStr, sk: SecretStr, project_id: str | None, *, clock: Clock = utc_now) -> None:
        self._ak = ak
        self._sk = sk
        self._project_id = project_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"AkSkAuth(ak=**********, sk=**********, project_id={self._project_id!r})"

    def sign(self, request: httpx.Request) -> None:
        """Add the signing headers and ``Authorization`` to ``request`` (its body must be read)."""
        headers = request.headers
        headers["X-Sdk-Date"] = self._clock().astimezone(UTC).strftime(SDK_DATE_FORMAT)
        if self._project_id and "X-Project-Id" not in headers:
            headers["X-Project-Id"] = self._project_id
        if "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        names = [n for n in SIGNED_HEADERS if n in headers]
        parts = compute_signature(
            sk=self._sk.get_secret_value(),
            method=request.method,
            path=request.url.path,
            query=request.url.params.multi_items(),
            headers={n: headers[n] for n in names},
            body=request.content,
            signed_header_names=names,
        )
        headers["Authorization"] = authorization_header(self._ak.get_secret_value(), parts)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self.sign(request)
        yield request


@dataclass(frozen=True, slots=True)
class IamToken:
    """A token IAM issued, and when to stop trusting it."""

    value: SecretStr
    expires_at: datetime
    renew_at: datetime


class IamAuthError(AuthError):
    """IAM refused to issue a token (or answered something unusable). Never names the password."""

    def __init__(
        self,
        http_status: int,
        error_code: str | None,
        error_msg: str | None,
        request_id: str | None = None,
        *,
        iam_endpoint: str,
        user: str,
        domain: str,
    ) -> None:
        self.iam_endpoint = iam_endpoint
        self.user = user
        self.domain = domain
        super().__init__(http_status, error_code, error_msg, request_id)

    def _describe(self) -> str:
        text = (
            f"IAM at {self.iam_endpoint} would not issue a token for user {self.user!r} of account "
            f"{self.domain!r}: HTTP {self.http_status}"
        )
        # IAM's own bodies carry the status again as their "code"; say it once.
        if self.error_code and self.error_code != str(self.http_status):
            text += f" {self.error_code}"
        if self.error_msg:
            text += f": {self.error_msg}"
        if self.http_status in (400, 401, 403):
            text += " — check GES_IAM_DOMAIN, GES_IAM_USER, GES_IAM_PASSWORD and the project id"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class IamPasswordAuth(_AsyncOnly):
    """IAM password → token, cached and renewed; sent as ``X-Auth-Token``.

    The token is renewed when less than ``min(10 % of its lifetime, 1 h)`` remains, and once more
    when GES answers 401 to it (after which the 401 stands). Concurrent requests wait for one
    renewal under a lock instead of each asking IAM. IAM's own answers are errors of type
    :class:`IamAuthError` (an :class:`~ges_bot.errors.AuthError`); an unreachable IAM is a
    :class:`~ges_bot.errors.TransportError`.

    The IAM calls go through this object's own ``httpx.AsyncClient`` (so they are not counted as
    GES requests); close it with :meth:`aclose`.
    """

    def __init__(
        self,
        iam_endpoint: str,
        domain: str,
        user: str,
        password: SecretStr,
        project_id: str,
        *,
        clock: Clock = utc_now,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._iam_endpoint = iam_endpoint.rstrip("/")
        self._domain = domain
        self._user = user
        self._password = password
        self._project_id = project_id
        self._clock = clock
        self._timeout = timeout
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False)
        self._token: IamToken | None = None
        self._lock = asyncio.Lock()
        #: How many tokens this object obtained from IAM (tests and metrics read it).
        self.tokens_issued = 0

    def __repr__(self) -> str:
        return f"IamPasswordAuth(iam_endpoint={self._iam_endpoint!r}, domain={self._domain!r}, user={self._user!r}, password=**********)"

    @property
    def token(self) -> IamToken | None:
        """The cached token, if any (its value stays a ``SecretStr``)."""
        return self._token

    async def aclose(self) -> None:
        await self._http.aclose()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._current(stale=None)
        request.headers["X-Auth-Token"] = token.value.get_secret_value()
        response = yield request
        if response.status_code == 401:
            # The token may have been revoked (password change) or expired early: renew once.
            # If another request already replaced this token, use that one instead.
            token = await self._current(stale=token)
            request.headers["X-Auth-Token"] = token.value.get_secret_value()
            yield request

    async def _current(self, *, stale: IamToken | None) -> IamToken:
        """A usable token; renewed when none is cached, it is due, or it is ``stale``."""
        async with self._lock:
            token = self._token
            if token is None or token is stale or self._clock() >= token.renew_at:
                if token is not None:
                    reason = "GES refused it" if token is stale else "it expires soon"
                    log.info("renewing the IAM token for user %r (%s)", self._user, reason)
                token = await self._issue()
                self._token = token
            return token

    def _body(self) -> dict[str, Any]:
        return {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "domain": {"name": self._domain},
                            "name": self._user,
                            "password": self._password.get_secret_value(),
                        }
                    },
                },
                "scope": {"project": {"id": self._project_id}},
            }
        }

    def _error(self, status: int, code: str | None, msg: str | None, request_id: str | None) -> IamAuthError:
        return IamAuthError(
            status, code, msg, request_id, iam_endpoint=self._iam_endpoint, user=self._user, domain=self._domain
        )

    async def _issue(self) -> IamToken:
        url = f"{self._iam_endpoint}/v3/auth/tokens"
        try:
            response = await self._http.post(url, json=self._body())
        except httpx.TimeoutException:
            raise TransportError(f"IAM at {self._iam_endpoint} did not answer within {self._timeout:g}s") from None
        except httpx.TransportError as exc:
            raise TransportError(f"could not reach IAM at {self._iam_endpoint}: {exc}") from None
        request_id = response.headers.get("X-Request-Id")
        if response.status_code not in (200, 201):
            try:
                code, msg = parse_error_body(response.json())
            except ValueError:
                code, msg = None, response.reason_phrase or None
            raise self._error(response.status_code, code, msg, request_id)
        value = response.headers.get("X-Subject-Token")
        if not value:
            raise self._error(response.status_code, None, "the answer has no X-Subject-Token header", request_id)
        now = self._clock()
        issued_at, expires_at = self._lifetime(response)
        if expires_at is None:
            log.warning("IAM gave no readable token.expires_at; trusting the token for %s", _UNKNOWN_LIFETIME)
            expires_at = now + _UNKNOWN_LIFETIME
        lifetime = expires_at - (issued_at or now)
        margin = min(max(lifetime, timedelta(0)) * _RENEW_FRACTION, _RENEW_MARGIN_CAP)
        self.tokens_issued += 1
        log.info("IAM issued a token for user %r, expiring at %s", self._user, expires_at.isoformat())
        return IamToken(value=SecretStr(value), expires_at=expires_at, renew_at=expires_at - margin)

    def _lifetime(self, response: httpx.Response) -> tuple[datetime | None, datetime | None]:
        try:
            token = response.json()["token"]
            return parse_time(token.get("issued_at")), parse_time(token.get("expires_at"))
        except (ValueError, KeyError, TypeError, AttributeError, ResponseError):
            return None, None


def auth_for(
    project: ProjectSettings,
    *,
    clock: Clock = utc_now,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.Auth:
    """The ``httpx.Auth`` for ``project.auth`` (``token``, ``aksk`` or ``password``).

    ``timeout`` and ``transport`` apply to IAM calls of the password method.
    """
    where = f"project {project.alias!r}"
    if project.auth == "token":
        if project.token is None:
            raise ConfigError(f"{where}: auth is 'token' but no token is set (GES_TOKEN)")
        return TokenAuth(project.token)
    if project.auth == "aksk":
        if project.ak is None or project.sk is None:
            raise ConfigError(f"{where}: auth is 'aksk' but HUAWEICLOUD_SDK_AK or HUAWEICLOUD_SDK_SK is missing")
        return AkSkAuth(project.ak, project.sk, project.project_id, clock=clock)
    if project.auth != "password":
        raise ConfigError(f"{where}: unknown auth method {project.auth!r}; use token, aksk or password")
    if not (project.iam_endpoint and project.iam_domain and project.iam_user and project.iam_password is not None):
        raise ConfigError(
            f"{where}: auth is 'password' but the IAM endpoint, GES_IAM_DOMAIN, GES_IAM_USER or GES_IAM_PASSWORD is missing"
        )
    return IamPasswordAuth(
        project.iam_endpoint,
        project.iam_domain,
        project.iam_user,
        project.iam_password,
        project.project_id,
        clock=clock,
        timeout=timeout,
        transport=transport,
    )
