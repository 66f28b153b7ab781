"""The emulator's HTTP face: GES job-center and IAM routes, and the ``/_emulator`` control API.

Owns routing, the order in which a public request is handled — count it, move the scenario on,
apply the next fault (before authentication, as an outage in front of the service would), let the
gateway authenticate, answer — and the answers' JSON encoding. Every answer carries an
``X-Request-Id`` (32 hex digits). Decisions live in the sibling modules: ``query`` (the list
rules), ``gateway`` (who may call), ``iam`` (tokens), ``faults``, ``scenarios``, ``state``.

Public routes::

    GET  /v2/{project_id}/graphs/jobs                              list jobs (v2, snake_case)
    GET  /v2/{project_id}/graphs/{graph_id}/jobs/{job_id}/status   one job (same ten fields)
    POST /v3/auth/tokens                                           IAM password → token

Control routes (no auth; JSON; errors are ``{"error": "…"}``)::

    GET|POST|DELETE  /_emulator/jobs          list all (raw) | add one (201) | delete all
    POST             /_emulator/jobs/bulk     {"jobs": [...], "project_id"?} → {"created", "job_ids"}
    GET|PATCH|DELETE /_emulator/jobs/{id}     one job | change wire fields | delete (204)
    GET|POST|DELETE  /_emulator/faults        pending | add (spec or list; or {"expire_tokens": true}) | clear
    GET|DELETE       /_emulator/stats         {"requests", "responses", "recent"} | reset
    GET|POST         /_emulator/clock         {"now"} | {"advance_s": N} or {"now": iso}
    GET|POST         /_emulator/settings      settings (no secrets) | change run-time settings
    GET              /_emulator/health        {"ok": true, "jobs": N, "scenario": …}
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ges_bot.emulator.faults import Fault, FaultSpecError, parse_fault
from ges_bot.emulator.gateway import authenticate
from ges_bot.emulator.iam import issue_token
from ges_bot.emulator.model import JobInputError, parse_time
from ges_bot.emulator.query import QueryParamError, parse_query
from ges_bot.emulator.scenarios import start_scenario
from ges_bot.emulator.settings import EmulatorSettings
from ges_bot.emulator.state import EmulatorState, JobExistsError

__all__ = ["LIST_ROUTE", "STATUS_ROUTE", "TOKEN_ROUTE", "create_app", "emulator_state"]

log = logging.getLogger(__name__)

LIST_ROUTE = "/v2/{project_id}/graphs/jobs"
STATUS_ROUTE = "/v2/{project_id}/graphs/{graph_id}/jobs/{job_id}/status"
TOKEN_ROUTE = "/v3/auth/tokens"  # noqa: S105 - a route, not a secret
_RID = "ges_emulator.request_id"
_JSON = "application/json;charset=UTF-8"
_MALFORMED = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _rid(request: Request) -> str:
    return str(request.scope.get(_RID, ""))


@dataclass(slots=True)
class _Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _RequestId:
    """Adds ``X-Request-Id`` to every answer; turns an emulator bug into a 500 GES body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope[_RID] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-Id", rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("emulator error answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                body = _encode({"error_code": "GES.9999", "error_msg": "Internal server error."})
                await Response(body, 500, {"X-Request-Id": rid}, media_type=_JSON)(scope, receive, send)


# --- public routes ---------------------------------------------------------------------------

_GES_STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("GES.0001", "Incorrect parameter."),
    404: ("APIG.0101", "The API does not exist or has not been published in the environment."),
    408: ("GES.7005", "The graph engine is unavailable. Try again later."),
    429: ("APIG.0308", "The throttling threshold has been reached."),
    500: ("GES.9999", "Internal server error."),
    502: ("APIG.0202", "Backend unavailable."),
    503: ("GES.9999", "Service unavailable. Try again later."),
    504: ("APIG.0201", "Backend timeout."),
}


