"""The Slack stand-in answers slack_sdk, bolt and Socket Mode the way Slack does."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler, AsyncServerErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ges_bot.standin.slack import (
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    Channel,
    RateLimit,
    SlackStandIn,
    User,
    signed_command_request,
    signed_interaction_request,
)
from tests.support.asgi import serve

SECRET = "standin-signing-secret"
TS = re.compile(r"^\d{10}\.\d{6}$")


def make_stand_in(**kwargs: Any) -> SlackStandIn:
    return SlackStandIn(
        channels=[
            Channel("C0ALERTS", "alerts"),
            Channel("C0GENERAL", "general"),
            Channel("C0OLD", "old", is_archived=True),
            Channel("C0SECRET", "secret", is_private=True, is_member=False),
            Channel("C0OUTSIDE", "outside", is_member=False),
        ],
        users=[User("U0ALICE", "alice", tz="Europe/Berlin"), User("U0BOB", "bob", tz="America/New_York")],
        **kwargs,
    )


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = make_stand_in()
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        yield stand_in


def web(stand_in: SlackStandIn, token: str = DEFAULT_BOT_TOKEN, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=stand_in.api_url, timeout=5, **kwargs)


# ---------------------------------------------------------------------------------------------
# Web API
# ---------------------------------------------------------------------------------------------


async def test_post_update_and_history(slack: SlackStandIn) -> None:
    client = web(slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*movies* failed"}}]
    first = await client.chat_postMessage(channel="C0ALERTS", text="movies failed", blocks=blocks)
    second = await client.chat_postMessage(channel="#alerts", text="reply", thread_ts=first["ts"])
    assert first["channel"] == second["channel"] == "C0ALERTS"
    assert TS.match(first["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == blocks

    updated = await client.chat_update(channel="C0ALERTS", ts=first["ts"], text="movies recovered")
    assert updated["ts"] == first["ts"]

    assert [m["text"] for m in slack.messages("C0ALERTS")] == ["movies failed", "reply"]
    assert slack.messages("alerts")[1]["thread_ts"] == first["ts"]
    assert slack.messages("C0GENERAL") == []
    assert slack.updates() == [{"channel": "C0ALERTS", "ts": first["ts"], "text": "movies recovered"}]
    history = slack.history("C0ALERTS")
    assert history[0]["text"] == "movies recovered"
    assert history[0]["blocks"] == blocks
    assert "edited" in history[0]
    assert slack.count("chat.postMessage") == 2

    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C0ALERTS", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"


async def test_tokens_are_checked_and_never_recorded(slack: SlackStandIn) -> None:
    auth = await web(slack).auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T0STANDIN", "U0GESBOT", "B0GESBOT")
    assert auth["url"] == "https://standin.slack.com/"

    for token, error in [("xoxb-wrong", "invalid_auth"), (DEFAULT_APP_TOKEN, "not_allowed_token_type")]:
        with pytest.raises(SlackApiError) as err:
            await web(slack, token=token).chat_postMessage(channel="C0ALERTS", text="hi")
        assert err.value.response["error"] == error
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(base_url=slack.api_url).auth_test()
    assert err.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as err:
        await web(slack).apps_connections_open(app_token=DEFAULT_BOT_TOKEN)
    assert err.value.response["error"] == "not_allowed_token_type"

    assert all("token" not in c.params for c in slack.calls)
    assert slack.messages() == []


async def test_channel_rules(slack: SlackStandIn) -> None:
    client = web(slack)
    for channel, error in [
        ("C0NOPE", "channel_not_found"),
        ("#nope", "channel_not_found"),
        ("C0OLD", "is_archived"),
        ("C0SECRET", "channel_not_found"),  # private and the bot is not in it: invisible
    ]:
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=channel, text="hi")
        assert err.value.response["error"] == error, channel
    # chat:write.public: a public channel the bot is not in still accepts posts...
    await client.chat_postMessage(channel="C0OUTSIDE", text="hi")
    # ...unless the scope is missing.
    slack.chat_write_public = False
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0OUTSIDE", text="hi")
    assert err.value.response["error"] == "not_in_channel"
    # Archiving mid-run takes effect at once.
    slack.archive("C0ALERTS")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert err.value.response["error"] == "is_archived"
    with pytest.raises(SlackApiError) as err:
        # Through api_call: slack_sdk itself warns before sending a message without text.
        await client.api_call("chat.postMessage", json={"channel": "C0GENERAL"})
    assert err.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0GENERAL", text="x", blocks=[{"type": "divider"}] * 51)
    assert err.value.response["error"] == "invalid_blocks"


async def test_rate_limited_post_is_retried_after_retry_after(slack: SlackStandIn) -> None:
    slack.fail("chat.postMessage", count=1, retry_after=1)
    client = web(slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    answer = await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert answer["ok"]
    first, second = slack.calls_to("chat.postMessage")
    assert (first.http_status, first.answer) == (429, {"ok": False, "error": "ratelimited"})
    assert second.ok
    assert (second.at - first.at).total_seconds() >= 1.0
    assert len(slack.messages()) == 1


async def test_rate_limit_without_a_retry_handler_surfaces_429(slack: SlackStandIn) -> None:
    slack.fail("chat.postMessage", retry_after=7, count=1)
    with pytest.raises(SlackApiError) as err:
        await web(slack).chat_postMessage(channel="C0ALERTS", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    # count=1: the next post goes through.
    await web(slack).chat_postMessage(channel="C0ALERTS", text="hi")


async def test_error_fault_for_one_channel_only(slack: SlackStandIn) -> None:
    slack.fail("chat.postMessage", channel="#alerts", error="channel_not_found")
    client = web(slack)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "channel_not_found"
    await client.chat_postMessage(channel="C0GENERAL", text="hi")
    slack.clear_faults()
    await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert [m["channel"] for m in slack.messages()] == ["C0GENERAL", "C0ALERTS"]


async def test_outage_answers_503_until_it_ends(slack: SlackStandIn) -> None:
    slack.outage("*", until=0.4)
    client = web(slack)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert err.value.response.status_code == 503
    assert err.value.response["error"] == "service_unavailable"
    with pytest.raises(SlackApiError):
        await client.auth_test()
    await asyncio.sleep(0.5)
    await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert slack.faults == []


async def test_server_error_is_retried_by_the_server_error_handler(slack: SlackStandIn) -> None:
    slack.fail("chat.postMessage", status=503, count=1)
    client = web(slack, retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)])
    await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert [c.http_status for c in slack.calls_to("chat.postMessage")] == [503, 200]


async def test_slow_answer_times_out_but_the_post_lands(slack: SlackStandIn) -> None:
    slack.fail("chat.postMessage", delay=5, count=1)
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=slack.api_url, timeout=1)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await client.chat_postMessage(channel="C0ALERTS", text="hi")
    assert time.monotonic() - started < 3
    # Like Slack, the request was received: the message exists although the client gave up.
    await slack.wait_for(lambda: slack.messages("C0ALERTS"), timeout=2)


async def test_per_channel_rate_limit() -> None:
    stand_in = make_stand_in(rate_limit=RateLimit(per_second=10.0, burst=2))
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        client = web(stand_in)
        await client.chat_postMessage(channel="C0ALERTS", text="1")
        await client.chat_postMessage(channel="C0ALERTS", text="2")
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C0ALERTS", text="3")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "1"
        # Another channel has its own allowance; chat.update is not paced.
        await client.chat_postMessage(channel="C0GENERAL", text="elsewhere")
        ts = stand_in.messages("C0ALERTS")[0]["ts"]
        await client.chat_update(channel="C0ALERTS", ts=ts, text="edited")
        await asyncio.sleep(0.15)  # 10 per second: room for one more
        await client.chat_postMessage(channel="C0ALERTS", text="3 again")
        assert stand_in.count("chat.postMessage", ok=False) == 1
        assert [m["text"] for m in stand_in.messages("C0ALERTS")] == ["1", "2", "3 again"]


async def test_users_conversations_and_dms(slack: SlackStandIn) -> None:
    client = web(slack)
    alice = await client.users_info(user="U0ALICE")
    assert alice["user"]["tz"] == "Europe/Berlin"
    assert alice["user"]["tz_offset"] in (3600, 7200)
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"

    info = await client.conversations_info(channel="C0OLD")
    assert info["channel"]["is_archived"] is True
    assert info["channel"]["is_member"] is True
    info = await client.conversations_info(channel="C0OUTSIDE")
    assert info["channel"]["is_member"] is False
    with pytest.raises(SlackApiError) as err:
        await client.conversations_info(channel="C0NOPE")
    assert err.value.response["error"] == "channel_not_found"

    dm = await client.conversations_open(users="U0BOB")
    assert dm["channel"]["id"].startswith("D")
    again = await client.conversations_open(users=["U0BOB"])
    assert again["channel"]["id"] == dm["channel"]["id"]
    posted = await client.chat_postMessage(channel="U0BOB", text="psst")
    assert posted["channel"] == dm["channel"]["id"]
    assert slack.messages(dm["channel"]["id"])[0]["text"] == "psst"

    ephemeral = await client.chat_postEphemeral(channel="C0ALERTS", user="U0ALICE", text="only you")
    assert TS.match(ephemeral["message_ts"])
    assert slack.ephemerals("C0ALERTS")[0]["user"] == "U0ALICE"


async def test_views_need_a_fresh_unused_trigger(slack: SlackStandIn) -> None:
    client = web(slack)
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Job"}, "blocks": []}
    trigger = slack.issue_trigger_id()
    opened = await client.views_open(trigger_id=trigger, view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["title"] == view["title"]
    for trigger_id, error in [(trigger, "exchanged_trigger_id"), ("123.456.abc", "invalid_trigger_id")]:
        with pytest.raises(SlackApiError) as err:
            await client.views_open(trigger_id=trigger_id, view=view)
        assert err.value.response["error"] == error
    slack.trigger_ttl = 0.0
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=slack.issue_trigger_id(), view=view)
    assert err.value.response["error"] == "expired_trigger_id"

    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}
    await client.views_publish(user_id="U0ALICE", view=home)
    published = slack.home("U0ALICE")
    assert published is not None
    assert published["blocks"] == home["blocks"]


async def test_response_url_takes_five_posts(slack: SlackStandIn) -> None:
    url = slack.response_url("r1")
    assert url == f"{slack.base_url}/response/r1"
    hook = AsyncWebhookClient(url, timeout=5)
    first = await hook.send(text="working…", response_type="ephemeral")
    assert (first.status_code, first.body) == (200, "ok")
    await hook.send(text="done", replace_original=True, blocks=[{"type": "divider"}])
    for _ in range(3):
        await hook.send(text="more")
    sixth = await hook.send(text="too many")
    assert (sixth.status_code, sixth.body) == (404, "used_url")
    posts = slack.responses("r1")
    assert len(posts) == 5
    assert posts[0] == {"text": "working…", "response_type": "ephemeral"}
    assert posts[1]["replace_original"] is True
    assert posts[1]["blocks"] == [{"type": "divider"}]
    unknown = await AsyncWebhookClient(f"{slack.base_url}/response/nope", timeout=5).send(text="x")
    assert unknown.status_code == 404
    assert slack.count("response_url", ok=True) == 5


# ---------------------------------------------------------------------------------------------
# Socket Mode
# ---------------------------------------------------------------------------------------------


async def test_socket_mode_hello_envelope_ack(slack: SlackStandIn) -> None:
    frames: list[dict[str, Any]] = []
    client = SocketModeClient(app_token=DEFAULT_APP_TOKEN, web_client=web(slack), auto_reconnect_enabled=False)

    async def on_frame(_: Any, message: dict[str, Any], raw: str | None) -> None:
        frames.append(message)

    async def on_request(c: Any, request: SocketModeRequest) -> None:
        await c.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": f"got {request.payload['text']}"})
        )

    client.message_listeners.append(on_frame)
    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()
        await slack.wait_for(lambda: slack.socket_connections == 1)
        await slack.wait_for(lambda: frames)
        assert frames[0]["type"] == "hello"
        assert frames[0]["connection_info"] == {"app_id": "A0GESBOT"}

        envelope_id = await slack.push_envelope("slash_commands", slack.command_payload("failed today"))
        ack = await slack.wait_for_ack(envelope_id)
        assert ack.payload == {"text": "got failed today"}
        assert frames[1]["envelope_id"] == envelope_id
        assert frames[1]["accepts_response_payload"] is True

        # Slack asks clients to reconnect now and then; the client gets a new URL and comes back.
        client.auto_reconnect_enabled = True
        await slack.push_disconnect()
        await slack.wait_for(lambda: slack.socket_connects == 2 and slack.socket_connections == 1)
        assert slack.count("apps.connections.open") == 2
        envelope_id = await slack.push_envelope("slash_commands", slack.command_payload("running"))
        assert (await slack.wait_for_ack(envelope_id)).payload == {"text": "got running"}
    finally:
        await client.close()
    await slack.wait_for(lambda: slack.socket_connections == 0)


async def test_socket_url_needs_a_ticket(slack: SlackStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{slack.base_url.replace('http', 'ws')}/socket?ticket=forged")  # type: ignore[union-attr]


async def test_bolt_app_over_socket_mode(slack: SlackStandIn) -> None:
    app = AsyncApp(client=web(slack), signing_secret=SECRET)

    @app.command("/gesjobs")
    async def gesjobs(ack: Any, command: dict[str, Any], respond: Any, client: AsyncWebClient) -> None:
        await ack(text=f"Looking for `{command['text']}`…")
        await client.chat_postMessage(channel=command["channel_id"], text="found 2 jobs")
        await respond(text="2 failed jobs", replace_original=True)

    handler = AsyncSocketModeHandler(app, DEFAULT_APP_TOKEN)
    await handler.connect_async()
    try:
        payload = slack.command_payload("failed today")
        envelope_id = await slack.push_envelope("slash_commands", payload)
        ack = await slack.wait_for_ack(envelope_id)
        assert ack.payload == {"text": "Looking for `failed today`…"}
        rid = payload["response_url"].rsplit("/", 1)[1]
        await slack.wait_for(lambda: slack.responses(rid))
        assert slack.responses(rid) == [{"text": "2 failed jobs", "replace_original": True}]
        assert [m["text"] for m in slack.messages("C0GENERAL")] == ["found 2 jobs"]
        assert slack.count("auth.test") >= 1
    finally:
        await handler.close_async()


# ---------------------------------------------------------------------------------------------
# Signed HTTP requests for the app's /slack/events
# ---------------------------------------------------------------------------------------------


async def test_signed_requests_pass_bolts_verification(slack: SlackStandIn) -> None:
    app = AsyncApp(client=web(slack), signing_secret=SECRET)
    seen: list[str] = []

    @app.command("/gesjobs")
    async def gesjobs(ack: Any, command: dict[str, Any]) -> None:
        seen.append(command["text"])
        await ack(text="ok")

    @app.action("retry")
    async def retry(ack: Any, body: dict[str, Any]) -> None:
        seen.append(body["actions"][0]["value"])
        await ack()

    bolt = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        response: Response = await bolt.handle(request)
        return response

    async with (
        serve(Starlette(routes=[Route("/slack/events", events, methods=["POST"])])) as url,
        httpx.AsyncClient(base_url=url, timeout=5) as http,
    ):
        body, headers = signed_command_request(SECRET, text="failed today", response_url=slack.response_url())
        assert SignatureVerifier(SECRET).is_valid_request(body, headers)
        answer = await http.post("/slack/events", content=body, headers=headers)
        assert answer.status_code == 200
        assert answer.text == "ok"

        body, headers = signed_interaction_request(SECRET, slack.block_action_payload("retry", "job-42"))
        answer = await http.post("/slack/events", content=body, headers=headers)
        assert answer.status_code == 200

        forged, headers = signed_command_request("wrong-secret", text="x")
        assert (await http.post("/slack/events", content=forged, headers=headers)).status_code == 401
        stale, headers = signed_command_request(SECRET, text="x", timestamp=int(time.time()) - 600)
        assert (await http.post("/slack/events", content=stale, headers=headers)).status_code == 401
    assert seen == ["failed today", "job-42"]


# ---------------------------------------------------------------------------------------------
# Control API for other processes
# ---------------------------------------------------------------------------------------------


async def test_control_api(slack: SlackStandIn) -> None:
    client = web(slack)
    assert slack.base_url is not None
    async with httpx.AsyncClient(base_url=slack.base_url, timeout=5) as http:
        r = await http.post("/_standin/faults", json={"method": "chat.postMessage", "status": 429, "count": 1})
        assert r.json()["ok"]
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C0ALERTS", text="hi")
        assert err.value.response.status_code == 429

        await http.post("/_standin/faults", json={"method": "chat.postMessage", "error": "not_in_channel"})
        assert len((await http.get("/_standin/faults")).json()["faults"]) == 1
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C0ALERTS", text="hi")
        assert err.value.response["error"] == "not_in_channel"
        await http.delete("/_standin/faults")
        await client.chat_postMessage(channel="C0ALERTS", text="hi")

        calls = (await http.get("/_standin/calls", params={"method": "chat.postMessage"})).json()
        assert [c["http_status"] for c in calls["calls"]] == [429, 200, 200]
        assert calls["calls"][1]["answer"] == {"ok": False, "error": "not_in_channel"}
        assert calls["calls"][2]["params"]["text"] == "hi"
        later = (await http.get("/_standin/calls", params={"since": calls["next"]})).json()
        assert later["calls"] == []
        messages = (await http.get("/_standin/messages", params={"channel": "alerts"})).json()["messages"]
        assert [m["text"] for m in messages] == ["hi"]

        await http.post("/_standin/faults", json={"method": "*", "for_seconds": 30})
        with pytest.raises(SlackApiError) as err:
            await client.auth_test()
        assert err.value.response.status_code == 503
        await http.delete("/_standin/faults")

        await http.post("/_standin/channels", json={"id": "C0ALERTS", "is_archived": True})
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C0ALERTS", text="hi")
        assert err.value.response["error"] == "is_archived"
        await http.post("/_standin/users", json={"id": "U0CAROL", "name": "carol", "tz": "Asia/Tokyo"})
        assert (await client.users_info(user="U0CAROL"))["user"]["tz"] == "Asia/Tokyo"

        made = (await http.post("/_standin/response_urls", json={"id": "r9"})).json()
        assert made["url"] == f"{slack.base_url}/response/r9"
        await AsyncWebhookClient(made["url"], timeout=5).send(text="answer")
        assert (await http.get("/_standin/responses/r9")).json() == {"responses": [{"text": "answer"}]}

        trigger = (await http.post("/_standin/triggers")).json()["trigger_id"]
        await client.views_open(trigger_id=trigger, view={"type": "modal", "blocks": []})

        r = await http.post("/_standin/envelopes", json={"type": "slash_commands", "payload": {}, "timeout": 0.1})
        assert r.status_code == 409
        assert (await http.get("/_standin/acks")).json() == {"acks": []}

        await http.post("/_standin/rate_limit", json={"per_second": 1, "burst": 1})
        await client.chat_postMessage(channel="C0GENERAL", text="1")
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C0GENERAL", text="2")
        assert err.value.response.status_code == 429
        await http.delete("/_standin/rate_limit")
        await client.chat_postMessage(channel="C0GENERAL", text="2")

        await http.delete("/_standin/calls")
        assert slack.calls == []


async def test_plain_mapping_config_and_learnt_base_url() -> None:
    stand_in = SlackStandIn(channels={"C0OPS": "ops"}, users={"U0ZED": "Asia/Tokyo"}, bot_tokens={"xoxb-demo"})
    with pytest.raises(RuntimeError, match="base_url"):
        stand_in.response_url()
    async with serve(stand_in.app) as url:
        client = AsyncWebClient(token="xoxb-demo", base_url=f"{url}/api/", timeout=5)
        assert (await client.users_info(user="U0ZED"))["user"]["tz"] == "Asia/Tokyo"
        await client.chat_postMessage(channel="#ops", text="hi")
        assert stand_in.response_url("r1") == f"{url}/response/r1"
    assert stand_in.messages("C0OPS")[0]["text"] == "hi"


# ---------------------------------------------------------------------------------------------
# Files: the external upload flow and image blocks
# ---------------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_files_upload_v2_keeps_a_private_file_that_an_image_block_can_show(slack: SlackStandIn) -> None:
    client = web(slack)
    done = await client.files_upload_v2(file=PNG, filename="chart.png", title="Jobs per day", alt_txt="3 failed")
    file = done["file"]
    assert file["id"].startswith("F")
    assert file["channels"] == []  # no channel: private to the bot
    assert [c.method for c in slack.calls] == [
        "files.getUploadURLExternal",
        "files.upload_url",
        "files.completeUploadExternal",
    ]
    assert slack.file_content(file["id"]) == PNG
    async with httpx.AsyncClient() as http:
        fetched = await http.get(f"{slack.base_url}/_standin/files/{file['id']}")
    assert fetched.content == PNG
    image = {"type": "image", "slack_file": {"id": file["id"]}, "alt_text": "3 failed"}
    posted = await client.chat_postMessage(channel="C0ALERTS", text="chart", blocks=[image])
    assert posted["message"]["blocks"] == [image]


async def test_an_image_block_naming_an_unknown_or_unfinished_file_is_refused(slack: SlackStandIn) -> None:
    client = web(slack)
    started = await client.files_getUploadURLExternal(filename="chart.png", length=len(PNG))
    for file_id in ("F0NOSUCHFILE", started["file_id"]):
        image = {"type": "image", "slack_file": {"id": file_id}, "alt_text": "chart"}
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel="C0ALERTS", text="chart", blocks=[image])
        assert refused.value.response["error"] == "invalid_blocks"
    # Completing before the bytes arrived is refused too.
    with pytest.raises(SlackApiError) as incomplete:
        await client.files_completeUploadExternal(files=[{"id": started["file_id"], "title": "chart"}])
    assert incomplete.value.response["error"] == "file_not_found"
    # An image block needs exactly one of id and url.
    both = {"type": "image", "slack_file": {"id": "F1", "url": "https://x"}, "alt_text": "chart"}
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0ALERTS", text="chart", blocks=[both])
    # Response URLs refuse it the same way.
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            slack.response_url("r-img"),
            json={"text": "chart", "blocks": [{"type": "image", "slack_file": {"id": "F0NOPE"}, "alt_text": "x"}]},
        )
    assert (answer.status_code, answer.text) == (400, "invalid_blocks")


async def test_the_upload_url_takes_exactly_the_announced_bytes(slack: SlackStandIn) -> None:
    client = web(slack)
    started = await client.files_getUploadURLExternal(filename="chart.png", length=len(PNG))
    async with httpx.AsyncClient() as http:
        short = await http.post(started["upload_url"], content=PNG[:-1])
        ok = await http.post(started["upload_url"], content=PNG)
        again = await http.post(started["upload_url"], content=PNG)
    assert (short.status_code, ok.status_code, again.status_code) == (400, 200, 400)
