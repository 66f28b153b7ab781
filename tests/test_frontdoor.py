"""The front door of ``ges-bot run`` in HTTP mode, tried as an attacker who can reach its port would.

One real bot process (GES emulator and Slack stand-in on loopback) per test; requests go over raw
sockets or httpx. Memory is read from ``/proc/<pid>/status`` of the bot process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from ges_bot.notify import render
from ges_bot.standin.slack import SlackStandIn
from tests.support.emulator import EmulatorHandle
from tests.support.processes import SIGNING_SECRET, BotFleet, BotProcess, bot_env

MB = 1024 * 1024


def door_env(emu: EmulatorHandle, slack: SlackStandIn, database: Path, **extra: str) -> dict[str, str]:
    # Polls far apart: the memory these tests read is the front door's, not a poll tick's.
    return bot_env(emu, slack, database, GES_BOT_POLL_INTERVAL="30", **extra)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> None:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux ``clear_refs`` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    """One HTTP answer: its head, then as many body bytes as its Content-Length says."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    return head + await reader.readexactly(length)


async def _flood(port: int, head: bytes, total: int, chunked: bool) -> bytes:
    """Send ``head`` then ``total`` bytes of body (1 MiB at a time, the same buffer: the client
    never holds the body either) while reading; returns whatever the server answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(_read_answer(reader))
    chunk = b"x" * MB
    try:
        writer.write(head)
        sent = 0
        while sent < total and not answer.done():
            piece = chunk[: min(MB, total - sent)]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
        if chunked and not answer.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the server gave up on the connection; whatever it answered is read below
    finally:
        data = await asyncio.wait_for(answer, 30)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return data


async def _huge_post(bot: BotProcess, *, chunked: bool) -> tuple[bytes, int]:
    """A 300 MB unsigned POST to /slack/events; returns the answer and the peak RSS growth (kB)."""
    size = 300 * MB
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % size
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + framing
        + b"\r\n"
    )
    before = _status_kb(bot.pid, "VmRSS")
    _reset_peak(bot.pid)
    answer = await _flood(bot.port, head, size, chunked)
    return answer, _status_kb(bot.pid, "VmHWM") - before


async def test_a_300_mb_unsigned_post_is_refused_413_without_the_memory(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    bot = await fleet.start("door", door_env(emu, slack, tmp_path / "bot.db"))
    for chunked in (False, True):
        answer, grown_kb = await _huge_post(bot, chunked=chunked)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"limited to 1048576 bytes" in answer
        assert grown_kb < 20 * 1024, f"RSS grew by {grown_kb} kB (chunked={chunked})"
    # Still serving, and a proper request still works.
    status, _ = await bot.health()
    assert status == 200
    assert "Traceback" not in bot.logs()


def _signed(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    ts = str(int(time.time()))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(
            timestamp=ts, body=body.decode("utf-8")
        ),
    }


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


#: Bodies no one should be able to turn into a 500. Each is sent unsigned, with a forged
#: signature, with a garbage timestamp and (where the bytes are UTF-8) properly signed.
CORPUS: list[tuple[bytes, str]] = [
    (b"{", "application/json"),
    (b"{", "application/x-www-form-urlencoded"),
    (b"payload=[1]", "application/x-www-form-urlencoded"),
    (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
    (b"payload=null", "application/x-www-form-urlencoded"),
    (b"payload=" + _deep(100_000), "application/x-www-form-urlencoded"),
    (_deep(100_000), "application/json"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'"just a string"', "application/json"),
    (b"null", "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
    (b"", "application/json"),
    (b"", "application/x-www-form-urlencoded"),
    (b"command=%2Fgesjobs&text=%00%01%1b[31m", "application/x-www-form-urlencoded"),
    (b"payload=" + json.dumps({"type": "block_actions", "actions": 5}).encode(), "application/x-www-form-urlencoded"),
    (b"payload=" + json.dumps({"type": 7, "user": []}).encode(), "application/x-www-form-urlencoded"),
    (b"payload=" + json.dumps({"type": "block_actions", "actions": []}).encode(), "application/x-www-form-urlencoded"),
    (b"payload=" + json.dumps({"type": "block_actions", "actions": [1]}).encode(), "application/x-www-form-urlencoded"),
    (b"payload=" + json.dumps({"type": "block_actions", "team": True}).encode(), "application/x-www-form-urlencoded"),
    (json.dumps({"type": "event_callback", "event": "x"}).encode(), "application/json"),
    (json.dumps({"type": "event_callback", "event": {"user": 1}}).encode(), "application/json"),
    (json.dumps({"type": "event_callback", "event": {}, "authorizations": 5}).encode(), "application/json"),
    (json.dumps({"type": "url_verification", "challenge": []}).encode(), "application/json"),
    (b"a=" + b"&a=" * 20_000, "application/x-www-form-urlencoded"),
    (urlencode({"command": "/gesjobs", "text": "x" * 50_000}).encode(), "application/x-www-form-urlencoded"),
    (b"%%%%%", "text/plain"),
]


async def test_malformed_bodies_get_400_or_401_never_500_and_no_traceback(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    bot = await fleet.start("door", door_env(emu, slack, tmp_path / "bot.db"))
    seen: dict[int, int] = {}
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(body: bytes, headers: Mapping[str, str | bytes], allowed: set[int]) -> None:
            response = await client.post(f"{bot.url}/slack/events", content=body, headers=dict(headers))
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code in allowed, (body[:60], headers, response.status_code, response.text[:200])

        for body, content_type in CORPUS:
            await post(body, {"Content-Type": content_type}, {401})
            forged = {**_signed(b"other"), "Content-Type": content_type}
            await post(body, forged, {401})
            for ts in ("abc", "-1", "1e9", "99999999999999999999", "", "1.5"):
                await post(body, {**forged, "X-Slack-Request-Timestamp": ts}, {400, 401})
            await post(body, {**forged, "X-Slack-Signature": "v0=\u00e9".encode()}, {401})
            try:
                headers = _signed(body, content_type)
            except UnicodeDecodeError:
                continue  # Slack signs text; such bytes can only arrive unsigned
            # Signed (so from Slack, or from someone holding the secret): bolt's own answers,
            # 404 included for a well-formed payload no listener handles.
            await post(body, headers, {200, 400, 404})
        # Slack's own URL check still works through the door.
        challenge = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode()
        response = await client.post(
            f"{bot.url}/slack/events", content=challenge, headers=_signed(challenge, "application/json")
        )
        assert response.status_code == 200
        assert "c-123" in response.text
        # A bad Content-Length is a 400, not a crash.
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 12abc\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(_read_answer(reader), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert 500 not in seen
    assert seen.get(401, 0) > len(CORPUS) * 2
    status, _ = await bot.health()
    assert status == 200
    logs = bot.logs()
    assert "Traceback" not in logs
    assert "Exception in ASGI application" not in logs


async def test_uvicorn_lines_are_json_with_the_bots_format(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    bot = await fleet.start("door", door_env(emu, slack, tmp_path / "bot.db", GES_BOT_LOG_FORMAT="json"))
    # h11 refuses this request line itself; uvicorn logs "Invalid HTTP request received."
    with socket.create_connection(("127.0.0.1", bot.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    await bot.stop()
    lines = [line for line in bot.logs().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON, uvicorn's included
    assert any(r["logger"].startswith("uvicorn") and "Invalid HTTP request" in r["msg"] for r in records), lines


async def test_connections_beyond_the_concurrency_limit_get_503(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    # uvicorn counts the connection asking too: with a limit of 2, one other open connection is enough.
    bot = await fleet.start("door", door_env(emu, slack, tmp_path / "bot.db", GES_BOT_HTTP_CONCURRENCY="2"))
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        assert (await client.get(f"{bot.url}/healthz")).status_code == 200
        _, idle = await asyncio.open_connection("127.0.0.1", bot.port)
        try:
            refused = await client.get(f"{bot.url}/healthz")
        finally:
            idle.close()
            with contextlib.suppress(ConnectionError):
                await idle.wait_closed()
    assert refused.status_code == 503
    assert "Exceeded concurrency limit" in bot.logs()


_ODD_VALUES: list[object] = [5, -1, 1.5, [], [1], [{}], {}, {"id": []}, None, "", "x", True, "<!channel>", "a" * 3000]


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.append((*prefix, i))
            found += _paths(value, (*prefix, i))
    return found


def _mutated(template: dict[str, object], rng: random.Random) -> dict[str, object]:
    payload: Any = json.loads(json.dumps(template))
    for _ in range(rng.randint(1, 3)):
        paths = _paths(payload)
        if not paths:
            break
        *parents, last = rng.choice(paths)
        node = payload
        for key in parents:
            node = node[key]
        node[last] = json.loads(json.dumps(rng.choice(_ODD_VALUES)))
    return dict(payload)


async def test_signed_payloads_with_odd_shapes_never_get_a_500_or_a_traceback(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    """Slack's own payloads (buttons, Home tab, slash command) with random fields replaced by values
    of the wrong kind, properly signed: bolt and the handlers must take them in their stride."""
    bot = await fleet.start("door", door_env(emu, slack, tmp_path / "bot.db"))
    rng = random.Random(1717)
    templates: list[dict[str, object]] = [
        slack.block_action_payload(action, render.job_ref("default", "job-1"), channel_id="C0ALERTS")
        for action in (render.ACTION_DETAILS, render.ACTION_MUTE_1H, render.ACTION_ACK, render.ACTION_DETAIL_NEXT)
    ]
    templates.append(
        {
            "type": "event_callback",
            "team_id": "T0STANDIN",
            "api_app_id": "A0GESBOT",
            "event_id": "Ev1",
            "event_time": 1,
            "event": {"type": "app_home_opened", "user": "U0ALICE", "channel": "D0ALICE", "tab": "home"},
        }
    )
    command = {
        "command": "/gesjobs",
        "text": "failed today",
        "user_id": "U0ALICE",
        "channel_id": "C0ALERTS",
        "team_id": "T0STANDIN",
        "response_url": slack.response_url("fuzz"),
        "trigger_id": "1.2.3",
    }
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(240):
            template = templates[i % len(templates)]
            payload = _mutated(template, rng)
            if payload.get("type") == "event_callback":
                body = json.dumps(payload).encode()
                headers = _signed(body, "application/json")
            else:
                body = urlencode({"payload": json.dumps(payload)}).encode()
                headers = _signed(body)
            response = await client.post(f"{bot.url}/slack/events", content=body, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (200, 400, 404), (json.dumps(payload)[:2000], response.status_code)
        for _ in range(20):
            form = {k: (v if rng.random() < 0.7 else str(rng.choice(_ODD_VALUES))) for k, v in command.items()}
            body = urlencode(form).encode()
            response = await client.post(f"{bot.url}/slack/events", content=body, headers=_signed(body))
            assert response.status_code in (200, 400, 404), (form, response.status_code)
    assert statuses.get(200, 0) > 0
    # Handlers run after the ack: stop the bot so that everything they log is in the log.
    assert await bot.stop() == 0
    logs = bot.logs()
    assert "Traceback" not in logs, logs[-3000:]
    assert "Exception in ASGI application" not in logs
