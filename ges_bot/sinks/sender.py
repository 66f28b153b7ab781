"""Posting a rendered body to a group-bot webhook, and what each platform's answer means.

Owns: signing on the way out (Lark: ``timestamp`` + ``sign`` in the body; DingTalk: in the query),
the HTTP call (httpx, with a timeout — one call, no retries: the sink worker owns retries), and
:func:`classify` — the one table of each platform's answers (``shared/chats/NOTES.md``):

==============  ======================================================================
``SENT``        Lark ``code`` 0; DingTalk / WeCom ``errcode`` 0; Teams 200/202; Slack "ok"
``RATE``        Lark 9499 (HTTP 200) and 11232; DingTalk 130101 (then refused for 10 min);
                WeCom 45009; HTTP 429 (``Retry-After`` honoured) — retry after the window
``BROKEN``      a bad signature or stale timestamp (Lark 19021, DingTalk 310000 "sign"/
                "timestamp"), a keyword not found (19024, 310000 "keywords"), the IP refused
                (19022, 310000 "ip"), an invalid webhook (Lark 19001/19002, DingTalk 300001,
                WeCom 93000, Teams 401/403/404, Slack 403/404/410) — the sink is broken: a
                person must fix it; its rows wait
``OVERSIZED``   Lark 230025, DingTalk 460101, WeCom 40058, HTTP 413 — send a shorter rendering
``REFUSED``     the body was malformed (HTTP 400, WeCom 40001/40008, DingTalk 43004)
``RETRY``       anything else: 5xx, timeouts, unreadable answers
==============  ======================================================================

Never logs or returns the URL or secret: details are the platform's code and message, and a
transport failure is named by its exception type only (httpx messages may hold the URL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from ges_bot.config import SinkSettings
from ges_bot.sinks.common import body_bytes
from ges_bot.sinks.signing import dingtalk_signed_url, lark_signed_body

__all__ = ["Answer", "Outcome", "SinkSender", "classify"]


class Outcome(StrEnum):
    SENT = "sent"
    RATE = "rate_limited"
    BROKEN = "broken"
    OVERSIZED = "oversized"
    REFUSED = "refused"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one post came to. ``detail`` is safe to log and show (no URL, no secret)."""

    outcome: Outcome
    detail: str = ""
    #: Seconds to wait before the next post to this webhook (rate limits).
    retry_after: float | None = None


#: How long a platform keeps refusing after its rate limit was hit (when it says nothing).
RATE_WINDOWS: dict[str, float] = {"lark": 5.0, "dingtalk": 600.0, "wecom": 60.0, "teams": 30.0, "slack": 30.0}

_LARK: dict[int, tuple[Outcome, str]] = {
    11232: (Outcome.RATE, "rate limited"),
    9499: (Outcome.RATE, "rate limited"),
    19021: (Outcome.BROKEN, "signature refused: check the secret and this machine's clock"),
    19022: (Outcome.BROKEN, "this machine's IP address is not on the bot's allow-list"),
    19024: (Outcome.BROKEN, "the bot requires a keyword the alert lacks: add 'GES' to its keywords"),
    19001: (Outcome.BROKEN, "the webhook is invalid: the bot was removed or the URL is wrong"),
    19002: (Outcome.BROKEN, "the webhook is invalid: the bot was removed or the URL is wrong"),
    230025: (Outcome.OVERSIZED, "message too long"),
}
_DINGTALK: dict[int, tuple[Outcome, str]] = {
    130101: (Outcome.RATE, "sending too fast (20 a minute; refused for 10 minutes)"),
    300001: (Outcome.BROKEN, "the webhook's access token is invalid: the robot was removed or the URL is wrong"),
    460101: (Outcome.OVERSIZED, "message too long"),
    43004: (Outcome.REFUSED, "request refused as malformed"),
}
_WECOM: dict[int, tuple[Outcome, str]] = {
    45009: (Outcome.RATE, "rate limited (20 a minute)"),
    93000: (Outcome.BROKEN, "the webhook is invalid: the robot was removed or the key is wrong"),
    40058: (Outcome.OVERSIZED, "message too long"),
    40001: (Outcome.REFUSED, "request refused as malformed"),
    40008: (Outcome.REFUSED, "message type refused"),
}


