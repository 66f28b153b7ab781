"""Benchmark 3 — alert latency: from the job center turning a job to ``failed`` to the message in Slack.

The real bot runs as ``ges-bot run`` (a child process: SQLite, HTTP mode, 2 s poll interval),
pointed at the GES emulator and the Slack stand-in, both served by this process. Ten graphs
``g00``…``g09`` each have their own channel (``C0LAT00``…, subscribed to that graph's failures),
plus a day of finished history (1 000 jobs) and one running job per transition to come.

After the bot's baseline tick, this process turns running jobs to ``failed`` one at a time at
random moments (a Poisson process, ``--rate`` per second overall, graphs drawn at random), so the
transitions fall at every phase of the poll cycle, and each channel sees about ``rate / 10`` per
second: far below Slack's one message per second per channel, so the delivery worker's pacing
does not dominate (two failures of one graph in one tick become one message, as designed).

Latency = the stand-in's receipt of the ``chat.postMessage`` that names the job (its first 12
characters, as alerts show them) minus the moment the emulator's state changed. The floor is the
wait for the next tick — uniform over the 2 s interval: median 1 s, p95 1.9 s, max 2 s — plus
one tick, one commit and one post.

    python bench/bench_alert_latency.py [--quick] [--transitions 200] [--rate 2.5] [--interval 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    percentile,
    print_table,
    synthetic_jobs,
    write_results,
)
from ges_bot.emulator import EmulatorSettings, EmulatorState, create_app
from ges_bot.emulator.model import EmuJob, graph_id_for
from ges_bot.emulator.settings import DEFAULT_PROJECT_ID
from ges_bot.loopback import serve
from ges_bot.standin.slack import Channel, SlackStandIn

GRAPHS = 10
SHORT = 12


def channel_for(graph: int) -> str:
    return f"C0LAT{graph:02d}"


async def run(transitions: int, rate: float, interval: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    state = EmulatorState(EmulatorSettings())
    state.insert_many(synthetic_jobs(History(per_day=1000, days=1, end=now - timedelta(minutes=5), active=0)))
    targets: list[tuple[str, int]] = []
    running: list[EmuJob] = []
    for n in range(transitions):
        graph = rng.randrange(GRAPHS)
        job_id = f"lat{n:05d}{rng.getrandbits(128):032x}"[:32]
        targets.append((job_id, graph))
        running.append(
            EmuJob(
                job_id=job_id,
                project_id=DEFAULT_PROJECT_ID,
                status="running",
                job_name="ImportGraph",
                related_graph=graph_name(graph),
                begin_time=now - timedelta(seconds=rng.uniform(60, 600)),
                graph_id=graph_id_for(DEFAULT_PROJECT_ID, graph_name(graph)),
            )
        )
    state.insert_many(running)
    slack = SlackStandIn(channels=[Channel(channel_for(g), f"lat-{g}") for g in range(GRAPHS)])
    subs = [Sub(channel_for(g), graph_name(g), ("failed",)) for g in range(GRAPHS)]
    flipped: dict[str, float] = {}
    async with (
        serve(create_app(state=state)) as emulator_url,
        serve(slack.app) as slack_url,
        bot_process(emulator_url=emulator_url, slack_url=slack_url, subscriptions=subs, poll_interval=interval) as bot,
    ):
        await bot.wait_ticks(2)
        cpu0, ticks0 = bot.cpu_seconds(), await bot.ticks()
        started = time.monotonic()
        for job_id, _ in targets:
            await asyncio.sleep(rng.expovariate(rate))
            state.patch(job_id, {"status": "failed", "fail_reason": f"bench: {job_id[:SHORT]} failed"})
            flipped[job_id] = time.time()
        received: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while len(received) < len(targets) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            for call in slack.calls_to("chat.postMessage"):
                if not call.ok:
                    continue
                text = json.dumps(call.params)
                for job_id, _ in targets:
                    if job_id not in received and job_id[:SHORT] in text:
                        received[job_id] = call.at.timestamp()
        elapsed = time.monotonic() - started
        cpu, ticks = bot.cpu_seconds() - cpu0, await bot.ticks() - ticks0
        metrics = await bot.metrics()
    latencies = sorted(received[j] - flipped[j] for j in received)
    posts = slack.calls_to("chat.postMessage")
    return {
        "transitions": transitions,
        "received": len(received),
        "missing": sorted(set(flipped) - set(received)),
        "rate_per_s": rate,
        "interval_s": interval,
        "latencies_s": latencies,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "max_s": max(latencies) if latencies else None,
        "min_s": min(latencies) if latencies else None,
        "messages": sum(1 for c in posts if c.ok),
        "rate_limited": sum(1 for c in posts if c.http_status == 429),
        "elapsed_s": elapsed,
        "bot_cpu_s": cpu,
        "ticks": ticks,
        "ges_requests": metrics.get('ges_bot_ges_requests_total{project="bench"}'),
    }


async def main_async(args: argparse.Namespace) -> None:
    transitions: int = args.transitions or (50 if args.quick else 200)
    runs: int = args.runs or 1
    results = [await run(transitions, args.rate, args.interval, seed=seed) for seed in range(1, runs + 1)]
    rows = [
        [
            r["transitions"],
            r["received"],
            r["p50_s"],
            r["p95_s"],
            r["max_s"],
            r["min_s"],
            r["messages"],
            r["rate_limited"],
            r["ticks"],
            r["bot_cpu_s"] / max(1, r["ticks"]) * 1000,
        ]
        for r in results
    ]
    print_table(
        f"Failure → Slack message, poll interval {args.interval:g} s, {args.rate:g} transitions/s over {GRAPHS} channels",
        ["transitions", "alerted", "p50 s", "p95 s", "max s", "min s", "messages", "429s", "ticks", "bot CPU ms/tick"],
        rows,
    )
    floor = args.interval
    print(
        f"floor (waiting for the next tick alone): p50 {floor / 2:.2f} s, p95 {floor * 0.95:.2f} s, max {floor:.2f} s"
    )
    write_results("alert_latency", {"runs": results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 transitions")
    parser.add_argument("--transitions", type=int, default=None)
    parser.add_argument("--rate", type=float, default=2.5, help="transitions per second, all channels together")
    parser.add_argument("--interval", type=float, default=2.0, help="the bot's poll interval (s)")
    parser.add_argument("--runs", type=int, default=None, help="repeat with other seeds (default 1)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
