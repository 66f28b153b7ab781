"""The supply chain, checked offline: constraints.txt pins every runtime dependency with hashes, the
pins satisfy pyproject.toml, and neither the pins nor the floors admit a release with a published
advisory (security/advisories.toml). The Docker image installs exactly these pins.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
ADVISORIES = REPO / "security" / "advisories.toml"

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)")


def _pins(text: str) -> dict[str, tuple[Version, list[str]]]:
    """``name → (version, hashes)`` from a pip-compile ``--generate-hashes`` file."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (Version(match.group(2)), [])
        elif stripped.startswith("--hash=") and current is not None:
            pins[current][1].append(stripped.removeprefix("--hash=").rstrip(" \\"))
        elif stripped and not stripped.startswith("#"):
            raise AssertionError(f"constraints.txt: unexpected line {line!r}")
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"]]


def _advisories() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = tomllib.loads(ADVISORIES.read_text(encoding="utf-8"))["advisory"]
    return rows


def _vulnerable(pins: dict[str, tuple[Version, list[str]]], advisories: list[dict[str, str]]) -> list[str]:
    found = []
    for advisory in advisories:
        pinned = pins.get(canonicalize_name(advisory["package"]))
        if pinned is not None and pinned[0] < Version(advisory["fixed"]):
            found.append(f"{advisory['package']}=={pinned[0]}: {advisory['id']} (fixed in {advisory['fixed']})")
    return found


def _floor(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


def test_every_runtime_dependency_is_pinned_with_hashes_within_its_range() -> None:
    pins = _pins(CONSTRAINTS.read_text(encoding="utf-8"))
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a dependency but not pinned in constraints.txt; regenerate it"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {name}=={version}, outside pyproject.toml's {requirement}; regenerate it"
        )
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no --hash: the Dockerfile's --require-hashes would refuse it"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), (name, hashes)


def test_no_pinned_version_has_a_known_advisory() -> None:
    pins = _pins(CONSTRAINTS.read_text(encoding="utf-8"))
    assert _vulnerable(pins, _advisories()) == []


def test_no_dependency_floor_admits_a_known_advisory() -> None:
    fixed: dict[str, list[dict[str, str]]] = {}
    for advisory in _advisories():
        fixed.setdefault(canonicalize_name(advisory["package"]), []).append(advisory)
    problems = []
    for requirement in _requirements():
        floor = _floor(requirement)
        for advisory in fixed.get(canonicalize_name(requirement.name), []):
            if floor is None or floor < Version(advisory["fixed"]):
                problems.append(f"{requirement}: admits {advisory['id']} (fixed in {advisory['fixed']})")
    assert problems == []


def test_the_check_catches_a_vulnerable_pin() -> None:
    """The check itself, on the versions the review found: these pins must be reported."""
    pins = _pins(
        "aiohttp==3.12.13 \\\n    --hash=sha256:" + "0" * 64 + "\n"
        "starlette==0.49.0 \\\n    --hash=sha256:" + "1" * 64 + "\n"
        "h11==0.14.0 \\\n    --hash=sha256:" + "2" * 64 + "\n"
        "uvicorn==0.54.0 \\\n    --hash=sha256:" + "3" * 64 + "\n"
    )
    found = _vulnerable(pins, _advisories())
    assert any(f.startswith("aiohttp==3.12.13: CVE-2025-53643") for f in found)
    assert any(f.startswith("starlette==0.49.0: CVE-2025-62727") for f in found)
    assert any(f.startswith("h11==0.14.0: CVE-2025-43859") for f in found)
    assert not any(f.startswith("uvicorn") for f in found)


@pytest.mark.parametrize("package", ["aiohttp", "starlette", "h11", "uvicorn"])
def test_the_reviewed_packages_are_constrained_directly(package: str) -> None:
    # h11 comes in through uvicorn, which admits vulnerable releases: it needs a floor of its own.
    assert package in {canonicalize_name(r.name) for r in _requirements()}


def test_the_dockerfile_installs_the_constraints_with_hashes_on_a_pinned_base() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"pip wheel [^\n]*--require-hashes [^\n]*-r constraints\.txt", dockerfile)
    assert re.search(r"pip install [^\n]*--require-hashes -r /tmp/constraints\.txt", dockerfile)
    bases = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")}
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11[\w.\-]*-slim[\w\-]*@sha256:[0-9a-f]{64}", bases.pop())
