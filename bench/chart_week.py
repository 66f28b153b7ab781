"""A nightly-imports week as ``/gesjobs stats`` draws it, and the time to render each chart.

Plays the emulator's ``nightly-imports`` scenario through seven emulated days (no servers: the
scenario and its clock, in-process), counts the jobs with ``ges_bot.stats`` in Asia/Shanghai and
renders the three charts, timing each render (median of ``--repeat``). Writes the PNGs and the
numbers (JSON) to ``--out`` and prints their paths.

    python bench/chart_week.py --out docs/charts
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ges_bot import charts
from ges_bot.emulator.scenarios import NightlyImports
from ges_bot.emulator.settings import EmulatorSettings
from ges_bot.emulator.state import EmulatorState
from ges_bot.jobcenter.wire import parse_job
from ges_bot.slackapp import statsview
from ges_bot.slackapp.commands import ChartKind, TimeRange, resolve
from ges_bot.stats import StatsRow, aggregate, chart_window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/charts"))
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--zone", default="Asia/Shanghai")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    settings = EmulatorSettings(project_id="0123456789abcdef0123456789abcdef", seed=args.seed, speed=1.0)
    state = EmulatorState(settings)
    # Start the scenario a week ago, so the week it plays ends now.
    state.clock.set(state.clock.real_now() - timedelta(days=args.days))
    state.scenario = NightlyImports(state, seed=args.seed)
    state.clock.advance(args.days * 86400)
    state.tick()
    now = state.now()
    rows = [StatsRow("demo", parse_job(job.to_wire())) for job in state.all_jobs()]
    zone = ZoneInfo(args.zone)
    start, end = chart_window(*resolve(TimeRange.last(timedelta(days=args.days)), now, zone), now, zone)
    started = time.perf_counter()
    stats = aggregate(rows, zone, start, end)
    aggregate_s = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(rows)} jobs over {args.days} days; aggregated in {aggregate_s * 1000:.1f} ms")
    kinds: tuple[ChartKind, ...] = ("daily", "graphs", "durations")
    for kind in kinds:
        title = statsview.chart_title(stats, kind, statsview.ChartScope())
        times, cpu = [], []
        png = b""
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            png = charts.render(stats, kind, title)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        path = args.out / f"nightly-imports-week-{kind}.png"
        path.write_bytes(png)
        print(
            f"{kind:9s} render median {statistics.median(times) * 1000:.0f} ms wall, "
            f"{statistics.median(cpu) * 1000:.0f} ms CPU (min {min(times) * 1000:.0f} ms, n={len(times)}, "
            f"{len(png) // 1024} KiB) -> {path}"
        )
    numbers = args.out / "nightly-imports-week.json"
    numbers.write_text(json.dumps(stats.to_json(), indent=2) + "\n", encoding="utf-8")
    print(f"numbers -> {numbers}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
