"""The Slack app manifests (manifest.yml for Socket Mode, manifest.http.yml for HTTP mode).

A person pastes one of them into "Create New App → From an app manifest"; Slack rejects a manifest
that breaks its schema, and a wrong scope or URL surfaces only as a confusing error in a channel.
So each file is validated against Slack's published schema, and what the bot relies on (the
command, the exact scopes, the mode, the request URLs) is asserted on its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / ".." / "shared" / "slack" / "manifest.schema.1.0.0.json"
SOCKET = REPO / "manifest.yml"
HTTP = REPO / "manifest.http.yml"

#: Bolt's default path for commands, interactivity and events alike (the runtime serves it there).
EVENTS_PATH = "/slack/events"
#: The least the bot needs; every extra scope is one more thing an admin must approve.
MINIMAL_SCOPES = {
    "commands",
    "chat:write",
    "chat:write.public",
    "users:read",
    "files:write",
    "im:write",
    "channels:read",
    "groups:read",
}


def _schema() -> dict[str, Any]:
    """Slack's published manifest schema, kept next to the repository (``../shared``). Without it a
    developer's run skips the schema checks; CI (``CI=true``) fails instead, so that a checkout
    missing it cannot pass for one that validated the manifests."""
    if not SCHEMA.is_file():
        message = f"Slack's manifest schema is not at {SCHEMA.resolve()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must check the manifests against it")
        pytest.skip(message)
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} must be a YAML mapping"
    return data


@pytest.fixture(params=[SOCKET, HTTP], ids=["socket", "http"])
def manifest(request: pytest.FixtureRequest) -> dict[str, Any]:
    path: Path = request.param
    return _load(path)


def test_manifests_validate_against_slacks_schema(manifest: dict[str, Any]) -> None:
    schema = _schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(manifest), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_validation_catches_a_broken_manifest() -> None:
    # Guards the test above: the schema in use must actually reject things Slack rejects.
    schema = _schema()
    broken = _load(SOCKET)
    broken["display_information"]["name"] = "x" * 36
    broken["features"]["slash_commands"][0]["command"] = "gesjobs"
    validator = jsonschema.validators.validator_for(schema)(schema)
    messages = [e.message for e in validator.iter_errors(broken)]
    assert len(messages) == 2, messages


def test_the_command_is_gesjobs_with_a_usage_hint(manifest: dict[str, Any]) -> None:
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/gesjobs"]
    (command,) = commands
    assert command["should_escape"] is False
    for word in ("failed", "running", "job", "subscribe", "help"):
        assert word in command["usage_hint"]


def test_scopes_are_exactly_the_minimal_set(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert sorted(scopes["bot"]) == sorted(MINIMAL_SCOPES)
    assert len(scopes["bot"]) == len(set(scopes["bot"]))
    assert not scopes.get("user"), "ges-bot acts as itself, never on behalf of a user"


def test_bot_user_home_tab_and_settings(manifest: dict[str, Any]) -> None:
    assert manifest["display_information"]["name"] == "ges-bot"
    assert manifest["features"]["bot_user"] == {"display_name": "ges-bot", "always_online": True}
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] is True
    # The bot DMs a subscriber when their channel breaks; the DM needs a Messages tab to land in.
    assert home["messages_tab_enabled"] is True
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_socket_mode_manifest_has_no_request_urls() -> None:
    m = _load(SOCKET)
    assert m["settings"]["socket_mode_enabled"] is True
    # Socket Mode ignores URLs; a stale one would mislead whoever switches the app to HTTP later.
    assert "url" not in m["features"]["slash_commands"][0]
    assert "request_url" not in m["settings"]["interactivity"]
    assert "request_url" not in m["settings"]["event_subscriptions"]


def test_http_manifest_sends_everything_to_slack_events() -> None:
    m = _load(HTTP)
    assert m["settings"]["socket_mode_enabled"] is False
    urls = [
        m["features"]["slash_commands"][0]["url"],
        m["settings"]["interactivity"]["request_url"],
        m["settings"]["event_subscriptions"]["request_url"],
    ]
    assert urls == ["https://YOUR-HOST" + EVENTS_PATH] * 3


def test_the_two_manifests_differ_only_in_mode_and_urls() -> None:
    socket, http = _load(SOCKET), _load(HTTP)
    del http["features"]["slash_commands"][0]["url"]
    del http["settings"]["interactivity"]["request_url"]
    del http["settings"]["event_subscriptions"]["request_url"]
    http["settings"]["socket_mode_enabled"] = True
    assert http == socket
