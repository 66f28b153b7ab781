"""Least exposure, tried as an attacker would: what /healthz tells a stranger, which endpoints and
variables the bot accepts, and what a hostile GES can write into logs and terminals.

Process-level tests run ``python -m ges_bot run`` against the GES emulator and the Slack stand-in on
loopback; "another machine" is this machine's own non-loopback interface address.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from rich.console import Console
from starlette.requests import Request

from ges_bot.config import load_config, load_settings
from ges_bot.domain import Delivery, EventKind, JobEvent, ProjectInfo
from ges_bot.errors import ConfigError
from ges_bot.frontdoor import public_health, trusted
from ges_bot.jobcenter.wire import parse_error_body, parse_job
from ges_bot.notify.render import render_alert
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, SlackStandIn
from ges_bot.terminal import message_panel
from tests.support.emulator import EmulatorHandle
from tests.support.processes import BotFleet, base_env, bot_env, wait_for_json

#: What a hostile GES puts in an error message: a forged log line and terminal escape sequences.
FORGED = "quota exceeded\n2026-01-01 00:00:00,000 CRITICAL ges_bot: forged by GES \x1b[2J\x1b]0;pwned\x07\r"


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the route
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


OUTSIDE = _outside_address()


# ------------------------------------------------------------------------------------------------
# /healthz
# ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(OUTSIDE is None, reason="this machine has no non-loopback address")
async def test_healthz_from_another_address_shows_status_and_lag_only(
    emu: EmulatorHandle, slack: SlackStandIn, fleet: BotFleet, tmp_path: Path
) -> None:
    env = bot_env(emu, slack, tmp_path / "bot.db", GES_BOT_HTTP_HOST="0.0.0.0", GES_BOT_HEALTH_TOKEN="health-token-123")
    bot = await fleet.start("exposed", env)
    await emu.fault(status=503, count=-1, error_code="GES.0001", error_msg=FORGED)
    async with httpx.AsyncClient(timeout=5) as client:
        # From this machine: the details, the GES error among them (cleaned).
        details = await wait_for_json(f"{bot.url}/healthz", lambda b: b["projects"] and b["projects"][0]["last_error"])
        error = details["projects"][0]["last_error"]
        assert "quota exceeded" in error
        assert error.isprintable(), repr(error)  # the forged line break and escapes did not survive
        assert details["replica"]

        outside = f"http://{OUTSIDE}:{bot.port}/healthz"
        stranger = await client.get(outside)
        wrong = await client.get(outside, headers={"Authorization": "Bearer not-the-token"})
        with_token = await client.get(outside, headers={"Authorization": "Bearer health-token-123"})
    for answer in (stranger, wrong):
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"status", "lag_seconds"}
        assert body["status"] in ("ok", "degraded")
        for secret in ("quota", "GES.0001", "127.0.0.1", "sqlite", "bot.db", details["replica"], "default"):
            assert secret not in answer.text
    # With the token, the details: the same GES error (a later poll may have failed since, under
    # another request id).
    shown = with_token.json()["projects"][0]["last_error"]
    assert shown.split(" (request id")[0] == error.split(" (request id")[0]
    # The forged line reached the log as part of one line, escapes and all neutralised.
    logs = bot.logs()
    assert "quota exceeded" in logs
    assert "\x1b" not in logs
    assert "\r" not in logs
    assert not any(line.startswith("2026-01-01 00:00:00,000 CRITICAL") for line in logs.splitlines())


def _request(host: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "method": "GET", "path": "/healthz", "headers": headers, "client": (host, 4242)})


def test_trust_is_loopback_or_the_bearer_token() -> None:
    token = SecretStr("s3cret")
    assert trusted(_request("127.0.0.1"), None)
    assert trusted(_request("::1"), None)
    assert trusted(_request("::ffff:127.0.0.1"), None)
    assert not trusted(_request("::ffff:192.0.2.7"), None)
    assert not trusted(_request("192.0.2.7"), None)
    assert not trusted(_request("192.0.2.7", "Bearer s3cret"), None)
    assert not trusted(_request("192.0.2.7", "Bearer wrong"), token)
    assert not trusted(_request("192.0.2.7", "s3cret"), token)
    assert trusted(_request("192.0.2.7", "Bearer s3cret"), token)
    assert not trusted(_request("not-an-ip"), None)


def test_public_health_keeps_status_and_worst_lag() -> None:
    body = {
        "status": "down",
        "reason": "database unavailable: could not connect to db.internal (10.0.0.5) as gesbot",
        "projects": [{"project": "a", "lag_seconds": 3.0}, {"project": "b", "lag_seconds": 70.5}],
    }
    assert public_health(body) == {"status": "down", "lag_seconds": 70.5}
    assert public_health({"status": "ok", "projects": [{"lag_seconds": None}]}) == {"status": "ok", "lag_seconds": None}


def test_the_http_server_listens_on_loopback_in_socket_mode_unless_told() -> None:
    assert load_settings({"SLACK_APP_TOKEN": "xapp-1"}).serve_host == "127.0.0.1"
    assert load_settings({"SLACK_SIGNING_SECRET": "x"}).serve_host == "0.0.0.0"
    assert load_settings({"SLACK_APP_TOKEN": "xapp-1", "GES_BOT_HTTP_HOST": "0.0.0.0"}).serve_host == "0.0.0.0"


# ------------------------------------------------------------------------------------------------
# Endpoints and settings
# ------------------------------------------------------------------------------------------------


def _run_bot(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ges_bot", "run"],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("endpoint_var", ["GES_ENDPOINT", "GES_IAM_ENDPOINT"])
def test_plain_http_endpoints_are_refused_at_start_before_any_connection(tmp_path: Path, endpoint_var: str) -> None:
    # A listener where the endpoint points: if the bot connected at all, it would be accepted here.
    host = OUTSIDE or "192.0.2.1"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((host, 0))
    except OSError:
        listener.close()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host = "ges.example.invalid"
    with listener:
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        url = f"http://{host}:{port}" if host != "ges.example.invalid" else "http://ges.example.invalid"
        env = base_env(
            GES_PROJECT_ID="0123456789abcdef0123456789abcdef",
            GES_BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
            SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
            SLACK_SIGNING_SECRET="x",
        )
        if endpoint_var == "GES_ENDPOINT":
            env.update(GES_ENDPOINT=url, HUAWEICLOUD_SDK_AK="ak", HUAWEICLOUD_SDK_SK="sk")
        else:
            env.update(
                GES_ENDPOINT="https://ges.example.invalid",
                GES_IAM_ENDPOINT=url,
                GES_IAM_DOMAIN="d",
                GES_IAM_USER="u",
                GES_IAM_PASSWORD="p",
            )
        done = _run_bot(env, tmp_path)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert done.returncode == 2, done.stderr
    assert "plain http://, which would send credentials in clear text; use https://" in done.stderr
    assert "GES_BOT_ALLOW_HTTP=1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bot.db").exists()  # refused before even the database was opened


def test_a_refused_url_is_named_without_its_credentials() -> None:
    env = {
        "GES_ENDPOINT": "https://ges.example",
        "GES_PROJECT_ID": "0123456789abcdef0123456789abcdef",
        "GES_TOKEN": "t",
    }
    for url in ("ftp://bot:s3cret-pw@slack.example/api/", "http://bot:s3cret-pw@slack.example/api/?token=s3cret-pw"):
        with pytest.raises(ConfigError) as refused:
            load_config({**env, "SLACK_API_URL": url})
        assert "slack.example" in str(refused.value)
        assert "s3cret" not in str(refused.value) and "bot:" not in str(refused.value)


def test_the_documented_example_endpoint_is_refused_with_the_fix() -> None:
    env = {
        "GES_ENDPOINT": "http://ges.example.invalid",
        "GES_PROJECT_ID": "0123456789abcdef0123456789abcdef",
        "GES_TOKEN": "t",
    }
    with pytest.raises(ConfigError, match=r"GES endpoint http://ges\.example\.invalid is plain http://.*use https://"):
        load_config(env)
    # Loopback (an emulator) and an explicit opt-in are accepted.
    assert load_config({**env, "GES_ENDPOINT": "http://127.0.0.1:9"}).projects[0].endpoint == "http://127.0.0.1:9"
    assert load_config({**env, "GES_BOT_ALLOW_HTTP": "1"}).projects[0].endpoint == "http://ges.example.invalid"
    with pytest.raises(ConfigError, match=r"SLACK_API_URL http://slack\.example\.invalid is plain http://"):
        load_config(
            {**env, "GES_ENDPOINT": "https://ges.example.invalid", "SLACK_API_URL": "http://slack.example.invalid/api/"}
        )


def test_undocumented_names_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DATABASE_URL": "postgresql://attacker@evil.example/db",
        "HTTP_HOST": "0.0.0.0",
        "ADMINS": "U0MALLORY",
        "LOG_LEVEL": "DEBUG",
        "HEALTH_TOKEN": "guessable",
    }.items():
        monkeypatch.setenv(name, value)
    for settings in (load_settings(), load_settings({})):
        assert settings.database_url == "sqlite:///ges-bot.db"
        assert settings.http_host is None
        assert settings.admin_ids == frozenset()
        assert settings.log_level == "INFO"
        assert settings.health_token is None
    monkeypatch.setenv("GES_BOT_DATABASE_URL", "sqlite:///chosen.db")
    assert load_settings().database_url == "sqlite:///chosen.db"


# ------------------------------------------------------------------------------------------------
# GES text in logs and terminals
# ------------------------------------------------------------------------------------------------


def test_control_characters_from_ges_are_stripped_at_the_wire() -> None:
    code, msg = parse_error_body({"error_code": "GES.\x1b[31m1", "error_msg": FORGED})
    assert msg is not None and code is not None
    for text in (code, msg):
        assert text.isprintable(), repr(text)
    assert msg.startswith("quota exceeded")
    job = parse_job(
        {
            "job_id": "id\n\x1b[1m",
            "status": "failed\r",
            "related_graph": "movies\x1b]0;title\x07",
            "fail_reason": "line one\nline two\twith tab \x1b[2J\x9b31m",
            "job_detail": {"schema_path": [{"path": "s.json", "cause": "bad\x1b[5m", "status": "failed"}]},
        }
    )
    assert job.job_id.isprintable() and job.status.isprintable()
    assert job.graph is not None and job.graph.isprintable()
    # Free text keeps its line breaks and tabs, and loses everything else.
    assert job.fail_reason == "line one\nline two\twith tab \ufffd[2J\ufffd31m"
    assert job.files[0].cause == "bad\ufffd[5m"


def test_a_hostile_failure_reason_reaches_the_demo_terminal_inert() -> None:
    job = parse_job(
        {
            "job_id": "job-1",
            "status": "failed",
            "job_name": "ImportGraph",
            "related_graph": "movies\x1b[8m",
            "fail_reason": FORGED,
            "end_time": "2026-03-10T10:00:00",
        }
    )
    now = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    event = JobEvent(project="prod", kind=EventKind.FAILED, job=job, at=now)
    delivery = Delivery(channel="C0ALERTS", project="prod", graph=job.graph or "", events=(event,))
    alert = render_alert(delivery, ProjectInfo(alias="prod", project_id="p"), now)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=110)
    console.print(message_panel(alert.message.payload(), title="#alerts"))
    shown = out.getvalue()
    assert "quota exceeded" in shown
    assert "\x1b]" not in shown and "\x1b[2J" not in shown and "\x1b[8m" not in shown
    assert "\x07" not in shown and "\r" not in shown
