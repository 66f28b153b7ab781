"""What a sink is, as routing and the outbox see it, and what a webhook URL must look like (pure).

Owns: the platforms a ``[[sinks]]`` table may name, the outbox target of a sink (a ``Delivery``
whose ``channel`` is ``"sink:<name>"`` — so routing, mutes and the outbox need no new column), the
shape each platform's webhook URL has (``url_problem``) and whether a platform signs with a secret.
Used by ``config`` (validation at start-up) and ``ges-bot check`` (the same rules, posting
nothing). Never holds a URL or secret itself: callers pass the plain value only to check it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, get_args
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "SIGNING_PLATFORMS",
    "SINK_NAME",
    "SINK_PREFIX",
    "SinkType",
    "is_sink_target",
    "secret_problem",
    "sink_name_of",
    "sink_target",
    "url_problem",
]

SinkType = Literal["slack", "lark", "dingtalk", "wecom", "teams"]
SINK_TYPES: tuple[str, ...] = get_args(SinkType)

#: Platforms whose bots can be told to verify a signature (Lark: in the body; DingTalk: in the query).
SIGNING_PLATFORMS: frozenset[str] = frozenset({"lark", "dingtalk"})

#: The prefix of an outbox target that is a sink, not a Slack channel id (Slack ids never hold ':').
SINK_PREFIX = "sink:"
#: A sink's name: short (the outbox column is 64 wide), shell- and log-friendly.
SINK_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,57}$")


def sink_target(name: str) -> str:
    """The ``Delivery.channel`` of alerts routed to the sink ``name``."""
    return SINK_PREFIX + name


def is_sink_target(channel: str) -> bool:
    return channel.startswith(SINK_PREFIX)


def sink_name_of(channel: str) -> str:
    return channel.removeprefix(SINK_PREFIX)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Per platform: (path test, query keys it must carry, what the URL looks like — for the message).
_SHAPES: dict[str, tuple[re.Pattern[str], tuple[str, ...], str]] = {
    "slack": (re.compile(r"^/services/[^/]+/[^/]+/[^/]+$"), (), "https://hooks.slack.com/services/T…/B…/…"),
    "lark": (
        re.compile(r"^/open-apis/bot/v2/hook/[^/]+$"),
        (),
        "https://open.feishu.cn/open-apis/bot/v2/hook/<token> (Lark: https://open.larksuite.com/…)",
    ),
    "dingtalk": (
        re.compile(r"^/robot/send$"),
        ("access_token",),
        "https://oapi.dingtalk.com/robot/send?access_token=<token>",
    ),
    "wecom": (
        re.compile(r"^/cgi-bin/webhook/send$"),
        ("key",),
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>",
    ),
    "teams": (
        re.compile(r"^(/.*)?/workflows/[^/]+/triggers/manual/paths/invoke$"),
        ("sig",),
        "https://<host>/workflows/<id>/triggers/manual/paths/invoke?api-version=…&sig=… (from the Workflows app)",
    ),
}


def url_problem(platform: str, url: str) -> str | None:
    """Why ``url`` cannot be a ``platform`` webhook, or ``None`` when it has the right shape.

    The message never repeats the URL (its token is a secret); it says what the URL should look like.
    """
    if platform not in _SHAPES:
        return f"unknown sink type {platform!r}; use one of {', '.join(SINK_TYPES)}"
    path_shape, keys, example = _SHAPES[platform]
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return f"the URL is not a URL; it should look like {example}"
    if parts.scheme == "http":
        if not _loopback(host):
            return "the URL uses http://, which would send the token in clear; use https:// (http:// only for a loopback stand-in)"
    elif parts.scheme != "https":
        return f"the URL must start with https://; it should look like {example}"
    if not host:
        return f"the URL has no host; it should look like {example}"
    if not path_shape.match(parts.path):
        return f"the URL's path is not a {platform} webhook's; it should look like {example}"
    query = parse_qs(parts.query)
    missing = [k for k in keys if not query.get(k, [""])[0]]
    if missing:
        return f"the URL lacks its {', '.join(missing)} parameter; copy the whole URL, it should look like {example}"
    return None


def secret_problem(platform: str, secret: str | None) -> str | None:
    """Why ``secret`` does not fit ``platform`` (present where nothing signs, or malformed), or ``None``."""
    if secret is None:
        return None
    if platform not in SIGNING_PLATFORMS:
        return f"{platform} signs nothing; remove secret / secret_env (the URL is the only secret)"
    if not secret.strip():
        return "the secret is empty"
    if platform == "dingtalk" and not secret.startswith("SEC"):
        return "a DingTalk signing secret starts with SEC; copy it from the robot's 加签 (Additional Signature) setting"
    return None
