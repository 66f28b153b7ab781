"""Hostile input from both sides: the process stays up, nothing leaks and nobody is pinged.

From Slack's side: fuzzed ``/gesjobs`` text and form fields (hypothesis), forged and stale
signatures, oversized bodies, garbage interactivity payloads. From GES's side: hostile strings in
every job field an alert shows. Whatever arrives, ``/healthz`` stays ok, and no Slack control
sequence (``<!channel>``, ``<@U…>``, ``<#C…>``, ``<http…|…>``) that came from untrusted text
reaches the stand-in unescaped: the only ``<…>`` sequences allowed are the bot's own date tokens
and the asking channel's link.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ges_bot.standin.slack import SlackStandIn, signed_command_request, signed_interaction_request
from tests.reliability.conftest import Stack
from tests.reliability.world import SIGNING_SECRET, Sub, db_rows, slash_command, subscribe, wait_for_baseline

pytestmark = pytest.mark.reliability

HOSTILE = (
    "<!channel> <!here> <!everyone> <@U0BOB> <#C0REL01> <http://evil.example/|click me> "
    "<mailto:x@example.com|mail> *bold* _it_ ~strike~ `tick` ```fence``` &amp; &lt; > < \u202e\u200b 💥 \x00"
)
_SEQUENCE = re.compile(r"<([^<>]*)>")


def _strings(node: Any) -> Iterable[str]:
    """Every string Slack would read as mrkdwn: ``plain_text`` objects (headers, buttons) show
    ``<!channel>`` literally, so they are skipped; everything else counts — top-level ``text``
    included, which Slack uses for notifications."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        if node.get("type") == "plain_text":
            return
        for key, value in node.items():
            if key in ("action_id", "block_id", "value", "url", "callback_id", "private_metadata"):
                continue  # identifiers, never displayed
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def control_sequences(
    slack: SlackStandIn, allowed_channel: str = "C0REL00", allowed_user: str = "U0ALICE"
) -> list[str]:
    """Every ``<…>`` sequence in what the bot sent that is not its own (date tokens, the asking
    channel's link), with the call it was in: each one is untrusted text Slack would act on."""
    found = []
    for call in slack.calls:
        for text in _strings(call.params):
            for seq in _SEQUENCE.findall(text):
                # The bot's own: date tokens, the asking channel, the asking user (both from
                # Slack's signed payload, e.g. "by <@U0ALICE>" in the subscription list).
                if seq.startswith("!date^") or seq in (f"#{allowed_channel}", f"@{allowed_user}"):
                    continue
                found.append(f"{call.method}: <{seq}> in {text[:300]!r}")
    return found


async def _assert_healthy(stack: Stack) -> None:
    [bot] = stack.fleet.running
    status, health = await bot.health()
    assert status == 200, health
    assert bot.alive


@pytest.mark.timeout(180)
async def test_hostile_job_fields_reach_slack_inert(stack: Stack) -> None:
    bot = await stack.start("h0")
    await wait_for_baseline(bot)
    await subscribe(stack.slack, [bot], [Sub("C0REL00", "*", ("all",))])
    files = [
        {
            "path": HOSTILE,
            "cause": HOSTILE * 20,
            "log": HOSTILE,
            "status": "failed",
            "line_count": 10,
            "failed_count": 3,
        }
        for _ in range(4)
    ]
    jobs = stack.emu.state.add_many(
        [
            {
                "status": status,
                "job_name": HOSTILE,
                "job_type": HOSTILE,
                "related_graph": f"{HOSTILE}-{i}",
                "fail_reason": HOSTILE * 30,
                "job_detail": {"vertexset_path": files, "edgeset_path": files, "schema_path": files[:1]},
            }
            for i, status in enumerate(["failed", "partiallyFailed", "failed", "success", "failed", "failed", "failed"])
        ]
    )
    await stack.slack.wait_for(lambda: len(stack.slack.messages("C0REL00")) >= len(jobs), timeout=30)
    # Ask about one of them, so the answers of /gesjobs see the hostile text too.
    await slash_command(stack.slack, bot, f"job {jobs[0].job_id}")
    await slash_command(stack.slack, bot, "failed last 1h")
    await slash_command(stack.slack, bot, "subscriptions")
    leaked = control_sequences(stack.slack)
    assert not leaked, leaked[:10]
    assert "evil.example" not in "".join(_strings([c.params for c in stack.slack.calls])).replace("evil.example/", "")
    await _assert_healthy(stack)


