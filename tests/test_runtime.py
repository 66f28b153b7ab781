"""``ges-bot run`` as one real process: ``/healthz``, ``/metrics``, SIGTERM, and SQLite's single instance.

The bot runs as ``python -m ges_bot run`` against the GES emulator and the Slack stand-in (both
served in the test's loop), on a SQLite file, configured only through its environment.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from ges_bot.standin.slack import SlackStandIn
from ges_bot.store import open_store
from tests.support.emulator import EmulatorHandle
from tests.support.processes import SIGNING_SECRET, BotFleet, bot_env, wait_for_json


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    for line in metrics.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_healthz_reports_the_projects_and_metrics_count_ticks(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    config = tmp_path / "ges-bot.toml"
    config.write_text('[[subscriptions]]\nchannel = "C0ALERTS"\ngraph = "movies"\n', encoding="utf-8")
    env = bot_env(emu, slack, tmp_path / "bot.db", GES_BOT_REPLICA_ID="solo-1", GES_BOT_CONFIG=str(config))
    bot = await fleet.start("solo", env)
    health = await wait_for_json(f"{bot.url}/healthz", lambda b: b["projects"] and b["projects"][0]["last_success_at"])
    assert health["status"] == "ok"
    assert health["replica"] == "solo-1"
    assert health["outbox_pending"] == 0
    assert health["outbox_dead"] == 0
    assert [p["project"] for p in health["projects"]] == ["default"]

    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{bot.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    ticks = _sample(response.text, "ges_bot_poll_ticks_total", project="default", result="ok")
    assert ticks is not None and ticks >= 1
    assert _sample(response.text, "ges_bot_outbox_pending") == 0.0

    # A failure after the first poll is alerted once, and counted.
    job = await emu.add_job(status="failed", job_name="ImportGraph", related_graph="movies")
    await slack.wait_for(lambda: slack.messages("C0ALERTS"), timeout=15)
    async with httpx.AsyncClient(timeout=5) as client:
        after = (await client.get(f"{bot.url}/metrics")).text
    assert _sample(after, "ges_bot_events_total", kind="failed") == 1.0
    assert _sample(after, "ges_bot_slack_messages_total", result="sent") == 1.0
    [message] = slack.messages("C0ALERTS")
    assert job["job_id"][:8] in message["text"]
    assert (await bot.health())[1]["status"] == "ok"


async def test_healthz_is_degraded_while_ges_fails_and_recovers_after(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    bot = await fleet.start("solo", bot_env(emu, slack, tmp_path / "bot.db"))
    await wait_for_json(f"{bot.url}/healthz", lambda b: b["status"] == "ok" and b["projects"])
    await emu.fault(status=503, count=-1)
    degraded = await wait_for_json(f"{bot.url}/healthz", lambda b: b["status"] == "degraded")
    project = degraded["projects"][0]
    assert project["consecutive_failures"] >= 1 or project["lag_seconds"] > 1.5
    await emu.clear_faults()
    await wait_for_json(f"{bot.url}/healthz", lambda b: b["status"] == "ok")
    assert bot.alive


async def test_sigterm_stops_cleanly_and_releases_the_sqlite_instance(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    database = tmp_path / "bot.db"
    first = await fleet.start("first", bot_env(emu, slack, database))
    assert await first.stop(timeout=15) == 0
    assert "stopped" in first.logs()
    assert "Traceback" not in first.logs()
    # The instance lease was released on the way out: a successor starts at once.
    second = await fleet.start("second", bot_env(emu, slack, database))
    assert (await second.health())[0] == 200


async def test_a_second_instance_on_the_same_sqlite_file_is_refused(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    database = tmp_path / "bot.db"
    first = await fleet.start("first", bot_env(emu, slack, database))
    second = fleet.prepare("second", bot_env(emu, slack, database))
    second.launch()
    assert await second.wait(timeout=30) == 2
    message = second.logs()
    assert "another ges-bot is already running" in message
    assert "PostgreSQL" in message  # says how to run several replicas
    assert "Traceback" not in message
    # The first one is unaffected.
    status, body = await first.health()
    assert status == 200
    assert first.alive
    assert body["status"] in ("ok", "degraded")


def failed_today(slack: SlackStandIn, rid: str) -> tuple[bytes, dict[str, str]]:
    """``/gesjobs failed today`` from Alice in #alerts, signed as Slack signs it, answered at ``rid``."""
    from ges_bot.standin.slack import signed_command_request

    return signed_command_request(
        SIGNING_SECRET,
        command="/gesjobs",
        text="failed today",
        user_id="U0ALICE",
        channel_id="C0ALERTS",
        response_url=slack.response_url(rid),
        trigger_id=slack.issue_trigger_id(),
    )


