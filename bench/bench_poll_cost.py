"""Benchmark 2 — what one poll tick costs the GES API and the bot, against a naive poller.

A project runs N jobs a day (1 000, 10 000, 100 000) with about 20 in flight at any time. The
emulator (a child process) is preloaded with ``--history-days`` of finished jobs ending at a
simulated 23:00 UTC (so "today" is nearly full: the naive poller's worst hour). Then, tick after
tick, simulated time moves on by the production poll interval (60 s): the jobs that would have
started in that minute are added, and as many of the oldest in-flight jobs finish (90 % success,
7 % failed, 3 % partially failed), so about 20 stay in flight.

Two pollers watch the same world, each with its own ``JobCenterClient`` (page size 100, AK/SK),
in alternating order each tick:

- ``ges-bot``: ``ges_bot.watch.poller.Poller`` on a SQLite ``SqlStore`` — the real tick: fetch
  (cheap strategy), diff, route, ``commit_tick``;
- ``naive``: lists the whole day (``start_time = end_time = today``) every tick and compares
  statuses with a dict in memory — no database, so its CPU is a lower bound of the real thing.

Per tick: GES requests (the emulator's count), bytes received and sent (counted by an httpx
transport wrapper), CPU seconds of this process (SQLite's thread included) and of the emulator,
wall time. The first (baseline) and second ticks of ``ges-bot`` list whole windows once and are
reported apart. A second table keeps 10 000 jobs a day and grows the history (1, 7, 30 days).

    python bench/bench_poll_cost.py [--quick] [--rates 1000,10000,100000] [--ticks 8] [--history-days 2]

(About 6 minutes on 2 busy cores, most of it the one-off baselines of the 200k- and 300k-job
worlds; ``--quick``: about 1.)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (
    CountingTransport,
    Emulator,
    History,
    WireCount,
    emulator_process,
    graph_name,
    median,
    print_table,
    project_settings,
    spread,
    write_results,
)
from ges_bot.domain import ALERTABLE_KINDS, Subscription
from ges_bot.jobcenter.client import JobCenterClient, ListQuery
from ges_bot.store import open_store
from ges_bot.watch.poller import Poller

#: The simulated "now" of the first tick: late in the day, so today's list is nearly complete.
T0 = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=60)
ACTIVE = 20
EVERYTHING = Subscription(id=-1, channel="C0BENCH", graph_pattern="*", kinds=ALERTABLE_KINDS, source="config")


def wire_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class World:
    """The simulated project: which jobs are in flight, and the arrivals still owed."""

    emu: Emulator
    rate_per_day: int
    active: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    owed: float = 0.0
    serial: int = 0
    finished_total: int = 0

    async def advance(self, now: datetime) -> int:
        """One interval ending at ``now``: arrivals, and as many of the oldest in-flight jobs
        finish. Returns how many finished."""
        self.owed += self.rate_per_day * INTERVAL.total_seconds() / 86400
        k = int(self.owed)
        self.owed -= k
        start = now - INTERVAL
        new: list[dict[str, Any]] = []
        for _ in range(k):
            self.serial += 1
            begin = start + timedelta(seconds=self.rng.random() * INTERVAL.total_seconds())
            new.append(
                {
                    "job_id": f"t{self.serial:08d}{self.rng.getrandbits(96):024x}",
                    "status": "running",
                    "job_name": "ImportGraph",
                    "related_graph": graph_name(self.rng.randrange(10)),
                    "begin_time": wire_time(begin),
                    "end_time": None,
                }
            )
        if new:
            await self.emu.add_jobs(new)
        self.active.extend(j["job_id"] for j in new)
        done, self.active = self.active[:k], self.active[k:]
        for job_id in done:
            x = self.rng.random()
            status = "success" if x < 0.90 else ("failed" if x < 0.97 else "partiallyFailed")
            await self.emu.patch(job_id, status=status, end_time=wire_time(now))
        self.finished_total += len(done)
        return len(done)


class NaivePoller:
    """What a first script does: list the whole day every tick, compare statuses in memory."""

    def __init__(self, client: JobCenterClient) -> None:
        self.client = client
        self.known: dict[str, str] = {}

    async def tick(self, now: datetime) -> int:
        day = now.astimezone(UTC).date()
        listed = await self.client.list_jobs(ListQuery(start_date=day, end_date=day))
        changed = 0
        for job in listed.jobs:
            before = self.known.get(job.job_id)
            if before is not None and before != job.status:
                changed += 1
            self.known[job.job_id] = job.status
        return changed


@dataclass
class Sample:
    requests: int
    bytes_in: int
    bytes_out: int
    cpu_s: float
    emulator_cpu_s: float
    wall_s: float
    events: int

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


async def measured(emu: Emulator, transport: CountingTransport, work: Any) -> Sample:
    before: WireCount = transport.count.snapshot()
    req0 = await emu.list_requests()
    server0 = emu.cpu_seconds()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    events = await work
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    server = emu.cpu_seconds() - server0
    wire = transport.count.minus(before)
    return Sample(
        requests=await emu.list_requests() - req0,
        bytes_in=wire.bytes_in,
        bytes_out=wire.bytes_out,
        cpu_s=cpu,
        emulator_cpu_s=server,
        wall_s=wall,
        events=int(events),
    )


async def run_world(rate: int, history_days: float, ticks: int, order: str = "asc") -> dict[str, Any]:
    history = History(per_day=rate, days=history_days, end=T0 - INTERVAL, active=ACTIVE)
    print(
        f"  {rate} jobs/day, {history_days:g} days of history ({history.total:,} jobs), {order} order: loading…",
        flush=True,
    )
    async with emulator_process(history, order=order) as emu:
        async with JobCenterClient(project_settings(emu.url), timeout=60) as lister:
            active = [
                j.job_id
                for status in ("waiting", "running")
                for j in (await lister.list_jobs(ListQuery(status=status))).jobs
            ]
        world = World(emu=emu, rate_per_day=rate, active=active)
        with tempfile.TemporaryDirectory(prefix="ges-bot-bench-") as tmp:
            store = await open_store(f"sqlite:///{Path(tmp) / 'bot.db'}")
            ours_wire, naive_wire = CountingTransport(), CountingTransport()
            project = project_settings(emu.url)
            ours_client = JobCenterClient(project, transport=ours_wire, timeout=60)
            naive_client = JobCenterClient(project, transport=naive_wire, timeout=60)
            now = T0

            def clock() -> datetime:
                return now

            # No tick budget: the first ticks are measured whole, as one tick each (the budget
            # would spread a 100k-job baseline over several).
            poller = Poller(
                project,
                ours_client,
                store,
                config_subscriptions=(EVERYTHING,),
                clock=clock,
                max_pages=1_000_000,
                tick_deadline=3600,
            )
            naive = NaivePoller(naive_client)

            async def ours_tick() -> int:
                return len((await poller.tick()).events)

            try:
                first = await measured(emu, ours_wire, ours_tick())
                naive_first = await measured(emu, naive_wire, naive.tick(now))
                now += INTERVAL
                finished = [await world.advance(now)]
                second = await measured(emu, ours_wire, ours_tick())
                await naive.tick(now)
                steady: list[Sample] = []
                naive_steady: list[Sample] = []
                for n in range(ticks):
                    now += INTERVAL
                    finished.append(await world.advance(now))
                    if n % 2 == 0:
                        steady.append(await measured(emu, ours_wire, ours_tick()))
                        naive_steady.append(await measured(emu, naive_wire, naive.tick(now)))
                    else:
                        naive_steady.append(await measured(emu, naive_wire, naive.tick(now)))
                        steady.append(await measured(emu, ours_wire, ours_tick()))
            finally:
                await ours_client.aclose()
                await naive_client.aclose()
                await store.close()
    return {
        "rate_per_day": rate,
        "history_days": history_days,
        "order": order,
        "jobs_in_emulator": history.total + world.serial,
        "finished_per_tick": finished,
        "first_tick": first.to_json(),
        "second_tick": second.to_json(),
        "naive_first_tick": naive_first.to_json(),
        "steady": [s.to_json() for s in steady],
        "naive_steady": [s.to_json() for s in naive_steady],
    }


def _m(samples: list[dict[str, Any]], key: str) -> float:
    return median(s[key] for s in samples)


def summarise(results: list[dict[str, Any]], title: str) -> None:
    rows = []
    for res in results:
        for who, key in (("ges-bot", "steady"), ("naive", "naive_steady")):
            s = res[key]
            rows.append(
                [
                    res["rate_per_day"],
                    f"{res['history_days']:g} d",
                    res["order"],
                    who,
                    _m(s, "requests"),
                    _m(s, "bytes_in") / 1024,
                    _m(s, "cpu_s") * 1000,
                    spread([x["cpu_s"] * 1000 for x in s]),
                    _m(s, "emulator_cpu_s") * 1000,
                    _m(s, "wall_s") * 1000,
                    median(res["finished_per_tick"]),
                ]
            )
    print_table(
        title,
        [
            "jobs/day",
            "history",
            "order",
            "poller",
            "requests",
            "KiB in",
            "CPU ms",
            "CPU range",
            "GES CPU ms",
            "wall ms",
            "finished/tick",
        ],
        rows,
    )
    first_rows = [
        [
            res["rate_per_day"],
            f"{res['history_days']:g} d",
            res["jobs_in_emulator"],
            res["first_tick"]["requests"],
            res["first_tick"]["wall_s"],
            res["second_tick"]["requests"],
            res["second_tick"]["wall_s"],
        ]
        for res in results
    ]
    print_table(
        "ges-bot's first (baseline) and second ticks",
        ["jobs/day", "history", "jobs", "1st requests", "1st wall s", "2nd requests", "2nd wall s"],
        first_rows,
    )


async def main_async(args: argparse.Namespace) -> None:
    rates: list[int] = args.rates or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    ticks: int = args.ticks or (4 if args.quick else 8)
    # The other tables repeat what the first shows is steady: fewer ticks each.
    side_ticks = max(3, ticks // 2 + 1)
    growth_days: list[float] = args.growth_days or ([1, 3] if args.quick else [1, 7, 30])
    main = [await run_world(rate, args.history_days, ticks) for rate in rates]
    summarise(main, f"Steady ticks (median of {ticks}), 60 s apart, ~{ACTIVE} jobs in flight")
    growth = [await run_world(10_000, days, side_ticks) for days in growth_days]
    summarise(growth, f"10 000 jobs a day, growing history (median of {side_ticks} steady ticks)")
    orders = [await run_world(10_000, args.history_days, side_ticks, order) for order in ("desc", "random")]
    summarise(orders, f"10 000 jobs a day, other list orders (median of {side_ticks} steady ticks)")
    write_results(
        "poll_cost",
        {
            "ticks": ticks,
            "interval_s": INTERVAL.total_seconds(),
            "rates": main,
            "history_growth": growth,
            "orders": orders,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="1 000 and 10 000 jobs a day, 4 ticks, history 1 and 3 days"
    )
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--ticks", type=int, default=None)
    parser.add_argument("--history-days", type=float, default=2.0)
    parser.add_argument("--growth-days", type=lambda s: [float(x) for x in s.split(",")], default=None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
