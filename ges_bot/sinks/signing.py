"""Request signing for the group-bot webhooks that support it (pure: stdlib only, no I/O).

Both algorithms are HMAC-SHA256 over ``"<timestamp>\\n<secret>"``, but they differ in which part is
the key, in the timestamp's unit and in where the result travels (``shared/chats/NOTES.md``):

- **Lark / Feishu**: timestamp in Unix *seconds*; the key is the string to sign and the message is
  empty; ``timestamp`` and ``sign`` go in the JSON body.
- **DingTalk**: timestamp in Unix *milliseconds*; the key is the secret and the message is the
  string to sign; ``timestamp`` and the URL-encoded ``sign`` are appended to the webhook URL's query.

WeCom signs nothing (the key in the URL is the secret); a Teams Workflows URL carries its ``sig``.
The secrets are never logged: callers hold them as ``pydantic.SecretStr`` and pass the plain value
only here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus, urlencode, urlsplit, urlunsplit

__all__ = ["dingtalk_sign", "dingtalk_signed_url", "lark_sign", "lark_signed_body"]


def lark_sign(timestamp_s: int, secret: str) -> str:
    """The ``sign`` field of a signed Lark/Feishu custom-bot request made at ``timestamp_s``."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def lark_signed_body(body: dict[str, object], timestamp_s: int, secret: str) -> dict[str, object]:
    """``body`` with ``timestamp`` (a string, as Lark expects) and ``sign`` added."""
    return {**body, "timestamp": str(timestamp_s), "sign": lark_sign(timestamp_s, secret)}


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """The ``sign`` query value (already URL-encoded) of a DingTalk robot request at ``timestamp_ms``."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def dingtalk_signed_url(url: str, timestamp_ms: int, secret: str) -> str:
    """The webhook URL with ``&timestamp=…&sign=…`` appended to its query."""
    parts = urlsplit(url)
    # sign is already URL-encoded (DingTalk's documented algorithm includes the encoding step).
    extra = urlencode({"timestamp": str(timestamp_ms)}) + "&sign=" + dingtalk_sign(timestamp_ms, secret)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
