"""The emulated API gateway: who may call the job-center routes (token or AK/SK), and for which project.

Owns the authentication decision for one GES request and the gateway's error answers, worded as
Huawei's API gateway words them (401, ``APIG.0301``, "Incorrect IAM authentication information:
…"). AK/SK signatures are re-derived with :mod:`ges_bot.jobcenter.signing` over exactly the
headers the request's ``SignedHeaders`` lists. The 15-minute ``X-Sdk-Date`` rule uses the *real*
clock (clients sign with theirs); token expiry uses the emulated clock. A project the credentials
do not cover is refused with GES.0016 (status ``project_mismatch_status``, 400 by default).
Secrets never appear in answers: an unknown AK is shown masked.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ges_bot.emulator.iam import TokenRegistry, format_iam_time
from ges_bot.emulator.settings import EmulatorSettings
from ges_bot.jobcenter.signing import SDK_DATE_FORMAT, compute_signature, parse_authorization

__all__ = ["Denied", "authenticate"]

_PREFIX = "Incorrect IAM authentication information: "


@dataclass(frozen=True, slots=True)
class Denied:
    status: int
    error_code: str
    error_msg: str


def _apig(msg: str) -> Denied:
    return Denied(401, "APIG.0301", _PREFIX + msg)


def _mismatch(settings: EmulatorSettings) -> Denied:
    return Denied(
        settings.project_mismatch_status,
        "GES.0016",
        "The project ID in the URL does not match the credentials (project and token do not match).",
    )


def _mask(ak: str) -> str:
    return ak[:4] + "******" if len(ak) > 4 else "******"


def authenticate(
    *,
    settings: EmulatorSettings,
    tokens: TokenRegistry,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    project_id: str,
    now: datetime,
    real_now: datetime,
) -> Denied | None:
    """None when the request may proceed; otherwise the answer to give. ``headers`` has lower-case keys."""
    token = headers.get("x-auth-token")
    if token:
        record = tokens.get(token)
        if record is None:
            return _apig("decrypt token fail")
        if record.expired(now):
            assert record.expires_at is not None
            return _apig(f"token expires, expires_at: {format_iam_time(record.expires_at)}")
        return None if record.covers(settings, project_id) else _mismatch(settings)

    authorization = headers.get("authorization")
    if not authorization:
        return _apig("x-auth-token not found")
    try:
        ak, signed_names, signature = parse_authorization(authorization)
    except ValueError as exc:
        return _apig(f"verify aksk signature fail, {exc}")
    credential = next((c for c in settings.all_aksk() if c.ak == ak), None)
    if credential is None:
        return _apig(f"Get secretKey failed,ak:{_mask(ak)},err:ak not exist")
    raw_date = headers.get("x-sdk-date")
    if not raw_date:
        return _apig("verify aksk signature fail, X-Sdk-Date is missing")
    try:
        signed_at = datetime.strptime(raw_date, SDK_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return _apig("verify aksk signature fail, X-Sdk-Date is not in the form yyyymmddTHHMMSSZ")
    if abs((real_now - signed_at).total_seconds()) > settings.max_clock_skew_s:
        return _apig(
            f"verify aksk signature fail, X-Sdk-Date {raw_date} is more than "
            f"{settings.max_clock_skew_s / 60:g} minutes from the server time"
        )
    try:
        expected = compute_signature(
            sk=credential.sk,
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            signed_header_names=signed_names,
        )
    except ValueError as exc:
        return _apig(f"verify aksk signature fail, {exc}")
    if not hmac.compare_digest(expected.signature, signature):
        return _apig("verify aksk signature fail")
    header_project = headers.get("x-project-id")
    if header_project and header_project != project_id:
        return _mismatch(settings)
    return None if settings.covers(credential.project_ids, project_id) else _mismatch(settings)
