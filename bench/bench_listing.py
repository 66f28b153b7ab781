"""Benchmark 1 — listing a whole job center: ges-bot's ``JobCenterClient`` against Huawei's official SDK.

The emulator runs in a child process, preloaded with N finished jobs (default 10 000 and 100 000).
Each run lists all of them with every variant, interleaved (the order rotates from run to run, so
a noisy neighbour hurts every variant alike):

- ``ours c=4``: ``JobCenterClient(concurrency=4).list_jobs()`` (AK/SK, page size 100);
- ``ours c=1``: the same, one page after another;
- ``sdk``: ``huaweicloudsdkges.v2.GesClient.list_jobs2`` with AK/SK, pointed at the emulator with
  ``HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4``, paging ``offset += 100`` until ``job_count`` — the loop
  a user of the SDK writes.

Wall time, CPU time of this process (the emulator's is separate and shown too) and requests (as
the emulator counted them); the SDK/ours ratio is taken within each run, then the median.
Loopback has no round trip to speak of, so the smallest size is also listed with the emulator's
``latency_ms`` fault on every answer (default 50 ms, a plausible RTT to a Huawei Cloud region):
that is where concurrent paging pays.

    python bench/bench_listing.py [--quick] [--sizes 10000,100000] [--runs 3] [--page-size 100] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (
    Emulator,
    History,
    emulator_process,
    fmt,
    median,
    print_table,
    project_settings,
    spread,
    write_results,
)
from ges_bot.emulator.settings import DEFAULT_PROJECT_ID, DEMO_AK, DEMO_SK
from ges_bot.jobcenter.client import JobCenterClient

VARIANTS = ("ours c=4", "ours c=1", "sdk")


def sdk_list_all(url: str, page_size: int) -> int:
    """Every job, as a user of the official SDK would page them; returns how many."""
    os.environ["HUAWEICLOUD_SDK_REGION_GES_CN_NORTH_4"] = url
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkges.v2 import GesClient, ListJobs2Request
    from huaweicloudsdkges.v2.region.ges_region import GesRegion

    client = (
        GesClient.new_builder()
        .with_credentials(BasicCredentials(DEMO_AK, DEMO_SK, DEFAULT_PROJECT_ID))
        .with_region(GesRegion.value_of("cn-north-4"))
        .build()
    )
    try:
        jobs: dict[str, Any] = {}
        offset = 0
        while True:
            page = client.list_jobs2(ListJobs2Request(offset=str(offset), limit=str(page_size)))
            for job in page.job_list or []:
                jobs[job.job_id] = job
            offset += page_size
            if not page.job_list or offset >= (page.job_count or 0):
                return len(jobs)
    finally:
        client.close()


async def measure(emu: Emulator, run: Callable[[], Awaitable[int]]) -> dict[str, float]:
    requests0 = await emu.list_requests()
    server0 = emu.cpu_seconds()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    found = await run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    server = emu.cpu_seconds() - server0
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "emulator_cpu_s": server,
        "requests": await emu.list_requests() - requests0,
        "jobs": found,
    }


def runner(variant: str, emu: Emulator, page_size: int) -> Callable[[], Awaitable[int]]:
    if variant == "sdk":

        async def sdk() -> int:
            # Synchronous, as the SDK is; nothing else runs in this loop meanwhile.
            return sdk_list_all(emu.url, page_size)

        return sdk
    concurrency = 4 if variant == "ours c=4" else 1

    async def ours() -> int:
        async with JobCenterClient(
            project_settings(emu.url), page_size=page_size, concurrency=concurrency, timeout=60
        ) as client:
            return len((await client.list_jobs()).jobs)

    return ours


async def bench_size(size: int, latencies: list[int], runs: int, page_size: int) -> list[dict[str, Any]]:
    history = History(per_day=size, days=1, end=datetime.now(UTC), active=0)
    out = []
    async with emulator_process(history) as emu:
        # Warm up both clients (imports, connection pools, the emulator's sorted list cache).
        for variant in ("ours c=4", "sdk"):
            await runner(variant, emu, page_size)()
        for latency in latencies:
            await emu.control.delete("/_emulator/faults")
            if latency:
                spec = {"latency_ms": latency, "count": -1, "target": "ges"}
                (await emu.control.post("/_emulator/faults", json=spec)).raise_for_status()
            samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            for r in range(runs):
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    samples[variant].append(await measure(emu, runner(variant, emu, page_size)))
                    took = samples[variant][-1]["wall_s"]
                    print(f"  {size} jobs, +{latency} ms, run {r + 1}/{runs}, {variant}: {took:.2f}s", flush=True)
            for variant in VARIANTS:
                found = [s["jobs"] for s in samples[variant]]
                assert all(n == size for n in found), (variant, found)
            out.append({"jobs": size, "latency_ms": latency, "samples": samples, "ratios": _ratios(samples)})
        await emu.control.delete("/_emulator/faults")
    return out


def _ratios(samples: dict[str, list[dict[str, float]]]) -> dict[str, list[float]]:
    def per_run(a: str, b: str, key: str) -> list[float]:
        return [x[key] / y[key] for x, y in zip(samples[a], samples[b], strict=True)]

    return {
        "sdk_over_ours_wall": per_run("sdk", "ours c=4", "wall_s"),
        "sdk_over_ours_cpu": per_run("sdk", "ours c=4", "cpu_s"),
        "c1_over_c4_wall": per_run("ours c=1", "ours c=4", "wall_s"),
    }


async def main_async(args: argparse.Namespace) -> None:
    sizes: list[int] = args.sizes or ([2_000, 10_000] if args.quick else [10_000, 100_000])
    runs: int = args.runs or (2 if args.quick else 3)
    results: list[dict[str, Any]] = []
    for size in sorted(sizes):
        latencies = [0, args.latency_ms] if size == min(sizes) and args.latency_ms else [0]
        results.extend(await bench_size(size, latencies, runs, args.page_size))
    rows = []
    for res in results:
        for variant in VARIANTS:
            s = res["samples"][variant]
            rows.append(
                [
                    res["jobs"],
                    f"+{res['latency_ms']} ms",
                    variant,
                    median(x["wall_s"] for x in s),
                    spread([x["wall_s"] for x in s]),
                    median(x["cpu_s"] for x in s),
                    median(x["emulator_cpu_s"] for x in s),
                    int(median(x["requests"] for x in s)),
                    res["jobs"] / median(x["wall_s"] for x in s),
                ]
            )
    print_table(
        f"Listing every job, page size {args.page_size}, AK/SK; median of {runs} interleaved runs",
        ["jobs", "latency", "client", "wall s", "wall range", "CPU s", "emulator CPU s", "requests", "jobs/s"],
        rows,
    )
    ratio_rows = [
        [
            res["jobs"],
            f"+{res['latency_ms']} ms",
            fmt(median(res["ratios"]["sdk_over_ours_wall"])) + "×",
            spread(res["ratios"]["sdk_over_ours_wall"]),
            fmt(median(res["ratios"]["sdk_over_ours_cpu"])) + "×",
            fmt(median(res["ratios"]["c1_over_c4_wall"])) + "×",
        ]
        for res in results
    ]
    print_table(
        "Ratios within each run (median; range)",
        ["jobs", "latency", "SDK/ours wall", "range", "SDK/ours CPU", "c=1 / c=4 wall"],
        ratio_rows,
    )
    write_results("listing", {"page_size": args.page_size, "runs": runs, "results": results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 000 and 10 000 jobs, 2 runs")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=50, help="added per answer for the smallest size (0: none)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
