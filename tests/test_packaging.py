"""The distribution installs one top-level package, `aidsafe`, with its data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_holds_one_top_level_package_with_templates_and_policies(tmp_path: Path) -> None:
    wheel_command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*wheel_command, "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("aidsafe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"aidsafe"}
    for expected in (
        "aidsafe/graphs/deliberation.py",
        "aidsafe/nodes/deliberator.md",
        "aidsafe/policies/aidsafe.yaml",
        "aidsafe/cli/main.py",
        "aidsafe/viewer/page.html.j2",
        "aidsafe/viewer/viewer.js",
        "aidsafe/viewer/labelling.js",
    ):
        assert expected in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "aidsafe = aidsafe.cli.console:run" in zipfile.ZipFile(wheel).read(entry_points).decode()
