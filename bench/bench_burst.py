"""Benchmark 6 — a burst: 500 failures in one tick, across 10 graphs and 5 channels.

The real bot runs as ``ges-bot run`` (child process, SQLite, HTTP mode, 2 s poll interval)
against the GES emulator and the Slack stand-in served by this process. The stand-in paces
``chat.postMessage`` like Slack: per channel, a bucket of 3 refilled at 1 message per second
(``RateLimit(per_second=1, burst=3)``); beyond it, HTTP 429 with ``Retry-After``.

Five channels, subscribed as teams do:

- ``C0ALL``   every graph (``*``);
- ``C0TEAMA`` ``g0[0-4]`` (a glob: five graphs);  ``C0TEAMB`` ``g0[5-9]``;
- ``C0ONE``   ``g00`` only;                       ``C0NINE`` ``g09`` only.

500 running jobs (50 per graph) are turned to ``failed`` at once (in one synchronous step of the
emulator's state, so they land in the same tick). Routing makes one alert per channel × graph
(22 alerts); an alert shows 5 failures and puts the rest in thread replies. Measured: messages
per channel (alerts, replies), 429s received, time from the flip to each channel's last message,
and the floor Slack's pacing imposes on the busiest channel: ``(messages − 3) / 1 s`` after the
tick that sees the flip.

    python bench/bench_burst.py [--quick] [--failures 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (
    History,
    Sub,
    bot_process,
    graph_name,
    median,
    print_table,
    spread,
    synthetic_jobs,
    write_results,
)
from ges_bot.emulator import EmulatorSettings, EmulatorState, create_app
from ges_bot.emulator.model import EmuJob, graph_id_for
from ges_bot.emulator.settings import DEFAULT_PROJECT_ID
from ges_bot.loopback import serve
from ges_bot.standin.slack import Channel, RateLimit, SlackStandIn

GRAPHS = 10
CHANNELS: dict[str, list[str]] = {
    "C0ALL": ["*"],
    "C0TEAMA": ["g0[0-4]"],
    "C0TEAMB": ["g0[5-9]"],
    "C0ONE": ["g00"],
    "C0NINE": ["g09"],
}
BURST = 3
PER_SECOND = 1.0


async def run(failures: int, interval: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    state = EmulatorState(EmulatorSettings())
    state.insert_many(synthetic_jobs(History(per_day=1000, days=1, end=now - timedelta(minutes=10), active=0)))
    doomed: list[EmuJob] = []
    for n in range(failures):
        graph = graph_name(n % GRAPHS)
        doomed.append(
            EmuJob(
                job_id=f"burst{n:05d}{rng.getrandbits(128):032x}"[:32],
                project_id=DEFAULT_PROJECT_ID,
                status="running",
                job_name="ImportGraph",
                related_graph=graph,
                begin_time=now - timedelta(seconds=rng.uniform(60, 600)),
                graph_id=graph_id_for(DEFAULT_PROJECT_ID, graph),
            )
        )
    state.insert_many(doomed)
    slack = SlackStandIn(
        channels=[Channel(c, c.lower()) for c in CHANNELS], rate_limit=RateLimit(per_second=PER_SECOND, burst=BURST)
    )
    subs = [
        Sub(channel, pattern, ("failed", "partial")) for channel, patterns in CHANNELS.items() for pattern in patterns
    ]
    async with (
        serve(create_app(state=state)) as emulator_url,
        serve(slack.app) as slack_url,
        bot_process(emulator_url=emulator_url, slack_url=slack_url, subscriptions=subs, poll_interval=interval) as bot,
    ):
        await bot.wait_ticks(2)
        cpu0 = bot.cpu_seconds()
        # One synchronous step: no request is answered in between, so one tick sees them all.
        for job in doomed:
            state.patch(job.job_id, {"status": "failed", "fail_reason": f"vertex file of {job.job_id[:12]} missing"})
        flipped = time.time()
        expected = failures
        last_change, seen = time.monotonic(), 0
        while True:
            await asyncio.sleep(0.5)
            calls = len(slack.calls)
            if calls != seen:
                seen, last_change = calls, time.monotonic()
            alerts = [c for c in slack.calls_to("chat.postMessage") if c.ok and not c.params.get("thread_ts")]
            metrics = await bot.metrics()
            pending = metrics.get("ges_bot_outbox_pending", 1)
            # Done when every alert is out, nothing is pending, and Slack has heard nothing for 5 s
            # (thread replies trail their alert).
            if alerts and pending == 0 and time.monotonic() - last_change > 5:
                break
            if time.monotonic() - last_change > 120:
                raise RuntimeError("no progress for 120 s")
        cpu = bot.cpu_seconds() - cpu0
    posts = slack.calls_to("chat.postMessage")
    per_channel: dict[str, dict[str, Any]] = {}
    for channel in CHANNELS:
        mine = [c for c in posts if c.params.get("channel") == channel]
        ok = [c for c in mine if c.ok]
        alerts = [c for c in ok if not c.params.get("thread_ts")]
        last = max((c.at.timestamp() for c in ok), default=flipped) - flipped
        first = min((c.at.timestamp() for c in ok), default=flipped) - flipped
        per_channel[channel] = {
            "alerts": len(alerts),
            "replies": len(ok) - len(alerts),
            "messages": len(ok),
            "rate_limited": sum(1 for c in mine if c.http_status == 429),
            "first_s": first,
            "last_s": last,
            "pacing_floor_s": max(0.0, (len(ok) - BURST) / PER_SECOND),
        }
    named = 0
    for n in range(expected):
        prefix = f"burst{n:05d}"
        if any(prefix in str(c.params) for c in posts if c.ok and c.params.get("channel") == "C0ALL"):
            named += 1
    return {
        "failures": failures,
        "interval_s": interval,
        "channels": per_channel,
        "messages": sum(c["messages"] for c in per_channel.values()),
        "alerts": sum(c["alerts"] for c in per_channel.values()),
        "replies": sum(c["replies"] for c in per_channel.values()),
        "rate_limited": sum(c["rate_limited"] for c in per_channel.values()),
        "drain_s": max(c["last_s"] for c in per_channel.values()),
        "first_s": min(c["first_s"] for c in per_channel.values()),
        "pacing_floor_s": max(c["pacing_floor_s"] for c in per_channel.values()),
        "failures_named_in_all_channel": named,
        "bot_cpu_s": cpu,
    }


async def main_async(args: argparse.Namespace) -> None:
    failures: int = args.failures or (200 if args.quick else 500)
    runs: int = args.runs or (1 if args.quick else 3)
    results = []
    for seed in range(1, runs + 1):
        results.append(await run(failures, args.interval, seed))
        r = results[-1]
        print(
            f"  run {seed}: {r['messages']} messages, {r['rate_limited']} 429s, drained in {r['drain_s']:.1f}s",
            flush=True,
        )
    rows = []
    for channel, patterns in CHANNELS.items():
        per = [r["channels"][channel] for r in results]
        rows.append(
            [
                channel,
                ", ".join(patterns),
                median(p["alerts"] for p in per),
                median(p["replies"] for p in per),
                median(p["rate_limited"] for p in per),
                median(p["first_s"] for p in per),
                median(p["last_s"] for p in per),
                spread([p["last_s"] for p in per]),
                median(p["pacing_floor_s"] for p in per),
            ]
        )
    print_table(
        f"{failures} failures in one tick over {GRAPHS} graphs; Slack pacing {PER_SECOND:g}/s, burst {BURST} "
        f"(median of {runs} runs)",
        ["channel", "subscribed", "alerts", "replies", "429s", "first s", "last s", "last range", "pacing floor s"],
        rows,
    )
    print(
        f"total: {median(r['messages'] for r in results):.0f} messages, "
        f"{median(r['rate_limited'] for r in results):.0f} 429s, drained in {median(r['drain_s'] for r in results):.1f} s "
        f"(range {spread([r['drain_s'] for r in results])}); every failure named in C0ALL: "
        f"{all(r['failures_named_in_all_channel'] == failures for r in results)}"
    )
    write_results("burst", {"runs": results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 failures, one run")
    parser.add_argument("--failures", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--interval", type=float, default=2.0, help="the bot's poll interval (s)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
