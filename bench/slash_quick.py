"""How fast ``/gesjobs failed today`` is acknowledged and answered over a 10 000-job job center.

The GES emulator runs in a child process on a free loopback port, loaded with N jobs (default
10 000) spread over the last 7 days (10 % failed, 5 % partially failed, 5 % running, the rest
succeeded). In this process: the Slack stand-in, a SQLite store and the bot's real bolt app behind
real HTTP (uvicorn), exactly as in HTTP mode. Each request is a signed slash command POSTed to
``/slack/events``; the *ack* latency is until that POST returns, the *answer* latency until the
answer lands on the stand-in's response URL. Requests go one after another (``--concurrency 1``),
then in bursts. Prints p50/p95/max per series and the GES requests per answer.

    python bench/slash_quick.py [--jobs 10000] [--requests 50] [--concurrency 1,10] [--latency-ms 0] [--poll-interval 60]

Like a running bot, it polls GES first (the baseline) and then every ``--poll-interval`` seconds,
so the store holds the job center as the poller keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from ges_bot.config import Config, ProjectSettings, load_settings  # noqa: E402
from ges_bot.emulator.settings import DEFAULT_PROJECT_ID, DEMO_AK, DEMO_SK  # noqa: E402
from ges_bot.jobcenter.client import JobCenterClient  # noqa: E402
from ges_bot.loopback import free_port  # noqa: E402
from ges_bot.services import Services  # noqa: E402
from ges_bot.slackapp.app import build_app, build_http_routes  # noqa: E402
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, SlackStandIn, User, signed_command_request  # noqa: E402
from ges_bot.store import open_store  # noqa: E402
from ges_bot.watch.poller import Poller  # noqa: E402
from tests.support.asgi import serve  # noqa: E402

SECRET = "bench-signing-secret"
SERVER = """
import sys, uvicorn
from ges_bot.emulator import EmulatorSettings, create_app
uvicorn.run(create_app(EmulatorSettings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def wire(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def history(n: int, now: datetime) -> list[dict[str, Any]]:
    jobs = []
    for i in range(n):
        began = now - timedelta(seconds=(i * 7 * 86400) // n) - timedelta(minutes=10)
        roll = i % 20
        status = "failed" if roll < 2 else "partiallyFailed" if roll == 2 else "running" if roll == 3 else "success"
        job: dict[str, Any] = {
            "status": status,
            "job_name": "ImportGraph" if i % 3 else "ExportGraph",
            "related_graph": f"graph-{i % 50}",
            "begin_time": wire(began),
            "end_time": None if status == "running" else wire(began + timedelta(minutes=5)),
        }
        if status in ("failed", "partiallyFailed"):
            job["fail_reason"] = f"vertex file {i} has bad lines"
        jobs.append(job)
    return jobs


async def one(
    http: httpx.AsyncClient, bot_url: str, stand_in: SlackStandIn, text: str, user: str
) -> tuple[float, float, dict[str, Any]]:
    rid = f"b{time.monotonic_ns()}"
    body, headers = signed_command_request(
        SECRET, text=text, user_id=user, response_url=stand_in.response_url(rid), trigger_id=stand_in.issue_trigger_id()
    )
    started = time.perf_counter()
    response = await http.post(f"{bot_url}/slack/events", content=body, headers=headers)
    acked = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"the bot answered {response.status_code}: {response.text}")
    while not stand_in.responses(rid):
        if time.perf_counter() - started > 60:
            raise SystemExit("no answer within 60 s")
        await asyncio.sleep(0.002)
    return acked, time.perf_counter() - started, stand_in.responses(rid)[0]


async def run(args: argparse.Namespace, ges_url: str) -> None:
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=ges_url, timeout=60) as control:
        for _ in range(200):
            try:
                if (await control.get("/_emulator/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        jobs = history(args.jobs, now)
        for i in range(0, len(jobs), 2000):
            (await control.post("/_emulator/jobs/bulk", json={"jobs": jobs[i : i + 2000]})).raise_for_status()
        if args.latency_ms:
            await control.post("/_emulator/faults", json={"latency_ms": args.latency_ms, "count": -1})

        project = ProjectSettings(
            alias="bench",
            project_id=DEFAULT_PROJECT_ID,
            endpoint=ges_url,
            region=None,
            auth="aksk",
            ak=SecretStr(DEMO_AK),
            sk=SecretStr(DEMO_SK),
        )
        stand_in = SlackStandIn(users=[User("U0ALICE", "alice", tz="Europe/Berlin")])
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            client = JobCenterClient(project, page_size=100, concurrency=4, timeout=10, max_retries=2)
            config = Config(settings=load_settings({}), projects=(project,), subscriptions=())
            services = Services(config=config, store=store, clients={"bench": client})
            poller = Poller(project, client, store)
            polling: asyncio.Task[None] | None = None
            if args.poll_interval > 0:
                # As `ges-bot run` does: a first poll (the baseline: the store then holds every job),
                # then one every interval while people ask.
                await poller.tick()

                async def poll_forever() -> None:
                    while True:
                        await asyncio.sleep(args.poll_interval)
                        await poller.tick()

                polling = asyncio.create_task(poll_forever())
            try:
                async with serve(stand_in.app) as slack_url:
                    stand_in.base_url = slack_url
                    app = build_app(
                        services,
                        bot_token=DEFAULT_BOT_TOKEN,
                        signing_secret=SECRET,
                        api_url=stand_in.api_url,
                        socket_mode=False,
                    )
                    async with (
                        serve(Starlette(routes=build_http_routes(app))) as bot_url,
                        httpx.AsyncClient(timeout=60) as http,
                    ):
                        await one(http, bot_url, stand_in, "failed today", "U0ALICE")  # warm-up (auth.test)
                        _, _, sample = await one(http, bot_url, stand_in, "failed today", "U0ALICE")
                        print(
                            f"{args.jobs} jobs over 7 days; emulator in a child process"
                            f"{f', +{args.latency_ms} ms per GES answer' if args.latency_ms else ''}; "
                            f"answer: {sample['text']}"
                        )
                        print(
                            f"{'concurrency':>11} {'requests':>8} {'ack p50':>8} {'ack p95':>8} {'ack p99':>8} {'ack max':>8} "
                            f"{'answer p50':>10} {'answer p95':>10} {'answer max':>10} {'GES req/answer':>14}"
                        )
                        for concurrency in args.concurrency:
                            acks: list[float] = []
                            answers: list[float] = []
                            before = client.requests_sent
                            for start in range(0, args.requests, concurrency):
                                batch = min(concurrency, args.requests - start)
                                results = await asyncio.gather(
                                    *(one(http, bot_url, stand_in, "failed today", "U0ALICE") for _ in range(batch))
                                )
                                acks += [r[0] for r in results]
                                answers += [r[1] for r in results]
                            per_answer = (client.requests_sent - before) / args.requests
                            ms = 1000
                            print(
                                f"{concurrency:>11} {args.requests:>8} {pct(acks, 50) * ms:>6.1f}ms "
                                f"{pct(acks, 95) * ms:>6.1f}ms {pct(acks, 99) * ms:>6.1f}ms {max(acks) * ms:>6.1f}ms "
                                f"{pct(answers, 50) * ms:>8.0f}ms {pct(answers, 95) * ms:>8.0f}ms "
                                f"{max(answers) * ms:>8.0f}ms {per_answer:>14.1f}"
                            )
                            assert statistics.mean(acks) < 3.0, "acks must come within Slack's 3 s"
            finally:
                if polling is not None:
                    polling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await polling
                await client.aclose()
                await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10])
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        help="poll GES first and then every N s, as ges-bot run does (0: never poll: an empty store)",
    )
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
    try:
        asyncio.run(run(args, f"http://127.0.0.1:{port}"))
    finally:
        child.terminate()
        child.wait(timeout=10)


if __name__ == "__main__":
    main()
