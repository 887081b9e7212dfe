"""The repository stands on its own: nothing in it reaches for files beside the clone."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ROOT

# Built from parts, so that this file does not match itself.
OUTSIDE = "../" + "shared"
CITATION = "CON" + "TRACT"


def tracked_files() -> list[Path]:
    """The files git tracks, or every file when the tree is not a git checkout (an sdist)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


def texts() -> list[tuple[str, str]]:
    out = []
    for path in tracked_files():
        name = path.relative_to(ROOT).as_posix()
        if name.startswith(".ci/") or not path.is_file():
            continue
        try:
            out.append((name, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # binary: a plot
    return out


def test_no_file_outside_ci_reaches_beside_the_clone() -> None:
    found = [name for name, text in texts() if OUTSIDE in text]
    assert found == [], f"these files refer to {OUTSIDE}: {found}"


def test_code_and_tests_cite_the_projects_own_behaviour_document() -> None:
    found = [
        name
        for name, text in texts()
        if name.startswith(("gateway/", "tests/")) and CITATION in text
    ]
    assert found == [], f"cite docs/behaviour.md instead, in: {found}"
    assert (ROOT / "docs" / "behaviour.md").is_file()


def test_the_contracts_the_tests_read_are_in_the_repository() -> None:
    contracts = ROOT / "tests" / "contracts"
    readme = (contracts / "README.md").read_text()
    for spec in contracts.iterdir():
        if spec.name != "README.md":
            assert f"`{spec.name}`" in readme, f"{spec.name} has no origin in the README"
