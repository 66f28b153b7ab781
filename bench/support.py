"""What every benchmark shares: synthetic job histories, the emulator and the bot as child processes,
byte and CPU accounting, percentiles, tables and the JSON results file.

Owns nothing the bot runs: it only drives ``ges_bot`` from the outside (HTTP, subprocesses) or
through its public classes. Results go to ``bench/results/<name>.json`` (git-ignored); the figures
worth keeping are copied into ``docs/benchmarks.md`` by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from pydantic import SecretStr

from ges_bot.config import ProjectSettings
from ges_bot.emulator.model import EmuJob, graph_id_for
from ges_bot.emulator.settings import DEFAULT_PROJECT_ID, DEMO_AK, DEMO_SK
from ges_bot.loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LIST_ROUTE = "GET /v2/{project_id}/graphs/jobs"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Variables a child process inherits; everything else is set explicitly (no developer GES_*/SLACK_*).
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "TZ")


# --- figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else math.nan


def spread(values: Sequence[float]) -> str:
    """``min–max`` of repeated measurements, to show the noise next to a median."""
    if not values:
        return "-"
    return f"{fmt(min(values))}–{fmt(max(values))}"


def fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}g}" if magnitude < 1 else f"{value:.2f}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(headers), *[[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def machine() -> dict[str, Any]:
    """The machine a result was measured on, as docs/benchmarks.md reports it."""
    try:
        free = subprocess.run(["free", "-h"], capture_output=True, text=True, timeout=5, check=False).stdout
    except OSError:
        free = ""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=False, cwd=ROOT
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "free_h": free.strip(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "git_head": commit,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


#: The machine as the benchmark found it (load average before it added its own).
AT_START = machine()


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {"benchmark": name, "command": " ".join([Path(sys.executable).name, *sys.argv]), **payload}
    body["machine"] = AT_START
    body["loadavg_at_end"] = os.getloadavg()
    path.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults: {path.relative_to(ROOT)}  (load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    return path


# --- processes: CPU and memory ------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux ``/proc/<pid>/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_memory_kb(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak RSS) and ``VmRSS`` of a process, in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


class CpuClock:
    """CPU seconds of this process (all threads: SQLite runs in aiosqlite's) and wall seconds."""

    def __init__(self) -> None:
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu0

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.wall0


# --- bytes on the wire --------------------------------------------------------------------------


@dataclass
class WireCount:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def snapshot(self) -> WireCount:
        return WireCount(self.requests, self.bytes_in, self.bytes_out)

    def minus(self, other: WireCount) -> WireCount:
        return WireCount(
            self.requests - other.requests, self.bytes_in - other.bytes_in, self.bytes_out - other.bytes_out
        )


def _header_bytes(headers: httpx.Headers) -> int:
    return sum(len(k) + len(v) + 4 for k, v in headers.raw)


class _CountingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, count: WireCount) -> None:
        self.inner = inner
        self.count = count

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.count.bytes_in += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that counts requests and bytes (status line and headers approximated as
    ``name: value\\r\\n``; bodies exact) on their way through a real loopback connection."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.count = WireCount()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count.requests += 1
        self.count.bytes_out += len(request.method) + len(request.url.raw_path) + 12 + _header_bytes(request.headers)
        self.count.bytes_out += len(await request.aread())
        response = await self.inner.handle_async_request(request)
        self.count.bytes_in += 17 + _header_bytes(response.headers)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountingStream(response.stream, self.count),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- synthetic job histories --------------------------------------------------------------------

_STATUS_MIX = (("success", 0.90), ("failed", 0.07), ("partiallyFailed", 0.03))
_JOB_NAMES = (("ImportGraph", 0.6), ("StartGraph", 0.1), ("ExportGraph", 0.1), ("AddBackup", 0.1), ("StopGraph", 0.1))


def _pick(rng: random.Random, table: Sequence[tuple[str, float]]) -> str:
    x = rng.random()
    for value, weight in table:
        x -= weight
        if x < 0:
            return value
    return table[-1][0]


def import_detail(status: str, graph: str, n: int) -> dict[str, Any]:
    """A plausible ``job_detail`` for an ``ImportGraph`` job (schema, two vertex and two edge files)."""

    def item(path: str, ok: bool) -> dict[str, Any]:
        return {
            "path": f"obs://bench-data/{graph}/{path}",
            "log": None if ok else f"obs://bench-logs/{graph}/import-{n}/{path}.log",
            "status": "success" if ok else ("failed" if status == "failed" else "partFailed"),
            "cause": None if ok else f"Line {1000 + n % 9000}: vertex label 'Person' not in schema",
            "total_lines": 120000,
            "failed_lines": 0 if ok else 12,
            "successful_lines": 120000 if ok else 119988,
        }

    bad = status != "success"
    return {
        "schema_path": [item("schema.xml", True)],
        "vertexset_path": [item("vertices/person.csv", not bad), item("vertices/movie.csv", True)],
        "edgeset_path": [item("edges/rates.csv", True), item("edges/acted_in.csv", True)],
    }