_field_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
_command_text = st.one_of(
    _field_text,
    st.lists(
        st.sampled_from(
            [
                "subscribe",
                "unsubscribe",
                "mute",
                "unmute",
                "job",
                "failed",
                "last",
                "1h",
                "since",
                "between",
                "graph",
                "project",
                "limit",
                "public",
                "help",
                "*",
                "<!channel>",
                "<@U0BOB>",
                "<#C0REL09>",
                "<http://evil.example|x>",
                "99999999999",
                "-1",
                "2024-02-30",
                "\u202e",
                "'",
                '"',
                "`",
                "\n",
            ]
        ),
        max_size=8,
    ).map(" ".join),
)


@pytest.mark.timeout(240)
async def test_fuzzed_slash_commands_and_forged_requests(stack: Stack) -> None:
    bot = await stack.start("z0")
    await wait_for_baseline(bot)
    slack = stack.slack
    answered = 0

    loop = asyncio.get_running_loop()

    # Hypothesis drives a plain function; it runs in a worker thread and hands each example to
    # this loop, which keeps serving the stand-in and the emulator meanwhile.
    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(text=_command_text, channel_name=_field_text, user_name=_field_text)
    def one_command(text: str, channel_name: str, user_name: str) -> None:
        asyncio.run_coroutine_threadsafe(send(text, channel_name, user_name), loop).result(timeout=60)

    async def send(text: str, channel_name: str, user_name: str) -> None:
        nonlocal answered
        rid = f"fz{time.monotonic_ns()}"
        body, headers = signed_command_request(
            SIGNING_SECRET,
            text=text,
            channel_id="C0REL00",
            channel_name=channel_name,
            user_name=user_name,
            response_url=slack.response_url(rid),
        )
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{bot.url}/slack/events", content=body, headers=headers)
        assert response.status_code == 200, (text, response.text)
        await slack.wait_for(lambda: slack.responses(rid), timeout=15)
        answered += 1

    await asyncio.to_thread(one_command)
    assert answered >= 60
    leaked = control_sequences(slack)
    assert not leaked, leaked[:10]

    subscriptions_before = await _subscriptions(stack)
    async with httpx.AsyncClient(timeout=10) as client:
        events = f"{bot.url}/slack/events"
        calls_before = len(slack.calls)
        body, headers = signed_command_request("not-the-signing-secret", text="subscribe * all")
        assert (await client.post(events, content=body, headers=headers)).status_code == 401
        body, headers = signed_command_request(
            SIGNING_SECRET, text="subscribe * all", timestamp=int(time.time()) - 3600
        )
        assert (await client.post(events, content=body, headers=headers)).status_code == 401
        body, headers = signed_command_request(SIGNING_SECRET, text="subscribe * all")
        tampered = body.replace(b"subscribe", b"unsubscri")
        assert (await client.post(events, content=tampered, headers=headers)).status_code == 401
        bare = {"Content-Type": "application/x-www-form-urlencoded"}
        assert (await client.post(events, content=body, headers=bare)).status_code == 401
        # Oversized: 2 MB unsigned, and 1 MB properly signed (Slack never sends such; we survive it).
        huge = await client.post(events, content=b"text=" + b"A" * 2_000_000, headers=bare)
        assert huge.status_code in (401, 413)
        body, headers = signed_command_request(SIGNING_SECRET, text="jobs " + "x" * 1_000_000)
        assert (await client.post(events, content=body, headers=headers)).status_code in (200, 413)
        # Interactivity payloads that are not what a button sends. (Only Slack can sign them;
        # bolt's own listener matching answers 500 to ``"actions": "nope"`` — the process carries on.)
        for payload in ({"type": "block_actions", "actions": "nope"}, {"type": "block_actions", "actions": [{}]}, {}):
            body, headers = signed_interaction_request(SIGNING_SECRET, payload)
            assert (await client.post(events, content=body, headers=headers)).status_code in (200, 400, 404, 500)
        # A correctly signed body that is not a payload at all.
        garbage = b"payload=%7Bnot-json"
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + garbage, hashlib.sha256).hexdigest()
        signed = {**bare, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
        # bolt fails parsing it (500), which only Slack's own bug could cause; the bot carries on.
        assert (await client.post(events, content=garbage, headers=signed)).status_code in (200, 400, 404, 500)
    # The refused requests changed nothing and posted nothing.
    forged_effects = [c for c in slack.calls[calls_before:] if c.method != "response_url"]
    assert not forged_effects, [c.method for c in forged_effects]
    assert await _subscriptions(stack) == subscriptions_before
    await _assert_healthy(stack)


async def _subscriptions(stack: Stack) -> list[tuple[str, str]]:
    rows = await db_rows(stack.database_url, "SELECT channel, graph_pattern FROM subscriptions ORDER BY id")
    return [(str(r["channel"]), str(r["graph_pattern"])) for r in rows]
