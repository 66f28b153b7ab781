"""``[[sinks]]`` in the config file: validated with messages that name the sink, never its URL or
secret; ``[[subscriptions]]`` naming a sink route to ``sink:<name>`` through the same routing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ges_bot.config import load_config
from ges_bot.domain import EventKind, Job, JobEvent
from ges_bot.errors import ConfigError
from ges_bot.notify.routing import route

LARK = "https://open.feishu.cn/open-apis/bot/v2/hook/0b7c-SECRET-TOKEN"
DING = "https://oapi.dingtalk.com/robot/send?access_token=SECRET-TOKEN"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-TOKEN"
TEAMS = (
    "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=SECRET-TOKEN"
)
SLACK = "https://hooks.slack.com/services/T000/B000/SECRET-TOKEN"
PROJECT = '[[projects]]\nalias = "prod"\nproject_id = "p1"\nendpoint = "https://ges.test"\ntoken = "t"\n'


def _load(tmp_path: Path, body: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    file = tmp_path / "bot.toml"
    file.write_text(PROJECT + body, encoding="utf-8")
    return load_config({"GES_BOT_CONFIG": str(file), **(env or {})})


def test_sinks_of_every_type_and_a_subscription_naming_one(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        f"""
[[sinks]]
name = "dba-lark"
type = "lark"
url_env = "LARK_URL"
secret_env = "LARK_SECRET"
locale = "zh-CN"

[[sinks]]
name = "ops-ding"
type = "dingtalk"
url = "{DING}"
secret = "SECabc"

[[sinks]]
name = "wecom"
type = "wecom"
url = "{WECOM}"

[[sinks]]
name = "teams"
type = "teams"
url = "{TEAMS}"

[[sinks]]
name = "slack-hook"
type = "slack"
url = "{SLACK}"

[[subscriptions]]
sink = "ops-ding"
graph = "prod-*"
statuses = ["failed"]
project = "prod"
job_names = ["ImportGraph"]

[[subscriptions]]
channel = "C1"
graph = "prod-*"
""",
        {"LARK_URL": LARK, "LARK_SECRET": "lark-secret"},
    )
    assert [(s.name, s.type, s.locale) for s in cfg.sinks] == [
        ("dba-lark", "lark", "zh-CN"),
        ("ops-ding", "dingtalk", "en"),
        ("wecom", "wecom", "en"),
        ("teams", "teams", "en"),
        ("slack-hook", "slack", "en"),
    ]
    lark = cfg.sink("dba-lark")
    assert lark.url.get_secret_value() == LARK
    assert lark.secret is not None and lark.secret.get_secret_value() == "lark-secret"
    # Secrets never show in a repr (logs, tracebacks).
    assert "SECRET-TOKEN" not in repr(cfg.sinks) and "lark-secret" not in repr(cfg.sinks)
    sink_sub, slack_sub = cfg.subscriptions
    assert (sink_sub.channel, sink_sub.graph_pattern, sink_sub.kinds) == ("sink:ops-ding", "prod-*", {EventKind.FAILED})
    assert slack_sub.channel == "C1"

    # Routing is unchanged: a failure reaches both the Slack channel and the sink, one delivery each.
    now = datetime(2026, 1, 1, tzinfo=UTC)
    job = Job(job_id="j1", status="failed", job_name="ImportGraph", graph="prod-movies")
    event = JobEvent(project="prod", kind=EventKind.FAILED, job=job, at=now)
    result = route([event], cfg.subscriptions, [], now)
    assert sorted(d.channel for d in result.deliveries) == ["C1", "sink:ops-ding"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[sinks]]\nname = "x"\ntype = "lark"\n', "no webhook URL"),
        ('[[sinks]]\nname = "x"\ntype = "lark"\nurl_env = "NOPE"\n', "url_env names $NOPE, which is not set"),
        ('[[sinks]]\nname = "x"\ntype = "matrix"\nurl = "https://m"\n', "type"),
        ('[[sinks]]\nname = "Bad Name"\ntype = "lark"\nurl = "https://x"\n', "lower-case"),
        (
            f'[[sinks]]\nname = "x"\ntype = "lark"\nurl = "{LARK.replace("https", "http")}"\n',
            "http://, which would send the token in clear",
        ),
        (f'[[sinks]]\nname = "x"\ntype = "lark"\nurl = "{DING}"\n', "path is not a lark webhook's"),
        (
            '[[sinks]]\nname = "x"\ntype = "dingtalk"\nurl = "https://oapi.dingtalk.com/robot/send"\n',
            "lacks its access_token parameter",
        ),
        (f'[[sinks]]\nname = "x"\ntype = "wecom"\nurl = "{WECOM}"\nsecret = "s"\n', "wecom signs nothing"),
        (f'[[sinks]]\nname = "x"\ntype = "dingtalk"\nurl = "{DING}"\nsecret = "abc"\n', "starts with SEC"),
        (
            f'[[sinks]]\nname = "x"\ntype = "teams"\nurl = "{TEAMS.split("?", maxsplit=1)[0]}"\n',
            "lacks its sig parameter",
        ),
        (
            f'[[sinks]]\nname = "x"\ntype = "wecom"\nurl = "{WECOM}"\n[[sinks]]\nname = "x"\ntype = "wecom"\nurl = "{WECOM}"\n',
            "used twice",
        ),
        ('[[subscriptions]]\nsink = "nope"\ngraph = "g"\n', "not a configured [[sinks]] name"),
        (
            f'[[sinks]]\nname = "x"\ntype = "wecom"\nurl = "{WECOM}"\n[[subscriptions]]\nsink = "x"\nchannel = "C1"\ngraph = "g"\n',
            "either a Slack channel",
        ),
        ('[[subscriptions]]\ngraph = "g"\n', "either a Slack channel"),
    ],
)
def test_bad_sinks_are_refused_with_a_message_that_keeps_secrets(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, body)
    assert message in str(err.value)
    assert "SECRET-TOKEN" not in str(err.value)


def test_http_is_allowed_for_a_loopback_stand_in(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        '[[sinks]]\nname = "local"\ntype = "wecom"\nurl = "http://127.0.0.1:8080/cgi-bin/webhook/send?key=k"\n',
    )
    assert cfg.sink("local").type == "wecom"
