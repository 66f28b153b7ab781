"""How long listing a large job center takes: sequential vs concurrent paging, against the emulator.

Starts the GES emulator in a child process on a free loopback port, loads N jobs (default 10 000),
then lists them all with ``JobCenterClient`` (AK/SK auth, page size 100) at concurrency 1 and 4,
with no added latency and with a simulated network round trip (the emulator's ``latency_ms``
fault on every job-center answer). Prints the median of a few runs and the request count.

    python bench/listing_quick.py [--jobs 10000] [--page-size 100] [--latency-ms 0,50] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from ges_bot.config import ProjectSettings  # noqa: E402
from ges_bot.emulator.settings import DEFAULT_PROJECT_ID, DEMO_AK, DEMO_SK  # noqa: E402
from ges_bot.jobcenter.client import JobCenterClient  # noqa: E402

SERVER = """
import sys, uvicorn
from ges_bot.emulator import EmulatorSettings, create_app
uvicorn.run(create_app(EmulatorSettings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(control: httpx.AsyncClient) -> None:
    for _ in range(200):
        try:
            if (await control.get("/_emulator/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the emulator did not start")


async def run(args: argparse.Namespace, url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as control:
        await wait_healthy(control)
        jobs = [
            {"status": "success", "job_name": "ImportGraph", "related_graph": f"g{i % 50}"} for i in range(args.jobs)
        ]
        for i in range(0, len(jobs), 2000):
            (await control.post("/_emulator/jobs/bulk", json={"jobs": jobs[i : i + 2000]})).raise_for_status()
        project = ProjectSettings(
            alias="bench",
            project_id=DEFAULT_PROJECT_ID,
            endpoint=url,
            region=None,
            auth="aksk",
            ak=SecretStr(DEMO_AK),
            sk=SecretStr(DEMO_SK),
        )

        print(f"{args.jobs} jobs, page size {args.page_size}, AK/SK, emulator in a child process")
        print(f"{'latency':>8} {'concurrency':>11} {'median s':>9} {'min s':>7} {'requests':>8} {'jobs':>6}")
        for latency in args.latency_ms:
            await control.delete("/_emulator/faults")
            if latency:
                (
                    await control.post("/_emulator/faults", json={"latency_ms": latency, "count": -1, "target": "ges"})
                ).raise_for_status()
            for concurrency in (1, 4):
                times: list[float] = []
                sent = found = 0
                for _ in range(args.runs):
                    async with JobCenterClient(
                        project, page_size=args.page_size, concurrency=concurrency, timeout=30
                    ) as client:
                        start = time.perf_counter()
                        result = await client.list_jobs()
                        times.append(time.perf_counter() - start)
                        sent, found = client.requests_sent, len(result.jobs)
                print(
                    f"{latency:>6}ms {concurrency:>11} {statistics.median(times):>9.3f} {min(times):>7.3f} "
                    f"{sent:>8} {found:>6}"
                )
        await control.delete("/_emulator/faults")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency-ms", type=lambda s: [int(x) for x in s.split(",")], default=[0, 50])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
    try:
        asyncio.run(run(args, f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
