"""Pure is pure: no module docs/architecture.md calls pure pulls in an HTTP client, a database or
the Slack Web API client, however indirectly.

Each module is imported in a fresh interpreter and ``sys.modules`` read afterwards, so the import
closure is the module's own — not whatever other tests happened to import first.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARCHITECTURE = REPO / "docs" / "architecture.md"

#: Top-level packages (or exact modules) a pure module must never import. slack_sdk's Block Kit
#: models are data and allowed; its async Web API client is I/O.
FORBIDDEN = ("httpx", "sqlalchemy", "aiohttp", "asyncpg", "pydantic_settings", "slack_sdk.web.async_client")

#: The core the architecture is built on: if the document stopped calling one of these pure,
#: that is a change of design to make on purpose, here too.
CORE = {
    "domain",
    "jobcenter.wire",
    "jobcenter.signing",
    "jobcenter.reading",
    "watch.diff",
    "notify.routing",
    "notify.mrkdwn",
    "notify.limits",
    "notify.blockkit",
    "notify.document",
    "notify.render",
    "slackapp.commands",
    "slackapp.answers",
    "slackapp.views",
    "store.api",
}

_ROW = re.compile(r"^\|\s*`(?P<module>[a-z_.]+)`\s*\|(?P<rest>.*)$")


def pure_modules(text: str) -> set[str]:
    """Modules whose row in the document's module table says, first thing, that they are pure
    (``| `watch.diff` | pure: … | … |``)."""
    found = set()
    for line in text.splitlines():
        match = _ROW.match(line)
        if match and match["rest"].split("|")[0].strip().lower().startswith("pure"):
            found.add(match["module"])
    return found


def closure(module: str) -> list[str]:
    """Every module loaded by importing ``ges_bot.<module>`` in a fresh interpreter."""
    code = f"import importlib, json, sys; importlib.import_module('ges_bot.{module}'); print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def forbidden_in(loaded: list[str]) -> list[str]:
    return sorted(name for name in loaded for bad in FORBIDDEN if name == bad or name.startswith(bad + "."))


def documented_modules(text: str) -> set[str]:
    """Every module (or package) the document's module table has a row for."""
    return {match["module"] for line in text.splitlines() if (match := _ROW.match(line))}


def test_every_module_has_a_row() -> None:
    """A module the table does not name has no stated owner or limits, and escapes the purity check."""
    rows = documented_modules(ARCHITECTURE.read_text(encoding="utf-8"))
    package = REPO / "ges_bot"
    missing = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__") or "migrations" in parts:
            continue
        module = ".".join(parts)
        if not any(module == row or module.startswith(row + ".") for row in rows):
            missing.append(module)
    assert missing == [], f"docs/architecture.md has no row for {missing}"


def test_the_document_names_the_pure_core() -> None:
    listed = pure_modules(ARCHITECTURE.read_text(encoding="utf-8"))
    assert listed >= CORE, f"docs/architecture.md no longer calls these pure: {sorted(CORE - listed)}"


@pytest.mark.parametrize("module", sorted(pure_modules(ARCHITECTURE.read_text(encoding="utf-8")) | CORE))
def test_pure_module_imports_no_io(module: str) -> None:
    loaded = closure(module)
    assert f"ges_bot.{module}" in loaded
    assert forbidden_in(loaded) == [], f"ges_bot.{module} (pure) imports I/O libraries"


def test_the_check_sees_io() -> None:
    """The walk finds I/O where there is some: the store's implementation imports SQLAlchemy."""
    assert "sqlalchemy" in forbidden_in(closure("store.sql"))
    assert forbidden_in(["slack_sdk", "slack_sdk.models.blocks"]) == []
    assert forbidden_in(["slack_sdk.web.async_client"]) == ["slack_sdk.web.async_client"]
