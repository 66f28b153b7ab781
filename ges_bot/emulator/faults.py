"""Fault injection: a FIFO queue of misbehaviours applied to the next public answers.

Owns the fault spec (``POST /_emulator/faults`` bodies) and the queue. A spec may combine a
delay with one effect::

    {"status": 503, "count": 5}              next 5 answers: that status + a GES error body
    {"status": 401}                          (401/403 get the API gateway's APIG.0301 body)
    {"latency_ms": 2000, "count": 3}         answer normally, 2 s late
    {"malformed": true}                      200 with a non-JSON (HTML) body
    {"truncated": true}                      the real JSON answer cut mid-way
    {"shift": true}                          after the next list answer, a new job is inserted at
                                             the head of the list order (offsets shift)
    {"job_count": 1000000}                   the list answer claims this job_count (its jobs are real)
    {"huge_bytes": 104857600}                200 with a JSON body of that many bytes, streamed
                                             (a job list whose one extra string never ends soon)
    {"nested": 100000}                       200 with JSON nested that deep (``[[[…]]]``)
    {"error_code": "GES.7005", "error_msg": "…"}   override the error body of a status fault

``count`` defaults to 1; ``-1`` means until ``DELETE /_emulator/faults``. ``target`` chooses
which answers a fault hits: ``ges`` (default: the job-center routes, so a bot's IAM token
request does not eat a fault meant for the job list), ``iam`` or ``all``. Faults apply before
authentication, like an outage in front of the service. ``expire_tokens`` is not queued: the
app applies it at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["Fault", "FaultQueue", "FaultSpecError", "Target", "parse_fault"]

Target = Literal["ges", "iam", "all"]
_KEYS = frozenset(
    {
        "status",
        "error_code",
        "error_msg",
        "latency_ms",
        "malformed",
        "truncated",
        "shift",
        "job_count",
        "huge_bytes",
        "nested",
        "count",
        "target",
    }
)


class FaultSpecError(ValueError):
    """A fault spec the emulator does not understand."""


@dataclass(slots=True)
class Fault:
    status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    latency_ms: int = 0
    malformed: bool = False
    truncated: bool = False
    shift: bool = False
    job_count: int | None = None
    huge_bytes: int | None = None
    nested: int | None = None
    count: int = 1
    target: Target = "ges"

    def view(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("status", self.status),
                ("error_code", self.error_code),
                ("error_msg", self.error_msg),
                ("latency_ms", self.latency_ms or None),
                ("malformed", self.malformed or None),
                ("truncated", self.truncated or None),
                ("shift", self.shift or None),
                ("job_count", self.job_count),
                ("huge_bytes", self.huge_bytes),
                ("nested", self.nested),
                ("count", self.count),
                ("target", self.target),
            )
            if v is not None
        }


def _flag(spec: dict[str, Any], name: str) -> bool:
    value = spec.get(name, False)
    if not isinstance(value, bool):
        raise FaultSpecError(f"{name} must be true or false")
    return value


def parse_fault(spec: object) -> Fault:
    if not isinstance(spec, dict):
        raise FaultSpecError('a fault is a JSON object such as {"status": 503, "count": 2}')
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise FaultSpecError(f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    status = spec.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultSpecError("status must be an HTTP error status from 400 to 599")
    latency = spec.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise FaultSpecError("latency_ms must be a non-negative number")
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or (count < 1 and count != -1):
        raise FaultSpecError("count must be a positive integer, or -1 for 'until cleared'")
    target = spec.get("target", "ges")
    if target not in get_args(Target):
        raise FaultSpecError("target must be ges, iam or all")
    for name in ("error_code", "error_msg"):
        if spec.get(name) is not None and not isinstance(spec[name], str):
            raise FaultSpecError(f"{name} must be a string")
    sizes: dict[str, int | None] = {}
    for name in ("job_count", "huge_bytes", "nested"):
        value = spec.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise FaultSpecError(f"{name} must be a non-negative integer")
        sizes[name] = value
    fault = Fault(
        status=status,
        error_code=spec.get("error_code"),
        error_msg=spec.get("error_msg"),
        latency_ms=int(latency),
        malformed=_flag(spec, "malformed"),
        truncated=_flag(spec, "truncated"),
        shift=_flag(spec, "shift"),
        job_count=sizes["job_count"],
        huge_bytes=sizes["huge_bytes"],
        nested=sizes["nested"],
        count=count,
        target=target,
    )
    effects = sum(
        (
            fault.status is not None,
            fault.malformed,
            fault.truncated,
            fault.shift,
            fault.job_count is not None,
            fault.huge_bytes is not None,
            fault.nested is not None,
        )
    )
    kinds = "status, malformed, truncated, shift, job_count, huge_bytes, nested"
    if effects > 1:
        raise FaultSpecError(f"give at most one of {kinds} per fault (queue several)")
    if effects == 0 and not fault.latency_ms:
        raise FaultSpecError(f"a fault needs latency_ms or one of {kinds}")
    return fault


class FaultQueue:
    """Faults in the order they were added; each answer takes the first one that applies."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> int:
        n = len(self._faults)
        self._faults.clear()
        return n

    def pending(self) -> list[dict[str, Any]]:
        return [f.view() for f in self._faults]

    def take(self, area: Literal["ges", "iam"], *, is_list: bool) -> Fault | None:
        """The fault for the next answer in ``area`` (and use one of its count), or None.
        A ``shift`` fault waits for a job-list request."""
        for fault in self._faults:
            if fault.target not in (area, "all"):
                continue
            if fault.shift and not is_list:
                continue
            if fault.count > 0:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
            return fault
        return None
