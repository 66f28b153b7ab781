"""Each asker's time zone, from Slack's ``users.info``, cached with a TTL.

This module owns the answer to "whose today?": ``/gesjobs failed today`` means the asker's today,
so the Slack app asks Slack for the user's ``tz`` once and remembers it for a while. Any failure
(Slack unreachable, rate limited, an unknown zone name, a user without ``tz``) falls back to the
bot's default zone (``GES_BOT_TIMEZONE``) and is remembered for a shorter time, so a Slack outage
never slows every command down. It must not decide anything about ranges (the parser does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["TimezoneCache"]

log = logging.getLogger(__name__)


class TimezoneCache:
    """``users.info`` → :class:`ZoneInfo`, per user, cached for ``ttl_s`` (``failure_ttl_s`` after a failure).

    The cache holds at most ``max_entries`` users (least recently used are dropped first), and
    concurrent look-ups of the same user share one ``users.info`` call.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        default: ZoneInfo,
        *,
        ttl_s: float = 6 * 3600,
        failure_ttl_s: float = 300,
        timeout_s: float = 2.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.default = default
        self.ttl_s = ttl_s
        self.failure_ttl_s = failure_ttl_s
        self.timeout_s = timeout_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[ZoneInfo, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[ZoneInfo]] = {}
        #: How many ``users.info`` calls were made (for tests and the benchmark).
        self.lookups = 0

    async def zone_for(self, user_id: str | None) -> ZoneInfo:
        """The user's zone, or the default one when it cannot be learned (never raises)."""
        if not user_id:
            return self.default
        now = self.clock()
        entry = self._entries.get(user_id)
        if entry is not None and entry[1] > now:
            self._entries.move_to_end(user_id)
            return entry[0]
        pending = self._inflight.get(user_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ZoneInfo] = asyncio.get_running_loop().create_future()
        self._inflight[user_id] = future
        try:
            zone, ttl = await self._lookup(user_id)
            self._remember(user_id, zone, self.clock() + ttl)
            future.set_result(zone)
            return zone
        except BaseException:  # cancelled: waiters fall back to the default rather than hang
            if not future.done():
                future.set_result(self.default)
            raise
        finally:
            del self._inflight[user_id]

    def _remember(self, user_id: str, zone: ZoneInfo, expires: float) -> None:
        self._entries[user_id] = (zone, expires)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def _lookup(self, user_id: str) -> tuple[ZoneInfo, float]:
        self.lookups += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self.client.users_info(user=user_id)
        except Exception as exc:
            # Not worth failing a command over: the default zone is a sensible answer.
            log.warning("users.info for %s failed (%s); using %s", user_id, type(exc).__name__, self.default.key)
            return self.default, self.failure_ttl_s
        user = resp.get("user")
        name = user.get("tz") if isinstance(user, dict) else None
        if not isinstance(name, str) or not name:
            return self.default, self.ttl_s
        try:
            return ZoneInfo(name), self.ttl_s
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("users.info gave %s an unknown time zone %r; using %s", user_id, name, self.default.key)
            return self.default, self.ttl_s