def _fault_answer(fault: Fault, area: Literal["ges", "iam"], rid: str) -> _Answer:
    status = fault.status or 500
    if area == "iam":
        msg = fault.error_msg or "The service is temporarily unavailable."
        return _Answer(status, {"error": {"code": status, "message": msg, "title": "Error"}})
    if status in (401, 403):
        code, msg = "APIG.0301", "Incorrect IAM authentication information: decrypt token fail"
    else:
        code, msg = _GES_STATUS_ERRORS.get(status, ("GES.9999", "failed"))
    body: dict[str, Any] = {"error_code": fault.error_code or code, "error_msg": fault.error_msg or msg}
    if body["error_code"].startswith("APIG."):
        body["request_id"] = rid
    return _Answer(status, body)


_Handler = Callable[[Request, EmulatorState], Awaitable[_Answer]]


def _public(method: str, template: str, area: Literal["ges", "iam"], handler: _Handler) -> Route:
    is_list = template == LIST_ROUTE
    route_key = f"{method} {template}"

    async def endpoint(request: Request) -> Response:
        state = emulator_state(request.app)
        state.tick()
        fault = state.faults.take(area, is_list=is_list)
        if fault is not None and fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault is not None and fault.status is not None:
            answer = _fault_answer(fault, area, _rid(request))
        else:
            answer = await handler(request, state)
        if fault is not None and fault.job_count is not None and isinstance(answer.body, dict) and answer.status == 200:
            answer.body["job_count"] = fault.job_count
        body = _encode(answer.body)
        if fault is not None and fault.huge_bytes is not None:
            state.stats.record(route_key, 200, request.url.path, request.url.query, _rid(request))
            return StreamingResponse(_huge_body(fault.huge_bytes), 200, answer.headers, media_type=_JSON)
        if fault is not None and fault.nested is not None:
            answer.status, body = 200, b"[" * fault.nested + b"]" * fault.nested
        if fault is not None and fault.malformed:
            answer.status, body = 200, _MALFORMED
        elif fault is not None and fault.truncated:
            body = body[: max(1, len(body) // 2)]
        if fault is not None and fault.shift and answer.status == 200:
            state.insert_at_head(request.path_params["project_id"])
        state.stats.record(route_key, answer.status, request.url.path, request.url.query, _rid(request))
        return Response(body, answer.status, answer.headers, media_type=_JSON)

    return Route(template, endpoint, methods=[method])


async def _huge_body(size: int) -> AsyncIterator[bytes]:
    """A job list of ``size`` bytes, a megabyte at a time (never held whole)."""
    head, tail = b'{"job_count":0,"job_list":[],"padding":"', b'"}'
    yield head
    chunk = b"x" * (1 << 20)
    left = max(0, size - len(head) - len(tail))
    while left > 0:
        yield chunk[: min(left, len(chunk))]
        left -= len(chunk)
    yield tail


def _ges_error(status: int, code: str, msg: str, rid: str) -> _Answer:
    body: dict[str, Any] = {"error_code": code, "error_msg": msg}
    if code.startswith("APIG."):
        body["request_id"] = rid
    return _Answer(status, body)


async def _authenticate(request: Request, state: EmulatorState, project_id: str) -> _Answer | None:
    denied = authenticate(
        settings=state.settings,
        tokens=state.tokens,
        method=request.method,
        path=request.url.path,
        query=request.query_params.multi_items(),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
        project_id=project_id,
        now=state.now(),
        real_now=state.clock.real_now(),
    )
    if denied is None:
        return None
    return _ges_error(denied.status, denied.error_code, denied.error_msg, _rid(request))


async def _list_jobs(request: Request, state: EmulatorState) -> _Answer:
    project_id = request.path_params["project_id"]
    denied = await _authenticate(request, state, project_id)
    if denied is not None:
        return denied
    try:
        query = parse_query(dict(request.query_params.multi_items()), state.settings)
    except QueryParamError as exc:
        return _ges_error(400, "GES.0001", str(exc), _rid(request))
    count, jobs = state.page(project_id, query)
    fmt, suffix = state.settings.time_format, state.settings.time_zone_suffix
    return _Answer(200, {"job_count": count, "job_list": [job.to_wire(fmt, suffix) for job in jobs]})


async def _show_job(request: Request, state: EmulatorState) -> _Answer:
    project_id = request.path_params["project_id"]
    denied = await _authenticate(request, state, project_id)
    if denied is not None:
        return denied
    job = state.find(project_id, request.path_params["graph_id"], request.path_params["job_id"])
    if job is None:
        return _ges_error(400, "GES.7007", "The job does not exist.", _rid(request))
    return _Answer(200, job.to_wire(state.settings.time_format, state.settings.time_zone_suffix))


async def _issue_token(request: Request, state: EmulatorState) -> _Answer:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        body = None
    answer = issue_token(state.settings, state.tokens, body, state.now())
    return _Answer(answer.status, answer.body, dict(answer.headers))


# --- control routes --------------------------------------------------------------------------


class _BadControl(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _control_json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status, media_type=_JSON)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise _BadControl(400, "the body is not JSON") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _BadControl(400, f"{what} must be a JSON object")
    return value


_Control = Callable[[Request, EmulatorState], Awaitable[Response]]


def _control(path: str, methods: list[str], handler: _Control) -> Route:
    async def endpoint(request: Request) -> Response:
        state = emulator_state(request.app)
        state.tick()
        try:
            return await handler(request, state)
        except _BadControl as exc:
            return _control_json({"error": exc.message}, exc.status)
        except JobInputError as exc:
            return _control_json({"error": str(exc)}, 400)
        except JobExistsError as exc:
            return _control_json({"error": str(exc)}, 409)

    return Route(path, endpoint, methods=methods)


def _job_or_404(state: EmulatorState, job_id: str) -> Any:
    job = state.get(job_id)
    if job is None:
        raise _BadControl(404, f"no job {job_id}")
    return job


async def _c_jobs(request: Request, state: EmulatorState) -> Response:
    if request.method == "GET":
        project = request.query_params.get("project_id")
        jobs = [j.to_control() for j in state.all_jobs() if project is None or j.project_id == project]
        return _control_json({"count": len(jobs), "jobs": jobs})
    if request.method == "DELETE":
        return _control_json({"deleted": state.clear()})
    data = _object(await _body(request), "a job")
    return _control_json(state.add_from_input(data).to_control(), 201)


async def _c_bulk(request: Request, state: EmulatorState) -> Response:
    data = await _body(request)
    project_id = None
    if isinstance(data, dict):
        project_id = data.get("project_id")
        data = data.get("jobs")
    if not isinstance(data, list) or not all(isinstance(j, dict) for j in data):
        raise _BadControl(400, 'bulk body is {"jobs": [job, ...], "project_id"?: ...} or a list of jobs')
    jobs = state.add_many(data, project_id=project_id)
    return _control_json({"created": len(jobs), "job_ids": [j.job_id for j in jobs]}, 201)


async def _c_job(request: Request, state: EmulatorState) -> Response:
    job_id = request.path_params["job_id"]
    job = _job_or_404(state, job_id)
    if request.method == "DELETE":
        state.delete(job_id)
        return Response(status_code=204)
    if request.method == "PATCH":
        job = state.patch(job_id, _object(await _body(request), "a patch"))
    return _control_json(job.to_control())


async def _c_faults(request: Request, state: EmulatorState) -> Response:
    if request.method == "DELETE":
        return _control_json({"cleared": state.faults.clear()})
    if request.method == "POST":
        data = await _body(request)
        if isinstance(data, dict) and "expire_tokens" in data:
            if data != {"expire_tokens": True}:
                raise _BadControl(400, 'expire_tokens is given alone: {"expire_tokens": true}')
            return _control_json({"expired": state.tokens.expire_all(state.now())})
        specs = data if isinstance(data, list) else [data]
        try:
            faults = [parse_fault(spec) for spec in specs]
        except FaultSpecError as exc:
            raise _BadControl(400, str(exc)) from None
        for fault in faults:
            state.faults.add(fault)
        return _control_json({"faults": state.faults.pending()}, 201)
    return _control_json({"faults": state.faults.pending()})


async def _c_stats(request: Request, state: EmulatorState) -> Response:
    if request.method == "DELETE":
        state.stats.reset()
        return _control_json({"reset": True})
    return _control_json(state.stats.view())


def _clock_view(state: EmulatorState) -> dict[str, Any]:
    return {
        "now": state.now().astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "offset_s": state.clock.offset.total_seconds(),
    }


async def _c_clock(request: Request, state: EmulatorState) -> Response:
    if request.method == "POST":
        data = _object(await _body(request), "a clock change")
        if set(data) == {"advance_s"} and isinstance(data["advance_s"], int | float) and data["advance_s"] >= 0:
            state.clock.advance(float(data["advance_s"]))
        elif set(data) == {"now"} and isinstance(data["now"], str):
            try:
                when = parse_time(data["now"], "now")
            except JobInputError as exc:
                raise _BadControl(400, str(exc)) from None
            assert when is not None
            state.clock.set(when)
        else:
            raise _BadControl(400, 'give {"advance_s": seconds >= 0} or {"now": "2024-01-02T03:04:05Z"}')
        state.tick()
    return _control_json(_clock_view(state))


async def _c_settings(request: Request, state: EmulatorState) -> Response:
    if request.method == "POST":
        changes = _object(await _body(request), "a settings change")
        try:
            state.update_settings(changes)
        except ValueError as exc:
            raise _BadControl(400, str(exc)) from None
    return _control_json(state.settings.public_view())


async def _c_health(request: Request, state: EmulatorState) -> Response:
    return _control_json({"ok": True, "jobs": len(state), "scenario": state.settings.scenario, **_clock_view(state)})


# --- errors for unknown routes ---------------------------------------------------------------


async def _unknown(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if request.url.path.startswith("/_emulator"):
        text = "method not allowed" if status == 405 else f"no control route {request.url.path}"
        return _control_json({"error": text}, status)
    # The gateway answers an unknown API (or method) the same way.
    state = emulator_state(request.app)
    state.stats.record(f"{request.method} (unmatched)", 404, request.url.path, request.url.query, _rid(request))
    body = {
        "error_code": "APIG.0101",
        "error_msg": "The API does not exist or has not been published in the environment.",
        "request_id": _rid(request),
    }
    return Response(_encode(body), 404, media_type=_JSON)


def emulator_state(app: Starlette) -> EmulatorState:
    """The state behind an app made by :func:`create_app` (for in-process use)."""
    state: EmulatorState = app.state.emulator
    return state


def create_app(settings: EmulatorSettings | None = None, *, state: EmulatorState | None = None) -> Starlette:
    """The emulator as an ASGI app. Its state (jobs, clock, faults…) is ``app.state.emulator``;
    the configured scenario is seeded now."""
    if state is None:
        state = EmulatorState(settings or EmulatorSettings())
        start_scenario(state)
    routes = [
        _public("GET", LIST_ROUTE, "ges", _list_jobs),
        _public("GET", STATUS_ROUTE, "ges", _show_job),
        _public("POST", TOKEN_ROUTE, "iam", _issue_token),
        _control("/_emulator/jobs", ["GET", "POST", "DELETE"], _c_jobs),
        _control("/_emulator/jobs/bulk", ["POST"], _c_bulk),
        _control("/_emulator/jobs/{job_id}", ["GET", "PATCH", "DELETE"], _c_job),
        _control("/_emulator/faults", ["GET", "POST", "DELETE"], _c_faults),
        _control("/_emulator/stats", ["GET", "DELETE"], _c_stats),
        _control("/_emulator/clock", ["GET", "POST"], _c_clock),
        _control("/_emulator/settings", ["GET", "POST"], _c_settings),
        _control("/_emulator/health", ["GET"], _c_health),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _unknown, 405: _unknown})
    app.router.redirect_slashes = False
    app.add_middleware(_RequestId)
    app.state.emulator = state
    return app
