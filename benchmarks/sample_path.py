"""One sample's path through the house, file by file (a script: it prints the files and their count).

    python benchmarks/sample_path.py              # this checkout
    python benchmarks/sample_path.py /path/to/another/checkout   # e.g. an older commit, to compare

One `aidsafe generate` of one prompt, `--max-rounds 1`, against the tests' stub server, in this
process. Every function that runs is noted by the file it is in (`sys.setprofile` and
`threading.setprofile`); module and class bodies are left out, and a first run beforehand does the
imports, so only code that runs for the command counts. A file is on the **sample's path** when it
runs inside `batch/engine.run_sample` (the sample's graph, marked by a context variable that
LangGraph carries into every node's task and thread) or inside the driver's reading of the input
(`_to_run`) or writing of the record (`write`); the rest is the **set-up**, which a run does once
however many samples it has. Files are listed in the order they are first reached, with that
first function.
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
sys.path.insert(0, str(ROOT))

import aidsafe.batch.engine as engine  # noqa: E402
from aidsafe.cli.main import main  # noqa: E402
from tests.fakes import StubServer, prompts, write_jsonl  # noqa: E402

PACKAGES = {link.name for link in (ROOT / "aidsafe").iterdir() if link.is_symlink()}
"""The top-level folders that are `aidsafe.*` subpackages: only their files count."""
SAMPLE_FRAMES = {"_to_run", "todo", "write"}
"""The driver's functions that read a sample's line and write its record (`todo` in older trees)."""

in_sample = contextvars.ContextVar("in_sample", default=False)
sample_files: dict[str, str] = {}
setup_files: dict[str, str] = {}


def on_sample_path(frame: FrameType | None) -> bool:
    if in_sample.get():
        return True
    while frame is not None:
        if frame.f_code.co_name in SAMPLE_FRAMES and frame.f_code.co_filename.endswith("batch/driver.py"):
            return True
        frame = frame.f_back
    return False


def note(frame: FrameType, event: str, arg: Any) -> None:
    code = frame.f_code
    if event != "call" or not code.co_flags & inspect.CO_NEWLOCALS:  # not a module or class body
        return
    path = Path(os.path.realpath(code.co_filename))
    if not path.is_relative_to(ROOT) or path.relative_to(ROOT).parts[0] not in PACKAGES:
        return
    files = sample_files if on_sample_path(frame) else setup_files
    files.setdefault(str(path.relative_to(ROOT)), code.co_name)


def traced_run_sample(original: Any) -> Any:
    async def run_sample(*args: Any, **kwargs: Any) -> Any:
        in_sample.set(True)
        return await original(*args, **kwargs)

    return run_sample


def show(title: str, files: dict[str, str]) -> None:
    folders = collections.Counter(name.split("/")[0] for name in files)
    by_folder = ", ".join(f"{folder} {count}" for folder, count in folders.items())
    print(f"{title}: {len(files)} files in {len(folders)} folders ({by_folder})")
    for name, function in files.items():
        print(f"  {name} ({function})")


def run() -> None:
    engine.run_sample = traced_run_sample(engine.run_sample)
    folder = Path(tempfile.mkdtemp())
    inputs = write_jsonl(folder / "in.jsonl", prompts(1))
    with StubServer() as server:
        flags = ["--base-url", server.base_url, "--model", "m", "--no-progress", "--max-rounds", "1"]
        main(["generate", str(inputs), "-o", str(folder / "warm.jsonl"), *flags])
        sys.setprofile(note)
        threading.setprofile(note)
        try:
            main(["generate", str(inputs), "-o", str(folder / "out.jsonl"), *flags])
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
    print(f"\n== {ROOT}")
    show("sample's path", sample_files)
    show("set-up only", {name: f for name, f in setup_files.items() if name not in sample_files})
    whole = {**setup_files, **sample_files}
    folders = collections.Counter(name.split("/")[0] for name in whole)
    print(f"whole command: {len(whole)} files in {len(folders)} folders")


if __name__ == "__main__":
    run()