def _dingtalk_310000(message: str) -> tuple[Outcome, str]:
    """DingTalk answers one code for every security setting; its message says which."""
    low = message.lower()
    if "keyword" in low:
        return Outcome.BROKEN, "the robot requires a keyword the alert lacks: add 'GES' to its keywords"
    if "ip" in low.split() or "whitelist" in low:
        return Outcome.BROKEN, "this machine's IP address is not on the robot's allow-list"
    return Outcome.BROKEN, "signature refused: check the secret (加签) and this machine's clock"


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify(platform: str, status: int, body: Any, headers: httpx.Headers | None = None) -> Answer:
    """What ``platform`` meant by answering ``status`` with ``body`` (parsed JSON, or text, or None)."""
    headers = headers or httpx.Headers()
    if status == 429:
        return Answer(Outcome.RATE, "HTTP 429", _retry_after(headers) or RATE_WINDOWS.get(platform, 30.0))
    if status == 413:
        return Answer(Outcome.OVERSIZED, "HTTP 413: too large")
    if status >= 500:
        return Answer(Outcome.RETRY, f"HTTP {status}")
    if platform in ("lark", "dingtalk", "wecom"):
        if not isinstance(body, dict):
            return Answer(Outcome.RETRY if status < 400 else Outcome.REFUSED, f"HTTP {status}, unreadable answer")
        code_key, msg_key = ("code", "msg") if platform == "lark" else ("errcode", "errmsg")
        code = body.get(code_key, body.get("StatusCode"))
        message = str(body.get(msg_key, body.get("StatusMessage", "")))[:200]
        if code == 0 and status < 400:
            return Answer(Outcome.SENT)
        if not isinstance(code, int):
            return Answer(Outcome.RETRY if status < 400 else Outcome.REFUSED, f"HTTP {status}")
        if platform == "lark" and code == 9499 and status == 400:
            return Answer(Outcome.REFUSED, "9499: request refused as malformed")
        if platform == "dingtalk" and code == 310000:
            outcome, why = _dingtalk_310000(message)
        else:
            table = {"lark": _LARK, "dingtalk": _DINGTALK, "wecom": _WECOM}[platform]
            outcome, why = table.get(code, (Outcome.REFUSED if status == 400 else Outcome.RETRY, "unexpected answer"))
        retry = RATE_WINDOWS[platform] if outcome is Outcome.RATE else None
        return Answer(outcome, f"{code}: {why} ({message})", retry)
    if platform == "teams":
        if status in (200, 202):
            return Answer(Outcome.SENT)
        if status in (401, 403, 404):
            return Answer(Outcome.BROKEN, f"HTTP {status}: the Workflows URL is invalid or the flow was turned off")
        if status == 400:
            return Answer(Outcome.REFUSED, "HTTP 400: the flow refused the card")
        return Answer(Outcome.RETRY, f"HTTP {status}")
    # Slack incoming webhooks answer plain text.
    text = body if isinstance(body, str) else ""
    if status == 200:
        return Answer(Outcome.SENT)
    if status in (403, 404, 410):
        return Answer(Outcome.BROKEN, f"HTTP {status}: {text[:80]} (the webhook was revoked or its channel is gone)")
    if status == 400:
        return Answer(Outcome.REFUSED, f"HTTP 400: {text[:80]}")
    return Answer(Outcome.RETRY, f"HTTP {status}")


class SinkSender:
    """Signs and posts one body to one sink's webhook; the caller decides what to do with the answer."""

    def __init__(self, client: httpx.AsyncClient, *, clock: Callable[[], float] = time.time) -> None:
        # The client carries the timeout (every call has one); the clock signs (tests pass the
        # stand-in's, so signatures are "fresh" in its time).
        self.client = client
        self.clock = clock

    def _request(self, sink: SinkSettings, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        url = sink.url.get_secret_value()
        secret = sink.secret.get_secret_value() if sink.secret is not None else None
        if secret is not None and sink.type == "lark":
            return url, lark_signed_body(body, int(self.clock()), secret)
        if secret is not None and sink.type == "dingtalk":
            return dingtalk_signed_url(url, int(self.clock() * 1000), secret), body
        return url, body

    async def send(self, sink: SinkSettings, body: dict[str, Any]) -> Answer:
        url, signed = self._request(sink, body)
        try:
            response = await self.client.post(
                url, content=body_bytes(signed), headers={"Content-Type": "application/json; charset=utf-8"}
            )
        except httpx.HTTPError as exc:
            # The exception's text may hold the URL (a secret): name its type only.
            return Answer(Outcome.RETRY, f"{type(exc).__name__} reaching the webhook")
        parsed: Any
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = response.text
        return classify(sink.type, response.status_code, parsed, response.headers)
