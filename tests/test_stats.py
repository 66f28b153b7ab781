"""ges_bot.stats (counting) and ges_bot.charts (pictures): per local day across DST and east of
UTC, a graph with no jobs, 100 graphs pooled to a legible top N, and each chart checked as a
picture (size, opaque background, status colours present) plus a golden of its numbers.

Goldens live in ``tests/fixtures/stats/*.json``; after an intended change, run
``GES_BOT_UPDATE_GOLDEN=1 pytest tests/test_stats.py`` and review the diff.
"""

from __future__ import annotations

import io
import json
import os
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from ges_bot import charts
from ges_bot.domain import Job
from ges_bot.slackapp import statsview
from ges_bot.slackapp.commands import TimeRange, resolve
from ges_bot.stats import TOP_N, Stats, StatsRow, aggregate, chart_window, percentile

GOLDEN = Path(__file__).parent / "fixtures" / "stats"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def assert_golden(name: str, payload: Any) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("GES_BOT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert payload == json.loads(path.read_text(encoding="utf-8")), f"numbers differ from {path}"


def job(
    job_id: str,
    status: str,
    begin: datetime,
    *,
    graph: str = "movies",
    minutes: float | None = 10,
    name: str = "ImportGraph",
) -> StatsRow:
    end = None if status in ("running", "pending") or minutes is None else begin + timedelta(minutes=minutes)
    return StatsRow("prod", Job(job_id, status, job_name=name, graph=graph, begin_time=begin, end_time=end))


def local_days(zone: ZoneInfo, first: date, last: date) -> tuple[datetime, datetime]:
    return resolve(TimeRange.between(first, last), datetime(2030, 1, 1, tzinfo=UTC), zone)


def counts(stats: Stats) -> dict[str, dict[str, int]]:
    return {d.day.isoformat(): {o: d.get(o) for o in ("success", "partial", "failed", "running")} for d in stats.days}


# -- counting by local day -----------------------------------------------------------------------


def test_counts_per_day_across_spring_forward_in_new_york() -> None:
    # 2026-03-08 is 23 hours long in New York (EST -5 → EDT -4 at 02:00).
    start, end = local_days(NEW_YORK, date(2026, 3, 7), date(2026, 3, 9))
    assert end - start == timedelta(hours=71)
    rows = [
        job("a", "success", datetime(2026, 3, 8, 4, 30, tzinfo=UTC)),  # 23:30 EST on the 7th
        job("b", "failed", datetime(2026, 3, 8, 5, 0, tzinfo=UTC)),  # 00:00 EST on the 8th
        job("c", "partiallyFailed", datetime(2026, 3, 9, 3, 30, tzinfo=UTC)),  # 23:30 EDT on the 8th
        # 00:30 EDT on the 9th — with the winter offset it would still be the 8th.
        job("d", "failed", datetime(2026, 3, 9, 4, 30, tzinfo=UTC)),
        job("e", "running", datetime(2026, 3, 10, 3, 59, tzinfo=UTC)),  # 23:59 EDT on the 9th
        job("f", "success", datetime(2026, 3, 10, 4, 0, tzinfo=UTC)),  # the 10th: outside
    ]
    stats = aggregate(rows, NEW_YORK, start, end)
    assert counts(stats) == {
        "2026-03-07": {"success": 1, "partial": 0, "failed": 0, "running": 0},
        "2026-03-08": {"success": 0, "partial": 1, "failed": 1, "running": 0},
        "2026-03-09": {"success": 0, "partial": 0, "failed": 1, "running": 1},
    }
    assert stats.totals == {"success": 1, "partial": 1, "failed": 2, "running": 1}
    assert stats.failure_rate == pytest.approx(3 / 4)


def test_counts_per_day_across_fall_back_in_new_york() -> None:
    # 2026-11-01 is 25 hours long: 01:30 happens twice.
    start, end = local_days(NEW_YORK, date(2026, 11, 1), date(2026, 11, 1))
    assert end - start == timedelta(hours=25)
    rows = [
        job("first-0130", "success", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # 01:30 EDT
        job("second-0130", "failed", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),  # 01:30 EST
        job("late", "success", datetime(2026, 11, 2, 4, 59, tzinfo=UTC)),  # 23:59 EST
        job("next", "success", datetime(2026, 11, 2, 5, 0, tzinfo=UTC)),  # the 2nd: outside
    ]
    stats = aggregate(rows, NEW_YORK, start, end)
    assert counts(stats) == {"2026-11-01": {"success": 2, "partial": 0, "failed": 1, "running": 0}}


def test_counts_per_day_east_of_utc() -> None:
    # Shanghai is UTC+8: 16:00 UTC is already tomorrow's midnight there.
    start, end = local_days(SHANGHAI, date(2026, 11, 28), date(2026, 11, 29))
    assert start == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    rows = [
        job("a", "success", datetime(2026, 11, 27, 15, 59, tzinfo=UTC)),  # 23:59 on the 27th: outside
        job("b", "failed", datetime(2026, 11, 27, 16, 0, tzinfo=UTC)),  # 00:00 on the 28th
        job("c", "success", datetime(2026, 11, 28, 15, 59, tzinfo=UTC)),  # 23:59 on the 28th
        job("d", "success", datetime(2026, 11, 28, 16, 1, tzinfo=UTC)),  # 00:01 on the 29th (UTC: the 28th)
        job("e", "partiallyFailed", datetime(2026, 11, 29, 1, 0, tzinfo=UTC)),
    ]
    stats = aggregate(rows, SHANGHAI, start, end)
    assert counts(stats) == {
        "2026-11-28": {"success": 1, "partial": 0, "failed": 1, "running": 0},
        "2026-11-29": {"success": 1, "partial": 1, "failed": 0, "running": 0},
    }


def test_the_previous_period_gives_the_change_in_failure_rate() -> None:
    start, end = local_days(SHANGHAI, date(2026, 11, 23), date(2026, 11, 29))
    before = start - timedelta(days=3)
    rows = [job(f"old{i}", "failed" if i < 1 else "success", before + timedelta(minutes=i)) for i in range(10)]
    rows += [job(f"new{i}", "failed" if i < 3 else "success", start + timedelta(hours=i)) for i in range(10)]
    stats = aggregate(rows, SHANGHAI, start, end)
    assert (stats.previous_finished, stats.previous_failures) == (10, 1)
    assert stats.failure_rate == pytest.approx(0.3)
    lines = "\n".join(statsview.summary_lines(stats))
    assert "Failure rate *30.0 %* (3 of 10 finished jobs failed or partially failed)" in lines
    assert "up 20.0 points from 10.0 % the period before" in lines


def test_a_graph_with_no_jobs_has_every_day_at_zero_and_says_so() -> None:
    start, end = local_days(SHANGHAI, date(2026, 11, 23), date(2026, 11, 29))
    stats = aggregate([], SHANGHAI, start, end)
    assert [d.day for d in stats.days] == [date(2026, 11, 23) + timedelta(days=i) for i in range(7)]
    assert all(d.total == 0 for d in stats.days)
    assert stats.failure_rate is None
    assert stats.most_failed is None
    assert stats.slowest_import is None
    assert statsview.summary_lines(stats) == ["No jobs ran in this period."]
    assert_golden("no_jobs", stats.to_json())
    for kind in ("daily", "graphs", "durations"):
        image = png(charts.render(stats, kind, "Nothing"))
        assert image.size == (1200, 675)
        assert not has_colour(image, charts.COLORS["success"])
        assert not has_colour(image, charts.COLORS["failed"])


def hundred_graphs() -> tuple[list[StatsRow], datetime, datetime]:
    rnd = random.Random(100)
    start, end = local_days(SHANGHAI, date(2026, 11, 23), date(2026, 11, 29))
    rows: list[StatsRow] = []
    for g in range(100):
        for d in range(7):
            status = rnd.choices(["success", "failed", "partiallyFailed"], [85, 10, 5])[0]
            begin = start + timedelta(days=d, hours=2, minutes=g)
            rows.append(job(f"g{g}d{d}", status, begin, graph=f"graph-{g:03d}", minutes=5 + g % 40))
    return rows, start, end


def test_a_hundred_graphs_are_pooled_into_top_n_and_others() -> None:
    rows, start, end = hundred_graphs()
    stats = aggregate(rows, SHANGHAI, start, end)
    assert stats.graph_count == 100
    assert len(stats.graphs) == TOP_N
    others = stats.graphs[-1]
    assert others.graph == f"others ({100 - TOP_N + 1} graphs)"
    assert others.graphs == 100 - TOP_N + 1
    # Pooling loses nothing: the bars add up to every finished job.
    assert sum(g.finished for g in stats.graphs) == stats.finished == 700
    assert sum(g.failures for g in stats.graphs) == stats.failures
    named = stats.graphs[:-1]
    assert [g.failures for g in named] == sorted((g.failures for g in named), reverse=True)
    assert stats.most_failed == named[0]
    assert_golden("hundred_graphs", stats.to_json())
    image = png(charts.render_graphs(stats, "Failure rate per graph"))
    assert image.size == (1200, 675)
    assert has_colour(image, charts.COLORS["failed"])


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(v) for v in range(1, 21)], 50) == 10.0
    assert percentile([float(v) for v in range(1, 21)], 95) == 19.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    with pytest.raises(ValueError, match="nothing"):
        percentile([], 50)


