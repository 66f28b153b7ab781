"""The fair-use limiter: sliding windows per person and for everyone, on an injected clock."""

from __future__ import annotations

import pytest

from ges_bot.slackapp.fairuse import LiveQueryLimiter
from tests.support.clocks import Seconds


def test_a_person_gets_their_share_per_window_and_is_told_when_more_comes() -> None:
    clock = Seconds()
    limiter = LiveQueryLimiter(per_user=3, overall=100, clock=clock)
    for step in range(3):
        clock.now = 100.0 + 10 * step
        assert limiter.admit("U1").admitted
    clock.now = 125.0
    refused = limiter.admit("U1")
    assert not refused.admitted
    assert refused.limit == "user"
    assert refused.retry_after_s == pytest.approx(35.0)  # the first question leaves the window at 160
    assert limiter.sentence(refused) == (
        "Slow down — you have asked GES 3 times in the last minute; live answers again in 35 s"
    )
    # Refusals cost nothing: at 160 the first question has left the window.
    clock.now = 160.0
    assert limiter.admit("U1").admitted
    assert not limiter.admit("U1").admitted


def test_the_wait_said_is_the_wait_rounded_up() -> None:
    clock = Seconds()
    limiter = LiveQueryLimiter(per_user=1, overall=0, clock=clock)
    assert limiter.admit("U1").admitted
    for elapsed, said in ((0.0, "60 s"), (24.0, "36 s"), (24.5, "36 s"), (25.0, "35 s"), (59.9, "1 s")):
        clock.now = 100.0 + elapsed
        assert limiter.sentence(limiter.admit("U1")).endswith(f"again in {said}")
    clock.now = 160.0  # as said: 60 s after the question, it is live again
    assert limiter.admit("U1").admitted


def test_everyone_together_has_a_limit_too() -> None:
    clock = Seconds()
    limiter = LiveQueryLimiter(per_user=5, overall=4, clock=clock)
    for user in ("U1", "U2", "U3", "U4"):
        assert limiter.admit(user).admitted
    refused = limiter.admit("U5")
    assert (refused.admitted, refused.limit) == (False, "everyone")
    assert "by everyone" in limiter.sentence(refused)


def test_zero_means_no_limit_and_many_people_are_forgotten_when_quiet() -> None:
    clock = Seconds()
    unlimited = LiveQueryLimiter(per_user=0, overall=0, clock=clock)
    assert all(unlimited.admit("U1").admitted for _ in range(1000))
    limiter = LiveQueryLimiter(per_user=1, overall=0, clock=clock)
    for i in range(5000):
        clock.now += 1
        assert limiter.admit(f"U{i}").admitted
    # Only people with a question inside the window are remembered (plus at most one prune's worth).
    assert len(limiter._users) <= 1000 + 60
