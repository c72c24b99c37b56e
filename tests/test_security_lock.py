"""Dependencies are pinned: requirements.lock pins every dependency of pyproject.toml (and the test
and bench extras) to one version that satisfies it, and the environment under test is exactly it."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, version = line.partition("==")
        assert separator, f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in (*project["dependencies"], *extras["test"], *extras["bench"])]


def test_the_lock_pins_every_declared_dependency_to_a_version_that_satisfies_it():
    pins = locked()
    missing = [str(r) for r in declared() if canonicalize_name(r.name) not in pins]
    assert missing == [], "regenerate requirements.lock (its header says how)"
    unsatisfied = [
        f"{r} locked at {pins[canonicalize_name(r.name)]}"
        for r in declared()
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert unsatisfied == []


def test_the_environment_under_test_is_the_locked_one():
    drift = {}
    for name, version in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = (version, installed)
    assert drift == {}, "run ./dev test, which installs requirements.lock"


def test_dev_installs_the_lock():
    assert "-r requirements.lock" in (ROOT / "dev").read_text()
