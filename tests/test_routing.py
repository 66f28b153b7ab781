"""ges_bot.notify.routing: events × subscriptions × mutes → one delivery per channel × graph."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ges_bot.domain import (
    ALERTABLE_KINDS,
    Delivery,
    EventKind,
    Job,
    JobEvent,
    Mute,
    MutedDelivery,
    Subscription,
    kinds_from_words,
)
from ges_bot.notify.routing import RoutingResult, route

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(hours=2)

_STATUS = {
    EventKind.FAILED: "failed",
    EventKind.PARTIALLY_FAILED: "partiallyFailed",
    EventKind.SUCCEEDED: "success",
    EventKind.RECOVERED: "success",
    EventKind.STUCK: "running",
    EventKind.STATUS_CHANGED: "running",
    EventKind.UNKNOWN_OUTCOME: "cancelled",
}


def event(
    job_id: str,
    kind: EventKind = EventKind.FAILED,
    *,
    graph: str = "movies",
    project: str = "prod",
    job_name: str = "ImportGraph",
    end_minute: int | None = 10,
) -> JobEvent:
    job = Job(
        job_id=job_id,
        status=_STATUS[kind],
        job_type="GraphManagement",
        job_name=job_name,
        graph=graph,
        begin_time=T0,
        end_time=T0 + timedelta(minutes=end_minute) if end_minute is not None else None,
    )
    return JobEvent(project=project, kind=kind, job=job, at=NOW)


def sub(
    id: int,
    channel: str = "C1",
    pattern: str = "movies",
    *,
    kinds: frozenset[EventKind] = frozenset(ALERTABLE_KINDS),
    **kw: object,
) -> Subscription:
    return Subscription(id=id, channel=channel, graph_pattern=pattern, kinds=kinds, **kw)  # type: ignore[arg-type]


def channels(result: RoutingResult) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(d.channel, d.project, d.graph, tuple(e.job.job_id for e in d.events)) for d in result.deliveries]


def test_exact_graph_matches_only_that_graph() -> None:
    result = route([event("j1"), event("j2", graph="movies2")], [sub(1, pattern="movies")], [], NOW)
    assert result == RoutingResult(
        deliveries=(
            Delivery(
                channel="C1", project="prod", graph="movies", events=(event("j1"),), team=None, subscription_ids=(1,)
            ),
        ),
        muted=(),
    )


def test_glob_and_star_patterns() -> None:
    events = [event("a", graph="prod-movies"), event("b", graph="dev-movies"), event("c", graph="prod-music")]
    glob = route(events, [sub(1, pattern="prod-*")], [], NOW)
    assert channels(glob) == [("C1", "prod", "prod-movies", ("a",)), ("C1", "prod", "prod-music", ("c",))]
    star = route(events, [sub(1, pattern="*")], [], NOW)
    assert [d.graph for d in star.deliveries] == ["dev-movies", "prod-movies", "prod-music"]


def test_kinds_filter() -> None:
    events = [event("f"), event("p", EventKind.PARTIALLY_FAILED), event("s", EventKind.SUCCEEDED)]
    default_kinds = Subscription(id=1, channel="C1", graph_pattern="movies")  # failed + partially failed
    assert channels(route(events, [default_kinds], [], NOW)) == [("C1", "prod", "movies", ("f", "p"))]
    only_success = sub(2, kinds=frozenset({EventKind.SUCCEEDED}))
    assert channels(route(events, [only_success], [], NOW)) == [("C1", "prod", "movies", ("s",))]


def test_unknown_outcomes_route_like_failures_unless_a_subscription_leaves_them_out() -> None:
    events = [
        event("ok", EventKind.SUCCEEDED, end_minute=1),
        event("odd", EventKind.UNKNOWN_OUTCOME, end_minute=2),
        event("part", EventKind.PARTIALLY_FAILED, end_minute=3),
        event("f", end_minute=4),
    ]
    default_kinds = Subscription(id=1, channel="C1", graph_pattern="movies")
    failures_only = sub(2, channel="C2", kinds=kinds_from_words(["failed", "partial"]))
    unknown_only = sub(3, channel="C3", kinds=kinds_from_words(["unknown"]))

    result = route(events, [default_kinds, failures_only, unknown_only], [], NOW)

    # Failed first, then the unknown outcome (it may be a failure), then the partial one.
    assert channels(result) == [
        ("C1", "prod", "movies", ("f", "odd", "part")),
        ("C2", "prod", "movies", ("f", "part")),
        ("C3", "prod", "movies", ("odd",)),
    ]
    assert result.deliveries[0].events[1].job.status == "cancelled"


def test_project_filter() -> None:
    events = [event("a", project="prod"), event("b", project="staging")]
    result = route(events, [sub(1, project="staging")], [], NOW)
    assert channels(result) == [("C1", "staging", "movies", ("b",))]


def test_job_names_filter() -> None:
    events = [event("imp", job_name="ImportGraph"), event("del", job_name="DeleteGraph")]
    result = route(events, [sub(1, job_names=frozenset({"DeleteGraph"}))], [], NOW)
    assert channels(result) == [("C1", "prod", "movies", ("del",))]


def test_one_graph_one_tick_is_one_delivery_failures_first_then_by_time() -> None:
    events = [
        event("late-ok", EventKind.SUCCEEDED, end_minute=1),
        event("stuck", EventKind.STUCK, end_minute=None),
        event("late-fail", end_minute=50),
        event("early-fail", end_minute=5),
        event("partial", EventKind.PARTIALLY_FAILED, end_minute=2),
    ]
    result = route(events, [sub(1)], [], NOW)
    assert channels(result) == [("C1", "prod", "movies", ("early-fail", "late-fail", "partial", "stuck", "late-ok"))]


def test_two_subscriptions_of_one_channel_give_one_delivery_with_both_ids() -> None:
    subs = [sub(7, pattern="movies", team="T1"), sub(3, pattern="mov*")]
    result = route([event("j1")], subs, [], NOW)
    assert len(result.deliveries) == 1
    delivery = result.deliveries[0]
    assert delivery.events == (event("j1"),)
    assert delivery.subscription_ids == (3, 7)
    assert delivery.team == "T1"


def test_each_channel_gets_its_own_delivery() -> None:
    result = route([event("j1")], [sub(1, "C2"), sub(2, "C1")], [], NOW)
    assert [(d.channel, d.subscription_ids) for d in result.deliveries] == [("C1", (2,)), ("C2", (1,))]


def test_same_graph_in_two_projects_is_two_deliveries() -> None:
    result = route([event("a", project="prod"), event("b", project="dr")], [sub(1)], [], NOW)
    assert channels(result) == [("C1", "dr", "movies", ("b",)), ("C1", "prod", "movies", ("a",))]


def test_recovered_events_form_their_own_delivery() -> None:
    events = [event("fail"), event("rec", EventKind.RECOVERED)]
    result = route(events, [sub(1)], [], NOW)
    assert channels(result) == [("C1", "prod", "movies", ("fail",)), ("C1", "prod", "movies", ("rec",))]


def test_status_changed_never_routes() -> None:
    everything = sub(1, pattern="*", kinds=frozenset(EventKind))
    assert route([event("x", EventKind.STATUS_CHANGED)], [everything], [], NOW) == RoutingResult((), ())


def test_broken_subscription_is_ignored() -> None:
    result = route([event("j1")], [sub(1, broken="channel_not_found"), sub(2, "C2")], [], NOW)
    assert [d.channel for d in result.deliveries] == ["C2"]


def test_config_subscriptions_behave_the_same() -> None:
    from_config = sub(-1, source="config", pattern="mov*", created_by=None)
    from_slack = sub(4, "C9", source="db")
    result = route([event("j1")], [from_config, from_slack], [], NOW)
    assert [(d.channel, d.subscription_ids) for d in result.deliveries] == [("C1", (-1,)), ("C9", (4,))]


def test_mute_in_force_turns_delivery_into_muted() -> None:
    mutes = [
        Mute(id=5, channel="C1", graph_pattern="movies", until=NOW + timedelta(hours=1)),
        Mute(id=6, channel="C1", graph_pattern="*", until=NOW + timedelta(hours=24)),
    ]
    result = route([event("j1")], [sub(1)], mutes, NOW)
    assert result.deliveries == ()
    # The mute that lasts longest is the one recorded: it is the one that decides when alerts resume.
    assert result.muted == (
        MutedDelivery(delivery=Delivery("C1", "prod", "movies", (event("j1"),), None, (1,)), mute_id=6),
    )


def test_expired_mute_does_not_silence() -> None:
    mute = Mute(id=5, channel="C1", graph_pattern="movies", until=NOW)
    result = route([event("j1")], [sub(1)], [mute], NOW)
    assert len(result.deliveries) == 1
    assert result.muted == ()


def test_mute_of_another_channel_or_graph_does_not_silence() -> None:
    mutes = [
        Mute(id=5, channel="C2", graph_pattern="movies", until=NOW + timedelta(hours=1)),
        Mute(id=6, channel="C1", graph_pattern="music", until=NOW + timedelta(hours=1)),
    ]
    result = route([event("j1")], [sub(1), sub(2, "C2")], mutes, NOW)
    assert [d.channel for d in result.deliveries] == ["C1"]
    assert [(m.delivery.channel, m.mute_id) for m in result.muted] == [("C2", 5)]


def test_duplicate_events_in_input_appear_once() -> None:
    result = route([event("j1"), event("j1")], [sub(1)], [], NOW)
    assert channels(result) == [("C1", "prod", "movies", ("j1",))]


def test_output_does_not_depend_on_input_order() -> None:
    events = [event(f"j{i}", graph=g) for i, g in enumerate(["b", "a", "c", "a"])]
    subs = [sub(1, "C2", "*"), sub(2, "C1", "*")]
    forward = route(events, subs, [], NOW)
    backward = route(list(reversed(events)), list(reversed(subs)), [], NOW)
    assert forward == backward
    assert [(d.channel, d.graph) for d in forward.deliveries] == [
        ("C1", "a"),
        ("C1", "b"),
        ("C1", "c"),
        ("C2", "a"),
        ("C2", "b"),
        ("C2", "c"),
    ]


def test_a_channel_gets_one_message_in_the_language_one_of_its_subscriptions_asked_for() -> None:
    events = [event("j1", graph="prod-movies")]
    english_star = Subscription(id=1, channel="C1", graph_pattern="*")
    chinese_prod = Subscription(id=7, channel="C1", graph_pattern="prod-*", locale="zh-CN")
    other = Subscription(id=3, channel="C2", graph_pattern="*")

    result = route(events, [english_star, chinese_prod, other], [], NOW)

    # One delivery per channel still; the channel that asked for Chinese somewhere gets Chinese.
    assert [(d.channel, d.subscription_ids, d.locale) for d in result.deliveries] == [
        ("C1", (1, 7), "zh-CN"),
        ("C2", (3,), "en"),
    ]
    # Whatever order the subscriptions come in.
    again = route(events, [chinese_prod, other, english_star], [], NOW)
    assert again.deliveries == result.deliveries
