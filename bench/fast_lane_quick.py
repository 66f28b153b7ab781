"""The fast lane: alert latency for jobs seen running, and GES requests per hour, with and without it.

Runs the GES emulator in-process on a loopback port under the workload of ``poll_cost_quick.py``
(a day of history, ``--jobs-per-day`` jobs a day, about ``--active`` running at once; about half of
the jobs that finish were running, the others begin and end between two looks), on an emulated
clock moved in ``--step`` second steps. Each configuration makes the runtime's scheduled poll
(``Poller.poll``: a full tick, or its scans deferred while the fast lane serves, at most
``--scan`` seconds apart) every ``--interval`` seconds and, with a fast interval,
``Poller.fast_tick`` every that many seconds; the defaults are the settings' defaults
(``GES_BOT_POLL_INTERVAL``, ``GES_BOT_FAST_INTERVAL``, ``GES_BOT_SCAN_INTERVAL``):

- latency: emulated seconds from a failure (a job seen running turned ``failed`` or
  ``partiallyFailed``) to the tick that recorded its event (tick time itself is not counted);
- requests per hour: job-list requests the emulator answered over the measured hours (after the
  baseline and the first cheap tick), and per tick where nothing changed;
- missed / doubled: failures never alerted, alerted twice;
- full scans / deferred polls / fast looks that did not serve (the next poll scanned).

    python bench/fast_lane_quick.py [--jobs-per-day 10000] [--active 20] [--minutes 60]
                                    [--interval 60] [--fast 0,12] [--scan 300] [--step 1] [--order asc]

``--scan 0`` makes every poll a full scan (the cadence before the scans could be deferred).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.poll_cost_quick import T0, Workload, bench_project, list_calls, wire  # noqa: E402
from ges_bot.config import Settings  # noqa: E402
from ges_bot.domain import EventKind  # noqa: E402
from ges_bot.emulator import EmulatorSettings, create_app, emulator_state  # noqa: E402
from ges_bot.jobcenter.client import JobCenterClient  # noqa: E402
from ges_bot.loopback import serve  # noqa: E402
from ges_bot.store import open_store  # noqa: E402
from ges_bot.watch.poller import Cadence, Poller, TickReport  # noqa: E402

_FAILURES = ("failed", "partiallyFailed")


class SteppedWorkload(Workload):
    """``poll_cost_quick``'s workload, moved in steps of a fraction of a minute; notes when each
    job seen running failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended_at: dict[str, datetime] = {}
        # (Older copies of the workload keep no such set: the same workload measured before.)
        self.failed: set[str] = getattr(self, "failed", set())

    def step(self, fraction: float) -> None:
        self.owed += self.per_minute * fraction
        finishing = int(self.owed)
        self.owed -= finishing
        now = self.state.now()
        for _ in range(finishing):
            status = self.rng.choice(["success"] * 18 + ["failed", "partiallyFailed"])
            if self.running and self.rng.random() < 0.5:
                job_id = self.running.pop(self.rng.randrange(len(self.running)))
                self.state.patch(job_id, {"status": status, "end_time": wire(now)})
                if status in _FAILURES:
                    self.ended_at[job_id] = now
            else:
                job_id = self.add(status=status, begin_time=wire(now - timedelta(seconds=5)), end_time=wire(now))
            if status in _FAILURES:
                self.failed.add(job_id)
        while len(self.running) < self.active:
            self.running.append(self.add(status="running", begin_time=wire(now)))