def test_last_7d_charts_the_seven_local_days_ending_today() -> None:
    now = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
    start, end = resolve(TimeRange.last(timedelta(days=7)), now, SHANGHAI)
    first, after = chart_window(start, end, now, SHANGHAI)
    assert first == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # Mon 23 Nov 00:00 local
    assert after == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)  # the end of today, local
    today = resolve(TimeRange.today(), now, SHANGHAI)
    assert chart_window(*today, now, SHANGHAI) == today
    # "this week" stops at the end of today rather than drawing empty days to come.
    week = resolve(TimeRange.this_week(), datetime(2026, 11, 25, 6, 0, tzinfo=UTC), SHANGHAI)
    assert chart_window(*week, datetime(2026, 11, 25, 6, 0, tzinfo=UTC), SHANGHAI)[1] == datetime(
        2026, 11, 25, 16, 0, tzinfo=UTC
    )


# -- pictures ----------------------------------------------------------------------------------


def png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGBA")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def colour_share(image: Image.Image, hex_colour: str, tolerance: int = 12) -> float:
    """The share of pixels within ``tolerance`` of a colour."""
    want = _rgb(hex_colour)
    small = image.resize((300, 169), Image.Resampling.NEAREST)
    raw = small.tobytes()  # RGBA, 4 bytes a pixel
    pixels = [raw[i : i + 3] for i in range(0, len(raw), 4)]
    hits = sum(1 for r, g, b in pixels if max(abs(r - want[0]), abs(g - want[1]), abs(b - want[2])) <= tolerance)
    return hits / len(pixels)


