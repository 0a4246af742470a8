"""Where the client's CPU goes per model call (a script, not a test: it prints figures).

    python benchmarks/client_profile.py                 # 1,000 and 200 samples at concurrency 64, 200 ms
    python benchmarks/client_profile.py --samples 500 --top 40
    python benchmarks/client_profile.py --no-profile     # CPU per call of all threads, without cProfile

Runs `aidsafe generate` in one process (`--workers 1`) under cProfile against the throughput
benchmark's latency server twice, with N and N/5 samples, and subtracts the short run from the long
one function by function, so that start-up (imports, compiling) drops out. It prints the marginal
CPU per model call and the profile's own time summed
by library (openai, httpx, aiohttp, langchain_core, langchain_openai, langgraph, pydantic, sqlite,
asyncio, aidsafe, ...) and the functions with the most own time. cProfile itself slows every
Python call, so the shares matter more than the absolute figures; `throughput.py` measures the
CPU per call without it. cProfile sees only the main thread: work that LangGraph and
langchain-openai hand to a thread pool is missing from its total. `--no-profile` runs the same
two runs without cProfile and prints the marginal user + system CPU of the process, all threads
included, per model call: the figure to compare before and after a change.
"""

from __future__ import annotations

import argparse
import json
import pstats
import resource
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from throughput import LatencyServer, write_prompts  # noqa: E402

LIBRARIES = (
    "openai",
    "httpx_aiohttp",
    "httpx2",
    "httpx",
    "httpcore",
    "aiohttp",
    "langchain_openai",
    "langchain_core",
    "langgraph",
    "pydantic",
    "pydantic_core",
    "json_repair",
    "aiosqlite",
    "sqlite3",
    "ormsgpack",
    "uvloop",
    "asyncio",
    "typing",
    "inspect",
    "dataclasses",
    "json",
    "aidsafe",
)


def library_of(filename: str) -> str:
    parts = Path(filename).parts
    for name in LIBRARIES:
        if name in parts or f"{name}.py" in parts:
            return name
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    for folder in ("batch", "nodes", "graphs", "state", "cli", "embedded", "policies"):
        if folder in parts:
            return "aidsafe"
    return "other Python"


PROFILED_RUN = """
import cProfile, sys, time
from aidsafe.cli.main import main
profile = cProfile.Profile(time.process_time)
profile.enable()
try:
    main(sys.argv[2:])
finally:
    profile.disable()
    profile.dump_stats(sys.argv[1])
"""
"""`aidsafe` under cProfile with CPU time as its clock: wall time would count the waits of a loaded machine."""

Profile = dict[tuple[str, int, str], tuple[float, float]]
"""(file, line, function) -> (primitive calls, own seconds)."""


def generate(server: LatencyServer, samples: int, concurrency: int, workdir: Path, *python: str) -> tuple[int, float]:
    """Model calls and CPU seconds (user + system, all threads) of one `aidsafe generate --workers 1`
    run; `python` is what the interpreter runs it with (`-m aidsafe.cli.main`, or cProfile's wrapper)."""
    inputs, output = workdir / f"{samples}.jsonl", workdir / f"{samples}.out.jsonl"
    write_prompts(inputs, samples)
    command = [
        sys.executable, *python, "generate", str(inputs), "-o", str(output), "--no-progress",
        "--workers", "1", "--base-url", server.base_url, "--model", "bench", "--concurrency", str(concurrency),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, cwd=ROOT.parent, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(output.with_suffix(".summary.json").read_text())
    return summary["llm_calls"], after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def profile_run(server: LatencyServer, samples: int, concurrency: int, workdir: Path) -> tuple[int, Profile]:
    """Model calls and the cProfile of one run."""
    profile = workdir / f"{samples}.prof"
    calls, _ = generate(server, samples, concurrency, workdir, "-c", PROFILED_RUN, str(profile))
    raw = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    return calls, {key: (entry[0], entry[2]) for key, entry in raw.items()}


def print_cpu_per_call(args: argparse.Namespace) -> None:
    """`--no-profile`: the long run's CPU minus the short run's, per model call."""
    runs = (max(1, args.samples // 5), args.samples)
    with tempfile.TemporaryDirectory(prefix="aidsafe-profile-") as tmp, LatencyServer(args.latency) as server:
        (short_calls, short_cpu), (long_calls, long_cpu) = (
            generate(server, samples, args.concurrency, Path(tmp), "-m", "aidsafe.cli.main") for samples in runs
        )
    calls = long_calls - short_calls
    print(
        f"{args.samples} - {args.samples // 5} samples at concurrency {args.concurrency}: {calls} model calls, "
        f"{1000 * (long_cpu - short_cpu) / calls:.2f} ms of CPU per call (user + system, all threads, start-up "
        "excluded, no cProfile)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000, help="Samples of the long run (the short one: a fifth).")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--top", type=int, default=30, help="Functions to list by own time.")
    parser.add_argument("--save", type=Path, help="Keep the long run's cProfile file here (pstats, snakeviz).")
    parser.add_argument("--no-profile", action="store_true", help="Only the CPU per call, without cProfile.")
    args = parser.parse_args()
    if args.no_profile:
        print_cpu_per_call(args)
        return
    with tempfile.TemporaryDirectory(prefix="aidsafe-profile-") as tmp, LatencyServer(args.latency) as server:
        short_calls, short = profile_run(server, max(1, args.samples // 5), args.concurrency, Path(tmp))
        long_calls, long = profile_run(server, args.samples, args.concurrency, Path(tmp))
        if args.save:
            args.save.write_bytes((Path(tmp) / f"{args.samples}.prof").read_bytes())
    calls = long_calls - short_calls
    marginal = {
        key: (n - short.get(key, (0, 0.0))[0], seconds - short.get(key, (0, 0.0))[1])
        for key, (n, seconds) in long.items()
    }
    total = sum(seconds for _, seconds in marginal.values())
    by_library: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, seconds) in marginal.items():
        by_library[library_of(filename)] += seconds
    function_calls = sum(n for n, _ in marginal.values())
    print(
        f"{args.samples} - {args.samples // 5} samples at concurrency {args.concurrency}: {calls} model calls, "
        f"{1000 * total / calls:.2f} ms of profiled CPU per call (CPU clock, start-up excluded, cProfile overhead in), "
        f"{function_calls / calls:,.0f} Python function calls per call (the same on a loaded machine)"
    )
    print(f"{'library (own time)':<22} {'ms/call':>8} {'share':>6}")
    for name, seconds in sorted(by_library.items(), key=lambda item: -item[1]):
        print(f"{name:<22} {1000 * seconds / calls:>8.3f} {seconds / total:>6.1%}")
    print(f"\n{'function (own time)':<80} {'ms/call':>8} {'calls/call':>10}")
    ranked = sorted(marginal.items(), key=lambda item: -item[1][1])[: args.top]
    for (filename, line, function), (n, seconds) in ranked:
        where = f"{'/'.join(Path(filename).parts[-2:])}:{line} {function}"
        print(f"{where[-80:]:<80} {1000 * seconds / calls:>8.3f} {n / calls:>10.1f}")


if __name__ == "__main__":
    main()
