"""The group-bot webhook stand-ins answer as the platforms do, and our signing matches their algorithms.

The signature vectors were computed independently with OpenSSL from each platform's documented
algorithm (``shared/chats/NOTES.md``), not with the code under test::

    printf '' | openssl dgst -sha256 -hmac "$(printf '1700000000\\nSECtest')" -binary | base64
    printf '1700000000000\\nSEC0123456789abcdef' | openssl dgst -sha256 -hmac SEC0123456789abcdef -binary | base64
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ges_bot.sinks.signing import dingtalk_sign, dingtalk_signed_url, lark_sign, lark_signed_body
from ges_bot.standin.webhooks import WebhookBot, WebhookStandIn, pings_everyone
from tests.support.asgi import serve
from tests.support.clocks import Seconds

LARK_VECTOR = "G7XpBpG8NgG02fJOAhX6FRAObIljmFoxVReo8I62pEk="
DINGTALK_VECTOR = "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="


def test_lark_signature_matches_the_documented_algorithm() -> None:
    assert lark_sign(1_700_000_000, "SECtest") == LARK_VECTOR
    body = lark_signed_body({"msg_type": "text"}, 1_700_000_000, "SECtest")
    assert body == {"msg_type": "text", "timestamp": "1700000000", "sign": LARK_VECTOR}


def test_dingtalk_signature_matches_the_documented_algorithm() -> None:
    # URL-encoded, as DingTalk's algorithm's last step says: '/' -> %2F, '+' would be %2B, '=' -> %3D.
    assert dingtalk_sign(1_700_000_000_000, "SEC0123456789abcdef") == DINGTALK_VECTOR.replace("/", "%2F").replace(
        "=", "%3D"
    )
    url = dingtalk_signed_url(
        "https://oapi.example/robot/send?access_token=abc", 1_700_000_000_000, "SEC0123456789abcdef"
    )
    assert url == "https://oapi.example/robot/send?access_token=abc&timestamp=1700000000000&sign=" + dingtalk_sign(
        1_700_000_000_000, "SEC0123456789abcdef"
    )


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[WebhookStandIn, httpx.AsyncClient, Seconds]]:
    clock = Seconds(1_800_000_000.0)
    stand_in = WebhookStandIn(clock=clock)
    async with serve(stand_in.app) as url, httpx.AsyncClient(timeout=5) as client:
        stand_in.base_url = url
        yield stand_in, client, clock


def _card() -> dict[str, Any]:
    return {
        "msg_type": "interactive",
        "card": {"header": {"title": {"tag": "plain_text", "content": "GES"}}, "elements": []},
    }


async def test_lark_signed_card_is_accepted_and_bad_or_stale_signatures_refused(hooks: Any) -> None:
    stand_in, client, clock = hooks
    bot = stand_in.add(WebhookBot("lark", token="lk1", secret="s3cret", keywords=("GES",)))
    url = stand_in.url_for(bot)
    ts = int(clock.now)
    ok = await client.post(url, json=lark_signed_body(_card(), ts, "s3cret"))
    assert ok.json() == {"code": 0, "msg": "success", "data": {}}
    wrong = await client.post(url, json=lark_signed_body(_card(), ts, "other"))
    assert wrong.json()["code"] == 19021
    stale = await client.post(url, json=lark_signed_body(_card(), ts - 3700, "s3cret"))
    assert stale.json()["code"] == 19021
    no_keyword = lark_signed_body({"msg_type": "text", "content": {"text": "hello"}}, ts, "s3cret")
    assert (await client.post(url, json=no_keyword)).json()["code"] == 19024
    assert len(stand_in.messages(bot)) == 1


async def test_lark_limits_rate_and_size(hooks: Any) -> None:
    stand_in, client, clock = hooks
    bot = stand_in.add(WebhookBot("lark", token="lk2"))
    url = stand_in.url_for(bot)
    codes = [(await client.post(url, json=_card())).json()["code"] for _ in range(6)]
    assert codes == [0, 0, 0, 0, 0, 11232]  # 5 a second
    clock.now += 1.5
    assert (await client.post(url, json=_card())).json()["code"] == 0
    big = {"msg_type": "text", "content": {"text": "x" * 25_000}}
    assert (await client.post(url, json=big)).json()["code"] == 230025
    unknown = await client.post(f"{stand_in.base_url}/open-apis/bot/v2/hook/nope", json=_card())
    assert unknown.json()["code"] == 19001


async def test_dingtalk_signature_in_query_and_twenty_a_minute_then_ten_minutes_off(hooks: Any) -> None:
    stand_in, client, clock = hooks
    bot = stand_in.add(WebhookBot("dingtalk", token="dt1", secret="SECabc"))
    body = {"msgtype": "markdown", "markdown": {"title": "GES", "text": "import failed"}, "at": {"isAtAll": False}}

    def signed() -> str:
        return dingtalk_signed_url(stand_in.url_for(bot), int(clock.now * 1000), "SECabc")

    assert (await client.post(signed(), json=body)).json() == {"errcode": 0, "errmsg": "ok"}
    unsigned = await client.post(stand_in.url_for(bot), json=body)
    assert unsigned.json()["errcode"] == 310000
    forged = dingtalk_signed_url(stand_in.url_for(bot), int(clock.now * 1000), "SECxyz")
    assert "sign not match" in (await client.post(forged, json=body)).json()["errmsg"]
    answers = [(await client.post(signed(), json=body)).json()["errcode"] for _ in range(20)]
    assert answers == [0] * 19 + [130101]
    clock.now += 120  # a new minute, but still inside the 10-minute penalty
    assert (await client.post(signed(), json=body)).json()["errcode"] == 130101
    clock.now += 600
    assert (await client.post(signed(), json=body)).json()["errcode"] == 0
    assert len(stand_in.messages(bot)) == 21
    bad_token = await client.post(f"{stand_in.base_url}/robot/send?access_token=zzz", json=body)
    assert bad_token.json()["errcode"] == 300001


async def test_wecom_markdown_limit_and_rate(hooks: Any) -> None:
    stand_in, client, clock = hooks
    bot = stand_in.add(WebhookBot("wecom", token="wc1"))
    url = stand_in.url_for(bot)
    too_long = {"msgtype": "markdown", "markdown": {"content": "界" * 1400}}  # 4,200 bytes in UTF-8
    assert (await client.post(url, json=too_long)).json()["errcode"] == 40058
    fits = {"msgtype": "markdown", "markdown": {"content": "界" * 1365}}  # 4,095 bytes
    answers = [(await client.post(url, json=fits)).json()["errcode"] for _ in range(21)]
    assert answers == [0] * 20 + [45009]
    clock.now += 61
    assert (await client.post(url, json=fits)).json()["errcode"] == 0
    assert (await client.post(f"{stand_in.base_url}/cgi-bin/webhook/send?key=nope", json=fits)).json()[
        "errcode"
    ] == 93000


async def test_teams_accepts_adaptive_cards_and_throttles_with_retry_after(hooks: Any) -> None:
    stand_in, client, _ = hooks
    bot = stand_in.add(WebhookBot("teams", token="tm1", throttle_count=1, throttle_retry_after=7))
    url = stand_in.url_for(bot)
    card = {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {"type": "AdaptiveCard", "version": "1.4", "body": []},
            }
        ],
    }
    throttled = await client.post(url, json=card)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "7"
    accepted = await client.post(url, json=card)
    assert (accepted.status_code, accepted.content) == (202, b"")
    malformed = await client.post(url, json={"type": "message", "attachments": [{"contentType": "text/plain"}]})
    assert malformed.status_code == 400
    assert stand_in.messages(bot) == [card]


def test_pings_everyone_recognises_each_platforms_mention_all() -> None:
    assert pings_everyone("lark", {"msg_type": "text", "content": {"text": '<at user_id="all">所有人</at>'}})
    assert not pings_everyone("lark", {"msg_type": "text", "content": {"text": "&lt;at user_id=&quot;all&quot;&gt;"}})
    assert pings_everyone("dingtalk", {"msgtype": "text", "text": {"content": "x"}, "at": {"isAtAll": True}})
    assert pings_everyone("wecom", {"msgtype": "text", "text": {"content": "x", "mentioned_list": ["@all"]}})
    assert not pings_everyone("wecom", {"msgtype": "markdown", "markdown": {"content": "plain"}})