def has_colour(image: Image.Image, hex_colour: str) -> bool:
    return colour_share(image, hex_colour) > 0.002


def demo_week() -> tuple[Stats, list[StatsRow]]:
    """A nightly-imports week in Shanghai: four graphs, imports at night, some failing."""
    rnd = random.Random(7)
    start, end = local_days(SHANGHAI, date(2026, 11, 23), date(2026, 11, 29))
    rows: list[StatsRow] = []
    graphs = ["prod-movies", "prod-social", "prod-fraud", "kg-medical"]
    for d in range(7):
        for g, graph in enumerate(graphs):
            for run in range(3):
                begin = start + timedelta(days=d, hours=1 + run * 6, minutes=g * 7)
                status = rnd.choices(["success", "failed", "partiallyFailed"], [80, 12, 8])[0]
                if graph == "prod-fraud" and d >= 3 and run < 2:
                    status = "failed"
                if d == 6 and run == 2 and g < 2:
                    status = "running"
                name = "ImportGraph" if run < 2 else "BackupGraph"
                rows.append(
                    job(f"{graph}-{d}-{run}", status, begin, graph=graph, minutes=8 + rnd.random() * 50, name=name)
                )
    return aggregate(rows, SHANGHAI, start, end), rows


def test_daily_chart_as_a_picture_and_its_numbers() -> None:
    stats, _ = demo_week()
    assert_golden("demo_week", stats.to_json())
    image = png(charts.render_daily(stats, statsview.chart_title(stats, "daily", statsview.ChartScope())))
    assert image.size == (1200, 675)
    # Opaque everywhere, light background: readable on Slack's dark theme too.
    assert image.getextrema()[3] == (255, 255)
    assert image.getpixel((2, 2)) == (255, 255, 255, 255)
    assert image.getpixel((1197, 672)) == (255, 255, 255, 255)
    for outcome in ("success", "partial", "failed", "running"):
        assert has_colour(image, charts.COLORS[outcome]), outcome
    # Successes dominate the week, and the picture says so.
    assert colour_share(image, charts.COLORS["success"]) > colour_share(image, charts.COLORS["failed"])


