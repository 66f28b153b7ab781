"""Fair use of GES by the people asking: how many live ``/gesjobs`` questions each may ask.

This module owns the sliding-window limits on live questions — one per person and one for
everybody together — so that no asker (or crowd) can spend the job center's API quota the poller
needs: past a limit, questions are answered from the bot's snapshots instead (``slackapp.queries``
decides how). It is pure bookkeeping: the clock is passed in, nothing is awaited or logged.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "LiveQueryLimiter"]

#: Past this many people remembered, those with no question inside the window are forgotten.
_PRUNE_AT = 1000


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a live question may go to GES; if not, why and in how many seconds it could."""

    admitted: bool
    retry_after_s: float = 0.0
    #: ``"user"`` (the asker's own limit) or ``"everyone"`` (the limit of all askers together).
    limit: str | None = None

    def sentence(self, per_user: int, overall: int, window_s: float) -> str:
        """Why the question was not sent to GES, for the asker."""
        # Whole seconds, rounded up: asked again after that many, the question is live.
        wait = max(1, math.ceil(self.retry_after_s))
        minute = "minute" if window_s == 60 else f"{window_s:g} s"
        if self.limit == "user":
            who = f"you have asked GES {per_user} times in the last {minute}"
        else:
            who = f"GES has been asked {overall} times by everyone in the last {minute}"
        return f"Slow down — {who}; live answers again in {wait} s"


class LiveQueryLimiter:
    """At most ``per_user`` live questions per person and ``overall`` in all, per ``window_s``.

    ``clock`` gives seconds that only go forward (the shell hands in ``time.monotonic``).
    0 means no limit of that kind. :meth:`admit` records an admitted question; a refused one costs
    nothing (so a person who keeps asking is not locked out for longer)."""

    def __init__(self, per_user: int, overall: int, *, clock: Callable[[], float], window_s: float = 60.0) -> None:
        if per_user < 0 or overall < 0 or window_s <= 0:
            raise ValueError("limits must be 0 or more and the window positive")
        self.per_user = per_user
        self.overall = overall
        self.window_s = window_s
        self.clock = clock
        self._everyone: deque[float] = deque()
        self._users: dict[str, deque[float]] = {}

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def admit(self, user: str | None) -> Admission:
        now = self.clock()
        self._expire(self._everyone, now)
        mine = self._users.get(user or "")
        if mine is not None:
            self._expire(mine, now)
        if self.per_user and user and mine is not None and len(mine) >= self.per_user:
            return Admission(False, mine[0] + self.window_s - now, "user")
        if self.overall and len(self._everyone) >= self.overall:
            return Admission(False, self._everyone[0] + self.window_s - now, "everyone")
        if self.overall:
            self._everyone.append(now)
        if self.per_user and user:
            if len(self._users) >= _PRUNE_AT:
                self._prune(now)
            self._users.setdefault(user, deque()).append(now)
        return Admission(True)

    def _prune(self, now: float) -> None:
        for who in list(self._users):
            self._expire(self._users[who], now)
            if not self._users[who]:
                del self._users[who]

    def sentence(self, admission: Admission) -> str:
        return admission.sentence(self.per_user, self.overall, self.window_s)
