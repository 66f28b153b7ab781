"""What delivery does when Slack refuses a channel or the whole installation, and when it recovers.

This module owns the delivery worker's *broken-channel* stage:

- a channel that refuses us (``channel_not_found``, ``not_in_channel``, ``is_archived`` …): its
  database subscriptions are marked broken, each person who created one of them gets a direct
  message saying what is wrong and how to fix it (once, when the subscription becomes broken), and
  a config-file channel (no creator, not stored) is logged and noted until a post to it succeeds;
- a refused token (``invalid_auth``, ``token_revoked`` …): delivery pauses for
  ``installation_pause_s``, and the problem is logged at CRITICAL and noted;
- a post Slack takes clears the problems it disproves.

``notes`` (``Services.notes``) is what ``/gesjobs status``, the Home tab and ``/healthz`` show.
It does not decide what a row's outcome is (the worker does), nor pace or post by itself: DMs go
through the ``post`` it is given (the worker's paced post), tried a few times with short waits.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import datetime, timedelta

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, retry_if_result, stop_after_attempt

from ges_bot import metrics
from ges_bot.domain import Delivery, Subscription
from ges_bot.errors import FailureCategory, PermanentSlackError, SlackDeliveryError
from ges_bot.notify import render
from ges_bot.notify.pacing import Busy, Pacer
from ges_bot.notify.policy import DeliveryPolicy, backoff_delay
from ges_bot.notify.slack import Posted, SlackGateway
from ges_bot.store.api import OutboxStore

__all__ = ["NOTE_INSTALLATION", "ChannelHealth", "InlinePost"]

# The delivery stages log as delivery: one logger name for operators to filter on, as before the split.
log = logging.getLogger("ges_bot.notify.delivery")

#: ``notes`` key of an installation-wide Slack problem; channel problems use ``slack:<channel>``.
NOTE_INSTALLATION = "slack"

#: A paced post of a message to a channel (a DM here): what Slack took, or a busy channel; raises
#: ``SlackDeliveryError``s.
InlinePost = Callable[[str, render.SlackMessage], Awaitable[Posted | Busy]]


class ChannelHealth:
    """The installation's and the channels' standing with Slack, and who is told about it."""

    def __init__(
        self,
        store: OutboxStore,
        gateway: SlackGateway,
        pacer: Pacer,
        *,
        post: InlinePost,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
        rng: random.Random,
        notes: MutableMapping[str, str],
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.pacer = pacer
        self.post = post
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.notes = notes
        #: The Slack error that paused all delivery, until a post succeeds again.
        self.last_installation_error: str | None = None
        #: Channels of config-file subscriptions that Slack refuses (channel → error).
        self.broken_config_channels: dict[str, str] = {}
        self._paused_until: datetime | None = None

    @property
    def paused_until(self) -> datetime | None:
        """Until when delivery is paused by an installation error (``None``: not paused)."""
        if self._paused_until is not None and self.clock() >= self._paused_until:
            return None
        return self._paused_until

    def installation_refused(self, error: str) -> datetime:
        """Slack refuses the token: pause everything (rows stay pending) and say so; returns until when."""
        until = self.clock() + timedelta(seconds=self.policy.installation_pause_s)
        self._paused_until = until
        self.last_installation_error = error
        self.notes[NOTE_INSTALLATION] = (
            f"Slack refuses the bot token ({error}): no alert can be posted. Check SLACK_BOT_TOKEN, "
            "SLACK_API_URL and the app's scopes; alerts are kept and go out once Slack accepts the token."
        )
        log.critical(
            "delivery: Slack refuses the bot token (%s); check SLACK_BOT_TOKEN, SLACK_API_URL and the app's "
            "scopes. Alerts are kept and delivery resumes by itself; pausing %.0fs",
            error,
            self.policy.installation_pause_s,
        )
        return until

    def healthy(self, channel: str) -> None:
        """Slack took a message: forget installation and channel problems it disproves."""
        if self.last_installation_error is not None:
            log.warning("delivery: Slack accepts the bot token again; delivery resumed")
            self.last_installation_error = None
            self.notes.pop(NOTE_INSTALLATION, None)
        if self.broken_config_channels.pop(channel, None) is not None:
            log.warning("delivery: channel %s accepts alerts again", channel)
            self.notes.pop(f"{NOTE_INSTALLATION}:{channel}", None)

    async def channel_broken(self, delivery: Delivery, error: str) -> None:
        """The channel refuses us: mark its subscriptions broken, note a config-file channel, and
        DM the people whose subscriptions just became broken."""
        channel = delivery.channel
        before = {s.id: s.broken for s in await self.store.subscriptions(channel)}
        broken = await self.store.mark_channel_broken(channel, error, self.clock())
        newly = [s for s in broken if before.get(s.id) is None]
        log.error(
            "delivery: cannot post to channel %s (%s); its %d subscription(s) are marked broken",
            channel,
            error,
            len(broken),
        )
        if any(i < 0 for i in delivery.subscription_ids):
            self.broken_config_channels[channel] = error
            self.notes[f"{NOTE_INSTALLATION}:{channel}"] = (
                f"Alerts for channel {channel} (a [[subscriptions]] entry of GES_BOT_CONFIG) cannot be posted: "
                f"Slack answered {error}. Fix the channel (invite the bot, unarchive it) or the config file."
            )
            log.error(
                "delivery: channel %s comes from [[subscriptions]] in GES_BOT_CONFIG and Slack answers %s: "
                "invite the bot to it, unarchive it, or change the config file",
                channel,
                error,
            )
        if newly:
            await self._tell_subscribers(channel, error, newly)

    async def _tell_subscribers(self, channel: str, error: str, subs: Sequence[Subscription]) -> None:
        people = sorted({s.created_by for s in subs if s.created_by and s.created_by[:1] in ("U", "W")})
        if not people:
            log.error("delivery: no one to tell that channel %s is broken (%s)", channel, error)
            return
        notice = render.render_broken_channel_notice(channel, error, [s.graph_pattern for s in subs])
        for user in people:
            try:
                dm = await self._open_dm(user)
            except SlackDeliveryError as exc:
                log.error("delivery: could not open a DM with %s about channel %s: %s", user, channel, exc.error)
                continue
            if await self._post_inline(dm, notice, what=f"notice to {user}") is not None:
                log.info("delivery: told %s that channel %s is broken (%s)", user, channel, error)

    async def _post_inline(self, channel: str, message: render.SlackMessage, *, what: str) -> Posted | None:
        """A best-effort post (a DM): a few tries with short capped waits, then a log line."""

        def wait(state: RetryCallState) -> float:
            delay = min(
                self.policy.inline_retry_cap_s, backoff_delay(state.attempt_number, self.policy, None, self.rng)
            )
            _, retry_after, _ = _failure(state)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.policy.max_turn_wait_s))
            return delay

        def before_sleep(state: RetryCallState) -> None:
            error, retry_after, category = _failure(state)
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            if category is FailureCategory.RATELIMITED:
                self.pacer.rate_limited(channel, retry_after if retry_after is not None else delay)
            log.warning("delivery: the %s in %s failed (%s), attempt %d", what, channel, error, state.attempt_number)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.inline_attempts),
            wait=wait,
            # A busy channel (a value) is tried again like a retryable error; a refusal is not.
            retry=retry_if_exception(_retryable) | retry_if_result(lambda result: isinstance(result, Busy)),
            before_sleep=before_sleep,
            sleep=asyncio.sleep,
            # Out of tries: the last outcome as it is (its error raised, or the last Busy returned).
            retry_error_callback=_last_outcome,
        )
        try:
            result: Posted | Busy = await retrying(self.post, channel, message)
        except PermanentSlackError as exc:
            log.error("delivery: Slack refused the %s in %s: %s", what, channel, exc.error)
        except SlackDeliveryError as exc:
            log.error("delivery: gave up on the %s in %s: %s", what, channel, exc.error)
        else:
            if isinstance(result, Posted):
                return result
            log.error("delivery: gave up on the %s in %s: %s", what, channel, result.reason.value)
        metrics.SLACK_FAILURES.labels(FailureCategory.INLINE.value).inc()
        return None

    async def _open_dm(self, user: str) -> str:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.inline_attempts),
            wait=lambda state: min(
                self.policy.inline_retry_cap_s, backoff_delay(state.attempt_number, self.policy, None, self.rng)
            ),
            retry=retry_if_exception(_retryable),
            sleep=asyncio.sleep,
            reraise=True,
        )
        result: str = await retrying(self.gateway.open_dm, user)
        return result


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, SlackDeliveryError) and not isinstance(exc, PermanentSlackError)


def _failure(state: RetryCallState) -> tuple[str, float | None, FailureCategory | None]:
    """What the last try met: its error (or busy reason), ``Retry-After`` and category."""
    outcome = state.outcome
    if outcome is None:
        return "", None, None
    if outcome.failed:
        exc = outcome.exception()
        if isinstance(exc, SlackDeliveryError):
            return exc.error, exc.retry_after, exc.category
        return type(exc).__name__, None, None
    result = outcome.result()
    if isinstance(result, Busy):
        return result.reason.value, result.retry_after, None
    return "", None, None


def _last_outcome(state: RetryCallState) -> object:
    assert state.outcome is not None
    return state.outcome.result()
