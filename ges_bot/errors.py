"""The exception tree of ges-bot. Every error the bot raises on purpose is one of these.

::

    GesBotError                      base; ``str(err)`` is a sentence a person can act on
    ├── ConfigError                  settings missing, contradictory or invalid (start-up)
    ├── JobCenterError               anything that went wrong talking to GES or IAM
    │   ├── QueryError               a query rejected before sending (bad date, status, limit…)
    │   ├── TransportError           timeout, connection refused/reset (retryable)
    │   ├── ResponseError            GES answered something we cannot read (non-JSON, truncated)
    │   │   └── UnusableAnswerError  …and asking again would not help (too large, nested too deep)
    │   └── ApiError                 GES answered with an error body (status, code, msg, request id)
    │       └── AuthError            401/403: token, signature or IAM credentials refused
    ├── StoreError                   database unreachable or a migration failed
    └── SlackDeliveryError           Slack refused a message
        ├── RetryableSlackError      429, 5xx, timeouts: try again later
        └── PermanentSlackError      channel_not_found, invalid_auth…: a person must act

Errors never carry secrets: tokens, passwords and signatures stay out of messages.
"""

from __future__ import annotations

from enum import StrEnum


class GesBotError(Exception):
    """Base of every error ges-bot raises on purpose."""


class ConfigError(GesBotError):
    """The configuration is missing, incomplete or contradictory. The message says how to fix it."""


class JobCenterError(GesBotError):
    """Talking to the GES job center (or IAM) failed."""

    retryable: bool = False


class QueryError(JobCenterError):
    """A job-center query was invalid and was not sent."""


class TransportError(JobCenterError):
    """The request did not get an answer: timeout, refused or reset connection."""

    retryable = True


class ResponseError(JobCenterError):
    """GES answered, but not with JSON we can read (non-JSON, truncated, wrong shape)."""

    retryable = True

    def __init__(self, message: str, *, http_status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.request_id = request_id


class UnusableAnswerError(ResponseError):
    """GES answered something no retry will fix and no reader should hold: an answer over the byte
    cap, JSON nested too deep to parse. Not retried within a request (the same answer would come
    again, at the same cost); a poll tick fails with it and the next tick tries afresh."""

    retryable = False


class ApiError(JobCenterError):
    """GES (or its API gateway) answered with an error status and body."""

    def __init__(
        self,
        http_status: int,
        error_code: str | None,
        error_msg: str | None,
        request_id: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        super().__init__(self._describe())

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.http_status in (408, 429) or self.http_status >= 500

    def _describe(self) -> str:
        parts = [f"GES answered HTTP {self.http_status}"]
        if self.error_code:
            parts.append(f"{self.error_code}")
        text = " ".join(parts)
        if self.error_msg:
            text += f": {self.error_msg}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class AuthError(ApiError):
    """Credentials were refused (401/403). Check the token, AK/SK or IAM user and the project id."""


class StoreError(GesBotError):
    """The database could not be reached or migrated."""


class FailureCategory(StrEnum):
    """What kind of failure a Slack call met, set once (``notify.slack.classify``, or the scope of a
    permanent error); the values are the ``category`` label of ``ges_bot_slack_failures_total``,
    which dashboards read, so they never change."""

    RATELIMITED = "ratelimited"  # 429 / ``ratelimited``
    SERVER = "server"  # 5xx, Slack's ``internal_error`` & co, anything unexpected from the client
    CONNECTION = "connection"  # timeouts, refused or dropped connections
    INTERNAL = "internal"  # a bug of ours while delivering (rendering, bookkeeping)
    TARGET = "target"  # permanent: this channel (or user)
    MESSAGE = "message"  # permanent: this payload
    INSTALLATION = "installation"  # permanent: the token or app
    INLINE = "inline"  # a best-effort post (a DM) that was given up


class SlackDeliveryError(GesBotError):
    """Slack refused a message; ``category`` says what kind of failure it was."""

    def __init__(
        self, error: str, *, retry_after: float | None = None, category: FailureCategory = FailureCategory.SERVER
    ) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after
        self.category = category


class RetryableSlackError(SlackDeliveryError):
    """Rate limited, a server error, or no answer: the same message may be tried again later."""


class FailureScope(StrEnum):
    """Whom a permanent Slack failure concerns: used to decide who must be told."""

    TARGET = "target"  # this channel: the subscription is broken
    MESSAGE = "message"  # this payload: Slack will never take it as it is
    INSTALLATION = "installation"  # the token or app: nothing can be posted anywhere


class PermanentSlackError(SlackDeliveryError):
    """Slack will not accept this message for this target until a person acts; ``scope`` says
    whom the refusal concerns (:class:`FailureScope`)."""

    def __init__(self, error: str, scope: FailureScope = FailureScope.MESSAGE) -> None:
        super().__init__(error, category=FailureCategory(scope.value))
        self.scope = scope
