"""The running bot's shared parts, handed to the Slack app and the HTTP endpoints.

This module owns nothing but the bundle: the validated config, the store, one job-center client
per project, the clock and a few live figures. ``runtime`` builds it; handlers read from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ges_bot.clock import Clock, utc_now
from ges_bot.config import Config
from ges_bot.domain import ProjectInfo, Subscription
from ges_bot.jobcenter.client import JobCenterClient
from ges_bot.store.api import Store


@dataclass
class Services:
    """What handlers need at run time. Mutable only in ``started_at`` and ``notes``."""

    config: Config
    store: Store
    clients: Mapping[str, JobCenterClient]
    clock: Clock = utc_now
    replica: str = "ges-bot"
    started_at: datetime = field(default_factory=utc_now)
    #: Live remarks for health (e.g. "Slack rejects the bot token"), keyed by source.
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def projects(self) -> dict[str, ProjectInfo]:
        return {p.alias: p.info() for p in self.config.projects}

    @property
    def config_subscriptions(self) -> tuple[Subscription, ...]:
        return self.config.subscriptions

    def client(self, alias: str | None) -> tuple[str, JobCenterClient]:
        """The client for ``alias`` (or the only/first project when ``None``). KeyError names the choices."""
        if alias is None:
            first = next(iter(self.clients))
            return first, self.clients[first]
        if alias not in self.clients:
            raise KeyError(alias)
        return alias, self.clients[alias]
