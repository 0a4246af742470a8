"""The README quickstart on the embedded model, two checkouts side by side (a script, not a test).

    git worktree add --detach /tmp/before ea2cc55^      # the prompt layout before issue 16
    git worktree add --detach /tmp/after main
    python benchmarks/quickstart_ab.py /tmp/before /tmp/after --pairs 2

Runs `aidsafe generate examples/prompts.jsonl` (the quickstart: embedded SmolLM2, no flags) from
each checkout in turn, A B A B ..., so that the load of a shared machine falls on both alike. Each
run imports the package from its own checkout (`python -m` puts the working folder first on
`sys.path`) with this interpreter's dependencies, and writes to a fresh temporary folder. Prints
wall seconds, LLM calls, prompt tokens and the load average per run, then the ratio of the mean
wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def quickstart(checkout: Path, workdir: Path) -> dict[str, float]:
    output = workdir / "prompts.generated.jsonl"
    command = [sys.executable, "-m", "aidsafe.cli.main", "generate", "examples/prompts.jsonl", "-o", str(output)]
    load = os.getloadavg()[0]
    started = time.monotonic()
    subprocess.run([*command, "--no-progress"], cwd=checkout, stdout=subprocess.DEVNULL, check=False)
    wall = time.monotonic() - started
    summary = json.loads(output.with_suffix(".summary.json").read_text())
    return {
        "wall": wall,
        "done": summary["done"],
        "failed": summary["failed"],
        "calls": summary["llm_calls"],
        "input_tokens": summary["input_tokens"],
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="Checkout A (the old layout).")
    parser.add_argument("after", type=Path, help="Checkout B (the new layout).")
    parser.add_argument("--pairs", type=int, default=2, help="A/B pairs, interleaved (default 2).")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"before": [], "after": []}
    header = f"{'run':>4} {'checkout':>8} {'wall s':>8} {'done':>5} {'failed':>6} {'calls':>6}"
    print(f"{header} {'prompt tok':>11} {'load':>11}")
    for pair in range(args.pairs):
        for name in ("before", "after"):
            with tempfile.TemporaryDirectory(prefix=f"aidsafe-quickstart-{name}-") as tmp:
                run = quickstart(getattr(args, name), Path(tmp))
            walls[name].append(run["wall"])
            print(
                f"{pair + 1:>4} {name:>8} {run['wall']:>8.1f} {run['done']:>5.0f} {run['failed']:>6.0f} "
                f"{run['calls']:>6.0f} {run['input_tokens']:>11.0f} "
                f"{run['load_before']:>5.1f}-{run['load_after']:<5.1f}",
                flush=True,
            )
    before, after = statistics.mean(walls["before"]), statistics.mean(walls["after"])
    print(f"mean wall: before {before:.1f} s, after {after:.1f} s: after/before {after / before:.2f}")


if __name__ == "__main__":
    main()
