"""The delivery worker's tunables (:class:`DeliveryPolicy`) and the backoff they define.

This module owns numbers, not behaviour: how big a claim is and how long it lasts, how fast a
channel is paced, how a failed row is spaced out (:func:`backoff_delay`). Every delivery stage
reads its figures from one :class:`DeliveryPolicy`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DeliveryPolicy", "backoff_delay"]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Tunables of the outbox worker, with the defaults a production bot uses."""

    #: Rows in flight at once (all channels together); also the most one claim takes.
    batch_size: int = 50
    #: How long a claim keeps other workers off a row unless renewed. A running worker renews its
    #: claims (``heartbeat_s``), so this is how long the rows of a worker that died wait.
    claim_lease_s: float = 15.0
    #: A row is handed back instead of posted when its claim has less than this left (it must
    #: cover a whole Slack call and its recording: the runtime keeps it above the Slack timeout).
    lease_margin_s: float = 13.0
    #: Seconds between renewals of the worker's claims while it runs (``None``: derived from the
    #: lease and the margin, see :attr:`heartbeat_interval`).
    heartbeat_s: float | None = None
    #: At most one chat.postMessage per channel per this many seconds. A 429 doubles a channel's
    #: interval (up to ``max_channel_interval_s``); each post Slack takes brings it back by 10 %.
    channel_interval_s: float = 1.0
    max_channel_interval_s: float = 30.0
    #: Rows one channel's lane holds at once; the rest waits in the outbox, unclaimed, for its
    #: turn. One: a row is claimed at most one turn (``channel_interval_s``) before it is posted,
    #: so a worker that dies holds back one row per channel, for one lease at most.
    channel_queue: int = 1
    #: A lane waits this long at most for its channel's turn before handing the row back.
    max_turn_wait_s: float = 10.0
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 300.0
    max_attempts: int = 100
    #: How often the worker looks for due rows when nothing woke it.
    idle_poll_s: float = 1.0
    installation_pause_s: float = 300.0
    #: DMs (about a broken channel) are tried this often, waiting at most ``inline_retry_cap_s``.
    inline_attempts: int = 3
    inline_retry_cap_s: float = 5.0
    #: Tries to record a posted message (``mark_sent``) before leaving it to the claim's expiry.
    record_attempts: int = 6
    #: Post→mark-sent sections in flight at once (all lanes together): the most messages a crash
    #: of the worker can leave posted and not recorded, i.e. post twice.
    max_concurrent_posts: int = 4

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between claim renewals: often enough that a claim never drops below the margin
        between two renewals (half the room the lease leaves above it), and at least three
        renewals per lease, so one late renewal costs no claim."""
        if self.heartbeat_s is not None:
            return self.heartbeat_s
        room = self.claim_lease_s - self.lease_margin_s
        return max(0.1, min(self.claim_lease_s / 3, room / 2))


def backoff_delay(attempt: int, policy: DeliveryPolicy, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1``.

    When Slack says when to come back (``Retry-After`` of a 429), that is the delay, plus up to
    10 % (at most 1 s) so that workers do not all return at the same instant; ``attempt`` does not
    matter then (it also counts rows sent back for pacing, and Slack's word is exact). Otherwise
    ``base × 2^(attempt−1)`` capped at ``backoff_cap_s``, times a jitter factor in [0.5, 1.0].
    """
    if retry_after is not None:
        return retry_after + rng.random() * min(1.0, retry_after * 0.1)
    exponent = min(max(0, attempt - 1), 62)
    raw = min(policy.backoff_cap_s, policy.backoff_base_s * (2.0**exponent))
    return float(raw * (0.5 + rng.random() / 2))