def test_failure_rate_chart_as_a_picture() -> None:
    stats, _ = demo_week()
    image = png(charts.render_graphs(stats, "Failure rate per graph"))
    assert image.size == (1200, 675)
    assert image.getpixel((2, 2)) == (255, 255, 255, 255)
    assert has_colour(image, charts.COLORS["failed"])
    assert has_colour(image, charts.COLORS["partial"])
    assert not has_colour(image, charts.COLORS["success"])
    assert stats.graphs[0].graph == "prod-fraud"


def test_duration_chart_as_a_picture() -> None:
    stats, _ = demo_week()
    assert [d.name for d in stats.durations] == sorted(
        (d.name for d in stats.durations), key=lambda n: -next(x.p95_s for x in stats.durations if x.name == n)
    )
    image = png(charts.render_durations(stats, "Duration per job type"))
    assert image.size == (1200, 675)
    assert image.getpixel((2, 2)) == (255, 255, 255, 255)
    assert has_colour(image, "#0072B2")  # p50
    assert has_colour(image, "#56B4E9")  # p95


def test_alt_text_carries_the_numbers() -> None:
    stats, _ = demo_week()
    text = statsview.alt_text(stats, "daily")
    first = stats.days[0]
    assert f"Mon 23 Nov: {first.success} succeeded" in text
    assert len(text) <= 2000
    graphs = statsview.alt_text(stats, "graphs")
    worst = stats.graphs[0]
    assert f"{worst.graph}: {worst.failures} of {worst.finished} failed" in graphs


def test_the_same_numbers_draw_the_same_png() -> None:
    stats, _ = demo_week()
    assert charts.render_daily(stats, "x") == charts.render_daily(stats, "x")


def test_slack_limits_accept_an_image_block_naming_a_slack_file() -> None:
    from ges_bot.notify import limits

    ok = {"type": "image", "slack_file": {"id": "F0123"}, "alt_text": "3 failed"}
    assert limits.check_message({"text": "chart", "blocks": [ok]}) == []
    both = {**ok, "slack_file": {"id": "F0123", "url": "https://files.slack.com/x.png"}}
    neither = {**ok, "slack_file": {}}
    with_url = {**ok, "image_url": "https://example.com/x.png"}
    for bad in (both, neither, with_url):
        assert limits.check_message({"text": "chart", "blocks": [bad]}) != [], bad


def test_names_that_look_like_mathtext_are_drawn_as_typed() -> None:
    # matplotlib reads "$…$" as mathtext, and a malformed one raises: a graph name must never do that.
    start, end = local_days(SHANGHAI, date(2026, 11, 23), date(2026, 11, 29))
    rows = [
        job("a", "failed", start + timedelta(hours=1), graph="$\\foo$", name="$^_bad$"),
        job("b", "success", start + timedelta(hours=2), graph="ok$x$", name="Import$"),
    ]
    stats = aggregate(rows, SHANGHAI, start, end)
    for kind in ("daily", "graphs", "durations"):
        assert png(charts.render(stats, kind, "Title with $\\broken$")).size == (1200, 675)
