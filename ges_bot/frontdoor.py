"""The bot's HTTP front door: what ``/slack/events`` accepts before bolt sees a single byte.

This module owns the checks an unauthenticated caller meets (HTTP mode): a body over the cap is
refused with 413 — from ``Content-Length`` before any of it is read, and a chunked body as soon as
it passes the cap — the Slack signature is verified on the raw bytes with slack_sdk's
``SignatureVerifier`` (401 otherwise), and a signed body bolt could not parse into an object (broken
JSON, ``payload=[1]``, nesting deep enough to exhaust the parser, bytes that are not UTF-8) is a
400. Only then does the request reach bolt, with the body already read. So memory per request is
bounded by the cap, and garbage costs a short answer instead of a 500 and a traceback.

It also owns who may read what of ``/healthz`` (:func:`trusted`, :func:`public_health`: callers on
loopback or with ``GES_BOT_HEALTH_TOKEN`` see the details, everyone else status and lag), and
:func:`route_server_logs`, which sends uvicorn's own log lines through the bot's handlers (and so
through ``GES_BOT_LOG_FORMAT``). It knows nothing of commands or Slack's answers.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request

if TYPE_CHECKING:
    from ges_bot.config import Settings

__all__ = [
    "DEFAULT_MAX_BODY",
    "SlackFrontDoor",
    "guard_slack_events",
    "public_health",
    "route_server_logs",
    "trusted",
]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Slack's own payloads are a few kilobytes (a modal submission at most some hundreds); 1 MiB
#: leaves room for all of them while bounding what one request can make the process hold.
DEFAULT_MAX_BODY = 1024 * 1024

#: Slack rejects requests older than five minutes; so do we (slack_sdk's verifier checks it).
_TIMESTAMP_DIGITS = 12


class _TooLarge(Exception):
    pass


class SlackFrontDoor:
    """ASGI middleware guarding ``path`` (POST): size cap, signature, parseability; every other
    request passes through to ``app`` untouched."""

    def __init__(self, app: ASGIApp, *, path: str, signing_secret: str, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.path = path
        self.max_body = max_body
        self._verifier = SignatureVerifier(signing_secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") != self.path or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, "Content-Length must be a number of bytes.")
                return
            if int(length) > self.max_body:
                # Refused unread. The connection stays open: uvicorn discards whatever body still
                # arrives (never buffering it) until its keep-alive timeout, so the client reads
                # this answer instead of a reset that would swallow it.
                await _answer(send, 413, f"Request bodies are limited to {self.max_body} bytes.")
                return
        try:
            body = await self._read(receive)
        except _TooLarge:
            await _answer(send, 413, f"Request bodies are limited to {self.max_body} bytes.")
            return
        except _Disconnected:
            return
        if not self._signed(body, headers):
            await _answer(send, 401, "Invalid or missing Slack signature.")
            return
        if not _parses(body, headers.get("content-type")):
            log.warning("slack: a signed request whose body is not a Slack payload was refused (%d bytes)", len(body))
            await _answer(send, 400, "The body is not a Slack payload.")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        """The whole body, or :class:`_TooLarge` as soon as it passes the cap (chunked uploads
        included: ``Content-Length`` is only a claim)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _signed(self, body: bytes, headers: dict[str, str]) -> bool:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        # The verifier calls int() on the timestamp, decodes the body as UTF-8 and compares the
        # signature with hmac.compare_digest (ASCII only): each would raise on an attacker's
        # input, so check their shape first.
        if not timestamp.isdigit() or len(timestamp) > _TIMESTAMP_DIGITS or not signature.isascii():
            return False
        try:
            # Checks freshness (five minutes) too, and compares in constant time.
            return bool(self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature))
        except (UnicodeDecodeError, ValueError, TypeError):
            return False


class _Disconnected(Exception):
    pass


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in scope.get("headers") or ():
        found[bytes(key).decode("latin-1").lower()] = bytes(value).decode("latin-1")
    return found


def _parses(body: bytes, content_type: str | None) -> bool:
    """Whether bolt will read ``body`` as an object, parsed exactly the way bolt parses it."""
    try:
        text = body.decode("utf-8")
        kind = content_type.split(";", 1)[0].strip() if content_type else None
        parsed = parse_body(text, kind)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return False
    # An empty object is nothing Slack sends; bolt would only shrug at it.
    return isinstance(parsed, dict) and bool(parsed) and _shaped_like_slack(parsed)


#: Fields bolt reads as "an object, or an id": anything else makes its dispatch raise (a 500).
_OBJECT_OR_ID = ("user", "team", "channel", "enterprise")


def _shaped_like_slack(payload: Mapping[str, Any]) -> bool:
    """The shapes bolt's dispatch relies on before any listener runs (found by fuzzing bolt
    1.30: each violation below made it raise). Values are not judged, only their kinds."""
    if not all(_object_or_id(payload.get(key)) for key in _OBJECT_OR_ID):
        return False
    for key in ("actions", "authorizations"):
        if key in payload and not _objects(payload[key]):
            return False
    # Matching a button reads the first action's action_id (block_actions) or the payload's
    # callback_id (legacy attachments, dialogs) by key.
    if payload.get("type") == "block_actions" and not all(
        isinstance(action.get("action_id"), str) for action in payload.get("actions") or ()
    ):
        return False
    if not all(_scalar(payload.get(key)) for key in _SCALARS):
        return False
    if "event" in payload:
        event = payload["event"]
        if not isinstance(event, dict) or not all(_object_or_id(event.get(k)) for k in ("user", "channel")):
            return False
    return True


#: Fields that are plain values in every Slack payload and that bolt compares or hashes.
_SCALARS = (
    "type",
    "token",
    "team_id",
    "api_app_id",
    "enterprise_id",
    "user_id",
    "channel_id",
    "command",
    "text",
    "callback_id",
    "trigger_id",
    "response_url",
    "event_id",
    "event_time",
    "is_enterprise_install",
)


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _object_or_id(value: object) -> bool:
    return value is None or isinstance(value, str | dict)


def _objects(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the body already read, then defers to the connection's own
    (which reports the client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def route_server_logs() -> None:
    """Let uvicorn's loggers propagate to the root logger (the bot's handler and format) instead
    of printing through handlers of their own. Pair with ``uvicorn.Config(log_config=None)``."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


def guard_slack_events(app: ASGIApp, settings: Settings) -> SlackFrontDoor:
    """``app`` with ``/slack/events`` behind the front door (HTTP mode: the signing secret is set)."""
    from ges_bot.slackapp.app import EVENTS_PATH

    secret = settings.slack_signing_secret
    assert secret is not None, "HTTP mode without a signing secret is refused at start"
    return SlackFrontDoor(
        app, path=EVENTS_PATH, signing_secret=secret.get_secret_value(), max_body=settings.http_max_body
    )


def trusted(request: Request, token: SecretStr | None) -> bool:
    """Whether ``request`` may read /healthz's details: it comes from this machine (loopback), or
    carries ``Authorization: Bearer <GES_BOT_HEALTH_TOKEN>``."""
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            return True
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # On a dual-stack socket, a loopback IPv4 caller shows as ::ffff:127.0.0.1.
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def public_health(body: Mapping[str, Any]) -> dict[str, Any]:
    """What anyone may know: the status, and how far behind the freshest poll is the stalest
    project (``None`` before a first success). No hosts, ids, errors or notes."""
    lags = [p.get("lag_seconds") for p in body.get("projects") or ()]
    lag = None if not lags or None in lags else max(float(x) for x in lags if x is not None)
    return {"status": body.get("status"), "lag_seconds": lag}