@dataclass(frozen=True)
class History:
    """``per_day`` finished jobs a day for ``days`` days before ``end``, plus ``active`` running
    or pending jobs that began just before ``end``, over ``graphs`` graphs ``g00``, ``g01`` …"""

    per_day: int
    days: float
    end: datetime
    active: int = 20
    graphs: int = 10
    seed: int = 1
    project_id: str = DEFAULT_PROJECT_ID
    id_prefix: str = "h"

    @property
    def total(self) -> int:
        return round(self.per_day * self.days) + self.active

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["end"] = self.end.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> History:
        values = dict(data)
        values["end"] = datetime.fromisoformat(values["end"])
        return cls(**values)


def graph_name(i: int) -> str:
    return f"g{i:02d}"


def synthetic_jobs(h: History) -> list[EmuJob]:
    """The jobs of ``h``, oldest first; deterministic for a given seed. Job ids are
    ``<prefix><8-digit serial><hex>``, 32 characters, so the first 12 (what alerts show) are unique."""
    rng = random.Random(h.seed)
    finished = round(h.per_day * h.days)
    span = h.days * 86400.0
    start = h.end - timedelta(seconds=span)
    gap = span / max(1, finished)
    jobs: list[EmuJob] = []
    details: dict[tuple[str, str], dict[str, Any]] = {}
    graph_ids = {graph_name(g): graph_id_for(h.project_id, graph_name(g)) for g in range(h.graphs)}
    for n in range(finished + h.active):
        graph = graph_name(rng.randrange(h.graphs))
        job_name = _pick(rng, _JOB_NAMES)
        if n < finished:
            begin = start + timedelta(seconds=n * gap + rng.random() * gap * 0.5)
            status = _pick(rng, _STATUS_MIX)
            # Short enough that a job ends before the next few begin: the list stays roughly in end order.
            end: datetime | None = min(begin + timedelta(seconds=rng.uniform(5, 120)), h.end)
        else:
            begin = h.end - timedelta(seconds=(finished + h.active - n) * 3)
            status = "pending" if rng.random() < 0.2 else "running"
            end = None
        detail = None
        if job_name == "ImportGraph" and status != "pending":
            key = (graph, status if status in ("success", "failed", "partiallyFailed") else "success")
            detail = details.get(key) or details.setdefault(key, import_detail(key[1], graph, n))
        job_id = f"{h.id_prefix}{n:08d}{rng.getrandbits(128):032x}"[:32]
        jobs.append(
            EmuJob(
                job_id=job_id,
                project_id=h.project_id,
                status=status,
                job_name=job_name,
                related_graph=graph,
                begin_time=begin,
                end_time=end,
                job_detail=detail,
                fail_reason="Import failed; see job_detail." if status == "failed" else None,
                graph_id=graph_ids[graph],
            )
        )
    return jobs


# --- the GES emulator in a child process --------------------------------------------------------


def child_env(**values: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


def project_settings(url: str, alias: str = "bench") -> ProjectSettings:
    return ProjectSettings(
        alias=alias,
        project_id=DEFAULT_PROJECT_ID,
        endpoint=url,
        region=None,
        auth="aksk",
        ak=SecretStr(DEMO_AK),
        sk=SecretStr(DEMO_SK),
    )


@dataclass
class Emulator:
    """A running emulator: its URL, control client and (child process) pid."""

    url: str
    control: httpx.AsyncClient
    pid: int | None = None

    async def list_requests(self) -> int:
        stats = (await self.control.get("/_emulator/stats")).json()
        return int(stats["requests"].get(LIST_ROUTE, 0))

    async def reset_stats(self) -> None:
        (await self.control.delete("/_emulator/stats")).raise_for_status()

    async def add_jobs(self, jobs: Sequence[Mapping[str, Any]]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(jobs), 2000):
            response = await self.control.post("/_emulator/jobs/bulk", json={"jobs": list(jobs[i : i + 2000])})
            response.raise_for_status()
            ids.extend(response.json()["job_ids"])
        return ids

    async def patch(self, job_id: str, **fields: Any) -> None:
        (await self.control.patch(f"/_emulator/jobs/{job_id}", json=fields)).raise_for_status()

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid) if self.pid else math.nan


