"""The Slack Web API as delivery sees it: post, update, DM — and one table that classifies failures.

This module owns the translation of slack_sdk outcomes into our error tree
(:class:`~ges_bot.errors.RetryableSlackError` / :class:`~ges_bot.errors.PermanentSlackError` with a
:class:`~ges_bot.errors.FailureScope`). It never retries by itself: the outbox worker owns backoff (one stage, one
policy), so the ``AsyncWebClient`` here is built with no retry handlers. It must not decide what to
do about a failure (``notify.delivery`` does) nor render anything.

Classification, in order:

1. HTTP 429 or ``ratelimited`` → retryable, with ``Retry-After`` (seconds) when Slack sent one.
2. HTTP 5xx, or an error in :data:`RETRYABLE_ERRORS` → retryable.
3. An error in :data:`PERMANENT_ERRORS` → permanent, with that table's scope.
4. Any other HTTP 4xx without a Slack error string (a proxy page, a wrong ``SLACK_API_URL``) →
   permanent for the *installation*: a person must fix the configuration, and nothing is lost.
5. Any other Slack error string → permanent for the *message* only. An error we do not know must
   not mark a channel's subscriptions broken (that needs a person to re-subscribe); the row is
   given up, logged and counted instead.
6. Timeouts, connection errors and anything unexpected → retryable.

Each error gets its :class:`~ges_bot.errors.FailureCategory` here, once (a permanent error's is its
scope); delivery counts failures by it and never reads the error string back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from ges_bot.errors import FailureCategory, FailureScope, PermanentSlackError, RetryableSlackError, SlackDeliveryError

__all__ = [
    "PERMANENT_ERRORS",
    "RETRYABLE_ERRORS",
    "FailureCategory",
    "FailureScope",
    "PermanentSlackError",
    "Posted",
    "SlackGateway",
    "WebApiGateway",
    "classify",
]


#: Slack error strings → scope (``chat.postMessage``, ``chat.update``, ``conversations.open``).
PERMANENT_ERRORS: dict[str, FailureScope] = {
    "channel_not_found": FailureScope.TARGET,
    "not_in_channel": FailureScope.TARGET,
    "is_archived": FailureScope.TARGET,
    "restricted_action": FailureScope.TARGET,
    "restricted_action_read_only_channel": FailureScope.TARGET,
    "restricted_action_thread_only_channel": FailureScope.TARGET,
    "restricted_action_non_threadable_channel": FailureScope.TARGET,
    "ekm_access_denied": FailureScope.TARGET,
    "team_not_found": FailureScope.TARGET,
    "user_not_found": FailureScope.TARGET,
    "user_disabled": FailureScope.TARGET,
    "cannot_dm_bot": FailureScope.TARGET,
    "msg_too_long": FailureScope.MESSAGE,
    "no_text": FailureScope.MESSAGE,
    "invalid_blocks": FailureScope.MESSAGE,
    "invalid_blocks_format": FailureScope.MESSAGE,
    "invalid_attachments": FailureScope.MESSAGE,
    "invalid_arguments": FailureScope.MESSAGE,
    "too_many_attachments": FailureScope.MESSAGE,
    "message_not_found": FailureScope.MESSAGE,
    "cant_update_message": FailureScope.MESSAGE,
    "edit_window_closed": FailureScope.MESSAGE,
    "not_authed": FailureScope.INSTALLATION,
    "invalid_auth": FailureScope.INSTALLATION,
    "account_inactive": FailureScope.INSTALLATION,
    "token_revoked": FailureScope.INSTALLATION,
    "token_expired": FailureScope.INSTALLATION,
    "missing_scope": FailureScope.INSTALLATION,
    "not_allowed_token_type": FailureScope.INSTALLATION,
    "team_access_not_granted": FailureScope.INSTALLATION,
    "no_permission": FailureScope.INSTALLATION,
    "access_denied": FailureScope.INSTALLATION,
}

RETRYABLE_ERRORS: frozenset[str] = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "timeout"}
)


def classify(exc: BaseException) -> SlackDeliveryError:
    """Map anything a Web API call raised to a retryable or permanent delivery error (see the
    module docstring for the rules)."""
    if isinstance(exc, SlackDeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        status = int(getattr(exc.response, "status_code", 200) or 200)
        data = getattr(exc.response, "data", None)
        error = str(data.get("error") or "") if isinstance(data, dict) else ""
        if status == 429 or error == "ratelimited":
            headers = getattr(exc.response, "headers", {}) or {}
            return RetryableSlackError(
                "ratelimited", retry_after=_retry_after(headers), category=FailureCategory.RATELIMITED
            )
        if status >= 500 or error in RETRYABLE_ERRORS:
            return RetryableSlackError(error or f"http_{status}")
        if error in PERMANENT_ERRORS:
            return PermanentSlackError(error, PERMANENT_ERRORS[error])
        if not error:
            # Not Slack's answer at all: a wrong SLACK_API_URL or a proxy in the way.
            scope = FailureScope.INSTALLATION if status >= 400 else FailureScope.MESSAGE
            return PermanentSlackError(f"http_{status}" if status >= 400 else "unknown_error", scope)
        return PermanentSlackError(error, FailureScope.MESSAGE)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return RetryableSlackError("timeout", category=FailureCategory.CONNECTION)
    if isinstance(exc, aiohttp.ClientError | SlackRequestError | OSError | ConnectionError):
        return RetryableSlackError(f"connection_error: {type(exc).__name__}", category=FailureCategory.CONNECTION)
    return RetryableSlackError(f"unexpected: {type(exc).__name__}", category=FailureCategory.SERVER)


def _retry_after(headers: Any) -> float | None:
    for key in ("Retry-After", "retry-after"):
        value = headers.get(key) if hasattr(headers, "get") else None
        if value is not None:
            if isinstance(value, list):
                value = value[0] if value else None
            try:
                return max(0.0, float(str(value)))
            except ValueError:
                return None
    return None


@dataclass(frozen=True, slots=True)
class Posted:
    """A message Slack accepted: the channel id Slack resolved and the message ``ts``."""

    channel: str
    ts: str


class SlackGateway(Protocol):
    """What delivery needs from Slack. Implementations raise only ``SlackDeliveryError``s.

    ``blocks`` empty means a text-only message (the fallback for payloads Slack refuses).
    """

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
    ) -> Posted: ...

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...

    async def open_dm(self, user_id: str) -> str: ...


class WebApiGateway:
    """:class:`SlackGateway` over slack_sdk's ``AsyncWebClient`` (base URL configurable for stand-ins).

    One aiohttp session is shared by every call (created on first use, inside the running loop)
    so connections are reused; ``timeout`` bounds each call. Call :meth:`aclose` when done.
    """

    def __init__(self, token: str, *, base_url: str, timeout: float) -> None:
        self.timeout = float(timeout)
        self._token = token
        self._base_url = base_url
        self._client: AsyncWebClient | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def client(self) -> AsyncWebClient:
        if self._client is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._client = AsyncWebClient(
                token=self._token,
                base_url=self._base_url,
                timeout=int(max(1, self.timeout)),
                session=self._session,
                retry_handlers=[],
            )
        return self._client

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            # The session's timeout bounds the HTTP exchange; this one also bounds slack_sdk's own work.
            async with asyncio.timeout(self.timeout + 1.0):
                return await call()
        except Exception as exc:
            raise classify(exc) from exc

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
    ) -> Posted:
        # No link_names / parse: untrusted text must never turn into mentions or links. Unfurling
        # off: log paths and causes must never expand into previews.
        client = self.client
        resp = await self._call(
            lambda: client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks or None,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        return Posted(channel=str(resp.get("channel") or channel), ts=str(resp["ts"]))

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        client = self.client
        await self._call(lambda: client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks))

    async def open_dm(self, user_id: str) -> str:
        client = self.client
        resp = await self._call(lambda: client.conversations_open(users=user_id))
        channel = resp.get("channel") or {}
        return str(channel.get("id")) if isinstance(channel, dict) else str(channel)

    async def aclose(self) -> None:
        session, self._session, self._client = self._session, None, None
        if session is not None and not session.closed:
            with contextlib.suppress(Exception):
                await session.close()
