"""The Slack Web API as delivery sees it: post, update, DM — and one table that classifies failures.

This module owns the translation of slack_sdk outcomes into our error tree
(:class:`~ges_bot.errors.RetryableSlackError` / :class:`~ges_bot.errors.PermanentSlackError`).
It never retries by itself: the outbox worker owns backoff (one stage, one policy), so the
``AsyncWebClient`` here is built with no retry handlers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from ges_bot.errors import PermanentSlackError, RetryableSlackError, SlackDeliveryError


class FailureScope(StrEnum):
    """Whom a permanent failure concerns: used to decide who must be told."""

    TARGET = "target"  # this channel: the subscription is broken
    MESSAGE = "message"  # this payload: Slack will never take it as it is
    INSTALLATION = "installation"  # the token or app: nothing can be posted anywhere


#: Slack error strings → scope. Anything not listed and not retryable is treated as a target error.
PERMANENT_ERRORS: dict[str, FailureScope] = {
    "channel_not_found": FailureScope.TARGET,
    "not_in_channel": FailureScope.TARGET,
    "is_archived": FailureScope.TARGET,
    "restricted_action": FailureScope.TARGET,
    "restricted_action_read_only_channel": FailureScope.TARGET,
    "restricted_action_thread_only_channel": FailureScope.TARGET,
    "restricted_action_non_threadable_channel": FailureScope.TARGET,
    "ekm_access_denied": FailureScope.TARGET,
    "msg_too_long": FailureScope.MESSAGE,
    "no_text": FailureScope.MESSAGE,
    "invalid_blocks": FailureScope.MESSAGE,
    "invalid_blocks_format": FailureScope.MESSAGE,
    "too_many_attachments": FailureScope.MESSAGE,
    "not_authed": FailureScope.INSTALLATION,
    "invalid_auth": FailureScope.INSTALLATION,
    "account_inactive": FailureScope.INSTALLATION,
    "token_revoked": FailureScope.INSTALLATION,
    "token_expired": FailureScope.INSTALLATION,
    "missing_scope": FailureScope.INSTALLATION,
    "not_allowed_token_type": FailureScope.INSTALLATION,
    "team_access_not_granted": FailureScope.INSTALLATION,
}

RETRYABLE_ERRORS: frozenset[str] = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "timeout"}
)


class SlackPermanentError(PermanentSlackError):
    """A permanent Slack refusal, with the scope it concerns."""

    def __init__(self, error: str, scope: FailureScope) -> None:
        super().__init__(error)
        self.scope = scope


def classify(exc: BaseException) -> SlackDeliveryError:
    """Map anything a Web API call raised to a retryable or permanent delivery error."""
    if isinstance(exc, SlackDeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        data = getattr(exc.response, "data", None)
        error = str(data.get("error", "unknown_error")) if isinstance(data, dict) else "unknown_error"
        if status == 429 or error == "ratelimited":
            headers = getattr(exc.response, "headers", {}) or {}
            retry_after = _retry_after(headers)
            return RetryableSlackError("ratelimited", retry_after=retry_after)
        if status >= 500 or error in RETRYABLE_ERRORS:
            return RetryableSlackError(error if error != "unknown_error" else f"http_{status}")
        return SlackPermanentError(error, PERMANENT_ERRORS.get(error, FailureScope.TARGET))
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return RetryableSlackError("timeout")
    if isinstance(exc, aiohttp.ClientError | SlackRequestError | OSError | ConnectionError):
        return RetryableSlackError(f"connection_error: {type(exc).__name__}")
    return RetryableSlackError(f"unexpected: {type(exc).__name__}")


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
    channel: str
    ts: str


class SlackGateway(Protocol):
    """What delivery needs from Slack. Implementations raise only ``SlackDeliveryError``s."""

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
    ) -> Posted: ...

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...

    async def open_dm(self, user_id: str) -> str: ...


class WebApiGateway:
    """:class:`SlackGateway` over slack_sdk's ``AsyncWebClient`` (base URL configurable for stand-ins)."""

    def __init__(self, token: str, *, base_url: str, timeout: float) -> None:
        self.client = AsyncWebClient(token=token, base_url=base_url, timeout=int(max(1, timeout)), retry_handlers=[])

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], *, thread_ts: str | None = None
    ) -> Posted:
        try:
            # unfurl off: log paths and causes must never expand into previews; no link_names/parse.
            resp = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            raise classify(exc) from exc
        return Posted(channel=str(resp.get("channel") or channel), ts=str(resp["ts"]))

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except Exception as exc:
            raise classify(exc) from exc

    async def open_dm(self, user_id: str) -> str:
        try:
            resp = await self.client.conversations_open(users=user_id)
        except Exception as exc:
            raise classify(exc) from exc
        channel = resp.get("channel") or {}
        return str(channel.get("id")) if isinstance(channel, dict) else str(channel)

    async def aclose(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None and not session.closed:
            await session.close()
