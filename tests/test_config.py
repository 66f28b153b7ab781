"""Configuration is validated at start-up with messages that say how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ges_bot.config import load_config
from ges_bot.domain import EventKind
from ges_bot.errors import ConfigError

BASE = {"GES_ENDPOINT": "https://ges.example.test", "GES_PROJECT_ID": "abc123"}


def test_aksk_from_the_sdk_variable_names() -> None:
    cfg = load_config({**BASE, "HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"})
    [project] = cfg.projects
    assert (project.alias, project.auth, project.endpoint) == ("default", "aksk", "https://ges.example.test")
    assert "SK" not in repr(project.sk)


def test_region_resolves_to_its_endpoint_and_sdk_override_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"GES_REGION": "cn-north-4", "GES_PROJECT_ID": "abc123", "GES_TOKEN": "t"}
    assert load_config(env).projects[0].endpoint == "https://ges.cn-north-4.myhuaweicloud.com"
    monkeypatch.setenv("HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4", "http://127.0.0.1:8081/")
    assert load_config(env).projects[0].endpoint == "http://127.0.0.1:8081"


def test_project_id_from_sdk_variable() -> None:
    env = {"GES_ENDPOINT": "https://g.test", "HUAWEICLOUD_SDK_PROJECT_ID": "p1", "GES_TOKEN": "t"}
    assert load_config(env).projects[0].project_id == "p1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GES_PROJECT_ID": "abc", "GES_TOKEN": "t"}, "set GES_ENDPOINT"),
        ({"GES_ENDPOINT": "https://g.test", "GES_TOKEN": "t"}, "set GES_PROJECT_ID"),
        ({**BASE}, "set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"),
        ({**BASE, "HUAWEICLOUD_SDK_AK": "AK"}, "needs both HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"),
        ({**BASE, "GES_TOKEN": "t", "HUAWEICLOUD_SDK_AK": "a", "HUAWEICLOUD_SDK_SK": "s"}, "keep exactly one"),
        ({**BASE, "GES_IAM_USER": "u", "GES_IAM_PASSWORD": "p"}, "missing GES_IAM_DOMAIN"),
        ({**BASE, "GES_IAM_USER": "u", "GES_IAM_PASSWORD": "p", "GES_IAM_DOMAIN": "d"}, "HUAWEICLOUD_SDK_IAM_ENDPOINT"),
        ({"GES_REGION": "mars-1", "GES_PROJECT_ID": "a", "GES_TOKEN": "t"}, "unknown region 'mars-1'"),
        ({**BASE, "GES_ENDPOINT": "ges.example.test", "GES_TOKEN": "t"}, "must start with https://"),
        ({**BASE, "GES_PROJECT_ID": "not/alnum", "GES_TOKEN": "t"}, "letters and digits"),
        ({**BASE, "GES_TOKEN": "t", "GES_BOT_POLL_INTERVAL": "soon"}, "GES_BOT_POLL_INTERVAL"),
        ({**BASE, "GES_TOKEN": "t", "GES_BOT_TIMEZONE": "Mars/Olympus"}, "IANA name"),
        ({**BASE, "GES_TOKEN": "t", "GES_BOT_PAGE_SIZE": "0"}, "GES_BOT_PAGE_SIZE"),
    ],
)
def test_bad_configuration_says_how_to_fix_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(env)


def test_secrets_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            {**BASE, "GES_TOKEN": "super-secret-token", "HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "sk-secret"}
        )
    assert "super-secret-token" not in str(err.value) and "sk-secret" not in str(err.value)


def test_durations_accept_units() -> None:
    cfg = load_config({**BASE, "GES_TOKEN": "t", "GES_BOT_STUCK_AFTER": "90m", "GES_BOT_BACKFILL": "2d"})
    assert cfg.settings.stuck_after.total_seconds() == 5400
    assert cfg.settings.backfill.total_seconds() == 2 * 86400


def test_admins_are_a_set_of_user_ids() -> None:
    cfg = load_config({**BASE, "GES_TOKEN": "t", "GES_BOT_ADMINS": "U1, U2;U3,"})
    assert cfg.settings.admin_ids == {"U1", "U2", "U3"}


def test_projects_and_subscriptions_from_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "bot.toml"
    file.write_text(
        """
[[projects]]
alias = "prod"
region = "cn-north-4"
project_id = "p1"
ak_env = "PROD_AK"
sk_env = "PROD_SK"

[[projects]]
alias = "staging"
endpoint = "https://ges.staging.test"
project_id = "p2"
token = "tok"

