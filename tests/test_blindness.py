"""``watch.blindness``: which of the bot's own problems are open, from the store's figures (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ges_bot.errors import ApiError, AuthError, ResponseError, StoreError, TransportError
from ges_bot.store.api import PollState
from ges_bot.watch.blindness import (
    ErrorKind,
    Finding,
    IncidentKind,
    Observation,
    PriorIncident,
    assess,
    error_kind,
)

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
AFTER = timedelta(minutes=5)


def observe(minutes: float, *polls: PollState, **fields: object) -> Observation:
    base: dict[str, object] = {
        "now": T0 + timedelta(minutes=minutes),
        "started_at": T0,
        "blind_after": AFTER,
        "projects": {"prod": "aksk"},
        "polls": polls,
        "broken_channels": {},
    }
    base.update(fields)
    return Observation(**base)  # type: ignore[arg-type]


def failing(since_min: float, n: int, kind: ErrorKind, error: str = "GES answered HTTP 503") -> PollState:
    return PollState(
        "prod",
        last_success_at=T0 + timedelta(minutes=since_min - 1),
        last_attempt_at=T0 + timedelta(minutes=since_min + n),
        last_error=error,
        consecutive_failures=n,
        last_error_kind=kind.value,
        failing_since=T0 + timedelta(minutes=since_min),
    )


def only(findings: list[Finding]) -> Finding:
    [finding] = findings
    return finding


def test_failing_polls_are_not_blindness_until_the_threshold_passes() -> None:
    poll = failing(1, 3, ErrorKind.SERVER)
    assert assess(observe(5.5, poll), {}) == []
    blind = only(assess(observe(6.5, poll), {}))
    assert (blind.kind, blind.subject, blind.since) == (IncidentKind.BLIND, "prod", T0 + timedelta(minutes=1))
    assert "keep failing (3 in a row; last: GES answered HTTP 503)" in blind.cause
    assert "service health" in blind.fix


@pytest.mark.parametrize(
    ("kind", "fix"),
    [
        (ErrorKind.UNREACHABLE, "GES_ENDPOINT / GES_REGION, DNS, proxies"),
        (ErrorKind.UNREADABLE, "not its job list"),
        (ErrorKind.DATABASE, "GES_BOT_DATABASE_URL"),
        (ErrorKind.BUG, "traceback"),
    ],
)
def test_each_kind_of_failure_has_its_own_fix(kind: ErrorKind, fix: str) -> None:
    assert fix in only(assess(observe(30, failing(1, 3, kind)), {})).fix


@pytest.mark.parametrize(
    ("auth", "fix"),
    [
        ("aksk", "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"),
        ("password", "GES_IAM_DOMAIN"),
        ("token", "GES_TOKEN is expired or wrong"),
    ],
)
def test_refused_credentials_are_blindness_at_once_with_the_fix_for_the_auth_method(auth: str, fix: str) -> None:
    poll = failing(1, 1, ErrorKind.AUTH, "GES answered HTTP 401 APIG.0301: Incorrect IAM authentication information")
    blind = only(assess(observe(1.1, poll, projects={"prod": auth}), {}))
    assert "refuses the bot's credentials (GES answered HTTP 401 APIG.0301" in blind.cause
    assert fix in blind.fix


def test_failures_from_before_this_process_started_count_from_its_start() -> None:
    poll = failing(-60, 40, ErrorKind.SERVER)  # a run of failures an hour before the start
    assert assess(observe(4, poll), {}) == []
    assert only(assess(observe(6, poll), {})).since == T0 - timedelta(minutes=60)


def test_a_project_nobody_polls_is_blind_once_the_threshold_passes_from_the_start() -> None:
    assert assess(observe(4), {}) == []
    blind = only(assess(observe(6), {}))
    assert "no poll of GES has completed" in blind.cause
    fresh = PollState("prod", last_success_at=T0 + timedelta(minutes=5))
    assert assess(observe(9, fresh), {}) == []
    assert "no poll" in only(assess(observe(11, fresh), {})).cause


def test_a_broken_channel_and_a_refused_token_are_problems_at_once() -> None:
    found = assess(
        observe(0, projects={}, broken_channels={"C0OLD": "is_archived"}, installation_error="invalid_auth"), {}
    )
    channel, slack = found
    assert (channel.kind, channel.subject) == (IncidentKind.CHANNEL, "C0OLD")
    assert "is_archived" in channel.cause and "/invite @ges-bot" in channel.fix
    assert slack.kind is IncidentKind.SLACK and "invalid_auth" in slack.cause and "SLACK_BOT_TOKEN" in slack.fix
    earlier = PriorIncident("channel", "C0OLD", True, T0 - timedelta(hours=1))
    assert (
        assess(observe(0, projects={}, broken_channels={"C0OLD": "x"}), {earlier_key(earlier): earlier})[0].since
        == earlier.since
    )


def earlier_key(prior: PriorIncident) -> tuple[str, str]:
    return (prior.kind, prior.subject)


def test_a_backlog_older_than_the_threshold_is_a_problem() -> None:
    young = observe(10, projects={}, outbox_pending=4, oldest_pending_at=T0 + timedelta(minutes=6))
    assert assess(young, {}) == []
    old = observe(10, projects={}, outbox_pending=4, oldest_pending_at=T0 + timedelta(minutes=4))
    assert "4 alert(s) are waiting" in only(assess(old, {})).cause


def test_dead_rows_open_a_problem_that_ends_when_none_are_added_for_the_threshold() -> None:
    first = only(assess(observe(1, projects={}, outbox_dead=2), {}))
    assert first.kind is IncidentKind.DEAD and "2 alert(s) were given up" in first.cause
    prior = {("dead", "outbox"): PriorIncident("dead", "outbox", True, first.since, first.detail)}
    grown = only(assess(observe(4, projects={}, outbox_dead=3), prior))
    assert grown.since == first.since and "3 alert(s)" in grown.cause
    prior = {("dead", "outbox"): PriorIncident("dead", "outbox", True, grown.since, grown.detail)}
    assert assess(observe(8, projects={}, outbox_dead=3), prior) != []  # 4 min since the last one
    assert assess(observe(9.5, projects={}, outbox_dead=3), prior) == []  # 5.5 min: over
    closed = {("dead", "outbox"): PriorIncident("dead", "outbox", False, grown.since, grown.detail)}
    assert assess(observe(20, projects={}, outbox_dead=3), closed) == []  # the old ones do not reopen it
    again = only(assess(observe(21, projects={}, outbox_dead=4), closed))
    assert "1 alert(s) were given up" in again.cause and "(4 in all)" in again.cause


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (AuthError(401, "APIG.0301", "bad"), ErrorKind.AUTH),
        (ApiError(503, "GES.9999", "busy"), ErrorKind.SERVER),
        (ApiError(400, "GES.0001", "bad status"), ErrorKind.REFUSED),
        (TransportError("timed out"), ErrorKind.UNREACHABLE),
        (ResponseError("not JSON"), ErrorKind.UNREADABLE),
        (StoreError("database down"), ErrorKind.DATABASE),
        (KeyError("x"), ErrorKind.BUG),
    ],
)
def test_error_kinds(exc: BaseException, kind: ErrorKind) -> None:
    assert error_kind(exc) is kind


def test_ops_messages_keep_hostile_error_text_inert_and_within_slack_limits() -> None:
    from ges_bot.notify import limits
    from ges_bot.notify.ops import render_open, render_reply, render_resolved
    from ges_bot.store.incidents import IncidentRecord

    evil = "<!channel> <@U0BOSS> <https://evil.example|click> & `x`" * 200
    record = IncidentRecord(
        kind="blind",
        subject="prod<!here>",
        state="open",
        since=T0,
        cause=f"its polls of GES keep failing (last: {evil})",
        fix=evil,
        detail={"error_kind": "server"},
        resolved_at=T0 + timedelta(minutes=12),
        resolution=f"GES answers again; {evil}",
    )
    for render in (render_open, render_resolved, render_reply):
        message = render(record)
        payload = {"text": message.text, "blocks": message.blocks}
        assert limits.check_message(payload) == [], render.__name__
        for text in (message.text, str(message.blocks)):
            assert "<!channel>" not in text and "<@U0BOSS>" not in text and "<https://" not in text
            assert "<!here>" not in text


def test_a_broken_sink_has_a_title_and_a_sentence() -> None:
    from datetime import UTC, datetime

    from ges_bot.watch.blindness import Finding, IncidentKind

    finding = Finding(
        IncidentKind.SINK, "dba-dingtalk", "the group bot refuses the alerts.", "fix it.", datetime.now(UTC)
    )
    assert finding.title == "alerts cannot reach sink dba-dingtalk"
    assert finding.sentence.startswith("alerts cannot reach sink dba-dingtalk: the group bot refuses")
