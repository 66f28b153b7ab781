"""Benchmark 5 — memory: peak RSS of ``ges-bot run`` tracking 10 000 and 100 000 jobs.

For each size the GES emulator (a child process) holds that many jobs over the last 30 days
(~20 in flight), and a fresh ``ges-bot run`` (another child: SQLite, HTTP mode, 5 s poll
interval) baselines them (its first tick lists everything and stores a snapshot of each), then
polls ``--ticks`` more times. ``VmHWM`` (peak resident set) and ``VmRSS`` come from
``/proc/<pid>/status`` of the bot; size 0 shows what the process costs before any job. Growth per
job is the difference between two sizes over the difference in jobs.

    python bench/bench_memory.py [--quick] [--sizes 0,10000,100000] [--ticks 3] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (
    History,
    Sub,
    bot_process,
    emulator_process,
    median,
    print_table,
    spread,
    write_results,
)
from ges_bot.loopback import serve
from ges_bot.standin.slack import SlackStandIn

DAYS = 30


async def run(size: int, ticks: int) -> dict[str, Any]:
    history = History(per_day=max(0, round(size / DAYS)), days=DAYS, end=datetime.now(UTC), active=20 if size else 0)
    slack = SlackStandIn()
    async with (
        emulator_process(history) as emu,
        serve(slack.app) as slack_url,
        bot_process(
            emulator_url=emu.url, slack_url=slack_url, subscriptions=[Sub("C0GENERAL")], poll_interval=5
        ) as bot,
    ):
        started = time.monotonic()
        idle = bot.memory_kb()
        await bot.wait_ticks(1, timeout=900)
        baseline_s = time.monotonic() - started
        after_baseline = bot.memory_kb()
        await bot.wait_ticks(1 + ticks, timeout=900)
        after = bot.memory_kb()
        cpu = bot.cpu_seconds()
        db_bytes = sum(p.stat().st_size for p in bot.workdir.glob("ges-bot.db*"))
    return {
        "jobs": history.total,
        "idle_rss_kb": idle["VmRSS"],
        "baseline_s": baseline_s,
        "rss_after_baseline_kb": after_baseline["VmRSS"],
        "hwm_kb": after["VmHWM"],
        "rss_kb": after["VmRSS"],
        "bot_cpu_s": cpu,
        "db_bytes": db_bytes,
    }


async def main_async(args: argparse.Namespace) -> None:
    sizes: list[int] = args.sizes or ([0, 2_000, 10_000] if args.quick else [0, 10_000, 100_000])
    runs: int = args.runs or 1
    results: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    for r in range(runs):
        for size in sizes:
            results[size].append(await run(size, args.ticks))
            last = results[size][-1]
            print(
                f"  run {r + 1}/{runs}, {last['jobs']:,} jobs: peak {last['hwm_kb'] / 1024:.0f} MiB, "
                f"baseline {last['baseline_s']:.1f}s",
                flush=True,
            )
    rows = []
    for size in sizes:
        rs = results[size]
        rows.append(
            [
                median(r["jobs"] for r in rs),
                median(r["hwm_kb"] for r in rs) / 1024,
                spread([r["hwm_kb"] / 1024 for r in rs]),
                median(r["rss_kb"] for r in rs) / 1024,
                median(r["idle_rss_kb"] for r in rs) / 1024,
                median(r["baseline_s"] for r in rs),
                median(r["db_bytes"] for r in rs) / 2**20,
            ]
        )
    print_table(
        f"ges-bot run: memory after the baseline and {args.ticks} more ticks (median of {runs})",
        ["jobs", "peak RSS MiB", "peak range", "RSS MiB", "RSS at start MiB", "baseline s", "SQLite MiB"],
        rows,
    )
    growth = []
    for a, b in itertools.pairwise(sizes):
        ja, jb = median(r["jobs"] for r in results[a]), median(r["jobs"] for r in results[b])
        ha, hb = median(r["hwm_kb"] for r in results[a]), median(r["hwm_kb"] for r in results[b])
        sa, sb = median(r["rss_kb"] for r in results[a]), median(r["rss_kb"] for r in results[b])
        growth.append(
            {
                "from_jobs": ja,
                "to_jobs": jb,
                "peak_bytes_per_job": (hb - ha) * 1024 / (jb - ja),
                "rss_bytes_per_job": (sb - sa) * 1024 / (jb - ja),
            }
        )
        print(
            f"{ja:,.0f} → {jb:,.0f} jobs: peak +{(hb - ha) / 1024:.0f} MiB ({(hb - ha) * 1024 / (jb - ja):,.0f} bytes/job), "
            f"resident after +{(sb - sa) / 1024:.0f} MiB ({(sb - sa) * 1024 / (jb - ja):,.0f} bytes/job)"
        )
    write_results("memory", {"ticks": args.ticks, "results": {str(k): v for k, v in results.items()}, "growth": growth})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="0, 2 000 and 10 000 jobs")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--runs", type=int, default=None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
