"""A stand-in for the Slack Web API and Socket Mode, served on loopback, for tests and the demo.

Owns: the imitation of the Web API methods ges-bot uses (answered the way Slack answers them,
errors included), response URLs, trigger ids, the Socket Mode WebSocket, fault injection,
per-channel rate limiting, a record of every call, an HTTP control API under ``/_standin/`` (so
other processes can inspect and steer it), and helpers that build signed slash-command and
interactivity requests. Must not: reach the network, import the bot's runtime, or decide
anything for the bot.

Use::

    stand_in = SlackStandIn(channels=[Channel("C0ALERTS", "alerts")])
    async with serve(stand_in.app) as url:          # tests.support.asgi.serve, or any ASGI server
        stand_in.base_url = url                     # needed for response_url() only
        client = AsyncWebClient(token="xoxb-standin", base_url=stand_in.api_url)
        await client.chat_postMessage(channel="C0ALERTS", text="hi")
        assert stand_in.messages("C0ALERTS")[0]["text"] == "hi"

slack_sdk's ``AsyncWebClient``, bolt's ``AsyncApp`` and bolt's ``AsyncSocketModeHandler`` work
against it unchanged: point ``base_url`` at ``{url}/api/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = [
    "DEFAULT_APP_TOKEN",
    "DEFAULT_BOT_TOKEN",
    "Ack",
    "Call",
    "Channel",
    "Fault",
    "RateLimit",
    "SlackStandIn",
    "StoredFile",
    "User",
    "signed_command_request",
    "signed_interaction_request",
]

# Not secrets: the stand-in's own made-up tokens, valid nowhere else.
DEFAULT_BOT_TOKEN = "xoxb-standin-0000"  # noqa: S105
DEFAULT_APP_TOKEN = "xapp-1-standin-0000"  # noqa: S105

JSONDict = dict[str, Any]
T = TypeVar("T")

# Form fields Slack accepts as JSON strings (slack_sdk sends them as objects in JSON bodies).
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "files")
_MAX_BLOCKS = 50
_MAX_TEXT = 40_000
# Methods that take an app-level (xapp-) token rather than a bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


# --------------------------------------------------------------------------------------------
# Configuration and records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    """A workspace member; ``tz`` is an IANA zone as ``users.info`` reports it."""

    id: str
    name: str = ""
    tz: str = "UTC"
    real_name: str | None = None
    is_bot: bool = False
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Channel:
    """A conversation. ``is_member`` says whether the bot is in it: public channels accept posts
    without membership when the stand-in has ``chat_write_public`` (the ``chat:write.public``
    scope); private ones answer ``not_in_channel``."""

    id: str
    name: str = ""
    is_private: bool = False
    is_archived: bool = False
    is_member: bool = True
    is_im: bool = False
    user: str | None = None
    #: The people in it (``users.conversations``); ``None``: every member of the workspace.
    members: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One request the stand-in answered. ``params`` never contains the token."""

    method: str
    params: JSONDict
    at: datetime
    http_status: int
    answer: JSONDict

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and bool(self.answer.get("ok"))

    def to_json(self) -> JSONDict:
        return {
            "method": self.method,
            "params": self.params,
            "at": self.at.isoformat(),
            "http_status": self.http_status,
            "answer": self.answer,
        }