def spawn(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """A child process (a plain function: starting it does not block the event loop)."""
    return subprocess.Popen(
        list(args),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
    )


async def _wait_http(url: str, path: str, proc: subprocess.Popen[bytes] | None, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(path)).status_code < 500:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer {path} within {within:.0f}s")
            await asyncio.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


@contextlib.asynccontextmanager
async def emulator_process(*histories: History, max_limit: int = 1000, order: str = "asc") -> AsyncIterator[Emulator]:
    """The GES emulator in its own process (so its CPU is not the client's), preloaded with
    ``histories`` (built inside the child: far faster than posting them); ``order`` is the list
    order (``asc``, ``desc`` or ``random`` by begin time)."""
    port = free_port()
    spec = json.dumps({"histories": [h.to_json() for h in histories], "max_limit": max_limit, "order": order})
    proc = spawn(
        [sys.executable, "-m", "bench.emuserver", "--port", str(port), "--spec", spec], env=child_env(), cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_http(url, "/_emulator/health", proc, 300, "the emulator")
        async with httpx.AsyncClient(base_url=url, timeout=120) as control:
            yield Emulator(url=url, control=control, pid=proc.pid)
    finally:
        _stop(proc)


# --- the bot in a child process -----------------------------------------------------------------


@dataclass(frozen=True)
class Sub:
    channel: str
    graph: str = "*"
    statuses: tuple[str, ...] = ("failed", "partial")


@dataclass
class Bot:
    """One ``python -m ges_bot run`` child process."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    signing_secret: str
    log: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_kb(self) -> dict[str, int]:
        return proc_memory_kb(self.pid)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    async def metrics(self) -> dict[str, float]:
        """``/metrics`` as {"name{labels}": value} (no comments)."""
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    async def ticks(self) -> int:
        m = await self.metrics()
        return int(sum(v for k, v in m.items() if k.startswith("ges_bot_poll_ticks_total") and 'result="ok"' in k))

    async def wait_ticks(self, n: int, timeout: float = 300.0) -> None:  # noqa: ASYNC109
        """Wait until ``n`` successful poll ticks have completed."""
        deadline = time.monotonic() + timeout
        while await self.ticks() < n:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not complete {n} ticks within {timeout:.0f}s:\n{self.tail()}")
            await asyncio.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        path = self.workdir / "bot.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def bot_env(
    workdir: Path,
    *,
    emulator_url: str,
    slack_url: str,
    signing_secret: str,
    subscriptions: Sequence[Sub],
    poll_interval: float = 2.0,
    port: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    lines = []
    for sub in subscriptions:
        statuses = ", ".join(f'"{s}"' for s in sub.statuses)
        lines.append(f'[[subscriptions]]\nchannel = "{sub.channel}"\ngraph = "{sub.graph}"\nstatuses = [{statuses}]\n')
    config = workdir / "ges-bot.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    env = child_env(
        GES_ENDPOINT=emulator_url,
        GES_PROJECT_ID=DEFAULT_PROJECT_ID,
        GES_PROJECT_ALIAS="bench",
        HUAWEICLOUD_SDK_AK=DEMO_AK,
        HUAWEICLOUD_SDK_SK=DEMO_SK,
        GES_BOT_DATABASE_URL=f"sqlite:///{workdir / 'ges-bot.db'}",
        GES_BOT_CONFIG=str(config),
        GES_BOT_POLL_INTERVAL=str(poll_interval),
        GES_BOT_HTTP_HOST="127.0.0.1",
        GES_BOT_HTTP_PORT=str(port),
        GES_BOT_LOG_LEVEL="WARNING",
        GES_BOT_TIMEZONE="UTC",
        SLACK_BOT_TOKEN="xoxb-standin-0000",
        SLACK_SIGNING_SECRET=signing_secret,
        SLACK_API_URL=f"{slack_url}/api/",
    )
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def bot_process(
    *,
    emulator_url: str,
    slack_url: str,
    subscriptions: Sequence[Sub],
    poll_interval: float = 2.0,
    extra: Mapping[str, str] | None = None,
) -> AsyncIterator[Bot]:
    """``ges-bot run`` (HTTP mode, SQLite in a temporary folder) pointed at the emulator and the
    Slack stand-in; stopped with SIGTERM on exit."""
    with tempfile.TemporaryDirectory(prefix="ges-bot-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        secret = "bench-signing-secret-0123456789abcdef"  # the stand-in's: valid nowhere
        env = bot_env(
            workdir,
            emulator_url=emulator_url,
            slack_url=slack_url,
            signing_secret=secret,
            subscriptions=subscriptions,
            poll_interval=poll_interval,
            port=port,
            extra=extra,
        )
        log = (workdir / "bot.log").open("ab")
        proc = spawn([sys.executable, "-m", "ges_bot", "run"], env=env, cwd=workdir, log=log)
        bot = Bot(proc=proc, port=port, workdir=workdir, signing_secret=secret, log=log)
        try:
            await _wait_http(bot.url, "/healthz", proc, 60, "ges-bot run")
            yield bot
        except BaseException:
            print(bot.tail(), file=sys.stderr)
            raise
        finally:
            _stop(proc)
            log.close()
