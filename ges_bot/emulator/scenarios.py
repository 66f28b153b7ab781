"""Scenarios: seeded, reproducible job histories, and (``nightly-imports``) jobs that progress.

Owns the made-up world the emulator shows when not driven by tests: graphs, OBS paths, failure
causes, job mixes. Every scenario is deterministic for a given ``seed`` — the same seed shows the
same jobs in the same order, however often or seldom the emulator is polled, because every random
choice about a job is drawn when the job is planned, in arrival order.

- ``quiet``: five succeeded jobs in the last hours; nothing moves.
- ``nightly-imports``: six hours of history, then a stream of jobs on four graphs (``movies``,
  ``prod-social``, ``prod-fraud``, ``kg-medical``) — mostly scheduled ``ImportGraph`` jobs with
  schema/vertex/edge files under ``obs://…`` paths, plus ``CreateGraph``, ``StartGraph``,
  ``StopGraph``, ``DeleteGraph``, ``ExportGraph``, ``UpgradeGraph`` and ``AddBackup`` — each going
  pending → running → success / failed / partiallyFailed, with line-level causes, line counts
  (``-1`` on the older ``kg-medical`` cluster) and log paths. Scenario time runs ``speed`` times
  faster than the emulated clock from the moment the scenario starts (a job arrives every 4
  scenario-minutes on average; at ``--speed 60`` a demo sees a failure within ~10–30 s, and one of
  the first two live jobs always fails). Job times are stamped on the emulated clock, so they stay
  consistent with the bot's own.
- ``large``: ``large_count`` historical jobs over the last 30 days (benchmarks); nothing moves.

Progression is lazy: :meth:`NightlyImports.advance` is called with the emulated ``now`` before every
request and replays every planned event up to it, in time order.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ges_bot.emulator.model import EmuJob, graph_id_for
from ges_bot.emulator.state import EmulatorState, ScenarioDriver

__all__ = ["GRAPHS", "JOB_NAMES", "LargeHistory", "NightlyImports", "Quiet", "start_scenario"]


@dataclass(frozen=True, slots=True)
class GraphProfile:
    name: str
    data_root: str
    vertices: tuple[str, ...]
    edges: tuple[str, ...]
    labels: tuple[str, ...]
    #: Older GES clusters do not report line counts (``-1``).
    counts: bool = True


GRAPHS: tuple[GraphProfile, ...] = (
    GraphProfile(
        "movies",
        "obs://ges-demo-data/movies",
        ("movie.csv", "person.csv", "user.csv"),
        ("acted_in.csv", "directed.csv", "rates.csv"),
        ("Movie", "Person", "User"),
    ),
    GraphProfile(
        "prod-social",
        "obs://ges-prod-social/daily",
        ("user.csv", "post.csv"),
        ("follows.csv", "likes.csv", "replies.csv"),
        ("User", "Post"),
    ),
    GraphProfile(
        "prod-fraud",
        "obs://ges-prod-fraud/ingest",
        ("account.csv", "device.csv", "merchant.csv"),
        ("transfer.csv", "uses_device.csv", "pays.csv"),
        ("Account", "Device", "Merchant"),
    ),
    GraphProfile(
        "kg-medical",
        "obs://kg-medical-release/v3",
        ("disease.csv", "drug.csv", "symptom.csv"),
        ("treats.csv", "has_symptom.csv"),
        ("Disease", "Drug", "Symptom"),
        counts=False,
    ),
)

#: (job_name, weight, running seconds (min, max)) of the scenario's job mix.
JOB_NAMES: tuple[tuple[str, int, tuple[int, int]], ...] = (
    ("ImportGraph", 55, (180, 1500)),
    ("StartGraph", 8, (60, 300)),
    ("StopGraph", 6, (20, 120)),
    ("CreateGraph", 6, (300, 900)),
    ("DeleteGraph", 4, (20, 120)),
    ("ExportGraph", 9, (120, 900)),
    ("UpgradeGraph", 4, (300, 1200)),
    ("AddBackup", 8, (60, 600)),
)

_OTHER_FAILURES: dict[str, tuple[str, ...]] = {
    "CreateGraph": (
        "Insufficient ECS quota: 16 more vCPUs are needed in this region.",
        "The subnet has no available IP addresses.",
        "Failed to create the graph instance: resource provisioning timed out after 1800 s.",
    ),
    "StartGraph": (
        "The graph engine process exited unexpectedly during start-up (exit code 137).",
        "Failed to load graph data from the latest backup.",
    ),
    "StopGraph": ("The graph is locked by a running import job.",),
    "DeleteGraph": ("The graph is locked by a running import job.",),
    "ExportGraph": (
        "No permission to write to the OBS export bucket (403 Forbidden).",
        "Export timed out after 3600 s.",
    ),
    "UpgradeGraph": ("Upgrade rolled back: the health check did not pass within 600 s.",),
    "AddBackup": (
        "The backup quota of this graph (7) has been reached.",
        "Failed to upload the backup to OBS: connection reset by peer.",
    ),
}


def _line_cause(rng: random.Random, profile: GraphProfile, kind: str) -> str:
    line = rng.randint(2, 250_000)
    label = rng.choice(profile.labels)
    options = [
        f"Line {line}: vertex label '{label}' not in schema",
        f"Line {line}: expected {rng.randint(4, 9)} columns but found {rng.randint(1, 3)}",
        f"Line {line}: value 'N/A' of property 'age' is not of type int",
        f"Line {line}: duplicate vertex id '{label.lower()}-{rng.randint(1, 99999)}'",
    ]
    if kind == "edge":
        options.append(f"Line {line}: edge end vertex '{label.lower()}-{rng.randint(1, 99999)}' does not exist")
        options.append(f"Line {line}: edge label '{label.upper()}_OF' not in schema")
    return rng.choice(options)


def _file_item(
    path: str, status: str | None, cause: str | None, log: str | None, lines: tuple[int, int, int]
) -> dict[str, Any]:
    total, failed, ok = lines
    return {
        "path": path,
        "log": log,
        "status": status,
        "cause": cause,
        "total_lines": total,
        "failed_lines": failed,
        "successful_lines": ok,
    }


def import_detail(
    rng: random.Random, profile: GraphProfile, job_id: str, begin: datetime, outcome: str
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(detail while running, detail when done, fail_reason) of one import with ``outcome``."""
    day = begin.strftime("%Y%m%d")
    root = (
        f"{profile.data_root}/{day}"
        if "daily" in profile.data_root or "ingest" in profile.data_root
        else profile.data_root
    )
    log_dir = f"obs://ges-logs/{profile.name}/logs/import-{begin.strftime('%Y%m%d-%H%M%S')}-{job_id[:8]}"
    files: list[tuple[str, str, str]] = [("schema", f"{root}/schema.xml", "schema")]
    files += [("vertex", f"{root}/vertices/{v}", v.removesuffix(".csv")) for v in profile.vertices]
    files += [("edge", f"{root}/edges/{e}", e.removesuffix(".csv")) for e in profile.edges]

    running: dict[str, list[dict[str, Any]]] = {"schema_path": [], "vertexset_path": [], "edgeset_path": []}
    done: dict[str, list[dict[str, Any]]] = {"schema_path": [], "vertexset_path": [], "edgeset_path": []}
    key = {"schema": "schema_path", "vertex": "vertexset_path", "edge": "edgeset_path"}

    data_files = [i for i, f in enumerate(files) if f[0] != "schema"]
    bad: set[int] = set()
    fail_reason: str | None = None
    schema_broken = False
    if outcome == "partiallyFailed":
        bad = set(rng.sample(data_files, k=rng.randint(1, 2)))
    elif outcome == "failed":
        schema_broken = rng.random() < 0.3
        if not schema_broken:
            bad = {rng.choice(data_files)}

    for i, (kind, path, stem) in enumerate(files):
        running[key[kind]].append(_file_item(path, None, None, None, (-1, -1, -1)))
        log = f"{log_dir}/{stem}.log"
        if kind == "schema":
            if schema_broken:
                cause = f"schema.xml line {rng.randint(3, 60)}: unknown data type 'strng' for property 'name'"
                item = _file_item(path, "failed", cause, log, (-1, -1, -1))
                fail_reason = "Failed to parse the schema file; no data was imported."
            else:
                item = _file_item(path, "success", None, None, (-1, -1, -1))
            done[key[kind]].append(item)
            continue
        total = rng.randint(2_000, 5_000_000)
        if schema_broken:
            item = _file_item(path, None, None, None, (-1, -1, -1))
        elif i in bad and outcome == "failed":
            cause = rng.choice(
                (
                    f"The OBS object {path} does not exist.",
                    f"Access denied reading {path} (403 Forbidden).",
                    _line_cause(rng, profile, kind) + "; the failure rate exceeded the threshold, import aborted",
                )
            )
            failed = total if "OBS" in cause or "Access" in cause else rng.randint(total // 10, total // 2)
            item = _file_item(path, "failed", cause, log, (total, failed, total - failed))
        elif i in bad:
            failed = rng.randint(1, max(1, total // 200))
            item = _file_item(path, "partFailed", _line_cause(rng, profile, kind), log, (total, failed, total - failed))
        else:
            item = _file_item(path, "success", None, log if rng.random() < 0.5 else None, (total, 0, total))
        if not profile.counts:
            item.update(total_lines=-1, failed_lines=-1, successful_lines=-1)
        done[key[kind]].append(item)

    if outcome == "failed" and fail_reason is None:
        # GES sometimes leaves fail_reason empty even for a failed job.
        fail_reason = (
            None if rng.random() < 0.2 else "Import failed: a data file could not be imported; see job_detail."
        )
    elif outcome == "partiallyFailed":
        fail_reason = None if rng.random() < 0.5 else "Some lines failed to import; see job_detail."
    # A graph without edge files is reported with a null edgeset_path.
    out_running: dict[str, Any] = {k: (v or None) for k, v in running.items()}
    out_done: dict[str, Any] = {k: (v or None) for k, v in done.items()}
    return out_running, out_done, fail_reason


def _pick_job_name(rng: random.Random) -> tuple[str, tuple[int, int]]:
    names = [n for n, _, _ in JOB_NAMES]
    weights = [w for _, w, _ in JOB_NAMES]
    name = rng.choices(names, weights)[0]
    return name, next(d for n, _, d in JOB_NAMES if n == name)


def _outcome(rng: random.Random, job_name: str) -> str:
    r = rng.random()
    if job_name == "ImportGraph":
        return "success" if r < 0.62 else ("partiallyFailed" if r < 0.80 else "failed")
    return "success" if r < 0.88 else "failed"


def _job_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _odd_status(job_id: str, extra: tuple[str, ...]) -> str | None:
    """For one job in five, one of ``extra`` (statuses outside the enum); a hash, not the
    scenario's random stream, chooses, so setting ``extra_statuses`` changes nothing else."""
    if not extra:
        return None
    n = int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=4).digest(), "big")
    return extra[(n // 5) % len(extra)] if n % 5 == 0 else None


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(slots=True)
class _Plan:
    job_id: str
    project_id: str
    job_name: str
    graph: str
    created: float
    started: float
    ended: float
    outcome: str
    fail_reason: str | None
    detail_running: dict[str, Any] | None
    detail_done: dict[str, Any] | None


@dataclass(order=True, slots=True)
class _Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    plan: _Plan = field(compare=False)


class NightlyImports:
    """Jobs arrive, wait, run and finish on scenario time (``speed`` × the emulated clock)."""

    name = "nightly-imports"
    mean_gap_s = 240.0
    history_s = 6 * 3600.0
    #: The first live jobs come at most this far apart (scenario seconds).
    quick_start_jobs = 3
    quick_start_gap_s = 300.0

    def __init__(self, state: EmulatorState, *, seed: int) -> None:
        self._rng = random.Random(seed)
        self._project = state.settings.project_id
        self._events: list[_Event] = []
        self._seq = itertools.count()
        origin = state.now().timestamp()
        # Scenario time s maps to wall time anchor_wall + (s - anchor_scen) / speed.
        self._anchor_wall = origin
        self._anchor_scen = origin
        self._speed = state.settings.speed
        self._last_wall = origin
        self._target = origin - self.history_s
        self._next_arrival = self._target + self._rng.expovariate(1 / self.mean_gap_s)
        self._after_origin = 0
        self._failed_after_origin = False
        self._origin = origin
        # History happens at real pace: replay it with speed 1 up to the origin.
        self._run_until(state, origin)
        # Live jobs start coming at once, so a demo has something to show within seconds.
        self._next_arrival = origin + self._rng.uniform(10, 60)

    # --- time mapping ---------------------------------------------------------------------
    def _scenario_time(self, wall: float) -> float:
        return self._anchor_scen + (wall - self._anchor_wall) * self._speed

    def _wall(self, s: float) -> float:
        if s <= self._anchor_scen:
            return self._anchor_wall - (self._anchor_scen - s)
        return self._anchor_wall + (s - self._anchor_scen) / self._speed

    # --- planning -------------------------------------------------------------------------
    def _plan(self, created: float) -> _Plan:
        rng = self._rng
        job_name, (run_lo, run_hi) = _pick_job_name(rng)
        profile = rng.choice(GRAPHS)
        outcome = _outcome(rng, job_name)
        if created > self._origin:
            self._after_origin += 1
            if outcome != "success":
                self._failed_after_origin = True
            elif self._after_origin == 2 and not self._failed_after_origin:
                # Demos must see a failure soon: one of the first two live jobs fails.
                job_name, (run_lo, run_hi) = "ImportGraph", (180, 600)
                outcome = "failed"
                self._failed_after_origin = True
        job_id = _job_id(rng)
        started = created + rng.uniform(5, 120)
        ended = started + rng.uniform(run_lo, run_hi)
        detail_running = detail_done = None
        fail_reason: str | None = None
        if job_name == "ImportGraph":
            # Log paths carry the wall time the job appears to begin at, like its begin_time.
            detail_running, detail_done, fail_reason = import_detail(
                rng, profile, job_id, _ts(self._wall(started)), outcome
            )
        elif outcome == "failed":
            fail_reason = rng.choice(_OTHER_FAILURES[job_name])
        return _Plan(
            job_id=job_id,
            project_id=self._project,
            job_name=job_name,
            graph=profile.name,
            created=created,
            started=started,
            ended=ended,
            outcome=outcome,
            fail_reason=fail_reason,
            detail_running=detail_running,
            detail_done=detail_done,
        )

    def _push(self, at: float, kind: str, plan: _Plan) -> None:
        heapq.heappush(self._events, _Event(at, next(self._seq), kind, plan))

    # --- progression ----------------------------------------------------------------------
    def advance(self, state: EmulatorState, now: datetime) -> None:
        wall = now.timestamp()
        speed = state.settings.speed
        if speed != self._speed:
            # Re-anchor so that a speed change never moves scenario time backwards.
            ref = max(self._last_wall, self._anchor_wall)
            self._anchor_scen = self._scenario_time(ref)
            self._anchor_wall = ref
            self._speed = speed
        if wall <= self._last_wall:
            return
        self._last_wall = wall
        self._run_until(state, self._scenario_time(wall))

    def _run_until(self, state: EmulatorState, target: float) -> None:
        if target <= self._target:
            return
        while True:
            next_event = self._events[0].at if self._events else float("inf")
            if self._next_arrival <= target and self._next_arrival <= next_event:
                plan = self._plan(self._next_arrival)
                self._push(plan.created, "create", plan)
                self._push(plan.started, "start", plan)
                self._push(plan.ended, "end", plan)
                gap = self._rng.expovariate(1 / self.mean_gap_s)
                if self._origin < plan.created and self._after_origin < self.quick_start_jobs:
                    gap = min(gap, self.quick_start_gap_s)
                self._next_arrival += gap
                continue
            if next_event > target:
                break
            event = heapq.heappop(self._events)
            self._apply(state, event)
        self._target = target

    def _apply(self, state: EmulatorState, event: _Event) -> None:
        plan = event.plan
        when = _ts(self._wall(event.at))
        if event.kind == "create":
            job = EmuJob(
                job_id=plan.job_id,
                project_id=plan.project_id,
                status="pending",
                job_name=plan.job_name,
                related_graph=plan.graph,
                begin_time=when,
                job_detail=plan.detail_running,
                graph_id=graph_id_for(plan.project_id, plan.graph),
            )
            if state.get(plan.job_id) is None:
                state.insert(job)
            return
        existing = state.get(plan.job_id)
        if existing is None:  # deleted through the control API meanwhile
            return
        if event.kind == "start":
            existing.status = "running"
        else:
            existing.status = _odd_status(plan.job_id, state.settings.extra_statuses) or plan.outcome
            existing.end_time = when
            existing.fail_reason = plan.fail_reason
            if plan.detail_done is not None:
                existing.job_detail = plan.detail_done
        state.touch()


class Quiet:
    """Five succeeded jobs in the last hours; nothing moves."""

    name = "quiet"

    def __init__(self, state: EmulatorState, *, seed: int) -> None:
        rng = random.Random(seed)
        now = state.now()
        pid = state.settings.project_id
        jobs: list[EmuJob] = []
        for i, (job_name, graph) in enumerate(
            (
                ("ImportGraph", GRAPHS[0]),
                ("StartGraph", GRAPHS[1]),
                ("ExportGraph", GRAPHS[0]),
                ("AddBackup", GRAPHS[1]),
                ("ImportGraph", GRAPHS[1]),
            )
        ):
            job_id = _job_id(rng)
            begin = now - timedelta(hours=5 - i, minutes=rng.randint(0, 40))
            detail = None
            if job_name == "ImportGraph":
                _, detail, _ = import_detail(rng, graph, job_id, begin, "success")
            jobs.append(
                EmuJob(
                    job_id=job_id,
                    project_id=pid,
                    status="success",
                    job_name=job_name,
                    related_graph=graph.name,
                    begin_time=begin,
                    end_time=begin + timedelta(seconds=rng.randint(40, 900)),
                    job_detail=detail,
                    graph_id=graph_id_for(pid, graph.name),
                )
            )
        state.insert_many(jobs)

    def advance(self, state: EmulatorState, now: datetime) -> None:
        return None


class LargeHistory:
    """``large_count`` finished jobs over the last 30 days (the newest few still running)."""

    name = "large"
    days = 30

    def __init__(self, state: EmulatorState, *, seed: int) -> None:
        rng = random.Random(seed)
        count = state.settings.large_count
        now = state.now()
        pid = state.settings.project_id
        span = self.days * 86400.0
        offsets = sorted(rng.random() * span for _ in range(count))
        # A few prebuilt details per graph and outcome keep 100k jobs fast to build (they are
        # never mutated in place: a PATCH replaces job_detail whole).
        details: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for profile in GRAPHS:
            for outcome in ("success", "partiallyFailed", "failed"):
                details[(profile.name, outcome)] = [
                    import_detail(rng, profile, _job_id(rng), now, outcome)[1] for _ in range(4)
                ]
        graph_ids = {g.name: graph_id_for(pid, g.name) for g in GRAPHS}
        running_from = max(0, count - max(1, count // 500))
        jobs: list[EmuJob] = []
        for i, offset in enumerate(offsets):
            begin = now - timedelta(seconds=span - offset)
            job_name, (lo, hi) = _pick_job_name(rng)
            profile = GRAPHS[rng.randrange(len(GRAPHS))]
            if i >= running_from:
                status, end, reason, detail = "running", None, None, None
            else:
                status = _outcome(rng, job_name)
                end = begin + timedelta(seconds=rng.uniform(lo, hi))
                reason = (
                    rng.choice(_OTHER_FAILURES[job_name])
                    if status == "failed" and job_name != "ImportGraph"
                    else ("Import failed; see job_detail." if status == "failed" else None)
                )
                detail = rng.choice(details[(profile.name, status)]) if job_name == "ImportGraph" else None
            jobs.append(
                EmuJob(
                    job_id=_job_id(rng),
                    project_id=pid,
                    status=status,
                    job_name=job_name,
                    related_graph=profile.name,
                    begin_time=begin,
                    end_time=end,
                    job_detail=detail,
                    fail_reason=reason,
                    graph_id=graph_ids[profile.name],
                )
            )
        state.insert_many(jobs)

    def advance(self, state: EmulatorState, now: datetime) -> None:
        return None


def start_scenario(state: EmulatorState) -> ScenarioDriver | None:
    """Build the scenario named by ``state.settings.scenario`` (seeding its jobs) and attach it."""
    name = state.settings.scenario
    seed = state.settings.seed
    scenario: ScenarioDriver | None
    if name == "quiet":
        scenario = Quiet(state, seed=seed)
    elif name == "nightly-imports":
        scenario = NightlyImports(state, seed=seed)
    elif name == "large":
        scenario = LargeHistory(state, seed=seed)
    else:
        scenario = None
    state.scenario = scenario
    return scenario