async def measure(args: argparse.Namespace, fast: float) -> dict[str, Any]:
    settings = EmulatorSettings(order=args.order, max_limit=1000)
    app = create_app(settings)
    state = emulator_state(app)
    state.clock.set(T0)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as control:
        project = bench_project(settings, url)
        work = SteppedWorkload(state, args.jobs_per_day, args.active)
        work.history(args.jobs_per_day)
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            client = JobCenterClient(project, page_size=args.page_size, timeout=30)
            poller = Poller(
                project,
                client,
                store,
                clock=state.now,
                replica="bench",
                stuck_after=timedelta(days=7),
                cadence=Cadence(poll_s=args.interval, fast_s=fast, scan_s=args.scan),
            )
            alerted: Counter[str] = Counter()
            latency: list[float] = []
            quiet: list[int] = []
            ticks: Counter[str] = Counter()

            def note(report: TickReport) -> None:
                for event in report.events:
                    if event.kind in (EventKind.FAILED, EventKind.PARTIALLY_FAILED):
                        alerted[event.job.job_id] += 1
                        ended = work.ended_at.get(event.job.job_id)
                        if ended is not None and alerted[event.job.job_id] == 1:
                            latency.append((report.at - ended).total_seconds())

            try:
                await poller.tick()  # the baseline
                state.clock.advance(args.interval)
                work.step(args.interval / 60)
                note(await poller.tick())  # the first cheap tick: every window listed once
                work.failed.clear()
                work.ended_at.clear()
                alerted.clear()
                before = await list_calls(control)
                elapsed = 0.0
                next_normal = float(args.interval)
                next_fast = fast if fast else float("inf")
                while elapsed < args.minutes * 60:
                    state.clock.advance(args.step)
                    elapsed += args.step
                    work.step(args.step / 60)
                    scanned = False
                    if elapsed >= next_normal:
                        next_normal += args.interval
                        polled = await poller.poll()
                        note(polled)
                        scanned = not polled.deferred
                        ticks["deferred" if polled.deferred else "scan"] += 1
                    # A fast look due with a full scan is left out (in the runtime it would
                    # wait for the scan and find nothing new); a deferred poll asks nothing.
                    if not scanned and elapsed >= next_fast:
                        calls = await list_calls(control)
                        report = await poller.fast_tick()
                        note(report)
                        ticks["fast"] += 1
                        if not report.served:
                            ticks["unserved"] += 1
                        if not report.skipped and not report.events:
                            quiet.append(await list_calls(control) - calls)
                    if fast and elapsed >= next_fast:
                        next_fast += fast
                requests = await list_calls(control) - before
                # Whatever the last interval left: one more normal tick, then count.
                state.clock.advance(args.interval)
                note(await poller.tick())
            finally:
                await client.aclose()
                await store.close()
    hours = args.minutes / 60
    seen = sorted(latency)
    return {
        "fast": fast,
        "requests_per_hour": requests / hours,
        "p50": statistics.median(seen) if seen else None,
        "p95": seen[min(len(seen) - 1, int(0.95 * len(seen)))] if seen else None,
        "max": seen[-1] if seen else None,
        "seen_running_failures": len(seen),
        "quiet_fast_tick": statistics.median(quiet) if quiet else None,
        "missed": len(work.failed - set(alerted)),
        "doubled": sum(1 for n in alerted.values() if n > 1),
        "ticks": ticks,
    }


async def main_async(args: argparse.Namespace) -> None:
    print(
        f"{args.jobs_per_day} jobs/day, ~{args.active} running, page size {args.page_size}, order {args.order}, "
        f"poll interval {args.interval:g}s, scans while the fast lane serves every {args.scan:g}s, "
        f"{args.minutes} emulated minutes, {args.step:g}s steps"
    )
    print(
        f"{'fast lane':>10} {'GES req/h':>10} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'n':>5} {'quiet fast':>10} {'missed':>7} {'doubled':>8}"
        f" {'scans':>6} {'deferred':>8} {'fast':>5} {'unserved':>8}"
    )
    for fast in args.fast:
        r = await measure(args, fast)
        t = r["ticks"]

        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        print(
            f"{(f'{fast:g}s' if fast else 'off'):>10} {r['requests_per_hour']:>10.0f} {fmt(r['p50']):>7} {fmt(r['p95']):>7} "
            f"{fmt(r['max']):>7} {r['seen_running_failures']:>5} {fmt(r['quiet_fast_tick']):>10} {r['missed']:>7} {r['doubled']:>8}"
            f" {t['scan']:>6} {t['deferred']:>8} {t['fast']:>5} {t['unserved']:>8}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs-per-day", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=60)
    defaults = Settings.model_fields
    parser.add_argument("--interval", type=float, default=defaults["poll_interval"].default)
    parser.add_argument(
        "--fast", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, defaults["fast_interval"].default]
    )
    parser.add_argument("--scan", type=float, default=defaults["scan_interval"].default)
    parser.add_argument("--step", type=float, default=1.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--order", choices=["asc", "desc", "random"], default="asc")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
