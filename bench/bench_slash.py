"""Benchmark 4 — ``/gesjobs`` latency: the ack, and the full answer, with 20 people asking at once.

The GES emulator runs in a child process with 10 000 jobs over the last 7 days (about 20 in
flight, 7 % failed); the bot runs as ``ges-bot run`` (another child: SQLite, HTTP mode); this
process serves the Slack stand-in and plays 20 users. Each user sends a signed slash command
(``signed_command_request``: the body and ``X-Slack-Signature`` Slack would send) to the bot's
``/slack/events``, waits for its answer on the stand-in's response URL, then sends the next
(a closed loop: 20 requests in flight at all times).

- **ack**: until the POST to ``/slack/events`` returns (Slack's limit: 3 s);
- **answer**: until the answer reaches the response URL (as the stand-in recorded it).

Commands: ``failed today`` (one status, one day: a page or two from GES), ``job <id>`` (a known
job: its snapshot, then its graph's list from its begin date), ``all last 7d`` (every job of the
week: 100 pages of GES for each question). Each runs first alone (1 user, the unloaded latency),
then with 20 users. The answer's source (live GES or the bot's snapshots, after
``live_timeout_s`` = 8 s) is read from the bot's ``/metrics``.

    python bench/bench_slash.py [--quick] [--users 20] [--requests 100] [--heavy-requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (
    Bot,
    History,
    Sub,
    bot_process,
    emulator_process,
    percentile,
    print_table,
    synthetic_jobs,
    write_results,
)
from ges_bot.loopback import serve
from ges_bot.standin.slack import SlackStandIn, User, signed_command_request

JOBS = 10_000
DAYS = 7


@dataclass
class Series:
    command: str
    users: int
    requests: int
    acks: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: The start of each distinct answer (its plain-text fallback), with how often it came.
    texts: Counter[str] = field(default_factory=Counter)
    results: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    bot_cpu_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "users": self.users,
            "requests": self.requests,
            "ack_p50_s": percentile(self.acks, 50),
            "ack_p95_s": percentile(self.acks, 95),
            "ack_p99_s": percentile(self.acks, 99),
            "answer_p50_s": percentile(self.answers, 50),
            "answer_p95_s": percentile(self.answers, 95),
            "answer_p99_s": percentile(self.answers, 99),
            "answers_per_s": len(self.answers) / self.wall_s if self.wall_s else None,
            "results": self.results,
            "errors": self.errors,
            "answer_texts": dict(self.texts.most_common(5)),
            "wall_s": self.wall_s,
            "bot_cpu_s": self.bot_cpu_s,
            "acks_s": self.acks,
            "answers_s": self.answers,
        }


async def ask(http: httpx.AsyncClient, bot: Bot, slack: SlackStandIn, text: str, user: str, series: Series) -> None:
    rid = f"r{time.monotonic_ns()}{random.getrandbits(32):08x}"
    body, headers = signed_command_request(
        bot.signing_secret,
        text=text,
        user_id=user,
        user_name=user.lower(),
        team_id="T0STANDIN",
        response_url=slack.response_url(rid),
        trigger_id=slack.issue_trigger_id(),
    )
    sent = time.time()
    response = await http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    acked = time.time()
    if response.status_code != 200:
        series.errors.append(f"HTTP {response.status_code}")
        return
    series.acks.append(acked - sent)
    deadline = time.monotonic() + 90
    while not slack.responses(rid):
        if time.monotonic() > deadline:
            series.errors.append("no answer within 90 s")
            return
        await asyncio.sleep(0.01)
    call = next(c for c in reversed(slack.calls) if c.method == "response_url" and c.answer.get("response_url") == rid)
    series.answers.append(call.at.timestamp() - sent)
    series.texts[str(slack.responses(rid)[0].get("text", ""))[:100]] += 1


def command_results(metrics: dict[str, float], kind: str) -> dict[str, float]:
    prefix = "ges_bot_slash_commands_total{"
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith(prefix) and f'command="{kind}"' in key:
            result = key.split('result="', 1)[1].split('"', 1)[0]
            out[result] = value
    return out


async def series(
    http: httpx.AsyncClient, bot: Bot, slack: SlackStandIn, command: str, texts: list[str], users: int
) -> Series:
    s = Series(command=command, users=users, requests=len(texts))
    queue = list(reversed(texts))
    before = await bot.metrics()
    cpu0 = bot.cpu_seconds()
    started = time.perf_counter()

    async def user(n: int) -> None:
        while queue:
            await ask(http, bot, slack, queue.pop(), f"U0USER{n:02d}", s)

    await asyncio.gather(*(user(n) for n in range(users)))
    s.wall_s = time.perf_counter() - started
    s.bot_cpu_s = bot.cpu_seconds() - cpu0
    after = await bot.metrics()
    kinds = {k.split('command="', 1)[1].split('"', 1)[0] for k in after if "ges_bot_slash_commands_total{" in k}
    for kind in kinds:
        b, a = command_results(before, kind), command_results(after, kind)
        for result, value in a.items():
            if value - b.get(result, 0.0):
                s.results[f"{kind}:{result}"] = value - b.get(result, 0.0)
    return s


async def main_async(args: argparse.Namespace) -> None:
    users: int = args.users
    light: int = args.requests or (40 if args.quick else 100)
    heavy: int = args.heavy_requests or (20 if args.quick else 40)
    alone: int = 5 if args.quick else 10
    now = datetime.now(UTC)
    history = History(per_day=round(JOBS / DAYS), days=DAYS, end=now, active=20)
    # The same jobs the emulator builds (same seed), to pick ids that exist.
    ids = [j.job_id for j in synthetic_jobs(history)]
    rng = random.Random(3)
    slack = SlackStandIn(users=[User(f"U0USER{n:02d}", f"user{n}", tz="UTC") for n in range(users)])
    all_series: list[Series] = []
    async with (
        emulator_process(history) as emu,
        serve(slack.app) as slack_url,
        bot_process(
            emulator_url=emu.url, slack_url=slack_url, subscriptions=[Sub("C0GENERAL")], poll_interval=30
        ) as bot,
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=users + 5)) as http,
    ):
        slack.base_url = slack_url
        await bot.wait_ticks(1, timeout=600)  # the baseline: snapshots exist for `job <id>`
        warm = Series("warm-up", 1, 1)
        await ask(http, bot, slack, "failed today", "U0USER00", warm)
        plans: list[tuple[str, Callable[[], str], int]] = [
            ("failed today", lambda: "failed today", light),
            ("job <id>", lambda: f"job {rng.choice(ids)}", light),
            ("all last 7d", lambda: "all last 7d", heavy),
        ]
        for command, make, count in plans:
            for n_users, n in ((1, alone), (users, count)):
                s = await series(http, bot, slack, command, [make() for _ in range(n)], n_users)
                all_series.append(s)
                print(
                    f"  {command!r} × {n}, {n_users} user(s): answer p50 {percentile(s.answers, 50):.3f}s "
                    f"({s.results or 'no results'})",
                    flush=True,
                )
    rows = []
    for s in all_series:
        j = s.to_json()
        rows.append(
            [
                s.command,
                s.users,
                s.requests,
                j["ack_p50_s"] * 1000,
                j["ack_p95_s"] * 1000,
                j["ack_p99_s"] * 1000,
                j["answer_p50_s"],
                j["answer_p95_s"],
                j["answer_p99_s"],
                j["answers_per_s"],
                ", ".join(f"{k.split(':')[1]} {int(v)}" for k, v in s.results.items()) or "-",
            ]
        )
    print_table(
        f"/gesjobs over {JOBS:,} jobs ({DAYS} days): ack and full answer",
        [
            "command",
            "users",
            "requests",
            "ack p50 ms",
            "ack p95 ms",
            "ack p99 ms",
            "answer p50 s",
            "p95 s",
            "p99 s",
            "answers/s",
            "answered from",
        ],
        rows,
    )
    errors = [e for s in all_series for e in s.errors]
    if errors:
        print(f"errors: {len(errors)} ({', '.join(sorted(set(errors)))})")
    write_results("slash", {"jobs": JOBS, "days": DAYS, "series": [s.to_json() for s in all_series]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 light and 20 heavy requests")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=None, help="per light command (default 100)")
    parser.add_argument("--heavy-requests", type=int, default=None, help="'all last 7d' requests (default 40)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
