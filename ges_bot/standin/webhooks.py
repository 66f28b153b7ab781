"""Stand-ins for the group-bot webhook APIs (Lark/Feishu, DingTalk, WeCom, Teams Workflows) and
Slack incoming webhooks.

Owns: one loopback ASGI app that answers each platform's custom-bot webhook the way the platform
does (``shared/chats/NOTES.md``): signature and timestamp checks (Lark in the body, DingTalk in the
query), required keywords, per-bot rate limits (Lark 5/s and 100/min; DingTalk 20/min then refused
for 10 minutes; WeCom 20/min; Teams 429 + ``Retry-After`` when told to), size limits, and each
platform's real error bodies — plus a record of every accepted message, fault injection, and an
HTTP control API under ``/_standin/`` for other processes. Must not: reach the network or decide
anything for the bot.

Where the platforms' documentation is silent the stand-in makes a choice and says so here:
an oversized Lark body answers code 230025 (the IM API's "message content too long"), an oversized
DingTalk body errcode 460101, an oversized WeCom markdown errcode 40058, an oversized Teams card
HTTP 413.

Use::

    hooks = WebhookStandIn(clock=lambda: now)
    bot = hooks.add(WebhookBot("dingtalk", token="t1", secret="SEC…"))
    async with serve(hooks.app) as url:
        hooks.base_url = url
        webhook = hooks.url_for(bot)       # e.g. http://127.0.0.1:PORT/robot/send?access_token=t1
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ges_bot.sinks.signing import dingtalk_sign, lark_sign

__all__ = ["Platform", "Received", "WebhookBot", "WebhookStandIn", "pings_everyone"]

Platform = Literal["lark", "dingtalk", "wecom", "teams", "slack"]
JSONDict = dict[str, Any]

_HOUR = 3600.0
_LARK_MAX_BODY = 20 * 1024
_DINGTALK_MAX_BODY = 20_000
_WECOM_MAX_MARKDOWN = 4096
_WECOM_MAX_TEXT = 2048
#: WeCom's ``image`` message: the picture (JPG/PNG) at most 2 MB before base64.
_WECOM_MAX_IMAGE = 2 * 1024 * 1024
_TEAMS_MAX_BODY = 28 * 1024
# Any JSON body beyond this is refused before parsing, as a real front end would.
_HARD_MAX_BODY = 1024 * 1024


@dataclass
class WebhookBot:
    """One custom bot in one group: its platform, the token in its URL and its optional secret."""

    platform: Platform
    token: str
    secret: str | None = None
    #: Required keywords (Lark and DingTalk security setting): a message must contain one.
    keywords: tuple[str, ...] = ()
    #: A Teams flow answers 429 with this Retry-After for the next ``throttle_count`` requests.
    throttle_count: int = 0
    throttle_retry_after: int = 1
    #: Pretend the IP allow-list refuses us.
    ip_refused: bool = False


@dataclass(frozen=True)
class Received:
    """A message a stand-in bot accepted (what the group sees)."""

    platform: Platform
    token: str
    at: float
    body: JSONDict


@dataclass
class _Window:
    stamps: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0

    def count_since(self, since: float) -> int:
        while self.stamps and self.stamps[0] <= since:
            self.stamps.popleft()
        return len(self.stamps)


class WebhookStandIn:
    """The four webhook APIs on one loopback server, with a record of what each group received."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.base_url = ""
        self.bots: dict[tuple[Platform, str], WebhookBot] = {}
        self.received: list[Received] = []
        #: Every request, accepted or not: (platform, token, HTTP status, answer body).
        self.attempts: list[tuple[Platform, str, int, JSONDict | None]] = []
        self._windows: dict[tuple[Platform, str], _Window] = {}
        self.app = Starlette(
            routes=[
                Route("/open-apis/bot/v2/hook/{token}", self._lark, methods=["POST"]),
                Route("/robot/send", self._dingtalk, methods=["POST"]),
                Route("/cgi-bin/webhook/send", self._wecom, methods=["POST"]),
                Route("/workflows/{token}/triggers/manual/paths/invoke", self._teams, methods=["POST"]),
                Route("/services/{team}/{hook}/{token}", self._slack, methods=["POST"]),
                Route("/_standin/messages", self._ctl_messages, methods=["GET"]),
            ]
        )

    # -- set-up and inspection -------------------------------------------------------------

    def add(self, bot: WebhookBot) -> WebhookBot:
        self.bots[(bot.platform, bot.token)] = bot
        return bot

    def url_for(self, bot: WebhookBot) -> str:
        """The webhook URL a group member would copy for ``bot``."""
        token = quote_plus(bot.token)
        match bot.platform:
            case "lark":
                return f"{self.base_url}/open-apis/bot/v2/hook/{token}"
            case "dingtalk":
                return f"{self.base_url}/robot/send?access_token={token}"
            case "wecom":
                return f"{self.base_url}/cgi-bin/webhook/send?key={token}"
            case "teams":
                return f"{self.base_url}/workflows/{token}/triggers/manual/paths/invoke?api-version=1&sig=standin-sig"
            case "slack":
                return f"{self.base_url}/services/T0STANDIN/B0STANDIN/{token}"

    def messages(self, bot: WebhookBot) -> list[JSONDict]:
        return [r.body for r in self.received if r.platform == bot.platform and r.token == bot.token]

    # -- shared checks ---------------------------------------------------------------------

    async def _body(self, request: Request, limit: int) -> tuple[JSONDict | None, int]:
        """The JSON object sent and its size in bytes; ``None`` when it is not a JSON object."""
        cap = max(limit, _HARD_MAX_BODY)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            return None, int(declared)
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > cap:
                return None, len(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return None, len(raw)
        return (body if isinstance(body, dict) else None), len(raw)

    def _rate(self, bot: WebhookBot, per_minute: int, per_second: int | None = None, block_for: float = 0.0) -> bool:
        """Count this request; ``False`` when it is over the bot's limit (and so refused)."""
        now = self.clock()
        window = self._windows.setdefault((bot.platform, bot.token), _Window())
        if now < window.blocked_until:
            return False
        if window.count_since(now - 60.0) >= per_minute or (
            per_second is not None and sum(1 for s in window.stamps if s > now - 1.0) >= per_second
        ):
            if block_for:
                window.blocked_until = now + block_for
            return False
        window.stamps.append(now)
        return True

    def _fresh(self, timestamp_s: float) -> bool:
        return abs(self.clock() - timestamp_s) <= _HOUR

    def _answer(self, platform: Platform, token: str, body: JSONDict | None, status: int = 200) -> Response:
        self.attempts.append((platform, token, status, body))
        if body is None:
            return Response(status_code=status)
        return JSONResponse(body, status_code=status)

    def _accept(self, bot: WebhookBot, body: JSONDict) -> None:
        self.received.append(Received(bot.platform, bot.token, self.clock(), body))

    @staticmethod
    def _has_keyword(bot: WebhookBot, body: JSONDict) -> bool:
        if not bot.keywords:
            return True
        text = json.dumps(body, ensure_ascii=False)
        return any(k in text for k in bot.keywords)

    # -- Lark / Feishu ---------------------------------------------------------------------

    async def _lark(self, request: Request) -> Response:
        token = request.path_params["token"]
        bot = self.bots.get(("lark", token))
        if bot is None:
            return self._answer(
                "lark", token, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
            )
        body, size = await self._body(request, _LARK_MAX_BODY)
        if body is None:
            return self._answer("lark", token, {"code": 9499, "msg": "Bad Request"}, 400)
        if bot.secret is not None:
            stamp, sign = str(body.get("timestamp", "")), str(body.get("sign", ""))
            if not stamp.isdigit() or not self._fresh(int(stamp)) or sign != lark_sign(int(stamp), bot.secret):
                return self._answer(
                    "lark",
                    token,
                    {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"},
                )
        if bot.ip_refused:
            return self._answer("lark", token, {"code": 19022, "msg": "Ip Not Allowed"})
        if not self._has_keyword(bot, body):
            return self._answer("lark", token, {"code": 19024, "msg": "Key Words Not Found"})
        if size > _LARK_MAX_BODY:
            return self._answer(
                "lark", token, {"code": 230025, "msg": "The message content is too long (about 20 KB at most)"}
            )
        kind = body.get("msg_type")
        if kind not in {"text", "post", "interactive", "share_chat", "image"} or (
            kind == "interactive" and not isinstance(body.get("card"), dict)
        ):
            return self._answer("lark", token, {"code": 9499, "msg": "Bad Request"}, 400)
        if not self._rate(bot, per_minute=100, per_second=5):
            return self._answer(
                "lark", token, {"code": 11232, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[0]"}
            )
        self._accept(bot, body)
        return self._answer("lark", token, {"code": 0, "msg": "success", "data": {}})

    # -- DingTalk --------------------------------------------------------------------------

    async def _dingtalk(self, request: Request) -> Response:
        token = request.query_params.get("access_token", "")
        bot = self.bots.get(("dingtalk", token))
        if bot is None:
            return self._answer("dingtalk", token, {"errcode": 300001, "errmsg": "token is not exist"})
        if bot.secret is not None:
            # The sign arrives URL-encoded; compare it as sent.
            raw_query = request.url.query
            sent = dict(part.split("=", 1) for part in raw_query.split("&") if "=" in part)
            stamp = unquote_plus(sent.get("timestamp", ""))
            if not stamp.isdigit() or not self._fresh(int(stamp) / 1000):
                return self._answer("dingtalk", token, {"errcode": 310000, "errmsg": "invalid timestamp"})
            if sent.get("sign", "") != dingtalk_sign(int(stamp), bot.secret):
                return self._answer(
                    "dingtalk",
                    token,
                    {
                        "errcode": 310000,
                        "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
                    },
                )
        body, size = await self._body(request, _DINGTALK_MAX_BODY)
        if body is None:
            return self._answer("dingtalk", token, {"errcode": 43004, "errmsg": "无效的HTTP HEADER Content-Type"})
        if bot.ip_refused:
            return self._answer("dingtalk", token, {"errcode": 310000, "errmsg": "ip 127.0.0.1 not in whitelist"})
        if not self._has_keyword(bot, body):
            return self._answer("dingtalk", token, {"errcode": 310000, "errmsg": "keywords not in content"})
        if size > _DINGTALK_MAX_BODY:
            return self._answer(
                "dingtalk", token, {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}
            )
        if not self._rate(bot, per_minute=20, block_for=600.0):
            return self._answer(
                "dingtalk", token, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
            )
        self._accept(bot, body)
        return self._answer("dingtalk", token, {"errcode": 0, "errmsg": "ok"})

    # -- WeCom -----------------------------------------------------------------------------

    async def _wecom(self, request: Request) -> Response:
        token = request.query_params.get("key", "")
        bot = self.bots.get(("wecom", token))
        if bot is None:
            return self._answer("wecom", token, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [standin]"})
        body, _ = await self._body(request, 4 * _HARD_MAX_BODY)
        if body is None:
            return self._answer("wecom", token, {"errcode": 40001, "errmsg": "invalid request body, hint: [standin]"})
        if body.get("msgtype") == "markdown":
            content = str((body.get("markdown") or {}).get("content", ""))
            if len(content.encode()) > _WECOM_MAX_MARKDOWN:
                return self._answer(
                    "wecom", token, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
                )
        elif body.get("msgtype") == "text":
            content = str((body.get("text") or {}).get("content", ""))
            if len(content.encode()) > _WECOM_MAX_TEXT:
                return self._answer("wecom", token, {"errcode": 40058, "errmsg": "text.content exceed max length 2048"})
        elif body.get("msgtype") == "image":
            image = body.get("image") or {}
            try:
                raw = base64.b64decode(str(image.get("base64", "")), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if not raw or hashlib.md5(raw, usedforsecurity=False).hexdigest() != image.get("md5"):
                return self._answer("wecom", token, {"errcode": 40001, "errmsg": "invalid image, hint: [standin]"})
            if len(raw) > _WECOM_MAX_IMAGE:
                return self._answer("wecom", token, {"errcode": 40009, "errmsg": "invalid image size, hint: [standin]"})
        else:
            return self._answer("wecom", token, {"errcode": 40008, "errmsg": "invalid message type, hint: [standin]"})
        if not self._rate(bot, per_minute=20):
            return self._answer("wecom", token, {"errcode": 45009, "errmsg": "api freq out of limit, hint: [standin]"})
        self._accept(bot, body)
        return self._answer("wecom", token, {"errcode": 0, "errmsg": "ok"})

    # -- Microsoft Teams (Workflows) -------------------------------------------------------

    async def _teams(self, request: Request) -> Response:
        token = request.path_params["token"]
        bot = self.bots.get(("teams", token))
        if bot is None or request.query_params.get("sig") != "standin-sig":
            return self._answer(
                "teams",
                token,
                {"error": {"code": "DirectApiAuthorizationRequired", "message": "The request must be authenticated"}},
                401,
            )
        if bot.throttle_count > 0:
            bot.throttle_count -= 1
            self.attempts.append(("teams", token, 429, None))
            return Response(status_code=429, headers={"Retry-After": str(bot.throttle_retry_after)})
        body, size = await self._body(request, _TEAMS_MAX_BODY)
        if size > _TEAMS_MAX_BODY:
            return self._answer(
                "teams", token, {"error": {"code": "RequestEntityTooLarge", "message": "The card is too large"}}, 413
            )
        attachments = body.get("attachments") if body else None
        if (
            body is None
            or body.get("type") != "message"
            or not isinstance(attachments, list)
            or not attachments
            or any(
                not isinstance(a, dict)
                or a.get("contentType") != "application/vnd.microsoft.card.adaptive"
                or not isinstance(a.get("content"), dict)
                or a["content"].get("type") != "AdaptiveCard"
                for a in attachments
            )
        ):
            return self._answer(
                "teams",
                token,
                {
                    "error": {
                        "code": "InvalidRequestContent",
                        "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition",
                    }
                },
                400,
            )
        self._accept(bot, body)
        return self._answer("teams", token, None, 202)

    # -- Slack incoming webhooks -------------------------------------------------------------

    async def _slack(self, request: Request) -> Response:
        """Slack answers incoming webhooks in plain text: ``ok``, or an error word with a status."""
        token = request.path_params["token"]
        bot = self.bots.get(("slack", token))
        if bot is None:
            self.attempts.append(("slack", token, 404, None))
            return Response("no_service", status_code=404, media_type="text/plain")
        body, _ = await self._body(request, _HARD_MAX_BODY)
        if body is None or not (body.get("text") or body.get("blocks")):
            self.attempts.append(("slack", token, 400, None))
            return Response("invalid_payload", status_code=400, media_type="text/plain")
        if not self._rate(bot, per_minute=60, per_second=1):
            self.attempts.append(("slack", token, 429, None))
            return Response("rate_limited", status_code=429, headers={"Retry-After": "1"}, media_type="text/plain")
        self._accept(bot, body)
        self.attempts.append(("slack", token, 200, None))
        return Response("ok", media_type="text/plain")

    # -- control API -----------------------------------------------------------------------

    async def _ctl_messages(self, request: Request) -> Response:
        platform = request.query_params.get("platform")
        return JSONResponse(
            [
                {"platform": r.platform, "token": r.token, "at": r.at, "body": r.body}
                for r in self.received
                if platform is None or r.platform == platform
            ]
        )


def pings_everyone(platform: Platform, body: JSONDict) -> bool:
    """Would this accepted message notify the whole group? (What hostile text must never cause.)"""
    text = json.dumps(body, ensure_ascii=False)
    match platform:
        case "lark":
            return '<at user_id=\\"all\\">' in text or "<at id=all>" in text or '<at id=\\"all\\">' in text
        case "dingtalk":
            at = body.get("at")
            return bool(isinstance(at, dict) and at.get("isAtAll")) or "@all" in text.lower()
        case "wecom":
            section = body.get(str(body.get("msgtype"))) or {}
            listed = list(section.get("mentioned_list") or []) + list(section.get("mentioned_mobile_list") or [])
            return "@all" in listed or "<@all>" in text
        case "teams":
            return '"mentioned"' in text and "everyone" in text.lower()
        case "slack":
            # Slack pings only through special tokens; a bare "@here" is text (render sends verbatim).
            return any(token in text for token in ("<!channel", "<!here", "<!everyone", "<!subteam"))
