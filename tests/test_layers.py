"""The layers contract (pyproject's `[tool.importlinter]`, run by `.ci/run` as `lint-imports`) holds
on the tree, and breaks on a planted upward import or a planted cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([lint, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package: `aidsafe/` with its links and the folders they point at."""
    copy = tmp_path / "tree"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copytree(ROOT / "aidsafe", copy / "aidsafe", symlinks=True)
    for link in (ROOT / "aidsafe").iterdir():
        if link.is_symlink():
            shutil.copytree(link.resolve(), copy / link.name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_tree_keeps_the_layers(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        (
            "state/records.py",
            "from aidsafe.cli.exit_codes import DONE",
            "aidsafe.state is not allowed to import aidsafe.cli",
        ),
        ("nodes/templates.py", "from aidsafe.nodes import agent", "No cycles are allowed in aidsafe.nodes"),
    ],
    ids=["an upward import", "a cycle inside a package"],
)
def test_a_planted_import_breaks_the_contract(tree: Path, module: str, planted: str, broken: str) -> None:
    path = tree / module
    path.write_text(f"{path.read_text()}\n{planted}  # planted\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert broken in result.stdout
