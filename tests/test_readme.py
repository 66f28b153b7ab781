"""The README stays true: its commands are CI's, and it documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from ges_bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    block = README.split("## Try it", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_opens_with_the_two_commands() -> None:
    demo, tests = _commands()
    assert demo.endswith("pip install -e . && ges-bot demo")
    assert tests.endswith("pip install -e '.[test]' && pytest")


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _commands()[1] in ci.splitlines()


def test_every_setting_is_in_the_configuration_reference() -> None:
    missing = []
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        for env in names:
            if isinstance(env, str) and f"`{env}`" not in README:
                missing.append(f"{name}: {env}")
    assert missing == []


def test_help_text_in_readme_is_what_users_see() -> None:
    from ges_bot.slackapp.commands import HELP_TEXT

    section = README.split("## /gesjobs reference", 1)[1].split("\n## ", 1)[0]
    shown = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert shown, "the /gesjobs reference shows the help text in a ```text block"
    assert shown.group(1).strip() == HELP_TEXT.strip()
