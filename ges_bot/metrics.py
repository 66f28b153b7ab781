"""Prometheus metrics: every counter and gauge ges-bot exports on ``/metrics``, with fixed label sets.

Labels are bounded enums (event kind, result, failure reason category) — never graph names,
channels or error text — so cardinality stays fixed whatever GES or Slack send.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POLL_TICKS = Counter(
    "ges_bot_poll_ticks_total",
    "Poll ticks by project and result (ok, degraded, error, skipped; fast: a look of the fast lane; "
    "deferred: a poll that left its scans to the fast lane).",
    ["project", "result"],
    registry=REGISTRY,
)
POLL_DURATION = Histogram(
    "ges_bot_poll_tick_seconds", "Duration of successful poll ticks.", ["project"], registry=REGISTRY
)
GES_REQUESTS = Counter(
    "ges_bot_ges_requests_total", "Requests sent to the GES job center.", ["project"], registry=REGISTRY
)
EVENTS = Counter("ges_bot_events_total", "Job events recorded, by kind.", ["kind"], registry=REGISTRY)
SLACK_SENDS = Counter(
    "ges_bot_slack_messages_total",
    "Outbox messages by result (sent, retry, dead, duplicate_window).",
    ["result"],
    registry=REGISTRY,
)
SLACK_FAILURES = Counter(
    "ges_bot_slack_failures_total",
    "Slack failures by category (ratelimited, server, connection, target, message, installation).",
    ["category"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge("ges_bot_outbox_pending", "Outbox rows waiting to be delivered.", registry=REGISTRY)
OUTBOX_DEAD = Gauge("ges_bot_outbox_dead", "Outbox rows that can never be delivered.", registry=REGISTRY)
DELIVERY_LATENCY = Histogram(
    "ges_bot_delivery_latency_seconds",
    "From event observed to message accepted by Slack.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 7200),
    registry=REGISTRY,
)
COMMANDS = Counter(
    "ges_bot_slash_commands_total",
    "Slash commands by command kind and result.",
    ["command", "result"],
    registry=REGISTRY,
)
POLL_LAST_SUCCESS = Gauge(
    "ges_bot_poll_last_success_timestamp_seconds",
    "Unix time of the project's last successful poll (as the store records it, whichever replica polled).",
    ["project"],
    registry=REGISTRY,
)
POLL_SECONDS_SINCE_SUCCESS = Gauge(
    "ges_bot_poll_seconds_since_success",
    "Seconds since the project's last successful poll (since this replica started, if none).",
    ["project"],
    registry=REGISTRY,
)
PROJECT_BLIND = Gauge(
    "ges_bot_project_blind",
    "1 while the project is blind (polls failing past GES_BOT_BLIND_AFTER, or credentials refused).",
    ["project"],
    registry=REGISTRY,
)
OPS_INCIDENTS = Gauge(
    "ges_bot_ops_incidents",
    "Open health problems of the bot by kind (blind, channel, slack, backlog, dead).",
    ["kind"],
    registry=REGISTRY,
)
