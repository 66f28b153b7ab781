"""What a burst of job failures produces in Slack, and how long pacing takes to deliver it.

Stands up the whole pipeline in this process (``tests.support.world``: GES emulator, poller,
SqlStore, delivery worker with slack_sdk, Slack stand-in with Slack-like rate limits of 1 message
per second per channel and bursts of 3) and makes ``--failures`` jobs (default 200) fail across
``--graphs`` graphs (default 5), either all between two polls (``--ticks 1``) or spread over
several polls. The worker runs its own loop with the production ``DeliveryPolicy`` (one message
per second per channel, ``--interval`` to change). Subscriptions:

- ``#alerts`` (C0ALERTS): every graph (``*``), failures;
- ``#team``   (C0TEAM):   ``movies`` (exact name);
- ``#ops``    (C0OPS):    ``prod-*`` (glob);
- ``#all``    (C0ALL):    every graph, from the config file.

Prints, per number of ticks: messages per channel (alerts and thread replies), when the channel
had every alert and when it had everything (seconds after the first post), and how many 429s the
stand-in answered (pacing should keep that at 0). Then prints one failed-import alert as the stand-in received it.

    python bench/burst_quick.py [--failures 200] [--graphs 5] [--ticks 1,4] [--interval 1.0] [--db-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ges_bot.notify import limits  # noqa: E402
from ges_bot.notify.delivery import DeliveryPolicy  # noqa: E402
from ges_bot.standin.slack import Channel, RateLimit  # noqa: E402
from tests.support.world import DEFAULT_CHANNELS, FAST_POLICY, World, world  # noqa: E402

GRAPH_NAMES = ["movies", "people", "prod-eu", "prod-us", "roads", "prod-ap", "music", "maps"]
CHANNELS = [*DEFAULT_CHANNELS, Channel("C0ALL", "all")]
WATCHED = {"C0ALERTS": "#alerts (*)", "C0TEAM": "#team (movies)", "C0OPS": "#ops (prod-*)", "C0ALL": "#all (config *)"}


async def subscribe(w: World) -> None:
    await w.subscribe("C0ALERTS", "*", ["failed", "partial"])
    await w.subscribe("C0TEAM", "movies", ["failed", "partial"])
    await w.subscribe("C0OPS", "prod-*", ["failed", "partial"])
    w.subscribe_in_config("C0ALL", "*", ["failed", "partial"])


async def burst(url: str, failures: int, graphs: int, ticks: int, policy: DeliveryPolicy) -> None:
    names = GRAPH_NAMES[:graphs]
    async with world(url, policy=policy, channels=CHANNELS) as w:
        w.slack.rate_limit = RateLimit(per_second=1.0, burst=3)
        await subscribe(w)
        per_tick = [failures // ticks + (1 if i < failures % ticks else 0) for i in range(ticks)]
        async with w.running():
            started: float | None = None
            n = 0
            for count in per_tick:
                jobs = []
                for _ in range(count):
                    jobs.append(
                        {
                            "job_id": f"job-{n:04d}",
                            "status": "failed",
                            "related_graph": names[n % graphs],
                            "fail_reason": f"import {n} failed: vertex file missing",
                        }
                    )
                    n += 1
                await w.jobs(jobs)
                await w.tick()
                if started is None:
                    started = time.monotonic()
                w.worker.wake()
                await w.advance(60)
            assert started is not None
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                # Thread replies go out after the rows are marked sent: wait for the worker to be idle too.
                if (await w.health()).outbox_pending == 0 and w.worker.idle:
                    break
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - started
        print(
            f"\n{failures} failures over {graphs} graphs in {ticks} poll(s); pacing {policy.channel_interval_s}s/channel"
        )
        print(f"{'channel':<18} {'alerts':>6} {'replies':>7} {'posts':>5} {'alerts by s':>11} {'all by s':>8}")
        calls = w.slack.calls_to("chat.postMessage")
        t0 = min(c.at for c in calls)
        for cid, label in WATCHED.items():
            posts = [c for c in calls if c.ok and c.answer.get("channel") == cid]
            alerts = [c for c in posts if not c.params.get("thread_ts")]
            replies = len(posts) - len(alerts)
            alerts_by = (max(c.at for c in alerts) - t0).total_seconds() if alerts else 0.0
            last = (max(c.at for c in posts) - t0).total_seconds() if posts else 0.0
            print(f"{label:<18} {len(alerts):>6} {replies:>7} {len(posts):>5} {alerts_by:>11.1f} {last:>8.1f}")
        limited = sum(1 for c in calls if c.http_status == 429)
        health = await w.health()
        bad = [v for c in calls if c.ok for v in limits.check_message(c.params)]
        print(
            f"all delivered in {elapsed:.1f}s wall; 429 answers: {limited}; pending {health.outbox_pending}, "
            f"dead {health.outbox_dead}; payloads over Slack's limits: {len(bad)}"
        )


async def one_import_alert(url: str) -> dict[str, Any]:
    detail = {
        "schema_path": [{"path": "obs://bucket/movies/schema.xml", "status": "success"}],
        "vertexset_path": [
            {
                "path": "obs://bucket/movies/person.csv",
                "status": "failed",
                "cause": "Line 17: column 'age' is not an integer: 'forty'",
                "log": "obs://bucket/logs/person.log",
                "total_lines": 5000,
                "failed_lines": 120,
            },
            {"path": "obs://bucket/movies/movie.csv", "status": "success", "total_lines": 800, "failed_lines": 0},
        ],
        "edgeset_path": [
            {
                "path": "obs://bucket/movies/directed.csv",
                "status": "failed",
                "cause": "vertex 'm-42' does not exist",
                "log": "obs://bucket/logs/directed.log",
                "total_lines": 800,
                "failed_lines": 800,
            }
        ],
    }
    async with world(url, policy=FAST_POLICY) as w:
        await w.subscribe("C0ALERTS", "movies")
        await w.job(
            "ff80808167bb90340167bc3c7b5b0166",
            "failed",
            job_type="GraphManagement",
            fail_reason="2 of 4 files failed to import",
            job_detail=detail,
            begin_time=(w.now() - timedelta(minutes=64)).strftime("%Y-%m-%dT%H:%M:%S"),
        )
        await w.settle()
        [call] = [c for c in w.slack.calls_to("chat.postMessage") if c.ok]
        return dict(call.params)


async def run(args: argparse.Namespace) -> None:
    policy = replace(DeliveryPolicy(), channel_interval_s=args.interval, idle_poll_s=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        for ticks in args.ticks:
            url = args.db_url or f"sqlite:///{tmp}/burst-{ticks}.db"
            await burst(url, args.failures, args.graphs, ticks, policy)
        payload = await one_import_alert(args.db_url or f"sqlite:///{tmp}/alert.db")
    print("\nOne failed-import alert as the Slack stand-in received it (chat.postMessage params):")
    print(json.dumps(payload, indent=2, ensure_ascii=False))
    print(f"limits.check_message: {limits.check_message(payload) or 'OK'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failures", type=int, default=200)
    parser.add_argument("--graphs", type=int, default=5, choices=range(1, len(GRAPH_NAMES) + 1))
    parser.add_argument("--ticks", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between posts to one channel")
    parser.add_argument(
        "--db-url", default=None, help="an empty database for each run (default: temporary SQLite files)"
    )
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