async def test_a_signed_slash_command_into_the_bots_own_server_is_answered(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    await emu.add_job(status="failed", job_name="ImportGraph", related_graph="movies", fail_reason="disk full")
    bot = await fleet.start("http", bot_env(emu, slack, tmp_path / "bot.db"))
    body, headers = failed_today(slack, "rt1")
    async with httpx.AsyncClient(timeout=10) as client:
        ack = await client.post(f"{bot.url}/slack/events", content=body, headers=headers)
        forged = await client.post(
            f"{bot.url}/slack/events", content=body, headers={**headers, "X-Slack-Signature": "v0=00"}
        )
    assert ack.status_code == 200
    assert forged.status_code == 401
    (answer,) = await slack.wait_for(lambda: slack.responses("rt1"), timeout=15)
    assert "disk full" in str(answer)
    assert answer.get("response_type", "ephemeral") == "ephemeral"


async def test_an_answer_acknowledged_before_sigterm_is_still_delivered(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    """The ack promised an answer: a rolling update (SIGTERM) finishes it before the bot exits."""
    await emu.add_job(status="failed", job_name="ImportGraph", related_graph="movies", fail_reason="disk full")
    # Always asked live (no answers from a recent poll), and GES takes 1.5 s to answer.
    bot = await fleet.start("http", bot_env(emu, slack, tmp_path / "bot.db", GES_BOT_ANSWER_MAX_AGE="0"))
    await emu.fault(latency_ms=1500, count=-1)
    body, headers = failed_today(slack, "rt-stop")
    async with httpx.AsyncClient(timeout=10) as client:
        ack = await client.post(f"{bot.url}/slack/events", content=body, headers=headers)
    assert ack.status_code == 200
    assert not slack.responses("rt-stop")  # acknowledged, not yet answered: GES is still thinking
    assert await bot.stop(timeout=30) == 0
    (answer,) = slack.responses("rt-stop")
    assert "disk full" in str(answer)
    assert "Traceback" not in bot.logs()


async def test_socket_mode_runtime_answers_over_the_websocket_and_reports_the_connection(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    from ges_bot.standin.slack import DEFAULT_APP_TOKEN

    env = bot_env(emu, slack, tmp_path / "bot.db", SLACK_APP_TOKEN=DEFAULT_APP_TOKEN)
    del env["SLACK_SIGNING_SECRET"]  # Socket Mode needs none
    bot = await fleet.start("socket", env)
    await slack.wait_for(lambda: slack.socket_connections, timeout=15)
    health = await wait_for_json(f"{bot.url}/healthz", lambda b: b["socket_mode_connected"] is True)
    assert health["status"] in ("ok", "degraded")
    payload = slack.command_payload("help", user_id="U0ALICE")
    envelope = await slack.push_envelope("slash_commands", payload)
    await slack.wait_for_ack(envelope)
    rid = payload["response_url"].rsplit("/", 1)[1]
    (answer,) = await slack.wait_for(lambda: slack.responses(rid), timeout=15)
    assert "/gesjobs failed today" in str(answer)
    assert await bot.stop(timeout=15) == 0


async def test_a_rejected_app_token_stops_start_up_with_the_fix(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    env = bot_env(emu, slack, tmp_path / "bot.db", SLACK_APP_TOKEN="xapp-revoked-token")
    bot = fleet.prepare("bad-app-token", env)
    bot.launch()
    assert await bot.wait(timeout=30) == 2
    logs = bot.logs()
    assert "Slack rejects SLACK_APP_TOKEN (invalid_auth)" in logs
    assert "xapp-revoked-token" not in logs
    assert "Traceback" not in logs


async def test_a_busy_http_port_is_a_clear_message_and_leaves_no_stale_lease(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    import socket

    database = tmp_path / "bot.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bot = fleet.prepare("busy", bot_env(emu, slack, database), port=port)
        bot.launch()
        assert await bot.wait(timeout=30) == 2
    logs = bot.logs()
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in logs
    assert "GES_BOT_HTTP_PORT" in logs
    assert "Traceback" not in logs
    # The failed start released the SQLite instance lease: the next start on a free port works at once.
    again = await fleet.start("again", bot_env(emu, slack, database))
    assert (await again.health())[0] == 200


async def test_a_revoked_bot_token_reaches_healthz_and_keeps_the_alert(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    config = tmp_path / "ges-bot.toml"
    config.write_text('[[subscriptions]]\nchannel = "C0ALERTS"\ngraph = "movies"\n', encoding="utf-8")
    bot = await fleet.start("revoked", bot_env(emu, slack, tmp_path / "bot.db", GES_BOT_CONFIG=str(config)))
    await wait_for_json(f"{bot.url}/healthz", lambda b: b["projects"] and b["projects"][0]["last_success_at"])
    slack.fail("chat.postMessage", error="token_revoked", count=-1)
    await emu.add_job(status="failed", job_name="ImportGraph", related_graph="movies")
    health = await wait_for_json(f"{bot.url}/healthz", lambda b: b["slack_error"] == "token_revoked")
    assert health["status"] == "degraded"
    assert "token_revoked" in " ".join(health["notes"].values())
    assert health["outbox_pending"] == 1  # kept, not dropped: delivery resumes once Slack accepts the token


async def test_the_running_bot_posts_a_due_digest_once(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    # A config-file digest that fell due a minute ago (UTC): the bot sends it on its first check.
    due = datetime.now(UTC) - timedelta(minutes=1)
    config = tmp_path / "ges-bot.toml"
    config.write_text(
        f'[[digests]]\nchannel = "C0ALERTS"\nschedule = "daily {due:%H:%M} always"\ntz = "UTC"\n', encoding="utf-8"
    )
    bot = await fleet.start("digest", bot_env(emu, slack, tmp_path / "bot.db", GES_BOT_CONFIG=str(config)))
    digests = await slack.wait_for(
        lambda: [m for m in slack.messages("C0ALERTS") if "digest" in str(m.get("text", "")).lower()], timeout=20
    )
    assert digests[0]["text"].startswith("Daily digest")
    assert slack.count("files.completeUploadExternal", ok=True) == 1
    assert await bot.stop(timeout=15) == 0
    # Restarted within the same period: the digest is not sent again.
    again = await fleet.start("digest-again", bot_env(emu, slack, tmp_path / "bot.db", GES_BOT_CONFIG=str(config)))
    await wait_for_json(f"{again.url}/healthz", lambda b: b["status"] == "ok" and b["projects"])
    assert len([m for m in slack.messages("C0ALERTS") if "digest" in str(m.get("text", "")).lower()]) == 1
    assert await again.stop(timeout=15) == 0
    assert "Traceback" not in bot.logs()
    # Marked sent before the first bot stopped (not left claimed, to be re-sent when its lease ran out).
    store = await open_store(f"sqlite:///{tmp_path / 'bot.db'}", migrate=False)
    try:
        [row] = await store.digests("C0ALERTS")
        assert (row.state, row.ts) == ("sent", digests[0]["ts"])
    finally:
        await store.close()