@dataclass(slots=True)
class Fault:
    """An injected failure. Matches ``method`` (``*`` = any Web API method; ``response_url`` =
    response URL posts) and, if set, ``channel`` (id or name). ``remaining`` ``None`` = until
    cleared; ``until`` (monotonic seconds) makes it a time-based outage."""

    method: str
    channel: str | None = None
    status: int | None = None
    retry_after: int = 1
    error: str | None = None
    delay: float | None = None
    remaining: int | None = None
    until: float | None = None

    def to_json(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Slack-like pacing per (method, channel): a token bucket of ``burst`` refilled at ``per_second``.
    Exceeding it answers HTTP 429 ``ratelimited`` with ``Retry-After``."""

    per_second: float = 1.0
    burst: int = 3
    methods: frozenset[str] = frozenset({"chat.postMessage"})


@dataclass(frozen=True, slots=True)
class Ack:
    """What a Socket Mode client sent back for an envelope."""

    envelope_id: str
    payload: JSONDict | None
    at: datetime


@dataclass(slots=True)
class StoredFile:
    """A file uploaded with the external flow. ``content`` is set once its bytes arrive at the
    upload URL; ``complete`` once ``files.completeUploadExternal`` names it (only then may an
    image block show it). ``channels`` stays empty for a private upload."""

    id: str
    filename: str
    length: int
    content: bytes | None = None
    complete: bool = False
    title: str | None = None
    alt_txt: str | None = None
    channels: tuple[str, ...] = ()


@dataclass(slots=True)
class _ResponseUrl:
    id: str
    created: float
    posts: list[JSONDict] = field(default_factory=list)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class _Answer(Exception):
    """Internal: stop handling a call and answer this."""

    def __init__(self, error: str, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------------------------
# The stand-in
# --------------------------------------------------------------------------------------------


class SlackStandIn:
    """The Slack Web API (``/api/{method}``), response URLs (``/response/{id}``), Socket Mode
    (``/socket``) and a control API (``/_standin/…``), all in one Starlette app: :attr:`app`.

    Everything it is told and answers is kept in memory for assertions; nothing is persisted.
    ``users`` and ``channels`` take :class:`User`/:class:`Channel` objects, or plain mappings
    (user id → time zone, channel id → name). Without them there is ``C0GENERAL`` (#general) and
    two users, ``U0ALICE`` (Europe/Berlin) and ``U0BOB`` (America/New_York).
    """

    def __init__(
        self,
        *,
        bot_tokens: Iterable[str] = (DEFAULT_BOT_TOKEN,),
        app_tokens: Iterable[str] = (DEFAULT_APP_TOKEN,),
        team_id: str = "T0STANDIN",
        team: str = "standin",
        bot_user_id: str = "U0GESBOT",
        bot_id: str = "B0GESBOT",
        app_id: str = "A0GESBOT",
        users: Iterable[User] | Mapping[str, str] | None = None,
        channels: Iterable[Channel] | Mapping[str, str] | None = None,
        rate_limit: RateLimit | None = None,
        chat_write_public: bool = True,
        trigger_ttl: float = 3.0,
        response_url_ttl: float = 30 * 60,
        response_url_max_posts: int = 5,
        base_url: str | None = None,
        files_dir: str | None = None,
    ) -> None:
        self.bot_tokens: set[str] = set(bot_tokens)
        self.app_tokens: set[str] = set(app_tokens)
        self.team_id = team_id
        self.team = team
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        if users is None:
            users = [User("U0ALICE", "alice", tz="Europe/Berlin"), User("U0BOB", "bob", tz="America/New_York")]
        if channels is None:
            channels = [Channel("C0GENERAL", "general")]
        if isinstance(users, Mapping):
            users = [User(uid, uid.lower(), tz=tz) for uid, tz in users.items()]
        if isinstance(channels, Mapping):
            channels = [Channel(cid, name) for cid, name in channels.items()]
        self.users: dict[str, User] = {u.id: u for u in users}
        self.channels: dict[str, Channel] = {c.id: c for c in channels}
        self.rate_limit = rate_limit
        self.chat_write_public = chat_write_public
        self.trigger_ttl = trigger_ttl
        self.response_url_ttl = response_url_ttl
        self.response_url_max_posts = response_url_max_posts
        #: Where the stand-in is served (``http://127.0.0.1:PORT``); needed to make response URLs.
        #: Learnt from the first request if not set.
        self.base_url = base_url
        #: Uploaded files by id (``F…``).
        self.files: dict[str, StoredFile] = {}
        #: When set, every completed upload is also written there as ``{id}-{filename}`` (the demo
        #: shows where its charts are).
        self.files_dir = files_dir
        #: Paths written to ``files_dir``, in upload order.
        self.written_files: list[str] = []

        self.calls: list[Call] = []
        self.acks: list[Ack] = []
        #: Socket Mode frames from clients that were not acks.
        self.socket_messages: list[JSONDict] = []
        self.faults: list[Fault] = []
        self._history: dict[str, list[JSONDict]] = {}
        self._home: dict[str, JSONDict] = {}
        #: Modals opened with views.open (and replaced by views.update), by view id.
        self.views: dict[str, JSONDict] = {}
        self._triggers: dict[str, float] = {}
        self._used_triggers: set[str] = set()
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._tickets: set[str] = set()
        self._sockets: list[WebSocket] = []
        #: Socket Mode connections accepted so far (reconnects included).
        self.socket_connects = 0
        self._round_robin = itertools.count()
        self._last_ts = 0
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/response/{rid}", self._response_post, methods=["POST"]),
                Route("/upload/{file_id}", self._upload_post, methods=["POST"]),
                Route("/_standin/files/{file_id}", self._ctl_file, methods=["GET"]),
                WebSocketRoute("/socket", self._socket),
                Route("/_standin/calls", self._ctl_calls, methods=["GET", "DELETE"]),
                Route("/_standin/faults", self._ctl_faults, methods=["GET", "POST", "DELETE"]),
                Route("/_standin/rate_limit", self._ctl_rate_limit, methods=["POST", "DELETE"]),
                Route("/_standin/messages", self._ctl_messages, methods=["GET"]),
                Route("/_standin/channels", self._ctl_channels, methods=["POST"]),
                Route("/_standin/users", self._ctl_users, methods=["POST"]),
                Route("/_standin/response_urls", self._ctl_response_urls, methods=["POST"]),
                Route("/_standin/responses/{rid}", self._ctl_responses, methods=["GET"]),
                Route("/_standin/triggers", self._ctl_triggers, methods=["POST"]),
                Route("/_standin/envelopes", self._ctl_envelopes, methods=["POST"]),
                Route("/_standin/acks", self._ctl_acks, methods=["GET"]),
            ]
        )

    # -- configuration ------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """The ``base_url`` for slack_sdk clients (``{base_url}/api/``)."""
        return f"{self._base()}/api/"

    def add_channel(self, channel: Channel) -> Channel:
        """Add or replace a channel (e.g. ``replace(ch, is_archived=True)`` to archive it)."""
        self.channels[channel.id] = channel
        return channel

    def archive(self, channel_id: str) -> None:
        self.channels[channel_id] = replace(self.channels[channel_id], is_archived=True)

    def add_user(self, user: User) -> User:
        self.users[user.id] = user
        return user

    # -- faults -------------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        *,
        channel: str | None = None,
        status: int | None = None,
        retry_after: int = 1,
        error: str | None = None,
        delay: float | None = None,
        count: int | None = None,
    ) -> Fault:
        """Make calls of ``method`` (``*`` = any) fail, ``count`` times or until cleared.

        With no ``status``/``error``/``delay``: HTTP 429 ``ratelimited`` with ``Retry-After``.
        ``status=503`` (any 5xx): a server error. ``error="channel_not_found"``: HTTP 200 with
        ``ok: false`` and that error. ``delay`` alone: a slow but otherwise normal answer (if the
        client gives up meanwhile, the call still takes effect — as a real post may have landed).
        """
        if status is None and error is None and delay is None:
            status = 429
        fault = Fault(method, channel, status, retry_after, error, delay, count, None)
        self.faults.append(fault)
        return fault

    def outage(
        self,
        method: str,
        *,
        until: datetime | float,
        status: int = 503,
        error: str | None = None,
        channel: str | None = None,
    ) -> Fault:
        """Fail every call of ``method`` (``*`` = any) until ``until``: an aware datetime, or a
        number of seconds from now."""
        seconds = (until - datetime.now(UTC)).total_seconds() if isinstance(until, datetime) else float(until)
        fault = Fault(method, channel, status, 1, error, None, None, time.monotonic() + seconds)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- records ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget recorded calls, messages, acks and responses (configuration and faults stay)."""
        self.calls.clear()
        self.acks.clear()
        self.socket_messages.clear()
        self._history.clear()
        self._home.clear()
        for r in self._response_urls.values():
            r.posts.clear()

    def count(self, method: str, *, ok: bool | None = None) -> int:
        """How many calls of ``method`` were answered (``ok=True``/``False`` to count only those)."""
        return sum(1 for c in self.calls if c.method == method and (ok is None or c.ok == ok))

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str | None = None) -> list[JSONDict]:
        """Successful ``chat.postMessage`` payloads, in order: the params as sent, with ``channel``
        set to the resolved channel id and the ``ts`` Slack gave the message."""
        return self._successful("chat.postMessage", channel)

    def updates(self, channel: str | None = None) -> list[JSONDict]:
        """Successful ``chat.update`` payloads, with the resolved ``channel`` id."""
        return self._successful("chat.update", channel)

    def ephemerals(self, channel: str | None = None) -> list[JSONDict]:
        return self._successful("chat.postEphemeral", channel)

    def history(self, channel: str) -> list[JSONDict]:
        """The channel's messages as people now see them (updates applied), oldest first."""
        cid = self._channel_id(channel) or channel
        return [dict(m) for m in self._history.get(cid, [])]

    def home(self, user_id: str) -> JSONDict | None:
        """The Home tab view last published for ``user_id``."""
        return self._home.get(user_id)

    def responses(self, rid: str) -> list[JSONDict]:
        """The bodies posted to response URL ``rid`` (accepted ones), in order."""
        r = self._response_urls.get(rid)
        return [dict(p) for p in r.posts] if r else []

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Wait until ``predicate()`` is truthy and return its value; ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                recent = ", ".join(f"{c.method}→{c.http_status}" for c in self.calls[-10:]) or "none"
                raise TimeoutError(f"condition not met within {timeout}s; last calls: {recent}")
            await asyncio.sleep(0.01)

    def _successful(self, method: str, channel: str | None) -> list[JSONDict]:
        wanted = self._channel_id(channel) if channel is not None else None
        if channel is not None and wanted is None:
            wanted = channel
        out = []
        for c in self.calls:
            if c.method == method and c.ok:
                payload = dict(c.params)
                payload["channel"] = c.answer.get("channel", payload.get("channel"))
                if "ts" in c.answer:
                    payload["ts"] = c.answer["ts"]
                if wanted is None or payload["channel"] == wanted:
                    out.append(payload)
        return out

    # -- triggers and response URLs -------------------------------------------------------------
    def issue_trigger_id(self) -> str:
        """A fresh trigger id, valid for ``trigger_ttl`` seconds and for one ``views.open``."""
        trigger = f"{int(time.time())}.{secrets.randbelow(10**9)}.{secrets.token_hex(8)}"
        self._triggers[trigger] = time.monotonic()
        return trigger

    def response_url(self, rid: str | None = None) -> str:
        """Register a response URL (Slack's: up to 5 posts within 30 minutes) and return it."""
        rid = rid or uuid.uuid4().hex
        self._response_urls.setdefault(rid, _ResponseUrl(rid, time.monotonic()))
        return f"{self._base()}/response/{rid}"

    def command_payload(self, text: str = "", **fields: str) -> JSONDict:
        """A slash-command payload as Slack sends it (Socket Mode ``payload`` or HTTP form
        fields), with a fresh trigger id and response URL; ``fields`` override any field."""
        payload: JSONDict = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "team_domain": self.team,
            "channel_id": "C0GENERAL",
            "channel_name": "general",
            "user_id": "U0ALICE",
            "user_name": "alice",
            "command": "/gesjobs",
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.response_url(),
            "trigger_id": self.issue_trigger_id(),
        }
        payload.update(fields)
        return payload

    def block_action_payload(
        self,
        action_id: str,
        value: str = "",
        *,
        user_id: str = "U0ALICE",
        channel_id: str = "C0GENERAL",
        message_ts: str | None = None,
        block_id: str = "actions",
    ) -> JSONDict:
        """An interactivity ``block_actions`` payload for a button click."""
        payload: JSONDict = {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": self.team},
            "user": {"id": user_id, "team_id": self.team_id, "username": self.users.get(user_id, User(user_id)).name},
            "api_app_id": self.app_id,
            "token": "legacy-verification-token",
            "trigger_id": self.issue_trigger_id(),
            "response_url": self.response_url(),
            "channel": {"id": channel_id, "name": self.channels.get(channel_id, Channel(channel_id)).name},
            "container": {"type": "message", "channel_id": channel_id, "message_ts": message_ts, "is_ephemeral": False},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if message_ts is not None:
            payload["message"] = {"ts": message_ts, "type": "message"}
        return payload

    def _base(self) -> str:
        if not self.base_url:
            raise RuntimeError("set SlackStandIn.base_url to the URL it is served at first")
        return self.base_url.rstrip("/")

    # -- Socket Mode ----------------------------------------------------------------------------
    @property
    def socket_connections(self) -> int:
        return len(self._sockets)

    async def push_envelope(
        self,
        type: str,
        payload: JSONDict,
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool = True,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> str:
        """Send an envelope (``slash_commands``, ``interactive``, ``events_api``) to one connected
        Socket Mode client (round robin, like Slack), waiting up to ``timeout`` for a connection.
        Returns the envelope id; see :meth:`wait_for_ack`."""
        await self.wait_for(lambda: self._sockets, timeout)
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        socket = self._sockets[next(self._round_robin) % len(self._sockets)]
        await socket.send_text(json.dumps(envelope))
        return envelope_id

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:  # noqa: ASYNC109
        def found() -> Ack | None:
            return next((a for a in self.acks if a.envelope_id == envelope_id), None)

        return await self.wait_for(found, timeout)

    async def push_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every client to reconnect, as Slack does every few hours."""
        frame = json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}})
        for socket in list(self._sockets):
            with contextlib.suppress(Exception):
                await socket.send_text(frame)

    async def _socket(self, websocket: WebSocket) -> None:
        ticket = websocket.query_params.get("ticket", "")
        if ticket not in self._tickets:
            # Slack refuses a URL it did not issue (or one already used).
            await websocket.close(code=1008)
            return
        self._tickets.discard(ticket)
        await websocket.accept()
        self._sockets.append(websocket)
        self.socket_connects += 1
        try:
            hello = {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "applink-standin", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
            await websocket.send_text(json.dumps(hello))
            while True:
                text = await websocket.receive_text()
                try:
                    frame = json.loads(text)
                except ValueError:
                    self.socket_messages.append({"raw": text})
                    continue
                if isinstance(frame, dict) and isinstance(frame.get("envelope_id"), str):
                    payload = frame.get("payload")
                    self.acks.append(
                        Ack(frame["envelope_id"], payload if isinstance(payload, dict) else None, datetime.now(UTC))
                    )
                else:
                    self.socket_messages.append(frame if isinstance(frame, dict) else {"raw": frame})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if websocket in self._sockets:
                self._sockets.remove(websocket)

    # -- the Web API ----------------------------------------------------------------------------
    def _learn_base_url(self, request: Request) -> None:
        if not self.base_url:
            self.base_url = str(request.base_url).rstrip("/")

    async def _api(self, request: Request) -> Response:
        self._learn_base_url(request)
        method = request.path_params["method"]
        params, token = await self._read_params(request)
        try:
            await self._apply_faults(method, params, request)
            self._authenticate(method, token)
            self._pace(method, params)
            answer = self._dispatch(method, params, request)
            return self._record(method, params, 200, {"ok": True, **answer})
        except _Answer as stop:
            return self._record(method, params, stop.status, {"ok": False, "error": stop.error}, stop.headers)

    def _record(
        self, method: str, params: JSONDict, status: int, answer: JSONDict, headers: Mapping[str, str] | None = None
    ) -> Response:
        self.calls.append(Call(method, params, datetime.now(UTC), status, answer))
        return JSONResponse(answer, status_code=status, headers=dict(headers or {}))

    async def _read_params(self, request: Request) -> tuple[JSONDict, str | None]:
        params: JSONDict = dict(request.query_params)
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if body:
            if content_type.startswith("application/json"):
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {}
                    params["_invalid_json"] = True
                if isinstance(data, dict):
                    params.update(data)
            else:
                params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        for name in _JSON_FIELDS:
            if isinstance(params.get(name), str):
                with contextlib.suppress(ValueError):
                    params[name] = json.loads(params[name])
        token: str | None = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        body_token = params.pop("token", None)
        if token is None and isinstance(body_token, str):
            token = body_token
        return params, token

    async def _apply_faults(self, method: str, params: JSONDict, request: Request | None) -> None:
        fault = self._matching_fault(method, params)
        if fault is None:
            return
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults.remove(fault)
        if fault.delay:
            await self._slow(fault.delay, request)
        if fault.status is not None and fault.status != 200:
            headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
            default = (
                "ratelimited"
                if fault.status == 429
                else ("service_unavailable" if fault.status == 503 else "internal_error")
            )
            raise _Answer(fault.error or default, fault.status, headers)
        if fault.error:
            raise _Answer(fault.error)

    def _matching_fault(self, method: str, params: JSONDict) -> Fault | None:
        now = time.monotonic()
        self.faults[:] = [f for f in self.faults if f.until is None or f.until > now]
        raw = params.get("channel")
        channel = raw if isinstance(raw, str) else None
        resolved = self._channel_id(channel) if channel else None
        for fault in self.faults:
            if fault.method not in (method, "*") or (fault.method == "*" and method == "response_url"):
                continue
            if fault.channel is not None:
                want = self._channel_id(fault.channel) or fault.channel
                if want not in (channel, resolved):
                    continue
            return fault
        return None

    @staticmethod
    async def _slow(delay: float, request: Request | None) -> None:
        # Stop waiting when the client hangs up: the call then takes effect at once, as a real
        # post that timed out on the client may still have landed (and shutdown never hangs).
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if request is not None and await request.is_disconnected():
                return
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _authenticate(self, method: str, token: str | None) -> None:
        if not token:
            raise _Answer("not_authed")
        if method in _APP_TOKEN_METHODS:
            if token in self.app_tokens:
                return
            raise _Answer("not_allowed_token_type" if token in self.bot_tokens else "invalid_auth")
        if token in self.bot_tokens:
            return
        raise _Answer("not_allowed_token_type" if token in self.app_tokens else "invalid_auth")

    def _pace(self, method: str, params: JSONDict) -> None:
        limit = self.rate_limit
        if limit is None or method not in limit.methods:
            return
        raw = params.get("channel")
        key = (method, (self._channel_id(raw) or raw) if isinstance(raw, str) else "")
        now = time.monotonic()
        bucket = self._buckets.setdefault(key, _Bucket(float(limit.burst), now))
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.stamp) * limit.per_second)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / limit.per_second
            raise _Answer("ratelimited", 429, {"Retry-After": str(max(1, math.ceil(wait)))})
        bucket.tokens -= 1.0

    def _dispatch(self, method: str, params: JSONDict, request: Request) -> JSONDict:
        if params.pop("_invalid_json", False):
            raise _Answer("invalid_json")
        handler = _METHODS.get(method)
        if handler is None:
            raise _Answer("unknown_method")
        return handler(self, params, request)

    # -- helpers for methods ------------------------------------------------------------------
    def _channel_id(self, ref: str | None) -> str | None:
        """A channel id for an id, ``#name``/``name``, or a user id (their DM with the bot)."""
        if not ref:
            return None
        if ref in self.channels:
            return ref
        name = ref.removeprefix("#")
        for channel in self.channels.values():
            if channel.name and channel.name == name:
                return channel.id
        if ref in self.users:
            return self._dm(ref).id
        return None

    def _dm(self, user_id: str) -> Channel:
        for channel in self.channels.values():
            if channel.is_im and channel.user == user_id:
                return channel
        return self.add_channel(Channel(f"D{next(self._ids):08d}", is_private=True, is_im=True, user=user_id))

    def _postable(self, params: JSONDict) -> Channel:
        raw = params.get("channel")
        cid = self._channel_id(raw) if isinstance(raw, str) else None
        if cid is None:
            raise _Answer("channel_not_found")
        channel = self.channels[cid]
        if channel.is_private and not channel.is_member and not channel.is_im:
            # Slack does not reveal private channels the bot is not in.
            raise _Answer("channel_not_found")
        if channel.is_archived:
            raise _Answer("is_archived")
        if not channel.is_member and not channel.is_im and not self.chat_write_public:
            raise _Answer("not_in_channel")
        return channel

    def _check_content(self, params: JSONDict) -> None:
        text = params.get("text")
        blocks = params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            raise _Answer("no_text")
        if isinstance(text, str) and len(text) > _MAX_TEXT:
            raise _Answer("msg_too_long")
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > _MAX_BLOCKS):
            raise _Answer("invalid_blocks")
        if isinstance(blocks, list) and not self._images_ok(blocks):
            raise _Answer("invalid_blocks")

    def _images_ok(self, blocks: list[Any]) -> bool:
        """Whether every image block is well-formed and shows a file the stand-in holds, complete
        (Slack answers ``invalid_blocks`` for an image naming a file it cannot find)."""
        for block in blocks:
            if not isinstance(block, dict) or block.get("type") != "image":
                continue
            slack_file = block.get("slack_file")
            if slack_file is None:
                if not isinstance(block.get("image_url"), str):
                    return False
                continue
            if not isinstance(slack_file, dict) or ("id" in slack_file) == ("url" in slack_file):
                return False
            if "image_url" in block or not isinstance(block.get("alt_text"), str):
                return False
            file_id = slack_file.get("id")
            if file_id is not None:
                stored = self.files.get(str(file_id))
                if stored is None or not stored.complete:
                    return False
        return True

    def _next_ts(self) -> str:
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _user(self, user_id: object) -> User:
        if not isinstance(user_id, str) or user_id not in self.users:
            raise _Answer("user_not_found")
        return self.users[user_id]

    def _view(self, params: JSONDict) -> JSONDict:
        view = params.get("view")
        if not isinstance(view, dict) or "type" not in view:
            raise _Answer("invalid_arguments")
        blocks = view.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > 100:
            raise _Answer("invalid_arguments")
        if not self._images_ok(blocks):
            raise _Answer("invalid_blocks")
        return {
            "id": f"V{next(self._ids):08d}",
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "hash": secrets.token_hex(8),
            **view,
        }

    # -- methods (each returns the answer beyond ``ok: true``, or raises _Answer) ---------------
    def _auth_test(self, params: JSONDict, request: Request) -> JSONDict:
        return {
            "url": f"https://{self.team}.slack.com/",
            "team": self.team,
            "user": "ges-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: JSONDict, request: Request) -> JSONDict:
        channel = self._postable(params)
        self._check_content(params)
        ts = self._next_ts()
        message: JSONDict = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
            "text": params.get("text", ""),
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if params.get(key) is not None:
                message[key] = params[key]
        self._history.setdefault(channel.id, []).append(message)
        return {"channel": channel.id, "ts": ts, "message": dict(message)}

    def _chat_update(self, params: JSONDict, request: Request) -> JSONDict:
        channel = self._postable(params)
        ts = params.get("ts")
        message = next((m for m in self._history.get(channel.id, []) if m["ts"] == ts), None)
        if message is None:
            raise _Answer("message_not_found")
        self._check_content(params)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params:
                message[key] = params[key]
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {"channel": channel.id, "ts": ts, "text": message.get("text", ""), "message": dict(message)}

    def _chat_post_ephemeral(self, params: JSONDict, request: Request) -> JSONDict:
        channel = self._postable(params)
        self._user(params.get("user"))
        self._check_content(params)
        return {"channel": channel.id, "message_ts": self._next_ts()}

    def _views_open(self, params: JSONDict, request: Request) -> JSONDict:
        trigger = params.get("trigger_id")
        if not isinstance(trigger, str) or not trigger:
            raise _Answer("invalid_arguments")
        if trigger in self._used_triggers:
            raise _Answer("exchanged_trigger_id")
        issued = self._triggers.get(trigger)
        if issued is None:
            raise _Answer("invalid_trigger_id")
        if time.monotonic() - issued > self.trigger_ttl:
            raise _Answer("expired_trigger_id")
        view = self._view(params)
        self._used_triggers.add(trigger)
        self.views[view["id"]] = view
        return {"view": view}

    def _views_update(self, params: JSONDict, request: Request) -> JSONDict:
        view_id = params.get("view_id")
        if not isinstance(view_id, str) or view_id not in self.views:
            raise _Answer("not_found")
        new = self._view(params)
        new["id"] = view_id
        self.views[view_id] = new
        return {"view": new}

    def _views_publish(self, params: JSONDict, request: Request) -> JSONDict:
        user = self._user(params.get("user_id"))
        view = self._view(params)
        if view.get("type") != "home":
            raise _Answer("invalid_arguments")
        self._home[user.id] = view
        return {"view": view}

    def _users_info(self, params: JSONDict, request: Request) -> JSONDict:
        user = self._user(params.get("user"))
        try:
            offset = ZoneInfo(user.tz).utcoffset(datetime.now(UTC).replace(tzinfo=None))
        except (ZoneInfoNotFoundError, ValueError):
            offset = None
        return {
            "user": {
                "id": user.id,
                "team_id": self.team_id,
                "name": user.name,
                "real_name": user.real_name or user.name,
                "deleted": user.deleted,
                "is_bot": user.is_bot,
                "tz": user.tz,
                "tz_label": user.tz,
                "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
                "profile": {"real_name": user.real_name or user.name, "display_name": user.name},
            }
        }

    def _users_conversations(self, params: JSONDict, request: Request) -> JSONDict:
        """The channels ``user`` is in, as Slack lists them to a bot: private ones only where the
        bot is a member too; ``types`` and ``exclude_archived`` honoured; paged by ``cursor``."""
        user = self._user(params.get("user"))
        types = str(params.get("types") or "public_channel").split(",")
        exclude_archived = str(params.get("exclude_archived") or "").lower() in ("true", "1")
        found = []
        for channel in self.channels.values():
            if channel.is_im or (exclude_archived and channel.is_archived):
                continue
            if ("private_channel" if channel.is_private else "public_channel") not in types:
                continue
            if channel.is_private and not channel.is_member:
                continue
            if channel.members is not None and user.id not in channel.members:
                continue
            found.append({"id": channel.id, "name": channel.name, "is_private": channel.is_private})
        start = _int(params.get("cursor"), 0)
        limit = max(1, min(_int(params.get("limit"), 100), 1000))
        page = found[start : start + limit]
        more = start + limit < len(found)
        return {"channels": page, "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _conversations_info(self, params: JSONDict, request: Request) -> JSONDict:
        raw = params.get("channel")
        cid = self._channel_id(raw) if isinstance(raw, str) else None
        if cid is None:
            raise _Answer("channel_not_found")
        channel = self.channels[cid]
        if channel.is_private and not channel.is_member and not channel.is_im:
            raise _Answer("channel_not_found")
        info: JSONDict = {
            "id": channel.id,
            "name": channel.name,
            "is_channel": not channel.is_private and not channel.is_im,
            "is_group": channel.is_private and not channel.is_im,
            "is_im": channel.is_im,
            "is_private": channel.is_private,
            "is_archived": channel.is_archived,
            "is_member": channel.is_member,
        }
        if channel.is_im:
            info["user"] = channel.user
        return {"channel": info}

    def _conversations_open(self, params: JSONDict, request: Request) -> JSONDict:
        raw = params.get("users")
        users = [u.strip() for u in raw.split(",") if u.strip()] if isinstance(raw, str) else []
        if len(users) != 1:
            # Group DMs are not needed by ges-bot.
            raise _Answer("invalid_arguments" if not users else "not_implemented")
        channel = self._dm(self._user(users[0]).id)
        return {"channel": {"id": channel.id}}

    def _chat_get_permalink(self, params: JSONDict, request: Request) -> JSONDict:
        raw = params.get("channel")
        cid = self._channel_id(raw) if isinstance(raw, str) else None
        if cid is None:
            raise _Answer("channel_not_found")
        ts = params.get("message_ts")
        if not any(m["ts"] == ts for m in self._history.get(cid, [])):
            raise _Answer("message_not_found")
        assert isinstance(ts, str)
        return {"channel": cid, "permalink": f"https://{self.team}.slack.com/archives/{cid}/p{ts.replace('.', '')}"}

    def _files_get_upload_url_external(self, params: JSONDict, request: Request) -> JSONDict:
        filename = params.get("filename")
        length = _int(params.get("length"), -1)
        if not isinstance(filename, str) or not filename or length <= 0:
            raise _Answer("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = StoredFile(file_id, filename, length, alt_txt=_str_or_none(params.get("alt_txt")))
        base = str(request.base_url).rstrip("/")
        return {"upload_url": f"{base}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, params: JSONDict, request: Request) -> JSONDict:
        items = params.get("files")
        if not isinstance(items, list) or not items:
            raise _Answer("invalid_arguments")
        channels: list[str] = []
        for raw in (params.get("channel_id"), *str(params.get("channels") or "").split(",")):
            if isinstance(raw, str) and raw.strip():
                channels.append(self._postable({"channel": raw.strip()}).id)
        done: list[StoredFile] = []
        for item in items:
            stored = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if stored is None or stored.content is None:
                # Slack refuses to complete a file whose bytes never arrived.
                raise _Answer("file_not_found")
            done.append(stored)
        for item, stored in zip(items, done, strict=True):
            stored.complete = True
            stored.title = _str_or_none(item.get("title")) or stored.filename
            stored.channels = tuple(channels)
            self._keep_on_disk(stored)
        return {"files": [self._file_json(f) for f in done]}

    def _file_json(self, stored: StoredFile) -> JSONDict:
        return {
            "id": stored.id,
            "name": stored.filename,
            "title": stored.title,
            "mimetype": "image/png" if stored.filename.endswith(".png") else "application/octet-stream",
            "size": stored.length,
            "is_public": False,
            "channels": list(stored.channels),
            "url_private": f"{self._base()}/_standin/files/{stored.id}",
        }

    def _keep_on_disk(self, stored: StoredFile) -> None:
        if self.files_dir is None or stored.content is None:
            return
        folder = Path(self.files_dir)
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stored.filename)
        path = folder / f"{stored.id}-{safe}"
        path.write_bytes(stored.content)
        self.written_files.append(str(path))

    async def _upload_post(self, request: Request) -> Response:
        """The upload URL of ``files.getUploadURLExternal``: takes the bytes once, of the announced length."""
        file_id = request.path_params["file_id"]
        body = await request.body()
        stored = self.files.get(file_id)
        status, text = 200, f"OK - {len(body)}"
        if stored is None:
            status, text = 404, "no_such_upload"
        elif stored.content is not None:
            status, text = 400, "already_uploaded"
        elif len(body) != stored.length:
            status, text = 400, "length_mismatch"
        else:
            stored.content = body
        answer: JSONDict = {"ok": status == 200, "file_id": file_id, "bytes": len(body)}
        if status != 200:
            answer["error"] = text
        self.calls.append(Call("files.upload_url", {"file_id": file_id}, datetime.now(UTC), status, answer))
        return PlainTextResponse(text, status_code=status)

    def file_content(self, file_id: str) -> bytes | None:
        """The bytes of an uploaded file, or ``None``."""
        stored = self.files.get(file_id)
        return stored.content if stored is not None else None

    def _apps_connections_open(self, params: JSONDict, request: Request) -> JSONDict:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        base = str(request.base_url).rstrip("/")
        ws = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
        return {"url": f"{ws}/socket?ticket={ticket}&app_id={self.app_id}"}

    # -- response URLs ------------------------------------------------------------------------
    async def _response_post(self, request: Request) -> Response:
        rid = request.path_params["rid"]
        body = await request.body()
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        params: JSONDict = payload if isinstance(payload, dict) else {"_raw": body.decode("utf-8", "replace")}
        try:
            await self._apply_faults("response_url", params, request)
        except _Answer as stop:
            return self._record_response(rid, params, stop.status, stop.error, stop.headers)
        target = self._response_urls.get(rid)
        if target is None:
            return self._record_response(rid, params, 404, "no_such_url")
        if time.monotonic() - target.created > self.response_url_ttl:
            return self._record_response(rid, params, 404, "expired_url")
        if len(target.posts) >= self.response_url_max_posts:
            return self._record_response(rid, params, 404, "used_url")
        if not isinstance(payload, dict):
            return self._record_response(rid, params, 400, "invalid_payload")
        if not payload.get("text") and not payload.get("blocks") and not payload.get("delete_original"):
            return self._record_response(rid, params, 400, "no_text")
        blocks = payload.get("blocks")
        if isinstance(blocks, list) and not self._images_ok(blocks):
            return self._record_response(rid, params, 400, "invalid_blocks")
        target.posts.append(payload)
        return self._record_response(rid, params, 200, "ok")

    def _record_response(
        self, rid: str, params: JSONDict, status: int, text: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        answer: JSONDict = {"ok": status == 200, "response_url": rid}
        if status != 200:
            answer["error"] = text
        self.calls.append(Call("response_url", params, datetime.now(UTC), status, answer))
        return PlainTextResponse(text, status_code=status, headers=dict(headers or {}))

    # -- control API --------------------------------------------------------------------------
    async def _ctl_file(self, request: Request) -> Response:
        stored = self.files.get(request.path_params["file_id"])
        if stored is None or stored.content is None:
            return PlainTextResponse("file_not_found", status_code=404)
        return Response(stored.content, media_type="image/png" if stored.filename.endswith(".png") else None)

    async def _ctl_calls(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.reset()
            return JSONResponse({"ok": True})
        method = request.query_params.get("method")
        since = _int(request.query_params.get("since"), 0)
        selected = [c.to_json() for c in self.calls[since:] if method is None or c.method == method]
        return JSONResponse({"calls": selected, "next": len(self.calls)})

    async def _ctl_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"ok": True})
        if request.method == "GET":
            return JSONResponse({"faults": [f.to_json() for f in self.faults]})
        spec = await _json_body(request)
        method = spec.get("method")
        if not isinstance(method, str):
            return JSONResponse({"ok": False, "error": "method is required"}, status_code=400)
        channel = spec.get("channel") if isinstance(spec.get("channel"), str) else None
        status = spec.get("status") if isinstance(spec.get("status"), int) else None
        error = spec.get("error") if isinstance(spec.get("error"), str) else None
        if "until" in spec or "for_seconds" in spec:
            until: datetime | float
            if isinstance(spec.get("until"), str):
                until = datetime.fromisoformat(spec["until"])
                if until.tzinfo is None:
                    until = until.replace(tzinfo=UTC)
            else:
                until = float(spec.get("for_seconds", 0))
            fault = self.outage(method, until=until, status=status or 503, error=error, channel=channel)
        else:
            delay = spec.get("delay")
            count = spec.get("count")
            fault = self.fail(
                method,
                channel=channel,
                status=status,
                retry_after=_int(spec.get("retry_after"), 1),
                error=error,
                delay=float(delay) if isinstance(delay, int | float) else None,
                count=count if isinstance(count, int) else None,
            )
        return JSONResponse({"ok": True, "fault": fault.to_json()})

    async def _ctl_rate_limit(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.rate_limit = None
            return JSONResponse({"ok": True})
        spec = await _json_body(request)
        methods = spec.get("methods")
        self.rate_limit = RateLimit(
            per_second=float(spec.get("per_second", 1.0)),
            burst=_int(spec.get("burst"), 3),
            methods=frozenset(methods) if isinstance(methods, list) else RateLimit().methods,
        )
        self._buckets.clear()
        return JSONResponse({"ok": True})

    async def _ctl_messages(self, request: Request) -> Response:
        return JSONResponse({"messages": self.messages(request.query_params.get("channel"))})

    async def _ctl_channels(self, request: Request) -> Response:
        spec = await _json_body(request)
        fields = {k: spec[k] for k in Channel.__dataclass_fields__ if k in spec}
        if not isinstance(fields.get("id"), str):
            return JSONResponse({"ok": False, "error": "id is required"}, status_code=400)
        current = self.channels.get(fields["id"])
        channel = replace(current, **fields) if current else Channel(**fields)
        self.add_channel(channel)
        return JSONResponse({"ok": True, "channel": asdict(channel)})

    async def _ctl_users(self, request: Request) -> Response:
        spec = await _json_body(request)
        fields = {k: spec[k] for k in User.__dataclass_fields__ if k in spec}
        if not isinstance(fields.get("id"), str):
            return JSONResponse({"ok": False, "error": "id is required"}, status_code=400)
        current = self.users.get(fields["id"])
        user = replace(current, **fields) if current else User(**fields)
        self.add_user(user)
        return JSONResponse({"ok": True, "user": asdict(user)})

    async def _ctl_response_urls(self, request: Request) -> Response:
        spec = await _json_body(request)
        given = spec.get("id")
        rid = given if isinstance(given, str) and given else uuid.uuid4().hex
        self._response_urls.setdefault(rid, _ResponseUrl(rid, time.monotonic()))
        return JSONResponse({"ok": True, "id": rid, "url": f"{str(request.base_url).rstrip('/')}/response/{rid}"})

    async def _ctl_responses(self, request: Request) -> Response:
        return JSONResponse({"responses": self.responses(request.path_params["rid"])})

    async def _ctl_triggers(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "trigger_id": self.issue_trigger_id()})

    async def _ctl_envelopes(self, request: Request) -> Response:
        spec = await _json_body(request)
        payload = spec.get("payload")
        if not isinstance(spec.get("type"), str) or not isinstance(payload, dict):
            return JSONResponse({"ok": False, "error": "type and payload are required"}, status_code=400)
        try:
            envelope_id = await self.push_envelope(
                spec["type"],
                payload,
                accepts_response_payload=bool(spec.get("accepts_response_payload", True)),
                timeout=float(spec.get("timeout", 5.0)),
            )
        except TimeoutError:
            return JSONResponse({"ok": False, "error": "no Socket Mode client connected"}, status_code=409)
        return JSONResponse({"ok": True, "envelope_id": envelope_id})

    async def _ctl_acks(self, request: Request) -> Response:
        return JSONResponse(
            {"acks": [{"envelope_id": a.envelope_id, "payload": a.payload, "at": a.at.isoformat()} for a in self.acks]}
        )


_Method = Callable[[SlackStandIn, JSONDict, Request], JSONDict]
_METHODS: dict[str, _Method] = {
    "auth.test": SlackStandIn._auth_test,
    "chat.postMessage": SlackStandIn._chat_post_message,
    "chat.update": SlackStandIn._chat_update,
    "chat.postEphemeral": SlackStandIn._chat_post_ephemeral,
    "chat.getPermalink": SlackStandIn._chat_get_permalink,
    "views.open": SlackStandIn._views_open,
    "views.update": SlackStandIn._views_update,
    "views.publish": SlackStandIn._views_publish,
    "users.info": SlackStandIn._users_info,
    "conversations.info": SlackStandIn._conversations_info,
    "conversations.open": SlackStandIn._conversations_open,
    "users.conversations": SlackStandIn._users_conversations,
    "apps.connections.open": SlackStandIn._apps_connections_open,
    "files.getUploadURLExternal": SlackStandIn._files_get_upload_url_external,
    "files.completeUploadExternal": SlackStandIn._files_complete_upload_external,
}


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object, default: int) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


async def _json_body(request: Request) -> JSONDict:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------------------------
# Signed requests from "Slack" to the app (HTTP mode)
# --------------------------------------------------------------------------------------------


def _sign(signing_secret: str | SecretStr, body: str, timestamp: int | None) -> dict[str, str]:
    secret = signing_secret.get_secret_value() if isinstance(signing_secret, SecretStr) else signing_secret
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(signature),
    }


def signed_command_request(
    signing_secret: str | SecretStr, *, timestamp: int | None = None, **fields: str
) -> tuple[bytes, dict[str, str]]:
    """A slash-command request body and headers, signed like Slack signs them, to POST to the
    app's ``/slack/events``. ``fields`` override the defaults (``text``, ``user_id``,
    ``channel_id``, ``response_url``, ``trigger_id`` …); ``timestamp`` (epoch seconds) makes a
    stale request when old. Pass ``response_url=stand_in.response_url()`` to record the answers,
    and ``trigger_id=stand_in.issue_trigger_id()`` if the handler opens a modal (the default
    trigger id is valid nowhere, as a forged one would be)."""
    form = {
        "token": "legacy-verification-token",
        "team_id": "T0STANDIN",
        "team_domain": "standin",
        "channel_id": "C0GENERAL",
        "channel_name": "general",
        "user_id": "U0ALICE",
        "user_name": "alice",
        "command": "/gesjobs",
        "text": "",
        "api_app_id": "A0GESBOT",
        "is_enterprise_install": "false",
        "response_url": "",
        "trigger_id": f"{int(time.time())}.{secrets.randbelow(10**9)}.{secrets.token_hex(8)}",
    }
    form.update(fields)
    body = urlencode(form)
    return body.encode(), _sign(signing_secret, body, timestamp)


def signed_interaction_request(
    signing_secret: str | SecretStr, payload: Mapping[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """An interactivity request (``payload=<json>`` form), signed like Slack signs it."""
    body = urlencode({"payload": json.dumps(payload)})
    return body.encode(), _sign(signing_secret, body, timestamp)