[[subscriptions]]
channel = "C1"
graph = "prod-*"
statuses = ["failed", "recovered"]
project = "prod"
job_names = ["ImportGraph"]
""",
        encoding="utf-8",
    )
    cfg = load_config({"GES_BOT_CONFIG": str(file), "PROD_AK": "ak", "PROD_SK": "sk"})
    assert [(p.alias, p.auth) for p in cfg.projects] == [("prod", "aksk"), ("staging", "token")]
    [sub] = cfg.subscriptions
    assert (sub.channel, sub.graph_pattern, sub.project, sub.source) == ("C1", "prod-*", "prod", "config")
    assert sub.kinds == {EventKind.FAILED, EventKind.RECOVERED}
    assert sub.job_names == {"ImportGraph"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[projects]]\nalias = "a"\nproject_id = "p"\nendpoint = "https://x"\nak_env = "NOPE"\nsk = "s"\n',
            "NOPE, which is not set",
        ),
        ('[[projects]]\nalias = "a"\nproject_id = "p"\nendpoint = "https://x"\ntoken = "t"\n' * 2, "used twice"),
        ('[[subscriptions]]\nchannel = "C1"\ngraph = "g"\nstatuses = ["faild"]\n', "unknown status 'faild'"),
        ('[[subscriptions]]\nchannel = "C1"\ngraph = "g"\nproject = "nope"\n', "not a configured alias"),
        ('[[subscriptions]]\nchanel = "C1"\ngraph = "g"\n', "chanel"),
        ("[[projects]\n", "not valid TOML"),
    ],
)
def test_config_file_problems_are_explained(tmp_path: Path, body: str, message: str) -> None:
    file = tmp_path / "bot.toml"
    file.write_text(body, encoding="utf-8")
    env = {"GES_BOT_CONFIG": str(file), "GES_ENDPOINT": "https://x", "GES_PROJECT_ALIAS": "a", "GES_TOKEN": "t"}
    if "[[projects]]" not in body:
        env["GES_PROJECT_ID"] = "p"
    with pytest.raises(ConfigError, match=message):
        load_config(env)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({**BASE, "GES_TOKEN": "t", "GES_BOT_CONFIG": str(tmp_path / "nope.toml")})


def test_blind_after_defaults_to_the_longer_of_5_minutes_and_3_poll_intervals() -> None:
    env = {**BASE, "GES_TOKEN": "t"}
    assert load_config(env).settings.blind_after.total_seconds() == 300
    assert load_config({**env, "GES_BOT_POLL_INTERVAL": "5m"}).settings.blind_after.total_seconds() == 900
    assert load_config({**env, "GES_BOT_BLIND_AFTER": "90s"}).settings.blind_after.total_seconds() == 90
    with pytest.raises(ConfigError, match="GES_BOT_BLIND_AFTER"):
        load_config({**env, "GES_BOT_BLIND_AFTER": "soon"})


def test_the_poll_cadence_defaults_and_durations() -> None:
    """A poll every minute, the fast lane every 12 s, and while it serves a scan every 10 minutes;
    all three read as durations."""
    env = {**BASE, "GES_TOKEN": "t"}
    s = load_config(env).settings
    assert (s.poll_interval, s.fast_interval, s.scan_interval) == (60, 12, 600)
    s = load_config({**env, "GES_BOT_SCAN_INTERVAL": "15m", "GES_BOT_FAST_INTERVAL": "0"}).settings
    assert (s.scan_interval, s.fast_interval) == (900, 0)
    with pytest.raises(ConfigError, match="GES_BOT_SCAN_INTERVAL"):
        load_config({**env, "GES_BOT_SCAN_INTERVAL": "soon"})


def test_the_ops_channel_from_the_environment_or_the_config_file(tmp_path: Path) -> None:
    env = {**BASE, "GES_TOKEN": "t"}
    assert load_config(env).ops_channel is None
    file = tmp_path / "bot.toml"
    file.write_text('[ops]\nchannel = "#ges-bot-ops"\n', encoding="utf-8")
    assert load_config({**env, "GES_BOT_CONFIG": str(file)}).ops_channel == "#ges-bot-ops"
    both = {**env, "GES_BOT_CONFIG": str(file), "GES_BOT_OPS_CHANNEL": "C0OPS"}
    assert load_config(both).ops_channel == "C0OPS"  # the environment wins
    file.write_text('[ops]\nchannel = "two words"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ops\.channel"):
        load_config({**env, "GES_BOT_CONFIG": str(file)})


def test_config_file_subscriptions_and_digests_take_a_language(tmp_path: Path) -> None:
    file = tmp_path / "ges-bot.toml"
    file.write_text(
        '[[subscriptions]]\nchannel = "C0ZH"\ngraph = "prod-*"\nlocale = "zh-CN"\n'
        '[[subscriptions]]\nchannel = "C0ZH2"\ngraph = "*"\nlang = "zh-CN"\n'
        '[[subscriptions]]\nchannel = "C0EN"\ngraph = "*"\n'
        '[[digests]]\nchannel = "C0ZH"\nschedule = "daily 09:00"\nlocale = "zh-CN"\n',
        encoding="utf-8",
    )
    config = load_config({"GES_BOT_CONFIG": str(file)}, require_ges=False)
    assert [(s.channel, s.locale) for s in config.subscriptions] == [
        ("C0ZH", "zh-CN"),
        ("C0ZH2", "zh-CN"),
        ("C0EN", "en"),
    ]
    assert [(d.channel, d.locale) for d in config.digests] == [("C0ZH", "zh-CN")]
    file.write_text('[[subscriptions]]\nchannel = "C1"\ngraph = "g"\nlocale = "fr"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="zh-CN"):
        load_config({"GES_BOT_CONFIG": str(file)}, require_ges=False)
