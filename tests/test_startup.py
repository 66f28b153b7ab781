"""What ``ges-bot run`` imports before its first tick: the resident memory of the idle process is
mostly its imports (docs/benchmarks.md §7), so libraries only other subcommands or optional
features use stay out of it.

Each check runs in a fresh interpreter, so the import closure is the command's own — not whatever
other tests happened to import first.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Imported by the demo, the emulator, ``check``, ``poll``, httpx's command-line client or a
#: group-bot sink — never needed to start ``ges-bot run``.
NOT_AT_START = (
    "rich",
    "pygments",
    "markdown_it",
    "babel",
    "ges_bot.demo",
    "ges_bot.emulator",
    "ges_bot.standin",
    "ges_bot.check",
    "ges_bot.watch.cli",
    "ges_bot.sinks.terminal",
    "mako.ext.pygmentplugin",
    "sqlalchemy.orm",
)

_RUN_IMPORTS = """
import json, sys
from ges_bot.cli import build_parser
from ges_bot.lean import absent
build_parser("run")
with absent("httpx._main"):  # as cli.run imports them
    import ges_bot.config, ges_bot.runtime
import ges_bot.store.migrate  # what open_store imports to migrate at start
import httpx
print(json.dumps({"modules": sorted(sys.modules), "mark": "httpx._main" in sys.modules, "main": httpx.main.__module__}))
"""


def test_ges_bot_run_starts_without_the_other_commands_libraries() -> None:
    out = subprocess.run([sys.executable, "-c", _RUN_IMPORTS], capture_output=True, text=True, check=True, timeout=120)
    found = json.loads(out.stdout)
    loaded = [m for m in found["modules"] if any(m == p or m.startswith(p + ".") for p in NOT_AT_START)]
    assert loaded == []
    # httpx bound its stub instead of its command-line client, and the mark is gone.
    assert found["main"] == "httpx"
    assert found["mark"] is False


def test_the_deferred_async_package_still_exports_everything() -> None:
    code = (
        "import sys, ges_bot.store.engine; assert 'sqlalchemy.orm' not in sys.modules; "
        "from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker; "
        "import sqlalchemy.ext.asyncio as pkg; from sqlalchemy.ext.asyncio.engine import AsyncEngine as E; "
        "assert AsyncEngine is E and pkg.AsyncSession is AsyncSession and not hasattr(pkg, '__getattr__')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_absent_hides_a_module_only_inside_the_block() -> None:
    from ges_bot.lean import absent

    name = "ges_bot_no_such_module_for_test"
    with absent(name, "sys"):
        assert sys.modules[name] is None
        assert sys.modules["sys"] is sys  # already imported: left alone
    assert name not in sys.modules


def test_every_subcommand_is_still_in_the_whole_parser() -> None:
    from ges_bot.cli import SUBCOMMANDS, build_parser

    _, runners = build_parser()
    assert sorted(runners) == sorted(SUBCOMMANDS)
    _, one = build_parser("db")
    assert list(one) == ["db"]
