"""The emulated IAM: ``POST /v3/auth/tokens`` with the password method, and the token registry.

Owns issued and static tokens (:class:`TokenRegistry`) and the token request's validation and
answers, which follow Huawei IAM: 201 with the token in the ``X-Subject-Token`` header and
``{"token": {"expires_at", "issued_at", "methods", "project", "user", "roles", "catalog"}}``;
errors in Keystone's ``{"error": {"code", "message", "title"}}`` shape. Scopes: ``project.id``,
``project.name`` (the emulator's region name → its ``project_id``), or none/domain (a token that
no GES project accepts). Expiry is judged on the emulated clock.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ges_bot.emulator.settings import EmulatorSettings, IamUser

__all__ = ["IamAnswer", "TokenRecord", "TokenRegistry", "format_iam_time", "issue_token"]

_NS = uuid.UUID("0c7f6f0e-2b6d-4a43-9a51-7f0d1c2e3b4a")


def format_iam_time(when: datetime) -> str:
    """IAM's form: ``2020-01-04T09:05:22.701000Z``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class TokenRecord:
    token: str = field(repr=False)
    #: Projects the token is scoped to. For a static token ``()`` = the emulator's project and
    #: ``("*",)`` = all; an issued token covers exactly its one project (none when unscoped).
    project_ids: tuple[str, ...]
    expires_at: datetime | None
    issued_at: datetime | None = None
    user: str | None = None
    static: bool = False

    def covers(self, settings: EmulatorSettings, project_id: str) -> bool:
        if self.static:
            return settings.covers(self.project_ids, project_id)
        return project_id in self.project_ids

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class TokenRegistry:
    """Every token the gateway knows: the configured static ones and those IAM issued."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self._tokens: dict[str, TokenRecord] = {}
        for st in settings.static_tokens:
            self._tokens[st.token] = TokenRecord(st.token, st.project_ids, st.expires_at, static=True)

    def get(self, token: str) -> TokenRecord | None:
        return self._tokens.get(token)

    def add(self, record: TokenRecord) -> None:
        self._tokens[record.token] = record

    def expire_all(self, now: datetime) -> int:
        """Make every token known now expired (tokens issued later are valid again)."""
        past = now - timedelta(seconds=1)
        for record in self._tokens.values():
            if record.expires_at is None or record.expires_at > past:
                record.expires_at = past
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)


@dataclass(frozen=True, slots=True)
class IamAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, title: str, message: str) -> IamAnswer:
    return IamAnswer(status, {"error": {"code": status, "message": message, "title": title}})


def _id(kind: str, name: str) -> str:
    return uuid.uuid5(_NS, f"{kind}/{name}").hex


def _find_user(settings: EmulatorSettings, domain: str | None, name: str) -> IamUser | None:
    for user in settings.users:
        if user.name == name and domain in (user.domain, _id("domain", user.domain)):
            return user
    return None


def issue_token(settings: EmulatorSettings, registry: TokenRegistry, body: object, now: datetime) -> IamAnswer:
    """Validate a token request and, if the password is right, register and return a token."""
    try:
        auth = body["auth"]  # type: ignore[index]
        identity = auth["identity"]
        methods = identity["methods"]
    except (KeyError, TypeError):
        return _error(400, "Bad Request", "The request body is invalid: auth.identity.methods is required.")
    if not isinstance(methods, list) or "password" not in methods:
        return _error(400, "Bad Request", "Only the password method is supported by this emulator.")
    try:
        user_spec = identity["password"]["user"]
        name = user_spec["name"]
        password = user_spec["password"]
        domain_spec = user_spec.get("domain") or {}
        domain = domain_spec.get("name") or domain_spec.get("id")
    except (KeyError, TypeError, AttributeError):
        return _error(400, "Bad Request", "The request body is invalid: identity.password.user is incomplete.")
    if not all(isinstance(v, str) for v in (name, password)) or not isinstance(domain, str):
        return _error(400, "Bad Request", "The request body is invalid: user name, password and domain are strings.")
    user = _find_user(settings, domain, name)
    if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
        return _error(401, "Unauthorized", "The username or password is wrong.")

    scope = auth.get("scope") if isinstance(auth, dict) else None
    project: dict[str, Any] | None = None
    project_ids: tuple[str, ...] = ()
    if isinstance(scope, dict) and isinstance(scope.get("project"), dict):
        wanted = scope["project"]
        pid = wanted.get("id")
        if pid is None and wanted.get("name") == settings.region:
            pid = settings.project_id
        if not isinstance(pid, str):
            return _error(400, "Bad Request", f"Could not find project: {wanted.get('name') or wanted}.")
        if not settings.covers(user.project_ids, pid):
            return _error(401, "Unauthorized", "The user has no access to the requested project.")
        name_of = settings.region if pid == settings.project_id else f"{settings.region}_{pid[:6]}"
        project = {"id": pid, "name": name_of, "domain": {"id": _id("domain", user.domain), "name": user.domain}}
        project_ids = (pid,)

    token = "MII" + secrets.token_urlsafe(192)
    expires = now + timedelta(seconds=settings.token_lifetime_s)
    registry.add(TokenRecord(token, project_ids, expires, issued_at=now, user=user.name))
    body_out: dict[str, Any] = {
        "token": {
            "expires_at": format_iam_time(expires),
            "issued_at": format_iam_time(now),
            "methods": ["password"],
            "catalog": [],
            "roles": [{"id": _id("role", "ges_adm"), "name": "ges_adm"}],
            "user": {
                "domain": {"id": _id("domain", user.domain), "name": user.domain},
                "id": _id("user", f"{user.domain}/{user.name}"),
                "name": user.name,
                "password_expires_at": "",
            },
        }
    }
    if project is not None:
        body_out["token"]["project"] = project
    else:
        body_out["token"]["domain"] = {"id": _id("domain", user.domain), "name": user.domain}
    return IamAnswer(201, body_out, {"X-Subject-Token": token})
